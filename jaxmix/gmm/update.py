"""Gaussian-mixture parameter updates from statistics: the M-step (maximum
likelihood or MAP, the latter's update derived in :mod:`jaxmix.gmm.priors`),
the M-step on given responsibilities, labels or single samples (initialisation),
the re-centring of running statistics (stepwise EM), and the component mask
of padded mixtures.

The maximum-likelihood M-step follows scikit-learn: ``nk += 10 eps``,
``reg_covar`` added to the diagonal, weights ``nk / sum(nk)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.data.reduce import reduce
from jaxmix.gmm.covariance import family
from jaxmix.gmm.priors import GMMPrior
from jaxmix.gmm.stats import (GMMStats, centred_stats, design_features, feature_sums, floored,
                              stats_from_feature_sums)
from jaxmix.numerics import HIGHEST, mixture_weights
from jaxmix.params import GMMParams


def m_step(stats: GMMStats, reg_covar, covariance_type: str, prior=None,
           n_real=None, fixed_means=None) -> GMMParams:
    """Maximum-likelihood parameters from statistics (taken about their
    ``shift``), or the closed-form MAP parameters under ``prior``
    (:func:`map_m_step`; ``n_real``: real components of a padded mixture;
    ``fixed_means``: see there). The covariances are factored as the batched
    EM step factors them
    (:meth:`~jaxmix.gmm.family_base.Family.floored_precision_cholesky`: in
    float32 a component on fewer than ``d + 1`` samples keeps its floor;
    float64 takes the plain Cholesky)."""
    fam = family(covariance_type)
    weights, means, cov = m_step_moments(stats, covariance_type, prior, n_real, fixed_means)
    return GMMParams(weights, means, fam.floored_precision_cholesky(cov, reg_covar),
                     covariance_type)


def m_step_moments(stats: GMMStats, covariance_type: str, prior=None, n_real=None,
                   fixed_means=None):
    """``(weights, means, covariances)`` of the M-step before ``reg_covar``
    is added and the precision factors are taken (for the batched EM step,
    which factors every restart's covariances at once:
    :meth:`~jaxmix.gmm.family_base.Family.floored_precision_cholesky`)."""
    if prior is not None:
        return map_m_step(stats, covariance_type, prior, n_real, fixed_means)
    fam = family(covariance_type)
    nk = floored(stats.nk)
    dev = stats.sx / nk[:, None]
    return (mixture_weights(nk), stats.shift + dev,
            fam.covariance_from_stats(nk, dev, stats.sxx, 0.0))


def map_m_step(stats: GMMStats, covariance_type: str, prior: GMMPrior, n_real=None,
               fixed_means=None):
    """Closed-form MAP ``(weights, means, covariances)`` from statistics taken
    about ``shift`` (``(k, d)``), before ``reg_covar`` is added.

    Same inputs as :func:`m_step`; :mod:`jaxmix.gmm.priors` gives the update.
    ``fixed_means (k,)``: components whose mean is held at ``shift`` (frozen,
    :mod:`jaxmix.gmm.frozen`; their statistics have ``sx = 0``): their
    covariance is its conditional MAP given that mean, the mean prior's
    scatter ``kappa delta delta^T`` entering unshrunk (``r_k = kappa nk /
    (kappa + nk)`` is the weight where the mean is at its own MAP).
    """
    fam = family(covariance_type)
    shift = stats.shift
    nk = floored(stats.nk)
    tiny = nk - stats.nk
    kappa = prior.mean_precision
    dev = stats.sx / nk[:, None]                       # xbar_k - c_k
    delta = dev + shift - prior.mean_prior             # xbar_k - m0
    if fixed_means is not None:  # r_k (delta')^2 = kappa delta^2 for a held mean
        unshrunk = delta * jnp.sqrt((kappa + nk) / nk)[:, None]
        delta = jnp.where(fixed_means[:, None], unshrunk, delta)
    means = shift + (kappa * (prior.mean_prior - shift) + stats.sx) / (kappa + nk)[:, None]
    cov = fam.map_covariance(nk, dev, stats.sxx, delta, prior, n_real)
    weights = jnp.maximum(nk + prior.weight_concentration - 1.0, tiny)
    return mixture_weights(weights), means, cov


def params_from_resp(resp_fn, data, reg_covar, covariance_type: str) -> GMMParams:
    """M-step from given responsibilities ``resp_fn(x_chunk, chunk_index) (m, k)``.

    Two passes (means, then scatter about them) keep the covariances exact
    even for one-hot responsibilities on single points.
    """
    fam = family(covariance_type)
    means = _weighted_means(resp_fn, data)
    stats = reduce(lambda x, w, i: centred_stats(fam, x, resp_fn(x, i) * w[:, None], means),
                   data)
    return m_step(stats.about(means), reg_covar, covariance_type)


def params_from_labels(labels_fn, data, k: int, reg_covar, covariance_type: str,
                       centres=None) -> GMMParams:
    """:func:`params_from_resp` on one-hot responsibilities: ``labels_fn(x_chunk,
    chunk_index) (m,)`` is each sample's component (``-1``: none).

    A sample's difference from its own component's centre is the only one its
    statistics need, so a pass takes the features of those ``(m, d)``
    differences times the one-hot matrix: one GEMM per chunk (not ``k``
    batched ones over ``(m, k, d)``), as exact as the explicit differences.
    Without ``centres`` the centres are the labels' means (a first pass
    finds them). Given ``centres (k, d)`` (the points the labels are nearest
    to, e.g. k-means centroids) the one pass is about them, and ``m_step``
    moves the statistics to the means by the differences' own sums: the
    correction ``nk (m - c)(m - c)^T`` is then as accurate as the sums
    (float32, clusters at 1e4 with unit spread, centres one spread off:
    covariances to 1e-3 either way).
    """
    fam = family(covariance_type)
    if centres is None:
        centres = _weighted_means(lambda x, i: jax.nn.one_hot(labels_fn(x, i), k, dtype=x.dtype),
                                  data)

    def second(x, w, i):
        labels = labels_fn(x, i)
        z = x - centres[jnp.maximum(labels, 0)]  # label -1: weight 0 below
        rw = jax.nn.one_hot(labels, k, dtype=x.dtype) * w[:, None]
        return feature_sums(design_features(fam, z), rw)

    stats = stats_from_feature_sums(fam, reduce(second, data), centres.shape[-1])
    return m_step(stats.about(centres), reg_covar, covariance_type)


def params_at(indices, x, w, reg_covar, covariance_type: str) -> GMMParams:
    """:func:`params_from_resp` on responsibilities one-hot on the single
    samples ``x[indices]`` (``indices (k,)``, ``-1``: an empty component) of
    the flat sample ``(x, w)``, in closed form: each component is its sample
    (weight ``w``, no scatter), found without a pass over the data."""
    fam = family(covariance_type)
    real = indices >= 0
    at = jnp.maximum(indices, 0)
    k, d = indices.shape[0], x.shape[-1]
    zero = fam.scatter(jnp.zeros((1, k), x.dtype), jnp.zeros((1, k, d), x.dtype))
    stats = GMMStats(jnp.where(real, w[at], 0.0), jnp.zeros((k, d), x.dtype), zero,
                     jnp.zeros((), x.dtype), jnp.where(real[:, None], x[at], 0.0))
    return m_step(stats, reg_covar, covariance_type)


def _weighted_means(resp_fn, data):
    """``sum_n r_nk w_n x_n / (sum_n r_nk w_n + 10 eps)``: the first pass."""
    def first(x, w, i):
        rw = resp_fn(x, i) * w[:, None]
        return jnp.sum(rw, axis=0), jnp.matmul(rw.T, x, precision=HIGHEST)

    nk, sx = reduce(first, data)
    return sx / floored(nk)[:, None]


def shift_stats(stats: GMMStats, new, covariance_type: str) -> GMMStats:
    """Statistics about their ``shift`` re-expressed about ``new`` ``(k, d)``.

    With ``u = old - new``: ``sx' = sx + nk u`` and ``sxx' = sxx + sx u^T +
    u sx^T + nk u u^T``, written as ``scatter(1/nk, sx + nk u) - scatter(1/nk,
    sx)`` so that every covariance family's own ``scatter`` gives its layout.
    """
    fam = family(covariance_type)
    u = stats.shift - new
    nk = floored(stats.nk)
    inv = (1.0 / nk)[None]
    moved = stats.sx + nk[:, None] * u
    sxx = stats.sxx + fam.scatter(inv, moved[None]) - fam.scatter(inv, stats.sx[None])
    return GMMStats(stats.nk, moved, sxx, stats.loglik, new)


def enforce_mask(params: GMMParams, mask) -> GMMParams:
    """Padded mixtures: components outside ``mask`` (``(R, k)``, True = real)
    get weight exactly 0 (the rest renormalised) and copies of component 0's
    mean and precision factor, so they stay finite and never take a sample.
    ``params`` restart-batched; ``mask=None`` leaves them unchanged."""
    if mask is None:
        return params
    w = jnp.where(mask, params.weights, 0.0)
    w = w / jnp.sum(w, axis=-1, keepdims=True)
    means = jnp.where(mask[..., None], params.means, params.means[:, :1])
    pc = family(params.covariance_type).keep_components(params.precisions_cholesky, mask)
    return params.replace(weights=w, means=means, precisions_cholesky=pc)


def pad_components(params: GMMParams, k_max: int) -> GMMParams:
    """One model padded to ``k_max`` components of weight 0 (copies of
    component 0 otherwise), for a padded fit (:mod:`jaxmix.fit.buckets`)."""
    extra = k_max - params.weights.shape[0]
    fam = family(params.covariance_type)
    return params.replace(
        weights=jnp.concatenate([params.weights, jnp.zeros((extra,), params.weights.dtype)]),
        means=jnp.concatenate([params.means, jnp.repeat(params.means[:1], extra, axis=0)]),
        precisions_cholesky=fam.pad_components(params.precisions_cholesky, k_max))


def first_components(params: GMMParams, k: int) -> GMMParams:
    """Restart-batched ``params`` cut to their first ``k`` components (NumPy
    leaves stay NumPy)."""
    fam = family(params.covariance_type)
    pc = params.precisions_cholesky
    stack = np.stack if isinstance(pc, np.ndarray) else jnp.stack
    return params.replace(weights=params.weights[:, :k], means=params.means[:, :k],
                          precisions_cholesky=stack([fam.first_components(a, k) for a in pc]))
