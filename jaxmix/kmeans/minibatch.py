"""Mini-batch K-Means (scikit-learn's ``MiniBatchKMeans``), in memory or streamed.

One step takes a batch, computes its K-Means statistics with the same
function Lloyd uses (:func:`jaxmix.kmeans.core.kmeans_stats`: counts, sums,
inertia) and blends them into the running centroids with per-centroid counts
(:func:`jaxmix.kmeans.core.minibatch_update`)::

    c_k <- (N_k c_k + sum_{x in batch, label k} w x) / (N_k + b_k),   N_k <- N_k + b_k

then, as sklearn does, re-seeds clusters whose count fell below
``reassignment_ratio * max(N)`` from random batch samples (every ``10 k``
samples, or at once when a cluster has count 0), and tracks an exponentially
weighted average (EWA) of the mean batch inertia for early stopping: a run
stops after ``max_no_improvement`` steps without a new EWA minimum, or when
``tol > 0`` and the squared centroid change of a step is at most ``tol``
times the mean feature variance.

* :func:`fit_minibatch_kmeans`: data in memory; batches are drawn inside
  ``jit`` (with replacement, probability proportional to the sample weight,
  then unit weights, as sklearn) and the loop over batches is
  :func:`jaxmix.fit.driver.iterate`, the driver every fit uses, batched over
  restarts.
* :func:`minibatch_kmeans_stream`: batches come from a Python iterator
  (data that does not fit in memory); each step is one compiled call.
* :func:`minibatch_step` / :func:`minibatch_init`: the pure pieces, for
  custom loops.

>>> import jax, numpy as np
>>> from jaxmix import fit_minibatch_kmeans
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(-5, 1, (2000, 2)), rng.normal(5, 1, (2000, 2))])
>>> result = fit_minibatch_kmeans(jax.random.PRNGKey(0), x, 2, batch_size=256)
>>> np.sort(np.asarray(result.best_params.centroids[:, 0])).round(0)
array([-5.,  5.], dtype=float32)
"""

from __future__ import annotations

import functools
from typing import Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.fit.driver import FitResult, iterate
from jaxmix.kmeans.core import (init_centroids as seed_centroids, kmeans_stats, minibatch_update, scaled_tol,
                           with_final_inertia)
from jaxmix.fit.kmeans import check_kmeans_inputs
from jaxmix.params import KMeansParams
from jaxmix.data.chunked import Chunked, chunk
from jaxmix.validation import as_key, check_data, check_int, check_nonneg

# EWA window of the stream when the data set size is unknown: 100 batches.
STREAM_WINDOW_BATCHES = 100


class MiniBatchConfig(NamedTuple):
    """Traced hyper-parameters of a mini-batch run (changing them does not
    recompile).

    Attributes:
      tol: absolute tolerance on the squared centroid change of one step
        (``0`` disables it).
      alpha: EWA smoothing factor of the mean batch inertia.
      max_no_improvement: steps without a new EWA minimum before stopping.
      reassignment_ratio: clusters with count below this fraction of the
        largest count are re-seeded (``0`` disables it).
    """

    tol: jax.Array
    alpha: jax.Array
    max_no_improvement: jax.Array
    reassignment_ratio: jax.Array


class MiniBatchState(NamedTuple):
    """State of one mini-batch run (all leaves finite; restarts add a leading axis).

    Attributes:
      centroids: ``(k, d)``.
      counts: ``(k,)`` sample weight seen by each centroid.
      key: PRNG key of the run's random choices (batches, re-seeding).
      step: steps taken.
      ewa: EWA of the mean batch inertia (valid from step 2).
      ewa_min: smallest ``ewa`` so far.
      no_improvement: steps since ``ewa_min`` last decreased.
      since_reassign: samples seen since the last re-seeding check.
      stop: ``1`` once a stopping rule fired.
    """

    centroids: jax.Array
    counts: jax.Array
    key: jax.Array
    step: jax.Array
    ewa: jax.Array
    ewa_min: jax.Array
    no_improvement: jax.Array
    since_reassign: jax.Array
    stop: jax.Array


def minibatch_init(key, centroids) -> MiniBatchState:
    """Fresh state at ``centroids (k, d)`` with zero counts."""
    dtype = centroids.dtype
    zero = jnp.zeros((), jnp.int32)
    return MiniBatchState(centroids, jnp.zeros(centroids.shape[:1], dtype), key, zero,
                          jnp.zeros((), dtype), jnp.asarray(jnp.finfo(dtype).max, dtype),
                          zero, zero, zero)


def make_config(tol, alpha, max_no_improvement, reassignment_ratio, dtype) -> MiniBatchConfig:
    limit = np.iinfo(np.int32).max if max_no_improvement is None else max_no_improvement
    return MiniBatchConfig(jnp.asarray(tol, dtype), jnp.asarray(alpha, dtype),
                           jnp.asarray(limit, jnp.int32), jnp.asarray(reassignment_ratio, dtype))


def _reseed(key, centroids, counts, x, w, ratio):
    """sklearn's random reassignment of low-count clusters to batch samples."""
    b = x.shape[0]
    low = counts < ratio * jnp.max(counts)
    # at most half a batch: keep the clusters with the lowest counts
    order = jnp.argsort(jnp.argsort(counts, stable=True), stable=True)
    low = jnp.where(jnp.sum(low) > 0.5 * b, low & (order < int(0.5 * b)), low)
    # distinct positive-weight samples in random order
    rows = jnp.argsort(jnp.where(w > 0, jax.random.uniform(key, (b,), x.dtype), 2.0))
    rank = jnp.cumsum(low) - 1
    take = low & (rank < jnp.sum(w > 0))
    centroids = jnp.where(take[:, None], x[rows[jnp.clip(rank, 0, b - 1)]], centroids)
    floor = jnp.min(jnp.where(low, jnp.inf, counts))
    counts = jnp.where(low & jnp.isfinite(floor), floor, counts)
    return centroids, counts


def minibatch_step(state: MiniBatchState, x, w, config: MiniBatchConfig):
    """One mini-batch step on batch ``x (b, d)`` with weights ``w (b,)``.

    Returns ``(new_state, mean batch inertia of the centroids before the step)``.
    """
    k, b = state.centroids.shape[0], x.shape[0]
    stats = kmeans_stats(state.centroids, Chunked(x[None], w[None]))
    centroids, counts = minibatch_update(state.centroids, state.counts, stats)
    key, sub = jax.random.split(state.key)
    since = state.since_reassign + b
    check = jnp.any(state.counts == 0) | (since >= 10 * k)
    reseeded = _reseed(sub, centroids, counts, x, w, config.reassignment_ratio)
    centroids, counts = jax.tree.map(
        lambda new, old: jnp.where(check & (config.reassignment_ratio > 0), new, old),
        reseeded, (centroids, counts))
    batch_inertia = stats.inertia / jnp.maximum(jnp.sum(w), jnp.finfo(x.dtype).tiny)

    # early stopping, as sklearn's _mini_batch_convergence (step 1 is ignored)
    step = state.step + 1
    ewa = jnp.where(step == 2, batch_inertia,
                    state.ewa * (1 - config.alpha) + batch_inertia * config.alpha)
    ewa = jnp.where(step >= 2, ewa, state.ewa)
    improved = ewa < state.ewa_min
    counting = step >= 2
    no_improvement = jnp.where(counting & ~improved, state.no_improvement + 1, 0)
    shift = jnp.sum((centroids - state.centroids) ** 2)
    stop = counting & (((config.tol > 0) & (shift <= config.tol))
                       | (no_improvement >= config.max_no_improvement))
    new = MiniBatchState(centroids, counts, key, step, ewa,
                         jnp.where(counting & improved, ewa, state.ewa_min), no_improvement,
                         jnp.where(check, 0, since), stop.astype(jnp.int32))
    return new, batch_inertia


def _stopped(old, new, prev_objective, objective, tol):
    return new.stop > 0


# --------------------------------------------------------------------------
# In memory
# --------------------------------------------------------------------------

def fit_minibatch_kmeans(key, x, n_clusters: int, *, n_restarts: int | None = None,
                         batch_size: int = 1024, max_iter: int = 100, init: str = "k-means++",
                         init_centroids=None, init_size: int | None = None, tol: float = 0.0,
                         max_no_improvement: int | None = 10,
                         reassignment_ratio: float = 0.01, sample_weight=None) -> FitResult:
    """Mini-batch K-Means on in-memory data, ``n_restarts`` runs in one compiled call.

    Args:
      key: ``jax.random`` key (or int seed).
      x: ``(n, d)`` data.
      n_clusters: ``k``.
      n_restarts: independent runs (default 1, or the leading axis of a 3-D
        ``init_centroids``); the best has the lowest inertia on all of ``x``.
      batch_size: samples per step.
      max_iter: passes over the data: at most ``max_iter * n // batch_size``
        steps (sklearn's ``n_steps``).
      init: ``"k-means++"`` or ``"random"``, run on ``init_size`` samples
        drawn at random (default ``3 * batch_size``, at least ``3 k``).
      init_centroids: ``(k, d)`` or ``(R, k, d)`` starting centroids.
      tol: stop when one step moves the centroids (total squared shift) by at
        most ``tol`` times the mean feature variance (``0``: off, sklearn's default).
      max_no_improvement: stop after this many steps without improvement of
        the smoothed batch inertia (``None``: off).
      reassignment_ratio: re-seed clusters with count below this fraction of
        the largest count.
      sample_weight: optional ``(n,)`` weights; batches are drawn with
        probability proportional to them.

    Returns:
      :class:`~jaxmix.fit.driver.FitResult` with ``params`` :class:`KMeansParams`
      ``(R, k, d)``; ``n_iter`` counts steps, ``history`` the mean batch
      inertia (negated) per step, ``objective`` is ``-inertia`` of the final
      centroids on all of ``x``.
    """
    inp = check_kmeans_inputs(x, n_clusters, n_restarts, init, init_centroids, sample_weight)
    n, d = inp.x.shape
    batch_size = check_int(batch_size, "batch_size")
    max_iter = check_int(max_iter, "max_iter", low=0)
    if init_size is None:
        init_size = 3 * batch_size if 3 * batch_size >= inp.k else 3 * inp.k
    init_size = min(check_int(init_size, "init_size", low=inp.k), n)
    n_steps = max_iter * n // batch_size
    if max_no_improvement is not None:
        max_no_improvement = check_int(max_no_improvement, "max_no_improvement", low=0)
    config = make_config(check_nonneg(tol, "tol"), min(1.0, batch_size * 2.0 / (n + 1)),
                         max_no_improvement, check_nonneg(reassignment_ratio,
                                                          "reassignment_ratio"), inp.x.dtype)
    offset = jnp.mean(inp.x, axis=0)
    data = chunk(inp.x - offset, None, inp.weights)
    centroids0 = None if inp.centroids0 is None else inp.centroids0 - offset
    result = _fit(as_key(key), data, centroids0, config, k=inp.k, n_restarts=inp.n_restarts,
                  init=init, n_steps=n_steps, batch_size=batch_size, init_size=init_size,
                  weighted=inp.weights is not None)
    return result._replace(params=KMeansParams(result.params.centroids + offset))


@functools.partial(jax.jit, static_argnames=(
    "k", "n_restarts", "init", "n_steps", "batch_size", "init_size", "weighted"))
def _fit(key, data: Chunked, centroids0, config, *, k, n_restarts, init, n_steps, batch_size,
         init_size, weighted) -> FitResult:
    x, w = data.flat()
    n = x.shape[0]
    init_key, subset_key, run_key = jax.random.split(key, 3)
    if centroids0 is None:
        rows = jax.random.randint(subset_key, (init_size,), 0, n)
        centroids0 = seed_centroids(init_key, Chunked(x[rows][None], w[rows][None]), k,
                                    n_restarts, init)
    config = config._replace(tol=scaled_tol(data, config.tol))
    cdf = jnp.cumsum(w) if weighted else None
    unit = jnp.ones((batch_size,), x.dtype)

    def one(state):
        key, sub = jax.random.split(state.key)
        if weighted:
            u = jax.random.uniform(sub, (batch_size,), x.dtype) * cdf[-1]
            rows = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), n - 1)
        else:
            rows = jax.random.randint(sub, (batch_size,), 0, n)
        new, batch_inertia = minibatch_step(state._replace(key=key), x[rows], unit, config)
        return new, -batch_inertia

    states0 = jax.vmap(minibatch_init)(jax.random.split(run_key, n_restarts), centroids0)
    result = iterate(jax.vmap(one), states0, config.tol, n_steps, _stopped)
    result = result._replace(params=KMeansParams(result.params.centroids))
    return with_final_inertia(result, data)


# --------------------------------------------------------------------------
# Streamed
# --------------------------------------------------------------------------

@jax.jit
def _stream_step(state, x, w, offset, config):
    return minibatch_step(state, x - offset, w, config)


def minibatch_kmeans_stream(key, batches: Iterable, n_clusters: int, *,
                            init: str = "k-means++", init_centroids=None, tol: float = 0.0,
                            max_no_improvement: int | None = 10,
                            reassignment_ratio: float = 0.01, n_samples: int | None = None,
                            max_steps: int | None = None) -> FitResult:
    """Mini-batch K-Means over batches from a Python iterator (out of core).

    Each item of ``batches`` is ``x (b, d)`` or a pair ``(x, sample_weight)``.
    The first batch fixes ``b`` and ``d``, centres the data (its mean), scales
    ``tol`` (its mean feature variance) and seeds the centroids (``init`` on
    it, unless ``init_centroids``); it must hold at least ``n_clusters``
    samples. Later batches may be smaller (padded with zero weight, no
    recompilation) but not larger. Every step is one compiled call; the loop
    stops when a stopping rule fires, after ``max_steps`` steps, or when the
    iterator ends.

    Args:
      n_samples: size of the data set the stream covers, used for the EWA
        smoothing ``alpha = 2 b / (n_samples + 1)`` as sklearn; ``None``
        smooths over about ``100`` batches.

    Returns:
      :class:`~jaxmix.fit.driver.FitResult` with one restart; ``objective`` is minus
      the smoothed mean batch inertia (per unit weight; the data is not
      revisited), ``history`` minus the mean inertia of every batch.
    """
    key = as_key(key)
    it = iter(batches)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError("batches is empty; it must yield at least one batch") from None
    x0, w0 = _batch(first, None)
    b, d = x0.shape
    inp = check_kmeans_inputs(x0, n_clusters, None, init, init_centroids,
                              None if w0 is None else w0)
    if inp.n_restarts != 1:
        raise ValueError("init_centroids must have shape (k, d) for a stream (one run)")
    if max_steps is not None:
        max_steps = check_int(max_steps, "max_steps")
    if max_no_improvement is not None:
        max_no_improvement = check_int(max_no_improvement, "max_no_improvement", low=0)
    n_samples = STREAM_WINDOW_BATCHES * b if n_samples is None else check_int(n_samples,
                                                                              "n_samples")
    x0 = inp.x
    w0 = jnp.ones((b,), x0.dtype) if inp.weights is None else inp.weights
    offset = jnp.average(x0, axis=0)
    data0 = chunk(x0 - offset, None, w0)
    init_key, run_key = jax.random.split(key)
    c0 = (seed_centroids(init_key, data0, inp.k, 1, init)[0] if inp.centroids0 is None
          else inp.centroids0[0] - offset)
    config = make_config(scaled_tol(data0, check_nonneg(tol, "tol")),
                         min(1.0, 2.0 * b / (n_samples + 1)), max_no_improvement,
                         check_nonneg(reassignment_ratio, "reassignment_ratio"), x0.dtype)
    state = minibatch_init(run_key, c0)
    history = []
    batch = (x0, w0)
    while True:
        state, batch_inertia = _stream_step(state, *batch, offset, config)
        history.append(-batch_inertia)
        if bool(state.stop) or (max_steps is not None and len(history) >= max_steps):
            break
        try:
            batch = _batch(next(it), (b, d), x0.dtype)
        except StopIteration:
            break
    history = jnp.stack(history)[None]
    return FitResult(KMeansParams((state.centroids + offset)[None]),
                     -state.ewa[None] if int(state.step) >= 2 else history[:, -1],
                     jnp.asarray([int(state.step)], jnp.int32),
                     jnp.asarray([bool(state.stop)]), jnp.zeros((1,), bool),
                     jnp.asarray([bool(jnp.any(state.counts <= 0))]), history,
                     jnp.asarray(0, jnp.int32))


def _batch(item, shape, dtype=None):
    """``(x, w)`` of one stream item; later items padded to ``shape``."""
    x, w = item if isinstance(item, tuple) else (item, None)
    if shape is None:
        return x, w
    x = check_data(x, "batch")
    b, d = shape
    if x.shape[1] != d or x.shape[0] > b:
        raise ValueError(f"each batch must have at most {b} rows and {d} columns (as the "
                         f"first batch), got shape {x.shape}")
    w = jnp.ones((x.shape[0],), dtype) if w is None else jnp.asarray(w, dtype)
    if w.shape != (x.shape[0],) or not bool(jnp.all(jnp.isfinite(w) & (w >= 0))):
        raise ValueError(f"a batch's sample_weight must be finite, non-negative, of shape "
                         f"({x.shape[0]},)")
    pad = b - x.shape[0]
    if pad:
        x = jnp.concatenate([x.astype(dtype), jnp.zeros((pad, d), dtype)])
        w = jnp.concatenate([w, jnp.zeros((pad,), dtype)])
    return x.astype(dtype), w
