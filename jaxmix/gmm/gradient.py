r"""The bijector and the objective of gradient (MAP or maximum-likelihood) fits.

The optimiser works on unconstrained parameters (:class:`Unconstrained`)::

    weights              = softmax(logits)
    means                = means
    covariances          S_k + reg_covar I, where S_k has the precision factor
                         full/tied: strictly upper part as is, diagonal exp(raw)
                         diag/spherical: exp(raw)

so every point of ``R^p`` is a valid mixture with covariances at least
``reg_covar`` in every direction: the set EM's M-step keeps its covariances
in (:mod:`jaxmix.gmm.objective`). The log scale of the precision factor makes
the curvature of the loss at the optimum independent of the data's units
(for one variance, ``d^2 loss / d raw^2 = 2`` there, away from the floor),
which suits both Adam and L-BFGS. The floor costs one ``d x d`` Cholesky per
component and evaluation (:meth:`jaxmix.gmm.dense.Full.constrain_factor`);
``reg_covar=0`` is the plain factor. ``unconstrain`` is the inverse (the
strictly lower triangle of a full/tied ``raw`` is ignored and set to zero).

The loss is ``-J``, the negative mean log-posterior per sample of
:mod:`jaxmix.gmm.objective`, the function MAP-EM increases, so both methods
are compared on one scale. The prior is a density over ``theta`` (see
:mod:`jaxmix.gmm.priors`), not over ``u``: no Jacobian term is added, so the
optimum is the MAP point itself.

The log-likelihood's value and gradient come from EM's own E-step
statistics (:func:`stats_log_lik`), on EM's paths: one GEMM over the
features ``phi(x)`` while that is accurate, centred distances otherwise.
The optimizer steps are in :mod:`jaxmix.gmm.gradient_steps`.

>>> import jax.numpy as jnp
>>> from jaxmix import GMMParams
>>> p = GMMParams(jnp.array([0.25, 0.75]), jnp.zeros((2, 1)), jnp.array([1.0, 2.0]), "spherical")
>>> q = constrain(unconstrain(p), "spherical")
>>> [round(float(v), 4) for v in q.weights], [round(float(v), 4) for v in q.precisions_cholesky]
([0.25, 0.75], [1.0, 2.0])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxmix.data.chunked import Chunked
from jaxmix.gmm.covariance import family
from jaxmix.gmm.frozen import held_log_weights, held_view, hold_updates
from jaxmix.gmm.objective import per_sample
from jaxmix.gmm.priors import GMMPrior
from jaxmix.gmm.stats import e_step, gemm_coefficients
from jaxmix.gmm.step import em_gain
from jaxmix.gmm.update import enforce_mask
from jaxmix.params import GMMParams


class Unconstrained(NamedTuple):
    """Unconstrained mixture parameters (see the module docstring).

    Attributes:
      logits: ``(k,)`` weight logits.
      means: ``(k, d)`` means.
      chol: ``precisions_cholesky``'s layout with log-diagonal (full, tied) or
        log-scales (diag, spherical).
    """

    logits: jax.Array
    means: jax.Array
    chol: jax.Array


def unconstrain(params: GMMParams, reg_covar=0.0, real=None) -> Unconstrained:
    """Inverse of :func:`constrain` (for parameters with positive weights);
    covariances at or below the ``reg_covar`` floor in some direction are
    raised to ``reg_covar (1 + 100 eps)`` there. ``real (k,)``: a padded
    mixture's real components; the others (weight 0) get logit 0, which
    :class:`Objective` masks."""
    if real is None:
        real = jnp.ones(params.weights.shape, bool)
    logw = jnp.log(jnp.where(real, params.weights, 1.0))
    logits = jnp.where(real, logw - jnp.sum(logw) / jnp.sum(real), 0.0)
    return Unconstrained(logits, params.means,
                         family(params.covariance_type).unconstrain_factor(
                             params.precisions_cholesky, reg_covar))


def constrain(u: Unconstrained, covariance_type: str, reg_covar=0.0) -> GMMParams:
    """Valid :class:`~jaxmix.params.GMMParams` for any finite ``u``, with every
    covariance ``S_k + reg_covar I`` (``S_k`` given by ``u.chol``)."""
    return GMMParams(jax.nn.softmax(u.logits), u.means,
                     family(covariance_type).constrain_factor(u.chol, reg_covar),
                     covariance_type)


def stats_log_lik(params: GMMParams, log_weights, data: Chunked, path: str = "exact"):
    r"""``sum_n w_n log p(x_n)`` whose value and gradient come from one E-step.

    Fisher's identity: the gradient of the log-likelihood at ``theta`` is the
    gradient at ``theta' = theta`` of the expected complete-data
    log-likelihood ``Q(theta') = sum_nk r_nk log(w'_k N(x_n | theta'_k))``,
    with ``r`` the responsibilities under ``theta``. ``Q`` is linear in the
    statistics of :mod:`jaxmix.data.chunked` (``[vech(sxx), sx, nk] . C(theta')``,
    ``C`` as in :func:`jaxmix.gmm.stats.gemm_coefficients`, about the E-step's
    shift), so the backward pass costs ``O(k F)`` instead of differentiating
    through ``(n, k, d)`` intermediates, and the E-step is EM's own (either
    path). Value and gradient are exact; higher derivatives are those of
    ``Q``, not of the log-likelihood (do not take Hessians of it).
    """
    fixed = jax.lax.stop_gradient(params.replace(weights=jnp.exp(log_weights)))
    stats = jax.lax.stop_gradient(e_step(fixed, data, path))
    shift = stats.shift
    fam = family(params.covariance_type)
    feats = jnp.concatenate([fam.features_from_moments(stats.sxx), stats.sx,
                             stats.nk[:, None]], -1)
    about_shift = params.replace(means=params.means - jax.lax.stop_gradient(shift),
                                 weights=jnp.ones_like(params.weights))
    # a padded component has nk = 0 and log w = -inf: it adds 0 (not NaN)
    weighted = jnp.where(stats.nk > 0, stats.nk * log_weights, 0.0)
    q = jnp.sum(feats * gemm_coefficients(about_shift)) + jnp.sum(weighted)
    return jax.lax.stop_gradient(stats.loglik - q) + q


class Objective(NamedTuple):
    """What a gradient fit maximises (:mod:`jaxmix.gmm.objective`): ``J`` of
    ``constrain(u, covariance_type, reg_covar)`` on ``data`` under ``prior``,
    its log-likelihood on E-step ``path``. ``scale`` multiplies the
    log-likelihood (``n_batches`` for a mini-batch's unbiased estimate).
    ``frozen`` (:class:`jaxmix.gmm.frozen.Masks`): those entries of ``u`` are
    held (no gradient, no update; frozen logits are log-weights). ``real``
    ``(k,)``: the real components of a padded mixture (the others have
    weight 0 and are copies of component 0, as
    :func:`jaxmix.gmm.update.enforce_mask` keeps them; no gradient reaches
    their entries of ``u``)."""

    covariance_type: str
    data: Chunked
    prior: GMMPrior | None = None
    reg_covar: Any = 0.0
    path: str = "exact"
    frozen: Any = None
    real: Any = None

    def log_weights(self, u: Unconstrained):
        if self.real is not None:  # (never with frozen: frozen fits are not padded)
            return jax.nn.log_softmax(jnp.where(self.real, u.logits, -jnp.inf))
        if self.frozen is None:
            return jax.nn.log_softmax(u.logits)
        return held_log_weights(u.logits, u.logits, self.frozen)

    def params(self, u: Unconstrained) -> GMMParams:
        if self.frozen is not None:
            u = held_view(u, self.frozen, self.covariance_type)
        p = constrain(u, self.covariance_type, self.reg_covar)
        if self.frozen is None and self.real is None:
            return p
        p = p.replace(weights=jnp.exp(self.log_weights(u)))  # what the loss uses
        if self.real is None:
            return p
        one = jax.tree.map(lambda a: a[None], p)
        return jax.tree.map(lambda a: a[0], enforce_mask(one, self.real[None]))

    def hold_updates(self, updates):
        """Optimizer updates with the frozen entries zeroed."""
        return updates if self.frozen is None else hold_updates(updates, self.frozen,
                                                                self.covariance_type)

    def value(self, u: Unconstrained, data: Chunked | None = None, scale=1.0):
        """``J(constrain(u))`` (on ``data`` instead when given, its
        log-likelihood times ``scale``), with ``log w = log_softmax(logits)``."""
        params = self.params(u)
        log_w = self.log_weights(u)
        data = self.data if data is None else data
        log_lik = scale * stats_log_lik(params, log_w, data, self.path)
        return per_sample(log_lik, params, self.prior, self.data.total_weight(), log_w,
                          self.real)

    def loss(self, u: Unconstrained, data: Chunked | None = None, scale=1.0):
        """``-value``: the quantity optimisers minimise."""
        return -self.value(u, data, scale)

    def exact(self) -> "Objective":
        """This objective on the exact E-step path."""
        return self._replace(path="exact")

    def em_gain(self, params: GMMParams, value):
        """What an EM step from ``params`` (whose ``J`` is ``value``) would gain."""
        return em_gain(params, value, self.data, self.reg_covar, self.prior, self.frozen,
                       self.real)
