"""Global whitening for the GEMM E-step of dense covariances.

The GEMM path (:mod:`jaxmix.gmm.stats`) takes raw moments about the origin
and cancels ``x^T P x`` against ``mu^T P mu``; its relative error grows like
``eps * ||mu||^2 lambda_max(P)`` where a mean lies along its component's
narrowest direction (``eps |mu|^T |P| |mu|`` in general, the sharper of the
switch's two bounds, :func:`jaxmix.gmm.stats.accurate_restarts`). On
correlated features ``lambda_max(P)`` is the inverse of the narrowest
variance, which correlation makes tiny; where the means lie along those
narrow directions both bounds fail although the clusters are well apart.

In coordinates ``x' = x G`` where the data's covariance is the identity
(``G`` upper triangular, ``G G^T`` the inverse of the sample covariance) the
correlation is gone: ``lambda_max(P')`` is set by the clusters' spread
relative to the data's, not by the features' correlation. For the dense
families (full, tied) a Gaussian stays a Gaussian of the same family there
(``mu' = mu G``, ``L' = G^{-1} L``, still upper triangular), so the E-step
runs in whitened coordinates and its statistics are centred there, where the
cancellation is small, then mapped back (``S = G^{-T} S' G^{-1}``): the
M-step, ``reg_covar`` and priors stay in the data's coordinates, and the
results are those of the unwhitened fit up to rounding. Diagonal families
keep their coordinates: per-feature scaling leaves their error unchanged
and a rotation would leave the family.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from jaxmix.gmm.covariance import family
from jaxmix.numerics import HIGHEST
from jaxmix.params import GMMParams

# Ridge on the sample covariance, relative to each feature's variance
# (constant features stay invertible).
RIDGE = 1e-6


class Whitening(NamedTuple):
    """``x' = x @ factor``; ``inverse`` its inverse; ``log_det`` ``log|det factor|``."""

    factor: jax.Array
    inverse: jax.Array
    log_det: jax.Array


def whitening(x, w) -> Whitening:
    """The whitening of centred rows ``x (n, d)`` with weights ``w (n,)``:
    ``factor`` is the Cholesky factor of the inverse of their weighted
    covariance (plus :data:`RIDGE` times each feature's variance)."""
    d = x.shape[-1]
    w = w / jnp.sum(w)
    z = x - jnp.matmul(w, x, precision=HIGHEST)
    cov = jnp.matmul((z * w[:, None]).T, z, precision=HIGHEST)
    # each feature's own variance sets its ridge (scale-free: features of scale
    # 1e-3 and 1e3 are both whitened); a constant feature gets the largest
    var = jnp.diagonal(cov)
    top = jnp.max(var)
    ridge = RIDGE * jnp.where(var > 0, var, jnp.where(top > 0, top, 1.0))
    cov = cov + jnp.diag(ridge)
    factor = family("full").precision_cholesky(cov[None])[0]
    inverse = solve_triangular(factor, jnp.eye(d, dtype=x.dtype), lower=False)
    return Whitening(factor, inverse, jnp.sum(jnp.log(jnp.diagonal(factor))))


def applies(covariance_type: str) -> bool:
    """Whether fits of this family whiten their GEMM E-step (the dense ones)."""
    return family(covariance_type).dense_factor


def whitened(params: GMMParams, white: Whitening) -> GMMParams:
    """``params`` in whitened coordinates: ``mu G`` and ``G^{-1} L``."""
    means = jnp.matmul(params.means, white.factor, precision=HIGHEST)
    pc = jnp.matmul(white.inverse, params.precisions_cholesky, precision=HIGHEST)
    return params.replace(means=means, precisions_cholesky=pc)


def unwhitened_moments(sxx, white: Whitening):
    """Second moments ``(..., d, d)`` mapped back: ``G^{-T} S' G^{-1}``."""
    inv = white.inverse
    return jnp.einsum("ba,...bc,cd->...ad", inv, sxx, inv, precision=HIGHEST)
