r"""Conjugate priors for Gaussian mixtures, their log-density and the MAP M-step.

A :class:`GMMPrior` is a pytree of five arrays (no static fields: changing its
values never recompiles). With ``k`` components, ``d`` features, weights
``w``, means ``mu_k`` and covariances ``Sigma_k`` (``s_kj`` for diag,
``s_k`` for spherical), the prior is

.. math::

    w \sim \mathrm{Dir}(\alpha, \dots, \alpha), \qquad
    \mu_k \mid \Sigma_k \sim \mathcal N(m_0, \Sigma_k / \kappa_0),

and, on the covariances, with ``nu = degrees_of_freedom`` and
``Psi = covariance_prior``:

=========  ===============================================  =====================
family     covariance prior                                 ``covariance_prior``
=========  ===============================================  =====================
full       ``Sigma_k ~ IW(nu, Psi)`` for every ``k``        ``(d, d)`` SPD
tied       ``Sigma ~ IW(nu, Psi)`` once                     ``(d, d)`` SPD
diag       ``s_kj ~ InvGamma(nu / 2, psi_j / 2)``           ``(d,)`` positive
spherical  ``s_k ~ InvGamma(d nu / 2, d psi / 2)``          ``()`` positive
=========  ===============================================  =====================

The diag prior is the inverse-Wishart of each coordinate (``IW(nu, psi)`` in
one dimension is ``InvGamma(nu/2, psi/2)``); the spherical one pools that
prior over the ``d`` coordinates that share ``s_k``, so its strength relative
to the data is the same as for diag. For ``d = 1`` all four coincide.

Densities are with respect to Lebesgue measure on ``(w_1..w_{k-1}, mu,
Sigma)`` (``Sigma`` itself, not its Cholesky factor), exactly as
``scipy.stats`` defines them, so the MAP point does not depend on how a fit
parametrises the covariances.

"No prior" is ``prior=None`` everywhere: :func:`log_prior` is then ``0`` and
fits are maximum likelihood.

MAP M-step (:func:`jaxmix.gmm.update.map_m_step`), from the statistics ``nk, sx, sxx`` of
:mod:`jaxmix.gmm.stats` taken about a per-component ``shift`` ``c_k``, with
``xbar_k - c_k = sx_k / nk``, scatter ``S_k = sxx_k - nk (xbar_k - c_k)(..)^T``,
``delta_k = xbar_k - m_0`` and ``r_k = kappa_0 nk / (kappa_0 + nk)``::

    w_k     = (nk + alpha - 1) / (n + k (alpha - 1))
    mu_k    = c_k + (kappa_0 (m_0 - c_k) + sx_k) / (kappa_0 + nk)
    full    Sigma_k = (Psi + S_k + r_k delta_k delta_k^T) / (nu + nk + d + 2)
    tied    Sigma   = (Psi + sum_k (S_k + r_k delta_k delta_k^T)) / (nu + n + d + 1 + k)
    diag    s_kj    = (psi_j + S_kjj + r_k delta_kj^2) / (nu + nk + 3)
    sph.    s_k     = (d psi + tr S_k + r_k |delta_k|^2) / (d nu + d nk + d + 2)

These are the joint maximisers of the expected complete-data log-likelihood
plus :func:`log_prior` (``tests/gmm/test_map_em.py`` checks that the gradient
vanishes there). ``reg_covar`` is still added to the diagonal afterwards, as
in the maximum-likelihood step; pass ``reg_covar=0`` for the exact MAP point.
For ``alpha < 1`` the weight mode lies on the boundary: ``nk + alpha - 1`` is
floored at ``10 eps``.

Defaults (:func:`default_prior`, after Fraley & Raftery 2007, "Bayesian
regularization for normal mixture estimation and model-based clustering"):
``alpha = 1`` (flat: the weights are maximum likelihood), ``m_0`` = data
mean, ``kappa_0 = 0.01``, ``nu = d + 2``, and ``Psi`` = the data covariance
divided by ``k^(2/d)`` (diag: the variances; spherical: their mean), i.e.
the prior covariance is what ``k`` equal clusters tiling the data would
have. ``1e-6`` times the mean variance is added to ``Psi``'s diagonal so that
constant features or ``n < d`` still give a proper prior.

>>> import jax.numpy as jnp
>>> from jaxmix import GMMParams
>>> from jaxmix.gmm.priors import default_prior, log_prior
>>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
>>> prior = default_prior(x, 1, "full")
>>> p = GMMParams(jnp.ones(1), jnp.full((1, 2), 0.5), jnp.eye(2)[None])
>>> round(float(log_prior(p, prior)), 4)
-15.4624
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from jaxmix.compiling import jit
from jaxmix.gmm.covariance import family
from jaxmix.numerics import HIGHEST, LOG_2PI, safe_log
from jaxmix.params import GMMParams


class GMMPrior(NamedTuple):
    """Dirichlet x Normal-inverse-Wishart (or -Gamma) prior (see module docstring).

    Attributes:
      weight_concentration: ``()`` symmetric Dirichlet ``alpha > 0``.
      mean_prior: ``(d,)`` prior mean ``m_0``.
      mean_precision: ``()`` ``kappa_0 > 0``, pseudo-count of the mean prior.
      degrees_of_freedom: ``()`` ``nu`` (``> d - 1`` for full/tied, ``> 0``
        otherwise).
      covariance_prior: ``Psi``: full/tied ``(d, d)`` symmetric positive
        definite, diag ``(d,)`` positive, spherical ``()`` positive.
    """

    weight_concentration: jax.Array
    mean_prior: jax.Array
    mean_precision: jax.Array
    degrees_of_freedom: jax.Array
    covariance_prior: jax.Array


# ---------------------------------------------------------------------------
# log-density


def log_dirichlet(log_weights, alpha, real=None):
    """``log Dir(w; alpha 1_k)`` from ``log w`` (finite even where ``w``
    underflows), over the ``real`` components only (default all)."""
    if real is None:
        real = jnp.ones(log_weights.shape[-1:], bool)
    k = jnp.sum(real, axis=-1).astype(log_weights.dtype)
    return (gammaln(k * alpha) - k * gammaln(alpha)
            + (alpha - 1.0) * jnp.sum(jnp.where(real, log_weights, 0.0), axis=-1))


def log_prior_terms(params: GMMParams, prior: GMMPrior | None, log_weights=None, real=None):
    """:func:`log_prior` with ``log w`` given (e.g. ``log_softmax(logits)``);
    ``real (k,)`` restricts it to the real components of a padded mixture
    (whose others are copies of component 0, see
    :func:`jaxmix.gmm.update.enforce_mask`)."""
    if prior is None:
        return jnp.zeros((), params.means.dtype)
    if log_weights is None:
        log_weights = safe_log(params.weights)
    return (log_dirichlet(log_weights, prior.weight_concentration, real)
            + log_components_prior(params, prior, real))


def log_components_prior(params: GMMParams, prior: GMMPrior, real=None):
    """The Normal-inverse-Wishart (-Gamma) part of :func:`log_prior`: means
    and covariances, over the ``real (k,)`` components (default all)."""
    fam = family(params.covariance_type)
    pc, means = params.precisions_cholesky, params.means
    k, d = means.shape
    if real is None:
        real = jnp.ones((k,), bool)
    kappa = prior.mean_precision
    # mu_k | Sigma_k ~ N(m0, Sigma_k / kappa): whitened by sqrt(kappa) L_k.
    maha = fam.sq_mahalanobis(prior.mean_prior[None], means, pc)[0]
    log_det = jnp.broadcast_to(fam.log_det(pc, d), (k,))
    log_mean = jnp.sum(jnp.where(real, -0.5 * d * LOG_2PI + 0.5 * d * jnp.log(kappa) + log_det
                                 - 0.5 * kappa * maha, 0.0))
    log_cov = fam.log_covariance_prior(pc, prior, d)
    if fam.per_component:  # the padding's terms are component 0's
        log_cov = log_cov - jnp.sum(~real) * fam.log_covariance_prior(pc[:1], prior, d)
    return log_mean + log_cov


def log_prior(params: GMMParams, prior: GMMPrior | None, real=None) -> jax.Array:
    """Log-density of ``params`` under ``prior`` (scalar); ``0`` when ``prior`` is None.

    Normalised, so it equals the sum of the matching ``scipy.stats`` log-pdfs
    (``dirichlet``, ``invwishart`` / ``invgamma``, ``multivariate_normal``).
    """
    return log_prior_terms(params, prior, real=real)


# ---------------------------------------------------------------------------
# Defaults and validation (host side)

# ``Psi`` gets this fraction of the mean data variance added to its diagonal.
SCALE_FLOOR = 1e-6


class DefaultPriorOf(NamedTuple):
    """``prior="default"`` of a fit, resolved inside its compiled program
    from the fit's own sample (:func:`in_program`), so that it compiles no
    program of its own: ``scale`` is ``k^(2/d)``; the defaults of
    :func:`default_prior` (traced scalars)."""
    scale: jax.Array
    weight_concentration: jax.Array
    mean_precision: jax.Array
    degrees_of_freedom: jax.Array


# default_prior's hyper-parameters (nu: d + 2)
WEIGHT_CONCENTRATION, MEAN_PRECISION = 1.0, 0.01


def default_prior_of(n_components: int, n_features: int, dtype) -> DefaultPriorOf:
    """The request for :func:`default_prior` with its defaults, for
    ``n_components`` components of ``n_features``-dimensional data."""
    return DefaultPriorOf(*(np.asarray(v, dtype) for v in (
        _scale(n_components, n_features), WEIGHT_CONCENTRATION, MEAN_PRECISION,
        _dof(n_features, None))))


def _scale(n_components: int, d: int) -> float:
    return float(n_components) ** (2.0 / d)


def _dof(d: int, degrees_of_freedom):
    return d + 2.0 if degrees_of_freedom is None else degrees_of_freedom


def in_program(prior, x, w, covariance_type: str):
    """``prior`` as a :class:`GMMPrior` inside a compiled fit: a
    :class:`DefaultPriorOf` request becomes the default prior of the
    samples ``x (..., d)`` with weights ``w (...)``; anything else as it is."""
    if not isinstance(prior, DefaultPriorOf):
        return prior
    return _default_prior(x.reshape(-1, x.shape[-1]), w.reshape(-1), prior.scale,
                          prior.weight_concentration, prior.mean_precision,
                          prior.degrees_of_freedom, covariance_type)


def default_prior(x, n_components: int, covariance_type: str = "full", *, sample_weight=None,
                  weight_concentration=WEIGHT_CONCENTRATION, mean_precision=MEAN_PRECISION,
                  degrees_of_freedom=None) -> GMMPrior:
    """The data-dependent default prior (see the module docstring).

    Args:
      x: ``(n, d)`` data the prior is scaled to.
      n_components: ``k``; the prior covariance is the data's over ``k^(2/d)``.
      covariance_type: selects the layout of ``covariance_prior``.
      sample_weight: optional ``(n,)`` weights for the data mean and covariance.
      weight_concentration: Dirichlet ``alpha`` (``1``: flat).
      mean_precision: ``kappa_0``.
      degrees_of_freedom: ``nu``; ``None`` means ``d + 2``.
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    n, d = x.shape
    w = jnp.ones((n,), x.dtype) if sample_weight is None else jnp.asarray(sample_weight, x.dtype)
    return _default_prior(x, w, _scale(n_components, d), weight_concentration,
                          mean_precision, _dof(d, degrees_of_freedom), covariance_type)


@jit(static_argnames="covariance_type")
def _default_prior(x, w, scale, weight_concentration, mean_precision, nu,
                   covariance_type) -> GMMPrior:
    """:func:`default_prior` in one compiled program (``scale = k^(2/d)``)."""
    d = x.shape[1]
    w = w / jnp.sum(w)
    mean = jnp.matmul(w, x, precision=HIGHEST)
    z = x - mean
    cov = jnp.matmul((z * w[:, None]).T, z, precision=HIGHEST)
    mean_var = jnp.mean(jnp.diagonal(cov))
    floor = SCALE_FLOOR * jnp.where(mean_var > 0, mean_var, 1.0)
    cov = cov / scale + floor * jnp.eye(d, dtype=x.dtype)
    scalar = lambda v: jnp.asarray(v, x.dtype)  # noqa: E731
    return GMMPrior(scalar(weight_concentration), mean, scalar(mean_precision), scalar(nu),
                    family(covariance_type).default_prior_scale(cov))


def check_prior(prior, n_features: int, covariance_type: str, dtype=jnp.float32) -> GMMPrior:
    """Validate a :class:`GMMPrior` for ``n_features`` and ``covariance_type``;
    returns it with every leaf a ``dtype`` array. Errors name the field."""
    if not isinstance(prior, GMMPrior):
        raise ValueError(f"prior must be a jaxmix.gmm.priors.GMMPrior, 'default' or None, got "
                         f"{type(prior).__name__}; build one with jaxmix.gmm.priors.default_prior")
    fam = family(covariance_type)
    d = n_features
    shapes = {"weight_concentration": (), "mean_prior": (d,), "mean_precision": (),
              "degrees_of_freedom": (), "covariance_prior": fam.prior_scale_shape(d)}
    out = {}
    for name, shape in shapes.items():
        a = np.asarray(getattr(prior, name), dtype=np.float64)
        if a.shape != shape:
            raise ValueError(f"prior.{name} must have shape {shape} for covariance_type="
                             f"{covariance_type!r} and {d} features, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"prior.{name} contains NaN or infinity")
        out[name] = a
    for name in ("weight_concentration", "mean_precision"):
        if out[name] <= 0:
            raise ValueError(f"prior.{name} must be > 0, got {float(out[name])}")
    if out["degrees_of_freedom"] <= fam.prior_min_dof(d):
        raise ValueError(f"prior.degrees_of_freedom must be > {fam.prior_min_dof(d):g} for "
                         f"covariance_type={covariance_type!r} with {d} features, got "
                         f"{float(out['degrees_of_freedom'])} (the default is d + 2)")
    fam.check_prior_scale(out["covariance_prior"])
    return GMMPrior(**{name: jax.device_put(np.asarray(a, dtype)) for name, a in out.items()})


def requested_prior(prior, n_components: int, n_features: int, covariance_type: str, dtype):
    """What fit entry points accept: ``None`` (maximum likelihood), ``"default"``
    (a :class:`DefaultPriorOf` request: :func:`default_prior` of the fit's
    sample, built inside its program) or a :class:`GMMPrior` (validated)."""
    if prior is None:
        return None
    if isinstance(prior, str):
        if prior != "default":
            raise ValueError(f"prior must be None, 'default' or a GMMPrior, got {prior!r}")
        return default_prior_of(n_components, n_features, dtype)
    return check_prior(prior, n_features, covariance_type, dtype)
