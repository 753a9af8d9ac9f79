"""The covariance families and the one registry of them.

Each family is a stateless class of static methods and owns every rule that
depends on the covariance layout; every other module asks
``family(covariance_type)`` for one and never branches on the type itself.
:mod:`jaxmix.gmm.dense` holds ``full`` and ``tied``, :mod:`jaxmix.gmm.diagonal`
holds ``diag`` and ``spherical``; shared defaults are in
:mod:`jaxmix.gmm.family_base`. Shapes follow scikit-learn (``k`` components,
``d`` features):

=========  ==================  ======================  ==================
family     covariance          precisions_cholesky     second moment sxx
=========  ==================  ======================  ==================
full       ``(k, d, d)``       ``(k, d, d)`` upper     ``(k, d, d)``
tied       ``(d, d)``          ``(d, d)`` upper        ``(k, d, d)``
diag       ``(k, d)``          ``(k, d)``              ``(k, d)``
spherical  ``(k,)``            ``(k,)``                ``(k,)``
=========  ==================  ======================  ==================

The protocol every family provides. ``pc`` is a precision factor
(``precisions_cholesky``) and ``cov`` a covariance, both in the family's
layout above; ``F`` is the number of quadratic features (``d (d + 1) / 2``
for full/tied, ``d`` for diag, ``1`` for spherical); ``prior`` is a
:class:`jaxmix.gmm.priors.GMMPrior`. Methods marked (batch) also accept
leading batch axes (e.g. restarts) on ``pc`` and return them leading.

Attributes and counting
  ``name``: the ``covariance_type`` string.
  ``per_component``: whether ``pc`` has a leading component axis (``False``
  for tied only).
  ``n_params(k, d) -> int``: free covariance parameters.
  ``pc_shape(k, d) -> tuple``: the shape of ``pc``.

Conversions
  ``precision_cholesky(cov) -> pc``.
  ``covariance(pc) -> cov`` (batch).
  ``precisions(pc)``: scikit-learn's ``precisions_``, shaped like ``cov`` (batch).
  ``precision_cholesky_from_precisions(precisions, name) -> pc``: host side,
  numpy in and out, ``ValueError`` naming ``name`` for invalid precisions.
  ``variances(pc)``: per-feature variances, ``(k, d)`` (tied ``(1, d)``).

Density and sampling
  ``log_det(pc, d)``: ``log det L_k = -0.5 log det Sigma_k``, ``(k,)`` (tied ``()``).
  ``sq_mahalanobis(x (n, d), means (k, d), pc) -> (n, k)``: centred and exact;
  materialises ``(n, k, d)``, so it is used on sample chunks.
  ``precision_times(pc, v (k, d)) -> (k, d)``: ``P_k v_k``.
  ``quad_features(x (n, d)) -> (n, F)`` and ``quad_coefs(pc, k) -> (k, F)``:
  ``x^T P_k x = quad_features(x) @ quad_coefs(pc, k).T`` (features
  ``vech(x x^T)``, ``x * x`` or ``|x|^2``), so distances to all components
  are one GEMM (see :mod:`jaxmix.gmm.stats`).
  ``sample_noise(z (n, d), pc, labels (n,)) -> (n, d)``: ``z`` standard normal
  turned into draws of component ``labels`` centred at zero.

Statistics and M-step
  ``scatter(rw (n, k), z (n, k, d)) -> sxx``: weighted second moments of ``z``.
  ``moments_from_features(s (..., F), d) -> sxx`` and its inverse
  ``features_from_moments(sxx) -> (k, F)``: the second moments in the layout
  of ``quad_coefs``.
  ``covariance_from_stats(nk (k,), dev (k, d), sxx, reg) -> cov``:
  maximum-likelihood covariance from statistics, ``dev = sx / nk``.
  ``add_reg(cov, reg) -> cov``: ``reg`` added to the variances.

Degeneracy
  ``component_max_precision(pc, k) -> (..., k)``: each component's largest
  precision eigenvalue, ``1 / smallest variance`` in any direction (tied:
  its one value repeated), so callers never branch on the layout (batch).
  ``component_abs_quad(pc, a (k, d)) -> (k,)``: ``|a_k|^T |P_k| |a_k|`` with
  ``|P|`` entrywise, for ``a >= 0`` (the GEMM E-step's cancellation bound,
  :func:`jaxmix.gmm.stats.accurate_restarts`).

Gradient bijector
  ``constrain_factor(raw) -> pc`` and ``unconstrain_factor(pc) -> raw``,
  ``raw`` shaped like ``pc``; every finite ``raw`` gives a valid factor
  (batch).

Prior unit (conjugate prior on the covariances, see :mod:`jaxmix.gmm.priors`)
  ``prior_scale_shape(d) -> tuple``: shape of ``prior.covariance_prior``.
  ``prior_min_dof(d) -> float``: ``prior.degrees_of_freedom`` must exceed it.
  ``default_prior_scale(cov (d, d))``: the prior scale from a data covariance.
  ``check_prior_scale(psi)``: host side, ``ValueError`` unless valid.
  ``log_covariance_prior(pc, prior, d) -> ()``: log-density of the covariances.
  ``map_covariance(nk (k,), dev (k, d), sxx, delta (k, d), prior, n_real=None) -> cov``
  the MAP covariance before ``add_reg`` (``delta = xbar - m_0``).

>>> import jax.numpy as jnp
>>> from jaxmix.gmm.covariance import family
>>> tied = family("tied")
>>> tied.pc_shape(3, 2), tied.per_component
((2, 2), False)
>>> tied.component_max_precision(2.0 * jnp.eye(2), 3).tolist()
[4.0, 4.0, 4.0]
"""

from __future__ import annotations

from jaxmix.gmm.dense import Full, Tied
from jaxmix.gmm.diagonal import Diag, Spherical
from jaxmix.params import COVARIANCE_TYPES

_FAMILIES = {f.name: f for f in (Full, Tied, Diag, Spherical)}
assert tuple(_FAMILIES) == COVARIANCE_TYPES


def family(covariance_type: str):
    """The family class for ``covariance_type``."""
    try:
        return _FAMILIES[covariance_type]
    except (KeyError, TypeError):
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}"
        ) from None
