"""Clustering metrics: the silhouette, in chunks.

For sample ``i`` in cluster ``c_i`` with Euclidean distances ``d(i, j)``::

    a_i = sum_{j in c_i} d(i, j) / (|c_i| - 1)
    b_i = min_{c != c_i} mean_{j in c} d(i, j)
    s_i = (b_i - a_i) / max(a_i, b_i)        (0 when |c_i| = 1)

and the score is the mean of ``s_i`` (``sklearn.metrics.silhouette_score``
with the Euclidean metric). The ``n x n`` distances are never stored: rows
are processed in chunks (``lax.map``) and, for each, columns in chunks
(``lax.scan``) accumulate per-cluster distance sums ``(chunk, L)`` with one
GEMM against the one-hot labels, so memory is ``O(chunk^2 + chunk L)``.
Distances are ``sqrt(|x|^2 - 2 x.y + |y|^2)`` on centred data with the
self-distance set to exactly 0, as sklearn does.

>>> import numpy as np
>>> from jaxmix import silhouette_score
>>> x = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
>>> round(silhouette_score(x, [0, 0, 1, 1]), 4)
0.9002
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.compiling import jit
from jaxmix.numerics import HIGHEST
from jaxmix.data.chunked import chunk
from jaxmix.validation import check_data, check_int

# Elements of one (row chunk x column chunk) distance block.
SILHOUETTE_BLOCK = 2 ** 22


def _encode_labels(labels, n: int):
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match X, got {labels.shape}")
    uniq, codes = np.unique(labels, return_inverse=True)
    if not 2 <= uniq.size <= n - 1:
        raise ValueError(f"the silhouette needs 2 <= number of labels <= n_samples - 1 "
                         f"({n - 1}); got {uniq.size} distinct labels")
    return codes.astype(np.int32), int(uniq.size)


@jit(static_argnames=("n_labels",))
def _silhouette(xs, ws, codes, *, n_labels):
    """``s_i`` for the chunked samples ``xs (C, m, d)`` (weights ``ws`` 1/0)."""
    n_chunks, m, _ = xs.shape
    offset = jnp.sum(xs * ws[..., None], axis=(0, 1)) / jnp.sum(ws)
    xs = (xs - offset) * ws[..., None]
    sq = jnp.sum(xs * xs, axis=-1)
    onehot = jax.nn.one_hot(codes, n_labels, dtype=xs.dtype) * ws[..., None]
    counts = jnp.sum(onehot, axis=(0, 1))
    index = jnp.arange(n_chunks * m).reshape(n_chunks, m)

    def row_block(inp):
        xr, sqr, ir = inp

        def col_block(acc, col):
            xc, sqc, ic, oc = col
            d2 = sqr[:, None] - 2.0 * jnp.matmul(xr, xc.T, precision=HIGHEST) + sqc[None, :]
            dist = jnp.where(ir[:, None] == ic[None, :], 0.0, jnp.sqrt(jnp.maximum(d2, 0.0)))
            return acc + jnp.matmul(dist, oc, precision=HIGHEST), None

        init = jnp.zeros((m, n_labels), xs.dtype)
        sums, _ = jax.lax.scan(col_block, init, (xs, sq, index, onehot))
        return sums

    sums = jax.lax.map(row_block, (xs, sq, index)).reshape(-1, n_labels)
    own = jax.nn.one_hot(codes.reshape(-1), n_labels, dtype=bool)
    size = counts[codes.reshape(-1)]
    a = jnp.sum(jnp.where(own, sums, 0.0), axis=1) / jnp.maximum(size - 1.0, 1.0)
    b = jnp.min(jnp.where(own, jnp.inf, sums / jnp.maximum(counts, 1.0)), axis=1)
    denom = jnp.maximum(a, b)
    s = jnp.where((size > 1) & (denom > 0), (b - a) / jnp.where(denom > 0, denom, 1.0), 0.0)
    return s


def silhouette_samples(x, labels, *, chunk_size: int | None = None) -> jax.Array:
    """Silhouette coefficient ``s_i`` of every sample, ``(n,)``.

    Args:
      x: ``(n, d)`` samples.
      labels: ``(n,)`` cluster labels (any hashable values; 2 to ``n - 1`` distinct).
      chunk_size: rows (and columns) per distance block; ``None``: blocks of
        about ``SILHOUETTE_BLOCK`` elements.
    """
    x = check_data(x)
    n = x.shape[0]
    codes, n_labels = _encode_labels(labels, n)
    size = (int(min(n, max(256, int(np.sqrt(SILHOUETTE_BLOCK))))) if chunk_size is None
            else check_int(chunk_size, "chunk_size"))
    data = chunk(x, -(-n // -(-n // size)))  # same number of chunks, least padding
    codes = np.pad(codes, (0, data.w.size - n)).reshape(data.w.shape)
    return _silhouette(data.x, data.w, codes, n_labels=n_labels).reshape(-1)[:n]


def silhouette_score(x, labels, *, chunk_size: int | None = None) -> float:
    """Mean silhouette coefficient (``sklearn.metrics.silhouette_score``, Euclidean)."""
    s = silhouette_samples(x, labels, chunk_size=chunk_size)
    return float(np.mean(np.asarray(s, np.float64)))
