"""K-Means distances and assignment, and the fitted-model functions.

Distances of a chunk to every centroid of ``B`` restarts are one GEMM
``G = [-C, ||C||^2 / 2] @ [X, 1]^T`` of shape ``(B, k, chunk)`` (half squared
distances minus ``||x||^2 / 2``; ``precision="highest"``); the nearest
centroid is the first minimiser over ``k`` (the reduction runs over a major
axis, which vectorises over samples). Nothing of size ``(n, k, d)`` is
formed. Both sides are first shifted by the centroids' mean: the expansion
cancels ``||x||^2`` against ``2 x.c`` and loses everything in float32 when
the data sit far from the origin relative to the clusters' spread (fits
centre their data, but ``predict`` and ``transform`` take raw samples).
Reported inertias are computed exactly, as ``||x - c_label||^2``.

>>> import numpy as np
>>> x = np.array([[0., 0.], [0., 1.], [10., 10.]])
>>> labels, d2 = assign(x, np.array([[0., 0.5], [10., 10.]]))
>>> labels.tolist(), np.asarray(d2).round(2).tolist()
([0, 0, 1], [0.25, 0.25, 0.0])
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmix.numerics import HIGHEST
from jaxmix.params import KMeansParams


def _about_centroids(x, centroids):
    """``x`` and ``centroids`` shifted by the centroids' mean (see module docstring)."""
    mid = jax.lax.stop_gradient(jnp.mean(centroids.reshape(-1, centroids.shape[-1]), axis=0))
    return x - mid, centroids - mid


def sq_distances(x, centroids):
    """Squared Euclidean distances ``(n, k)``, clipped at zero."""
    x, centroids = _about_centroids(x, centroids)
    xx = jnp.sum(x * x, axis=-1)[:, None]
    cc = jnp.sum(centroids * centroids, axis=-1)[None, :]
    xc = jnp.matmul(x, centroids.T, precision=HIGHEST)
    return jnp.maximum(xx - 2.0 * xc + cc, 0.0)


def half_gaps(x, centroids):
    """``||c||^2 / 2 - x.c`` of shape ``(B, k, n)`` for ``centroids (B, k, d)``.

    ``||x - c||^2 = ||x||^2 + 2 * gap``; one GEMM for all ``B * k`` centroids.
    """
    b, k, d = centroids.shape
    c = centroids.reshape(b * k, d)
    coef = jnp.concatenate([-c, 0.5 * jnp.sum(c * c, axis=-1, keepdims=True)], axis=-1)
    feats = jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=-1)
    return jnp.matmul(coef, feats.T, precision=HIGHEST).reshape(b, k, x.shape[0])


def nearest(x, centroids, mask=None):
    """Batched assignment: labels ``(B, n)`` (first minimiser) and squared
    distances ``(B, n)`` to the nearest of ``centroids (B, k, d)``, of the
    real ones (``mask (B, k)``, default all) in a padded model: the padded
    ones are excluded, not merely tied (two equal centroids need not get
    equal GEMM distances: XLA may round the rows of one product apart)."""
    k = centroids.shape[1]
    x, centroids = _about_centroids(x, centroids)
    gaps = half_gaps(x, centroids)
    if mask is not None:
        gaps = jnp.where(mask[..., None], gaps, jnp.inf)
    low = jnp.min(gaps, axis=1, keepdims=True)
    iota = jnp.arange(k, dtype=jnp.int32)[None, :, None]
    labels = jnp.min(jnp.where(gaps == low, iota, k), axis=1)
    xx = jnp.sum(x * x, axis=-1)
    return labels, jnp.maximum(xx + 2.0 * low[:, 0], 0.0)


def exact_sq_dist(x, centroids, labels):
    """``||x - c_label||^2`` ``(B, n)`` computed from differences."""
    c = jnp.take_along_axis(centroids, labels[..., None], axis=1)
    return jnp.sum((x[None] - c) ** 2, axis=-1)


def row_elements(n_restarts: int, k: int, d: int) -> int:
    """Elements per sample row of a Lloyd pass's intermediates: the distance
    block, its minimiser mask and labels ``(R, k, chunk)`` three times, plus the
    ``(R, chunk, d + 1)`` rows added into the sums (for
    :func:`jaxmix.data.chunked.chunk_rows`)."""
    return n_restarts * (3 * k + d + 1)


def assign(x, centroids, mask=None):
    """Nearest centroid of each sample ``(n,)`` and its squared distance
    ``(n,)`` (of the real centroids, ``mask (k,)``, in a padded model)."""
    mask = None if mask is None else jnp.asarray(mask)[None]
    labels, dist = nearest(jnp.asarray(x), jnp.asarray(centroids)[None], mask)
    return labels[0], dist[0]


def predict(params: KMeansParams, x, mask=None):
    """Index of the nearest centroid of each sample ``(n,)`` (of the real
    ones, ``mask (k,)``, in a padded model)."""
    return assign(x, params.centroids, mask)[0]


def nearest_sq_distance(params: KMeansParams, x, mask=None):
    """``||x_n - c_label(n)||^2`` to the nearest centroid (of the real ones,
    ``mask (k,)``), from differences ``(n,)`` (the exact per-sample inertia)."""
    x = jnp.asarray(x)
    labels = assign(x, params.centroids, mask)[0]
    return exact_sq_dist(x, jnp.asarray(params.centroids)[None], labels[None])[0]


def transform(params: KMeansParams, x):
    """Euclidean distances ``(n, k)`` from each sample to every centroid."""
    return jnp.sqrt(sq_distances(jnp.asarray(x), params.centroids))
