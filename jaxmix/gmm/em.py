"""EM for Gaussian mixtures: E-step -> sufficient statistics -> M-step.

Two E-step paths give the same statistics:

* ``"gemm"``: every component's weighted log-density is linear in the
  features ``phi(x) = [quad(x), x, 1]``, so the E-step for all components
  (and, under ``vmap``, all restarts) is one GEMM ``phi(X) @ C``, and the
  statistics are one GEMM ``resp^T @ phi(X)`` taken about the origin (the fit
  centres the data). Fast, but it cancels ``x^T P x`` against ``mu^T P mu``:
  the relative error grows like ``eps * mu^T P mu``.
* ``"exact"``: centred distances ``||(x - mu_k) L_k||^2`` and statistics
  about the previous means; it materialises ``(chunk, k, d)``.
* ``"auto"`` (batched steps only): per iteration, the GEMM path while every
  restart's components satisfy ``eps * max_k ||mu_k||^2 lambda_max(P_k) <
  GEMM_ERROR_BUDGET``, the exact path otherwise (one ``lax.cond`` for all
  restarts, so only one branch runs).

The M-step follows scikit-learn: ``nk += 10 eps``, ``reg_covar`` added to the
diagonal, weights ``nk / sum(nk)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmix.gmm.covariance import family
from jaxmix.numerics import HIGHEST, LOG_2PI, eps, normalise
from jaxmix.gmm.density import weighted_log_prob
from jaxmix.params import GMMParams
from jaxmix.gmm.priors import log_prior, map_m_step
from jaxmix.data.chunked import (Chunked, GMMStats, design_features, feature_sums,
                          gmm_stats_centred, scan_sum, stats_from_feature_sums)

PATHS = ("auto", "gemm", "exact")

# Largest tolerated ``eps * kappa`` (see gemm_is_accurate) on the GEMM path.
# Measured on the batched (vmapped) step: the covariance error relative to the
# narrowest variance is (3 to 5) * eps * kappa, so "auto" keeps it below
# 5 * GEMM_ERROR_BUDGET = 5e-4 (tests/test_precision.py); in float32 the switch
# happens near ||mu|| = 29 narrowest standard deviations from the data centre.
GEMM_ERROR_BUDGET = 1e-4


def gemm_coefficients(params: GMMParams) -> jax.Array:
    """``C`` ``(k, F)`` with ``phi(x) @ C.T`` = weighted component log-densities."""
    fam = family(params.covariance_type)
    pc, means = params.precisions_cholesky, params.means
    k, d = means.shape
    p_mu = fam.precision_times(pc, jnp.broadcast_to(means, (k, d)))
    const = (-0.5 * jnp.sum(means * p_mu, axis=-1) - 0.5 * d * LOG_2PI
             + fam.log_det(pc, d) + jnp.log(params.weights))
    return jnp.concatenate([-0.5 * fam.quad_coefs(pc, k), p_mu, const[:, None]], axis=-1)


def _e_chunk(params: GMMParams, x, w, path: str):
    """One chunk's E-step: ``(rw^T phi(x), loglik)`` on the GEMM path (raw
    sums, unpacked once per pass), centred :class:`GMMStats` on the exact path."""
    fam = family(params.covariance_type)
    if path == "gemm":
        feats = design_features(fam, x)
        logp = jnp.matmul(feats, gemm_coefficients(params).T, precision=HIGHEST)
        rw, norm = normalise(logp, w)
        return feature_sums(feats, rw), jnp.sum(w * norm)
    rw, norm = normalise(weighted_log_prob(params, x), w)
    return gmm_stats_centred(fam, x, rw, params.means, jnp.sum(w * norm))


def e_step(params: GMMParams, data: Chunked, path: str = "exact"):
    """Statistics of one pass over ``data``; returns ``(stats, shift)``."""
    if path not in ("gemm", "exact"):
        raise ValueError(f"path must be 'gemm' or 'exact' here, got {path!r}")
    stats = scan_sum(lambda x, w, _: _e_chunk(params, x, w, path), data)
    if path == "exact":
        return stats, params.means
    sums, loglik = stats
    fam = family(params.covariance_type)
    return (stats_from_feature_sums(fam, sums, data.n_features, loglik),
            jnp.zeros_like(params.means))


def m_step(stats: GMMStats, shift, reg_covar, covariance_type: str, prior=None) -> GMMParams:
    """Maximum-likelihood parameters from statistics taken about ``shift``, or
    the closed-form MAP parameters under ``prior`` (``jaxmix.gmm.priors.map_m_step``)."""
    if prior is not None:
        return map_m_step(stats, shift, reg_covar, covariance_type, prior)
    fam = family(covariance_type)
    nk = stats.nk + 10 * eps(stats.nk.dtype)
    dev = stats.sx / nk[:, None]
    cov = fam.covariance_from_stats(nk, dev, stats.sxx, reg_covar)
    return GMMParams(nk / jnp.sum(nk), shift + dev, fam.precision_cholesky(cov), covariance_type)


def em_step(params: GMMParams, data: Chunked, reg_covar, path: str = "exact", prior=None):
    """One EM iteration: ``(new_params, mean log-likelihood of params)``; with a
    ``prior``, MAP-EM and the mean log-posterior ``(loglik + log_prior) / n``."""
    stats, shift = e_step(params, data, path)
    n = jnp.sum(data.w)
    new = m_step(stats, shift, reg_covar, params.covariance_type, prior)
    if prior is None:
        return new, stats.loglik / n
    return new, (stats.loglik + log_prior(params, prior)) / n


def gemm_is_accurate(params: GMMParams) -> jax.Array:
    """Whether the GEMM path's cancellation error is within budget for all
    restarts (``params`` batched over restarts).

    Raw second moments about the origin cancel to within ``eps * ||mu||^2``
    absolute; relative to the narrowest variance ``1 / lambda_max(P)`` that
    is ``eps * kappa`` with ``kappa = max_k ||mu_k||^2 lambda_max(P_k)``.
    """
    fam = family(params.covariance_type)
    lam = fam.max_precision(params.precisions_cholesky)
    reach = jnp.sum(params.means * params.means, axis=-1)
    kappa = jnp.max(reach * (lam if lam.ndim == reach.ndim else lam[..., None]))
    return eps(params.means.dtype) * kappa < GEMM_ERROR_BUDGET


def batched_em_step(data: Chunked, reg_covar, path: str = "auto", prior=None):
    """``params_R -> (new_params_R, objective_R)`` for the fit driver (MAP-EM
    under ``prior``, which is shared by all restarts)."""
    def run(p, chosen):
        return jax.vmap(lambda q: em_step(q, data, reg_covar, chosen, prior))(p)

    if path == "auto":
        return lambda p: jax.lax.cond(gemm_is_accurate(p), lambda q: run(q, "gemm"),
                                      lambda q: run(q, "exact"), p)
    return lambda p: run(p, path)


def params_from_resp(resp_fn, data: Chunked, reg_covar, covariance_type: str) -> GMMParams:
    """M-step from given responsibilities ``resp_fn(x_chunk, chunk_index) (m, k)``.

    Two passes (means, then scatter about them) keep the covariances exact
    even for one-hot responsibilities on single points.
    """
    fam = family(covariance_type)

    def first(x, w, i):
        rw = resp_fn(x, i) * w[:, None]
        return jnp.sum(rw, axis=0), jnp.matmul(rw.T, x, precision=HIGHEST)

    nk, sx = scan_sum(first, data)
    means = sx / (nk + 10 * eps(nk.dtype))[:, None]
    stats = scan_sum(
        lambda x, w, i: gmm_stats_centred(fam, x, resp_fn(x, i) * w[:, None], means), data)
    return m_step(stats, means, reg_covar, covariance_type)
