"""K-Means statistics: additive counts, sums and inertia of an assignment,
and the farthest samples that re-seed empty clusters, as reductions over any
data placement (:mod:`jaxmix.data.reduce`).

Each chunk gives ``counts (k,)``, ``sums (k, d)`` and its inertia for every
restart's centroids ``(B, k, d)``; the counts and sums are one scatter-add of
the rows ``[w x, w]`` into ``B * k`` segments. The alternative GEMM
``onehot (B*k, chunk) @ X`` costs as much as the distance GEMM plus building
the one-hot block; measured at n=2e5, d=32, k=64, R=8 on the 2-core CPU the
scatter took 1.1 ms per restart-iteration against 2.7 ms.

An empty cluster is re-seeded as scikit-learn does: the ``j``-th empty
cluster (by index) takes the ``j``-th farthest sample from its own centroid,
which leaves its previous cluster (:func:`relocate_empty`). The farthest
samples are a reduction too (a running top-``m`` merge), run only when some
restart has an empty cluster (one ``lax.cond`` for all restarts).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmix.data.reduce import reduce
from jaxmix.kmeans.assign import exact_sq_dist, nearest
from jaxmix.numerics import HIGHEST


class KMeansStats(NamedTuple):
    """Additive K-Means statistics (leading restart axes allowed).

    Attributes:
      counts: ``(k,)`` summed sample weight per cluster.
      sums: ``(k, d)`` weighted sum of the samples of each cluster.
      inertia: ``()`` weighted sum of squared distances to the nearest centroid.
      labels_hash: ``()`` uint32 fingerprint of the assignment, a wrapping sum
        of a hash of ``(sample index, label)``: equal labels give equal
        fingerprints exactly (integer sums do not depend on order), different
        ones collide with probability about ``2^-32``.
    """

    counts: jax.Array
    sums: jax.Array
    inertia: jax.Array
    labels_hash: jax.Array


def _mix(h):
    """A 32-bit integer finaliser (murmur3-style)."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _labels_hash(labels, rows, w):
    """Fingerprint contribution ``(B,)`` of ``labels (B, n)`` at sample indices ``rows``."""
    h = _mix(rows.astype(jnp.uint32) * jnp.uint32(0x9E3779B1)
             + (labels.astype(jnp.uint32) + jnp.uint32(1)) * jnp.uint32(0x632BE5AB))
    return jnp.sum(jnp.where(w > 0, h, jnp.uint32(0)), axis=-1, dtype=jnp.uint32)


def chunk_stats(centroids, x, w, c, mask=None) -> KMeansStats:
    """Statistics of chunk ``c`` (``x (m, d)``, ``w (m,)``) for ``centroids
    (B, k, d)`` of which ``mask (B, k)`` are real (default all)."""
    b, k, d = centroids.shape
    n = x.shape[0]
    labels, dist = nearest(x, centroids, mask)
    # [w x, w] of every sample added into row ``r * k + label`` of restart r
    xw = jnp.concatenate([x * w[:, None], w[:, None]], axis=1)
    seg = (labels + k * jnp.arange(b, dtype=labels.dtype)[:, None]).reshape(-1)
    acc = jax.ops.segment_sum(jnp.broadcast_to(xw, (b, n, d + 1)).reshape(b * n, d + 1),
                              seg, b * k).reshape(b, k, d + 1)
    rows = c * n + jnp.arange(n)
    return KMeansStats(acc[..., d], acc[..., :d], jnp.sum(w * dist, axis=-1),
                       _labels_hash(labels, rows, w))


def _over_leading(fn, centroids, mask=None):
    """Apply a ``(B, k, d)`` function ``fn(centroids, mask)`` to centroids
    with any leading axes (``mask`` broadcast to ``centroids.shape[:-1]``)."""
    lead = centroids.shape[:-2]
    if mask is not None:
        mask = jnp.broadcast_to(mask, centroids.shape[:-1]).reshape((-1, centroids.shape[-2]))
    out = fn(centroids.reshape((-1,) + centroids.shape[-2:]), mask)
    return jax.tree.map(lambda a: a.reshape(lead + a.shape[1:]), out)


def kmeans_stats(centroids, data, mask=None) -> KMeansStats:
    """Counts, sums and inertia of the assignment to ``centroids`` ``(..., k, d)``
    over ``data`` (any placement), of the real centroids ``mask (..., k)``
    only (default all). The inertia uses the GEMM distances; use
    :func:`inertia` for the exact value."""
    return _over_leading(
        lambda c, m: reduce(lambda x, w, i: chunk_stats(c, x, w, i, m), data), centroids, mask)


def final_stats(centroids, data, mask=None):
    """Exact weighted inertia ``sum_n w_n ||x_n - c_label(n)||^2`` ``(...)`` and
    the counts ``(..., k)`` of ``centroids (..., k, d)`` (the real ones
    ``mask (..., k)``, default all), in one pass."""
    def batched(c, m):
        def one(x, w, i):
            labels, _ = nearest(x, c, m)
            counts = jax.vmap(lambda lab: jax.ops.segment_sum(w, lab, c.shape[1]))(labels)
            return jnp.sum(w * exact_sq_dist(x, c, labels), axis=-1), counts
        return reduce(one, data)
    return _over_leading(batched, centroids, mask)


def inertia(centroids, data):
    """Exact weighted inertia of ``centroids (..., k, d)`` over ``data``."""
    return final_stats(centroids, data)[0]


class Farthest(NamedTuple):
    """The ``m`` samples farthest from their nearest centroid, per restart."""

    dist: jax.Array    # (B, m) descending; -inf where there is no candidate
    x: jax.Array       # (B, m, d)
    w: jax.Array       # (B, m)
    label: jax.Array   # (B, m) cluster each candidate belongs to


def _take(a, idx):
    """``take_along_axis(a, idx, axis=1)`` for indices known to be in range
    (no code to wrap negative or fill out-of-range ones)."""
    idx = idx.reshape(idx.shape + (1,) * (a.ndim - idx.ndim))
    return jnp.take_along_axis(a, idx, axis=1, mode="promise_in_bounds")


def _top(far: Farthest, m: int) -> Farthest:
    """The ``m`` candidates of ``far`` with the largest distances."""
    dist, keep = jax.lax.top_k(far.dist, m)
    return Farthest(dist, _take(far.x, keep), _take(far.w, keep), _take(far.label, keep))


def _chunk_farthest(centroids, x, w, m: int, mask=None) -> Farthest:
    labels, _ = nearest(x, centroids, mask)
    dist = jnp.where(w > 0, exact_sq_dist(x, centroids, labels), -jnp.inf)
    b, pad = centroids.shape[0], max(0, m - x.shape[0])
    if pad:  # fewer rows than m: pad with empty candidates
        dist = jnp.concatenate([dist, jnp.full((b, pad), -jnp.inf, dist.dtype)], axis=1)
        x = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)])
        w = jnp.concatenate([w, jnp.zeros((pad,), w.dtype)])
        labels = jnp.concatenate([labels, jnp.zeros((b, pad), labels.dtype)], axis=1)
    cand = Farthest(dist, jnp.broadcast_to(x, (b,) + x.shape), jnp.broadcast_to(w, (b,) + w.shape),
                    labels)
    return _top(cand, m)


def farthest_samples(centroids, data, m: int, mask=None) -> Farthest:
    """The ``m`` positive-weight samples farthest from their nearest (real,
    ``mask (B, k)``) centroid, per restart of ``centroids (B, k, d)``: a
    reduction whose combine merges two top-``m`` lists."""
    merge = lambda a, b: _top(jax.tree.map(lambda u, v: jnp.concatenate([u, v], axis=1), a, b), m)
    return reduce(lambda x, w, c: _chunk_farthest(centroids, x, w, m, mask), data, merge,
                  _no_samples)


def _no_samples(shapes: Farthest) -> Farthest:
    """The neutral element of the top-``m`` merge: no candidate (distance -inf)."""
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return zeros._replace(dist=jnp.full(shapes.dist.shape, -jnp.inf, shapes.dist.dtype))


def relocate_empty(stats: KMeansStats, centroids, data, mask=None) -> KMeansStats:
    """scikit-learn's re-seeding of empty clusters, on statistics.

    For restarts of ``centroids (B, k, d)`` whose ``stats`` have empty real
    clusters (``mask (B, k)``, default all) ``e_1 < e_2 < ...``, the ``j``-th
    farthest sample (from its own centroid) becomes cluster ``e_j``'s only
    member and leaves its previous cluster. Clusters left empty (fewer
    positive-weight samples than needed, or every sample on its centroid,
    as with more clusters than distinct samples) stay empty. The farthest-sample pass
    runs only if some cluster is empty.
    """
    k = centroids.shape[1]
    if k == 1:
        return stats
    empty = stats.counts <= 0
    if mask is not None:
        empty = empty & mask

    def relocate(stats):
        far = farthest_samples(centroids, data, k - 1, mask)
        rank = jnp.cumsum(empty, axis=1) - 1                          # (B, k)
        # scikit-learn's guard: when every sample sits on its centroid (more
        # clusters than distinct samples) relocating is pointless
        spread = jnp.max(far.dist, axis=1, keepdims=True) > 0         # (B, 1)
        valid = jnp.isfinite(far.dist) & spread                       # (B, m)
        pick = jnp.clip(rank, 0, k - 2)
        take = empty & _take(valid, pick)                             # (B, k)
        new_w, new_x = _take(far.w, pick), _take(far.x, pick)         # (B, k), (B, k, d)
        moved = (jnp.arange(k - 1)[None] < jnp.sum(empty, axis=1, keepdims=True)) & valid
        out = (jax.nn.one_hot(far.label, k, dtype=far.w.dtype)
               * (moved * far.w)[..., None])                          # (B, m, k)
        counts = jnp.where(take, new_w, stats.counts - jnp.sum(out, axis=1))
        sums = jnp.where(take[..., None], new_x * new_w[..., None],
                         stats.sums - jnp.einsum("bmk,bmd->bkd", out, far.x,
                                                 precision=HIGHEST))
        return stats._replace(counts=counts, sums=sums)

    return jax.lax.cond(jnp.any(empty), relocate, lambda s: s, stats)
