"""The mini-batch K-Means step (scikit-learn's ``MiniBatchKMeans``).

One step takes a batch, computes its K-Means statistics with the function
Lloyd uses (:func:`jaxmix.kmeans.stats.kmeans_stats`: counts, sums, inertia)
and blends them into the running centroids with per-centroid counts
(:func:`jaxmix.kmeans.update.minibatch_update`)::

    c_k <- (N_k c_k + sum_{x in batch, label k} w x) / (N_k + b_k),   N_k <- N_k + b_k

then, as sklearn does, re-seeds clusters whose count fell below
``reassignment_ratio * max(N)`` from random batch samples (every ``10 k``
samples, or at once when a cluster has count 0), and tracks an exponentially
weighted average (EWA) of the mean batch inertia for early stopping: a run
stops after ``max_no_improvement`` steps without a new EWA minimum, or when
``tol > 0`` and the squared centroid change of a step is at most ``tol``
times the mean feature variance.

:func:`minibatch_step` is the one step of both placements of
:func:`jaxmix.fit_minibatch_kmeans`: batches drawn inside ``jit`` from
in-memory data (under :func:`jaxmix.fit.driver.iterate`), or read from a
Python iterator (one compiled call per batch).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.data.chunked import one_chunk
from jaxmix.kmeans.stats import kmeans_stats
from jaxmix.kmeans.update import mask_centroids, minibatch_update
from jaxmix.numerics import uniform

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


def _reseed(key, centroids, counts, x, w, ratio, real, size):
    """sklearn's random reassignment of low-count real clusters (``real
    (k,)``) to batch samples (a batch of ``size`` rows, padded to ``x``'s
    with weight 0)."""
    b = x.shape[0]
    low = (counts < ratio * jnp.max(counts)) & real
    # at most half a batch: keep the clusters with the lowest counts (padded
    # clusters rank last, so real ones rank as in an unpadded run)
    order = jnp.argsort(jnp.argsort(jnp.where(real, counts, jnp.inf), stable=True), stable=True)
    low = jnp.where(jnp.sum(low) > 0.5 * size, low & (order < size // 2), low)
    # distinct positive-weight samples in random order (the uniforms of a
    # padded batch's real rows are the unpadded batch's: prefix-stable draws)
    rows = jnp.argsort(jnp.where(w > 0, uniform(key, (b,), x.dtype), 2.0))
    rank = jnp.cumsum(low) - 1
    take = low & (rank < jnp.sum(w > 0))
    centroids = jnp.where(take[:, None], x[rows[jnp.clip(rank, 0, b - 1)]], centroids)
    floor = jnp.min(jnp.where(low | ~real, jnp.inf, counts))
    counts = jnp.where(low & jnp.isfinite(floor), floor, counts)
    return centroids, counts


def minibatch_step(state: MiniBatchState, x, w, config: MiniBatchConfig, mask=None,
                   size=None):
    """One mini-batch step on batch ``x (b, d)`` with weights ``w (b,)``.

    ``size``: the batch's rows when ``x`` is a batch padded to a bucket
    (traced; the padding rows last, with weight 0); default ``b``.

    ``mask (k,)``: the real clusters of a padded run (default all); the
    others are copies of the first centroid
    (:func:`jaxmix.kmeans.update.mask_centroids`) that never take a sample,
    are never re-seeded and do not count in the stopping rules, so the real
    clusters step as in an unpadded run.

    Returns ``(new_state, mean batch inertia of the centroids before the step)``.
    """
    size = x.shape[0] if size is None else size
    real = jnp.ones(state.counts.shape, bool) if mask is None else mask
    stats = kmeans_stats(state.centroids, one_chunk(x, w), mask)
    centroids, counts = minibatch_update(state.centroids, state.counts, stats)
    key, sub = jax.random.split(state.key)
    since = state.since_reassign + size
    check = jnp.any((state.counts == 0) & real) | (since >= 10 * jnp.sum(real))
    reseeded = _reseed(sub, centroids, counts, x, w, config.reassignment_ratio, real, size)
    centroids, counts = jax.tree.map(
        lambda new, old: jnp.where(check & (config.reassignment_ratio > 0), new, old),
        reseeded, (centroids, counts))
    centroids = mask_centroids(centroids[None], real[None])[0]
    batch_inertia = stats.inertia / jnp.maximum(jnp.sum(w), jnp.finfo(x.dtype).tiny)

    # early stopping, as sklearn's _mini_batch_convergence (step 1 is ignored)
    step = state.step + 1
    ewa = jnp.where(step == 2, batch_inertia,
                    state.ewa * (1 - config.alpha) + batch_inertia * config.alpha)
    ewa = jnp.where(step >= 2, ewa, state.ewa)
    improved = ewa < state.ewa_min
    counting = step >= 2
    no_improvement = jnp.where(counting & ~improved, state.no_improvement + 1, 0)
    shift = jnp.sum(jnp.where(real[:, None], centroids - state.centroids, 0.0) ** 2)
    stop = counting & (((config.tol > 0) & (shift <= config.tol))
                       | (no_improvement >= config.max_no_improvement))
    new = MiniBatchState(centroids, counts, key, step, ewa,
                         jnp.where(counting & improved, ewa, state.ewa_min), no_improvement,
                         jnp.where(check, 0, since), stop.astype(jnp.int32))
    return new, batch_inertia


def stopped(old, new, prev_objective, objective, tol):
    """Driver stopping rule of mini-batch runs: a stopping rule of the step fired."""
    return new.stop > 0
