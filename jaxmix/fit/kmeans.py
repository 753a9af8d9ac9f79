"""``fit_kmeans``: Lloyd K-Means with batched restarts, as scikit-learn's
``KMeans(algorithm="lloyd")``, on data in memory, sharded or streamed.

The fit runs :func:`jaxmix.fit.driver.iterate` (the driver EM uses) on
:func:`jaxmix.kmeans.update.batched_lloyd_step`: every restart's assignment
is one distance GEMM per chunk, the update comes from additive statistics,
empty clusters are re-seeded from the farthest samples inside ``jit``. A
restart stops when its assignment no longer changes or its total squared
centroid shift is at most ``tol`` times the mean feature variance (sklearn's
rule). The reported objective is ``-inertia`` of the *final* centroids (one
exact pass, like sklearn's ``inertia_``) and the best restart is the one with
the lowest inertia.

>>> import jax, numpy as np
>>> from jaxmix import fit_kmeans
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(-5, 1, (200, 2)), rng.normal(5, 1, (200, 2))])
>>> result = fit_kmeans(jax.random.PRNGKey(0), x, 2, n_restarts=4)
>>> np.sort(np.asarray(result.best_params.centroids[:, 0])).round(0)
array([-5.,  5.], dtype=float32)
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.compiling import jit
from jaxmix.data.chunked import pass_elements
from jaxmix.fit.progress import session, token_arg
from jaxmix.fit.buckets import component_bucket, history_bucket, restart_slots
from jaxmix.fit.driver import FitResult, best_restart, iterate, raise_if_all_failed
from jaxmix.fit.inputs import placed, uncentre
from jaxmix.fit.rows import (TRACE_COUNT, Rows, cut_rows, fit_work, pad_rows, restart_rows,
                             plusplus_shape, row_keys, row_mask, with_draws)
from jaxmix.kmeans.assign import row_elements
from jaxmix.kmeans.init import KMEANS_INITS, local_trials, seed
from jaxmix.numerics import all_finite
from jaxmix.kmeans.stats import final_stats
from jaxmix.kmeans.update import (LloydState, batched_lloyd_step, lloyd_converged,
                                  mask_centroids, scaled_tol)
from jaxmix.params import KMeansParams
from jaxmix.validation import (as_key, check_choice, check_int, check_max_iter,
                               check_n_restarts, check_nonneg, check_range, is_traced)


def fit_kmeans(key, x, n_clusters: int, *, n_restarts: int | None = None,
               init: str = "k-means++", init_centroids=None, tol: float = 1e-4,
               max_iter: int = 300, chunk_size: int | None = None,
               sample_weight=None, mesh=None, init_size: int | None = None,
               callback=None) -> FitResult:
    """Lloyd K-Means from ``n_restarts`` starts in one compiled call.

    Args:
      key: ``jax.random`` key (or int seed); restart ``r`` starts from
        ``fold_in(key, r)`` (so the first restarts do not depend on ``R``).
      x: ``(n, d)`` data: an array (possibly sharded), or a chunk source (a
        ``.npy`` path, an ``np.memmap``, a callable returning chunks, or
        :func:`jaxmix.data.source.open_source`), read once per iteration.
      n_clusters: ``k``.
      n_restarts: ``R`` restarts run together (default 1, or the leading axis
        of a 3-D ``init_centroids``).
      init: ``"k-means++"`` (greedy, ``2 + ln k`` local trials) or ``"random"``
        (``k`` distinct samples, probability proportional to the weights);
        ignored when ``init_centroids`` is given.
      init_centroids: ``(k, d)`` starting centroids for every restart, or
        ``(R, k, d)`` one set per restart.
      tol: stop a restart when its total squared centroid shift is at most
        ``tol`` times the mean feature variance of ``x``.
      max_iter: Lloyd iterations cap per restart.
      chunk_size: samples per chunk (bounds memory); ``None`` picks one.
      sample_weight: optional ``(n,)`` non-negative weights.
      mesh: a :class:`jax.sharding.Mesh` with a ``"data"`` axis to split the
        samples over (``None``: the mesh of ``x`` if it is placed on one, see
        :mod:`jaxmix.data.sharding`); the result equals the single-device fit.
      init_size: streamed sources: rows the seeding (and ``tol``'s scale) sees.
      callback: optional ``callback(Progress)`` after every iteration (the
        objective is ``-inertia`` of the centroids before the step;
        :mod:`jaxmix.fit.progress`).

    Returns:
      :class:`~jaxmix.fit.driver.FitResult` whose ``params`` are
      :class:`~jaxmix.params.KMeansParams` ``centroids (R, k, d)``;
      ``objective`` is ``-inertia`` of the final centroids, ``best`` the
      restart with the lowest inertia, ``degenerate`` flags restarts that end
      with an empty cluster.
    """
    key = as_key(key)
    n_restarts = _n_restarts(n_restarts, init_centroids)
    max_iter = check_max_iter(max_iter)
    tol = check_nonneg(tol, "tol")
    n_clusters = check_int(n_clusters, "n_clusters")
    k_max, rows = component_bucket(n_clusters), restart_rows([n_clusters], n_restarts)
    width = lambda d: row_elements(len(rows.k), k_max, d)  # noqa: E731
    with placed(key, x, n_clusters, row_elements=width, chunk_size=chunk_size,
                sample_weight=sample_weight, mesh=mesh, init_size=init_size,
                k_name="n_clusters") as inp, \
            session(callback, n_restarts, is_traced(key, x)) as token:
        c0 = check_init_centroids(init_centroids, n_clusters, inp.n_features, inp.sample.dtype,
                                  n_restarts)
        if c0 is None:
            init = check_choice(init, "init", KMEANS_INITS)
        else:
            check_within_reach(c0, inp)
        trials = local_trials(k_max)
        result = jax.block_until_ready(kmeans_rows(
            key, with_draws(key, rows, plusplus=plusplus_shape(init, c0, k_max, trials)),
            inp.data, inp.sample, inp.offset, c0, tol, max_iter, k_max=k_max,
            init=init, history=history_bucket(max_iter), max_trials=trials,
            progress=token_arg(token)))
    result = cut_rows(result, n_restarts, max_iter,
                      lambda p: KMeansParams(p.centroids[:, :n_clusters]))
    return raise_if_all_failed(result, "check the data's scale (squared distances overflow)")


def _n_restarts(n_restarts, init_centroids) -> int:
    if n_restarts is not None:
        return check_n_restarts(n_restarts)
    return np.shape(init_centroids)[0] if np.ndim(init_centroids) == 3 else 1


def check_within_reach(c0, inp):
    """``ValueError`` naming ``init_centroids`` unless the inertia of the data
    about them stays finite in the compute dtype (the data's extent widened by
    the centroids, :func:`jaxmix.validation.check_range`)."""
    if inp.extent is None or is_traced(c0):
        return
    lo, hi, total = inp.extent
    c = np.asarray(c0, np.float64).reshape(-1, c0.shape[-1])
    check_range(np.minimum(lo, c.min(axis=0)), np.maximum(hi, c.max(axis=0)), total,
                c0.dtype, weighted=False, name="init_centroids")


def check_init_centroids(c, k: int, d: int, dtype, n_restarts: int):
    """``(R, k, d)`` starting centroids from ``(k, d)`` or ``(R, k, d)`` (``None`` stays)."""
    if c is None:
        return None
    a = c if is_traced(c) or not isinstance(c, jax.Array) else np.asarray(c)
    xp = jnp if is_traced(a) else np  # concrete centroids are checked on the host
    a = xp.asarray(a)
    if a.ndim not in (2, 3) or a.shape[-2:] != (k, d):
        raise ValueError(f"init_centroids must have shape ({k}, {d}) or (n_restarts, {k}, {d}), "
                         f"got {a.shape}")
    if a.ndim == 3 and a.shape[0] != n_restarts:
        raise ValueError(f"init_centroids holds {a.shape[0]} restarts but "
                         f"n_restarts={n_restarts}; make them agree")
    if not jnp.issubdtype(a.dtype, jnp.number):
        raise ValueError(f"init_centroids must be numbers, got dtype {a.dtype}")
    with np.errstate(over="ignore"):  # a value beyond dtype is refused just below
        a = a.astype(dtype)
    if not is_traced(a) and not bool(np.all(np.isfinite(a))):
        raise ValueError(f"init_centroids must be finite numbers in {np.dtype(dtype).name}, the "
                         "dtype the fit computes in")
    out = xp.broadcast_to(a, (n_restarts, k, d))
    return out if is_traced(out) else jax.device_put(np.ascontiguousarray(out))


def seed_centres(keys, sample, k: int, mask, n_trials, method: str = "k-means++",
                 max_trials: int | None = None):
    """Seeds of ``B`` restarts (``keys (B,)``) of ``k`` centroids of which
    ``mask (B, k)`` are real (the others copies of centroid 0,
    :func:`jaxmix.kmeans.update.mask_centroids`): k-means++ with ``n_trials
    (B,)`` candidates, or ``"random"`` distinct samples."""
    x, w = sample.flat()
    centres = jax.vmap(lambda key, t: seed(method, key, x, w, k, t, max_trials)[0])(
        keys, n_trials)
    return mask_centroids(centres, mask)


def padded_centroids(centroids, mask):
    """Given centroids ``(R, k, d)`` padded to the ``(rows, k_max)`` of
    ``mask``: rows appended as copies of the first, clusters outside the
    mask copies of centroid 0 (:func:`jaxmix.kmeans.update.mask_centroids`)."""
    c = pad_rows(centroids, mask.shape[0])
    return mask_centroids(jnp.pad(c, ((0, 0), (0, mask.shape[1] - c.shape[1]), (0, 0))), mask)


def run_lloyd(data, centroids0, abs_tol, max_iter, relocate: bool = True, mask=None,
              usable=None, history_len: int | None = None, progress=None) -> FitResult:
    """Lloyd on restart-batched ``centroids0 (R, k, d)`` over ``data`` (any
    placement) with an absolute tolerance; ``params`` are :class:`KMeansParams`."""
    state0 = LloydState(centroids0, jnp.zeros(centroids0.shape[:1], jnp.uint32))
    if usable is not None:
        usable = usable & all_finite(centroids0, batch_dims=1)
    result = iterate(batched_lloyd_step(data, relocate), state0, abs_tol, max_iter,
                     lloyd_converged, usable=usable, history_len=history_len, rows=mask,
                     slots=restart_slots(centroids0.shape[0], "lloyd", pass_elements(
                         data, centroids0.shape[0] * centroids0.shape[1])),
                     progress=progress)
    return result._replace(params=KMeansParams(result.params.centroids))


def with_final_inertia(result: FitResult, data, mask=None, usable=None) -> FitResult:
    """A K-Means result whose ``objective`` is ``-inertia`` of the final
    centroids (exact, like sklearn's ``inertia_``), ``best`` the lowest-inertia
    non-failed ``usable`` restart, and ``degenerate`` flags a real cluster
    left empty."""
    inertia, counts = final_stats(result.params.centroids, data, mask)
    empty = counts <= 0 if mask is None else (counts <= 0) & mask
    return result._replace(objective=-inertia, degenerate=jnp.any(empty, axis=-1),
                           best=best_restart(-inertia, result.failed, result.params, usable))


def _lloyd_work(key, rows, data, *_, k_max, **__):
    return fit_work(data, rows.k.size, k_max)


@jit(static_argnames=("k_max", "init", "history", "max_trials", "per_k"), work=_lloyd_work)
def kmeans_rows(key, rows: Rows, data, sample, offset, centroids0, tol, max_iter, *, k_max,
                init, history, max_trials, per_k=False, progress=None) -> FitResult:
    """Lloyd K-Means on every row of ``rows`` (:mod:`jaxmix.fit.rows`) in one
    compiled call, from ``centroids0 (R, k, d)`` (data frame) or ``init``
    seeds; the result in the data's frame. ``per_k``: a model-selection grid."""
    TRACE_COUNT["kmeans"] += 1
    tol = jnp.asarray(tol, sample.dtype)
    mask = row_mask(rows, k_max)
    if centroids0 is None:
        c0 = seed_centres(row_keys(key, rows, per_k), sample, k_max, mask, rows.trials, init,
                          max_trials)
    else:
        c0 = padded_centroids(centroids0 - offset, mask)
    result = run_lloyd(data, c0, scaled_tol(sample, tol), max_iter, True, mask,
                       usable=rows.active, history_len=history, progress=progress)
    return uncentre(with_final_inertia(result, data, mask, rows.active), offset)
