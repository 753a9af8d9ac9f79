"""Gaussian-mixture sufficient statistics: the E-step, on either of two paths.

Statistics are taken about a per-component ``shift`` ``c_k`` (``(k, d)``; the
previous means on the exact path, zero on the GEMM path, where the fit has
centred the data)::

    nk  = sum_n r_nk                  (k,)
    sx  = sum_n r_nk (x_n - c_k)      (k, d)
    sxx = sum_n r_nk (x_n - c_k)^2    family layout (see covariance.py)

The two paths give the same statistics:

* ``"gemm"``: every component's weighted log-density is linear in the
  features ``phi(x) = [quad(x), x, 1]``, so the E-step for all components
  (and, under ``vmap``, all restarts) is one GEMM ``phi(X) @ C``, and the
  statistics are one GEMM ``resp^T @ phi(X)`` taken about the origin. Fast,
  but it cancels ``x^T P x`` against ``mu^T P mu``: the relative error grows
  like ``eps * mu^T P mu``.
* ``"exact"``: centred distances ``||(x - mu_k) L_k||^2`` and statistics
  about the previous means; it materialises ``(chunk, k, d)``.
* ``"auto"`` (batched steps only): per iteration and per restart, the GEMM
  path while the restart's components satisfy ``eps * kappa <
  GEMM_ERROR_BUDGET``, the exact path otherwise; ``kappa`` bounds the
  cancellation, ``max_k min(||mu_k||^2 lambda_max(P_k), |mu_k|^T |P_k|
  |mu_k|)`` (:func:`accurate_restarts`). On a small float32 pass
  (:func:`static_path`) it is the exact path alone: one E-step compiled
  instead of two.

Given a :class:`~jaxmix.gmm.whitening.Whitening` (dense families; what
``fit_gmm`` passes), the GEMM path runs in whitened coordinates, where the
bound is judged too, and its statistics come back about the new means in
the data's coordinates (:mod:`jaxmix.gmm.whitening`).

Every placement of the data (:mod:`jaxmix.data.reduce`) runs the same
per-chunk function, :func:`chunk_stats`, for all restarts at once, so a chunk
is read once per pass whatever the number of restarts.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmix.data.chunked import small_pass
from jaxmix.data.reduce import reduce
from jaxmix.gmm.covariance import family
from jaxmix.gmm.density import weighted_log_prob
from jaxmix.gmm.whitening import Whitening, unwhitened_moments, whitened
from jaxmix.numerics import HIGHEST, LOG_2PI, eps, normalise, safe_log
from jaxmix.params import GMMParams

PATHS = ("auto", "gemm", "exact")

# Largest tolerated ``eps * kappa`` (see gemm_is_accurate) on the GEMM path.
# Measured on the batched (vmapped) step: the covariance error relative to the
# narrowest variance is (3 to 5) * eps * kappa, so "auto" keeps it below
# 5 * GEMM_ERROR_BUDGET = 5e-4 (tests/gmm/test_precision.py); in float32 the switch
# happens near ||mu|| = 29 narrowest standard deviations from the data centre.
GEMM_ERROR_BUDGET = 1e-4


class GMMStats(NamedTuple):
    """Additive Gaussian-mixture statistics (see module docstring) and the
    shift ``c (k, d)`` they were taken about. Per-chunk statistics carry no
    shift (``None``: they are summed over chunks); a pass's statistics do."""

    nk: jax.Array
    sx: jax.Array
    sxx: jax.Array
    loglik: jax.Array
    shift: jax.Array | None = None

    def about(self, shift) -> "GMMStats":
        """These statistics, marked as taken about ``shift``."""
        return self._replace(shift=shift)

    def scaled(self, factor) -> "GMMStats":
        """The additive parts times ``factor`` (the shift unchanged)."""
        return GMMStats(*(a * factor for a in self[:4]), self.shift)


def floored(nk):
    """Component weights ``nk + 10 eps`` (scikit-learn's floor, so that empty
    components divide by a positive number)."""
    return nk + 10 * eps(nk.dtype)


def row_elements(n_restarts: int, k: int, d: int) -> int:
    """Elements per sample row of the largest E-step intermediate (for
    :func:`jaxmix.data.chunked.chunk_rows`): the exact path's ``(chunk, R, k, d)``
    differences, or the GEMM path's features ``phi`` (at most ``d (d + 1) / 2
    + d + 1`` of them, full covariance) with the ``(chunk, R, k)`` log-densities."""
    return max(n_restarts * k * d, d * (d + 1) // 2 + d + 1 + n_restarts * k)


def design_features(fam, x):
    """``phi(x) = [quad(x), x, 1]``: component log-densities are linear in it."""
    ones = jnp.ones(x.shape[:-1] + (1,), x.dtype)
    feats = jnp.concatenate([fam.quad_features(x), x, ones], axis=-1)
    # Materialise phi once per chunk: left free, XLA fuses its construction into
    # both GEMMs' operands and recomputes it there (1.7x slower E+M step on CPU).
    return jax.lax.optimization_barrier(feats)


def feature_sums(feats, rw):
    """``rw^T @ phi(x)`` ``(k, F)``: the GEMM-path statistics of one chunk, kept
    raw so they add over chunks; :func:`stats_from_feature_sums` unpacks them once."""
    return jnp.matmul(rw.T, feats, precision=HIGHEST)


def stats_from_feature_sums(fam, s, d: int, loglik=0.0) -> GMMStats:
    """Statistics about the origin (shift = 0) from summed ``rw^T @ phi(x)``."""
    q = s.shape[-1] - d - 1
    return GMMStats(s[:, -1], s[:, q:q + d], fam.moments_from_features(s[:, :q], d),
                    jnp.asarray(loglik, s.dtype))


def centred_stats(fam, x, rw, shift, loglik=0.0) -> GMMStats:
    """Statistics about ``shift`` ``(k, d)`` from explicit differences (exact)."""
    z = x[:, None, :] - shift[None]
    sx = jnp.einsum("nk,nkd->kd", rw, z, precision=HIGHEST)
    return GMMStats(jnp.sum(rw, axis=0), sx, fam.scatter(rw, z), jnp.asarray(loglik, x.dtype))


def gemm_coefficients(params: GMMParams) -> jax.Array:
    """``C`` ``(k, F)`` with ``phi(x) @ C.T`` = weighted component log-densities."""
    fam = family(params.covariance_type)
    pc, means = params.precisions_cholesky, params.means
    k, d = means.shape
    p_mu = fam.precision_times(pc, jnp.broadcast_to(means, (k, d)))
    const = (-0.5 * jnp.sum(means * p_mu, axis=-1) - 0.5 * d * LOG_2PI
             + fam.log_det(pc, d) + safe_log(params.weights))
    return jnp.concatenate([-0.5 * fam.quad_coefs(pc, k), p_mu, const[:, None]], axis=-1)


def chunk_stats(params: GMMParams, x, w, path: str, white: Whitening | None = None,
                first_moment: bool = False):
    """One chunk's E-step for one set of parameters: raw ``(rw^T phi(x),
    loglik)`` on the GEMM path (unpacked once per pass by :func:`finish`),
    centred :class:`GMMStats` on the exact path, with ``rw^T x`` beside them
    when ``first_moment`` (for :func:`about_new_means`). ``white``: run the
    GEMM path in whitened coordinates (:mod:`jaxmix.gmm.whitening`; dense
    families)."""
    fam = family(params.covariance_type)
    if path == "gemm":
        if white is not None:  # x' = x G: computed once per chunk for all restarts
            x, params = jnp.matmul(x, white.factor, precision=HIGHEST), whitened(params, white)
            w_log_det = jnp.sum(w) * white.log_det  # log p'(x') = log p(x) - log|det G|
        feats = design_features(fam, x)
        # log w added after the GEMM: a masked component's -inf must not meet
        # the constant feature's zero tangent inside the product (0 * inf)
        unit = params.replace(weights=jnp.ones_like(params.weights))
        logp = (jnp.matmul(feats, gemm_coefficients(unit).T, precision=HIGHEST)
                + safe_log(params.weights))
        rw, norm = normalise(logp, w)
        loglik = jnp.sum(w * norm)
        return feature_sums(feats, rw), loglik if white is None else loglik + w_log_det
    rw, norm = normalise(weighted_log_prob(params, x), w)
    stats = centred_stats(fam, x, rw, params.means, jnp.sum(w * norm))
    return stats if not first_moment else (stats, jnp.matmul(rw.T, x, precision=HIGHEST))


def finish(params: GMMParams, raw, path: str, white: Whitening | None = None) -> GMMStats:
    """A pass's :class:`GMMStats` (with their shift) from the summed output of
    :func:`chunk_stats`: about the previous means (exact path), or the new
    ones when the chunks summed their first moments too, the origin (GEMM
    path) or, whitened, about the new means in the data's coordinates."""
    if path == "exact":
        if isinstance(raw, GMMStats):
            return raw.about(params.means)
        stats, first = raw
        return about_new_means(family(params.covariance_type), stats.about(params.means), first)
    sums, loglik = raw
    fam = family(params.covariance_type)
    stats = stats_from_feature_sums(fam, sums, params.means.shape[-1], loglik)
    if white is None:
        return stats.about(jnp.zeros_like(params.means))
    return _unwhitened(stats, white)


def about_new_means(fam, stats: GMMStats, first) -> GMMStats:
    """Exact-path statistics about the previous means re-expressed about the
    new means ``m = first / nk`` (``first = sum_n r_nk x_n``; ``sx = 0``;
    a component of weight below ``10 eps`` keeps its mean). ``nk`` is not
    floored here: ``first / (nk + 10 eps)`` would pull a mean towards the
    origin by ``10 eps |m| / nk``, 1.2e6 for one row at 1e12 in float32.

    ``m`` then depends on the responsibilities alone, as on the GEMM path.
    Taken as ``shift + sx / nk`` it depends on the previous means through
    float32 rounding, and EM near a collapsed component could cycle between
    neighbouring floats of a mean instead of reaching a fixed point (wine,
    full, k = 8: the objective fell in half the iterations)."""
    nk = stats.nk
    held = nk <= 10 * eps(nk.dtype)  # (nearly) empty: stays where it was
    means = jnp.where(held[:, None], stats.shift, first / jnp.where(held, 1.0, nk)[:, None])
    dev = means - stats.shift
    sxx = stats.sxx - fam.scatter(nk[None], dev[None])
    return GMMStats(nk, jnp.zeros_like(means), sxx, stats.loglik, means)


def _unwhitened(stats: GMMStats, white: Whitening) -> GMMStats:
    """Raw whitened moments centred on each component's mean where they are
    accurate, then mapped back: statistics about the new means ``m`` (so
    ``sx = 0``) in the data's coordinates."""
    nk = floored(stats.nk)
    mean = stats.sx / nk[:, None]
    centred = stats.sxx - nk[:, None, None] * mean[:, :, None] * mean[:, None, :]
    shift = jnp.matmul(mean, white.inverse, precision=HIGHEST)
    return GMMStats(stats.nk, jnp.zeros_like(shift), unwhitened_moments(centred, white),
                    stats.loglik, shift)


def _check_path(path: str):
    if path not in ("gemm", "exact"):
        raise ValueError(f"path must be 'gemm' or 'exact' here, got {path!r}")


def batched_e_step(params: GMMParams, data, path: str, white: Whitening | None = None):
    """Statistics of restart-batched ``params`` (leading axis ``R``) over one
    pass of ``data`` (any placement): every chunk is read once for all
    restarts. Returns restart-batched :class:`GMMStats`, on the exact path
    about the new means (:func:`about_new_means`). ``white``: the GEMM
    path runs in whitened coordinates (:mod:`jaxmix.gmm.whitening`)."""
    _check_path(path)
    raw = reduce(lambda x, w, c: jax.vmap(lambda p: chunk_stats(p, x, w, path, white, True))(
        params), data)
    return jax.vmap(lambda p, r: finish(p, r, path, white))(params, raw)


def e_step(params: GMMParams, data, path: str = "exact"):
    """:class:`GMMStats` of one pass over ``data`` (any placement)."""
    _check_path(path)
    return finish(params, reduce(lambda x, w, c: chunk_stats(params, x, w, path), data), path)


def gemm_is_accurate(params: GMMParams, white: Whitening | None = None) -> jax.Array:
    """Whether the GEMM path's cancellation error is within budget for all
    restarts (``params`` batched over restarts; ``white``: in the whitened
    coordinates the path would run in); see :func:`accurate_restarts`."""
    return jnp.all(accurate_restarts(params, white))


def exact_groups(n_restarts: int) -> int:
    """Groups the restarts' exact pass is split into: the largest divisor of
    ``n_restarts`` up to 8 (so a group holds at most 2 of 16 slots)."""
    return max(g for g in range(1, min(n_restarts, 8) + 1) if n_restarts % g == 0)


def static_path(path: str, data, k: int, n_restarts: int) -> str:
    """``path``, with ``"auto"`` taken as ``"exact"`` when one pass of
    ``n_restarts`` restarts of ``k`` components over in-memory float32
    ``data`` is small (:func:`jaxmix.data.chunked.small_pass`): one E-step
    compiled instead of two and the switch, run on the whole batch. float64
    keeps the switch: its GEMM path is what the switch takes on almost all
    data, and it rounds a collapsed component's
    variance as scikit-learn's formula does (the exact path gave a singleton
    at ``reg_covar=0`` an exact zero variance, so the restart failed where
    scikit-learn's ``test_gaussian_mixture_setting_best_params`` fits), but
    far rows need the exact path (a row at 1e12, tests/fit/test_inputs.py).
    A restart's result then depends on the restarts beside it at rounding
    level only (XLA's reductions follow the batch's shape; the switch's
    grouped exact passes are bitwise independent in float64)."""
    if path == "auto" and data.dtype != jnp.float64 and small_pass(data, k * n_restarts):
        return "exact"
    return path


def auto_path(data, params: GMMParams, accurate, fast, exact_fn, arg):
    """``path="auto"`` of a batched step on restart-batched ``arg`` whose
    models are ``params``: the exact path alone on a small float32 pass
    (:func:`static_path`), else each restart's own (:func:`per_restart_path`).
    ``accurate()`` (the restarts' bound) and ``fast()`` (their GEMM-path
    result) are traced only where needed."""
    n_restarts, k = params.means.shape[:2]
    if static_path("auto", data, k, n_restarts) == "exact":
        return exact_fn(arg)
    return per_restart_path(accurate(), fast(), exact_fn, arg)


def per_restart_path(ok, fast, exact_fn, arg):
    """Each restart's result from the path it may take: ``fast`` (the GEMM
    path's restart-batched result, any pytree) where ``ok (R,)``, else
    ``exact_fn(arg)``'s. The exact pass runs per group of restarts
    (:func:`exact_groups`), each group's in one ``lax.cond`` only when one of
    its restarts needs it, so one restart over budget costs its group's share
    of an exact pass, not the whole batch's (for a streamed source, each such
    group reads the data once more that iteration). A restart's path then
    does not depend on the restarts batched with it (its values are equal bit
    for bit in the tests' float64; in float32 batch shapes still change the
    rounding, ~1e-7)."""
    r = ok.shape[0]
    g = exact_groups(r)
    split = lambda t: t.reshape((g, r // g) + t.shape[1:])  # noqa: E731

    def group(args):
        ok_g, fast_g, arg_g = args

        def mixed(a):
            return jax.tree.map(
                lambda u, v: jnp.where(ok_g.reshape(ok_g.shape + (1,) * (u.ndim - 1)), u, v),
                fast_g, exact_fn(a))
        return jax.lax.cond(jnp.all(ok_g), lambda a: fast_g, mixed, arg_g)

    def grouped(a):
        out = jax.lax.map(group, jax.tree.map(split, (ok, fast, a)))
        return jax.tree.map(lambda t: t.reshape((r,) + t.shape[2:]), out)
    return jax.lax.cond(jnp.all(ok), lambda a: fast, grouped, arg)


def accurate_restarts(params: GMMParams, white: Whitening | None = None) -> jax.Array:
    """``(R,)``: whether the GEMM path's cancellation error is within budget
    for each restart of ``params`` (batched over restarts).

    Raw second moments about the origin cancel to within ``eps |mu_i| |mu_j|``
    per entry (and the log-densities' terms to ``eps |mu|^T |P| |mu|``).
    Measured in the component's own metric (``u^T Sigma u = 1``), an error
    matrix of that size is at most ``eps * kappa_k`` with ``kappa_k`` the
    smaller of two bounds: ``||mu_k||^2 lambda_max(P_k)`` (the mean along
    the narrowest direction) and ``|mu_k|^T |P_k| |mu_k|`` (entrywise
    absolute values: the worst sign pattern of ``u``), which is far smaller
    where the mean is not along that direction. ``kappa = max_k kappa_k``.
    Isotropic components give both bounds the same value.
    """
    if white is not None:
        params = jax.vmap(lambda p: whitened(p, white))(params)
    fam = family(params.covariance_type)
    k = params.means.shape[-2]
    pcs, means = params.precisions_cholesky, params.means
    lam = jax.vmap(lambda pc: fam.component_max_precision(pc, k))(pcs)
    reach = jnp.sum(means * means, axis=-1) * lam
    sharp = jax.vmap(lambda pc, m: fam.component_abs_quad(pc, jnp.abs(m)))(pcs, means)
    kappa = jnp.max(jnp.minimum(reach, sharp), axis=-1)
    return eps(params.means.dtype) * kappa < GEMM_ERROR_BUDGET
