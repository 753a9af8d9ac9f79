"""K-Means updates from statistics: the Lloyd step (any data placement, any
number of restarts), its stopping rules, and the mini-batch blend.

:func:`batched_lloyd_step` is the only Lloyd step of the library: in-memory,
sharded and streamed fits, the ``"kmeans"`` initialiser of Gaussian
mixtures and the padded ``k`` grids all run it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmix.data.chunked import chunk
from jaxmix.kmeans.stats import KMeansStats, inertia, kmeans_stats, relocate_empty
from jaxmix.numerics import HIGHEST
from jaxmix.params import KMeansParams


def centroids_from_stats(stats: KMeansStats, previous):
    """``sums / counts``; a cluster with no weight keeps its ``previous`` centroid."""
    counts = stats.counts[..., None]
    return jnp.where(counts > 0, stats.sums / jnp.where(counts > 0, counts, 1), previous)


class LloydState(NamedTuple):
    """What Lloyd carries between iterations (restart axes lead).

    Attributes:
      centroids: ``(k, d)``.
      labels_hash: fingerprint of the assignment that produced ``centroids``
        (``0`` before the first iteration).
    """

    centroids: jax.Array
    labels_hash: jax.Array


def batched_lloyd_step(data, relocate: bool = True, mask=None):
    """Batched Lloyd step for :func:`jaxmix.fit.driver.iterate`.

    Returns ``state_R -> (new_state_R, -inertia of state_R.centroids)`` for a
    restart-batched :class:`LloydState` (``centroids (R, k, d)``): one
    statistics pass over ``data`` (any placement) for all restarts, then (if
    ``relocate``) empty real clusters (``mask (R, k)``, default all)
    re-seeded from the farthest samples, then ``sums / counts``. The step's
    second argument, when given, replaces ``mask`` (the driver's per-slot rows).
    """
    def step(state: LloydState, row_mask=None):
        row_mask = mask if row_mask is None else row_mask
        c = state.centroids
        stats = kmeans_stats(c, data, row_mask)
        if relocate:
            stats = relocate_empty(stats, c, data, row_mask)
        new = mask_centroids(centroids_from_stats(stats, c), row_mask)
        return LloydState(new, stats.labels_hash), -stats.inertia

    return step


def mask_centroids(centroids, mask=None):
    """Padded K-Means: centroids outside ``mask (B, k)`` replaced by copies of
    centroid 0, so they stay finite and inside the data wherever the real
    centroids lie; re-applied after every update so the copies follow
    centroid 0. The assignment excludes them by the same mask
    (:func:`jaxmix.kmeans.assign.nearest`): a copy ties with centroid 0
    only up to the rounding of the distance GEMM. ``mask=None`` leaves
    ``centroids (B, k, d)`` as they are."""
    if mask is None:
        return centroids
    return jnp.where(mask[..., None], centroids, centroids[:, :1])


def lloyd_step(params: KMeansParams, data, relocate_empty: bool = False):
    """One Lloyd iteration: ``(new_params, -inertia of params)``.

    An empty cluster keeps its centroid unless ``relocate_empty`` (then it is
    re-seeded as in scikit-learn).
    """
    state = LloydState(params.centroids[None], jnp.zeros((1,), jnp.uint32))
    new, obj = batched_lloyd_step(data, relocate_empty)(state)
    return KMeansParams(new.centroids[0]), obj[0]


def center_shift_below_tol(old, new, prev_objective, objective, tol, mask=None):
    """sklearn's Lloyd rule: total squared shift of the real centroids
    (``mask (B, k)``, default all) ``<= tol``."""
    shift = jnp.sum((new.centroids - old.centroids) ** 2, axis=-1)
    if mask is not None:
        shift = jnp.where(mask, shift, 0.0)
    return jnp.sum(shift, axis=tuple(range(1, shift.ndim))) <= tol


def lloyd_converged(old: LloydState, new: LloydState, prev_objective, objective, tol,
                    mask=None):
    """sklearn's stopping rule: the assignment did not change ("strict
    convergence"), or the total squared centroid shift is ``<= tol``.

    The first test is exact where the second is not at ``tol = 0``: the
    recomputed centroids of an unchanged assignment can differ from the old
    ones by rounding when XLA contracts the division into the comparison.
    """
    same = (new.labels_hash == old.labels_hash) & (old.labels_hash != 0)
    return same | center_shift_below_tol(old, new, prev_objective, objective, tol, mask)


def scaled_tol(data, tol):
    """sklearn's K-Means tolerance: ``tol`` times the mean feature variance of
    in-memory ``data``. As in scikit-learn the variance ignores the sample
    weights; it is taken over the rows with positive weight."""
    x, w = data.flat()
    rows = (w > 0).astype(x.dtype)
    n = jnp.sum(rows)
    mean = jnp.matmul(rows, x, precision=HIGHEST) / n
    var = jnp.matmul(rows, (x - mean) ** 2, precision=HIGHEST) / n
    return tol * jnp.mean(var)


def minibatch_update(centroids, counts, stats: KMeansStats):
    """scikit-learn's MiniBatchKMeans centre update from a batch's statistics.

    Each cluster with batch weight ``b_k > 0`` moves to the weighted mean of
    its previous centre (weight ``counts_k``, all samples seen so far) and the
    batch's members: ``c_k <- (counts_k c_k + sums_k) / (counts_k + b_k)``,
    i.e. a per-centroid step size ``b_k / (counts_k + b_k)``.

    Returns ``(new centroids, new counts)``.
    """
    total = counts + stats.counts
    hit = (stats.counts > 0)[..., None]
    new = (counts[..., None] * centroids + stats.sums) / jnp.where(hit, total[..., None], 1)
    return jnp.where(hit, new, centroids), total


def score(params: KMeansParams, x, sample_weight=None, chunk_size: int | None = None):
    """``-inertia`` of ``x`` (exact, weighted): scikit-learn's ``KMeans.score``."""
    return -inertia(params.centroids, chunk(x, chunk_size, sample_weight))
