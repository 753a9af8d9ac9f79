"""K-Means: distances, assignment, greedy k-means++, Lloyd steps.

Lloyd's update is the additive-statistics pattern of the library: each chunk
gives ``counts (k,)``, ``sums (k, d)`` and its inertia; summed over chunks
they give the new centroids. Distances are one GEMM
``||x||^2 - 2 x.c + ||c||^2`` at ``precision="highest"``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmix.covariance import HIGHEST
from jaxmix.fit import iterate
from jaxmix.params import KMeansParams
from jaxmix.stats import Chunked, scan_sum


def sq_distances(x, centroids):
    """Squared Euclidean distances ``(n, k)``, clipped at zero."""
    xx = jnp.sum(x * x, axis=-1)[:, None]
    cc = jnp.sum(centroids * centroids, axis=-1)[None, :]
    xc = jnp.matmul(x, centroids.T, precision=HIGHEST)
    return jnp.maximum(xx - 2.0 * xc + cc, 0.0)


def assign(x, centroids):
    """Nearest centroid of each sample and its squared distance."""
    dist = sq_distances(x, centroids)
    return jnp.argmin(dist, axis=-1), jnp.min(dist, axis=-1)


def kmeans_plusplus(key, x, w, k: int, n_local_trials: int | None = None):
    """Greedy k-means++ seeding as in scikit-learn.

    Each new centre is the best (lowest potential) of ``2 + ln k`` candidates
    drawn with probability proportional to ``w * D(x)^2``.

    Args:
      key: PRNG key.
      x: ``(n, d)`` samples; ``w``: ``(n,)`` weights (0 = ignore the row).
      k: number of centres.
    Returns:
      ``(centres (k, d), indices (k,))``.
    """
    n = x.shape[0]
    trials = n_local_trials or 2 + int(math.log(k))
    last_valid = jnp.max(jnp.where(w > 0, jnp.arange(n), 0))
    key, sub = jax.random.split(key)
    first = jax.random.choice(sub, n, p=w / jnp.sum(w))
    closest = sq_distances(x, x[first][None])[:, 0]
    idx = jnp.zeros((k,), jnp.int32).at[0].set(first)

    def body(c, carry):
        idx, closest, key = carry
        key, sub = jax.random.split(key)
        pot = jnp.sum(w * closest)
        draws = jax.random.uniform(sub, (trials,), x.dtype) * pot
        cand = jnp.minimum(jnp.searchsorted(jnp.cumsum(w * closest), draws), last_valid)
        new = jnp.minimum(closest[:, None], sq_distances(x, x[cand]))
        best = jnp.argmin(jnp.sum(w[:, None] * new, axis=0))
        return idx.at[c].set(cand[best]), new[:, best], key

    idx, _, _ = jax.lax.fori_loop(1, k, body, (idx, closest, key))
    return x[idx], idx


class KMeansStats(NamedTuple):
    counts: jax.Array
    sums: jax.Array
    inertia: jax.Array


def kmeans_stats(centroids, data: Chunked) -> KMeansStats:
    """Counts, sums and inertia of the assignment to ``centroids``."""
    k = centroids.shape[0]

    def chunk_stats(x, w, _):
        labels, dist = assign(x, centroids)
        onehot = jax.nn.one_hot(labels, k, dtype=x.dtype) * w[:, None]
        return KMeansStats(jnp.sum(onehot, axis=0),
                           jnp.matmul(onehot.T, x, precision=HIGHEST),
                           jnp.sum(w * dist))

    return scan_sum(chunk_stats, data)


def lloyd_step(params: KMeansParams, data: Chunked):
    """One Lloyd iteration: ``(new_params, -inertia of params)``.

    An empty cluster keeps its centroid.
    """
    s = kmeans_stats(params.centroids, data)
    counts = s.counts[:, None]
    new = jnp.where(counts > 0, s.sums / jnp.maximum(counts, 1e-30), params.centroids)
    return KMeansParams(new), -s.inertia


def center_shift_below_tol(old, new, prev_objective, objective, tol):
    """sklearn's Lloyd rule: total squared centroid shift ``<= tol``."""
    shift = (new.centroids - old.centroids) ** 2
    return jnp.sum(shift, axis=tuple(range(1, shift.ndim))) <= tol


def scaled_tol(data: Chunked, tol):
    """sklearn's K-Means tolerance: ``tol`` times the mean feature variance."""
    x, w = data.flat()
    n = jnp.sum(w)
    mean = jnp.matmul(w, x, precision=HIGHEST) / n
    var = jnp.matmul(w, (x - mean) ** 2, precision=HIGHEST) / n
    return tol * jnp.mean(var)


def lloyd(data: Chunked, centroids0, tol, max_iter: int):
    """Lloyd iterations for restart-batched ``centroids0 (R, k, d)``."""
    step = jax.vmap(lambda p: lloyd_step(p, data))
    return iterate(step, KMeansParams(centroids0), scaled_tol(data, tol), max_iter,
                   center_shift_below_tol)
