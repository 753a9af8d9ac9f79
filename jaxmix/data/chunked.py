"""Samples in memory, split into equal chunks: the in-memory placement.

Data enters a fit once as :class:`Chunked`: ``x`` reshaped to
``(n_chunks, chunk, d)`` with a per-sample weight ``w`` that is ``0`` on the
padding rows. Statistics are accumulated chunk by chunk with
:func:`jaxmix.data.reduce.reduce`, so memory is bounded by one chunk's
intermediates; the chunk axis may be split over devices
(:mod:`jaxmix.data.sharding`).

The chunk size has one rule, :func:`chunk_rows`: each algorithm states how
many elements its largest per-chunk intermediate holds per sample row
(e.g. ``R * k * d`` for the exact E-step of ``R`` restarts), and chunks are
sized so that intermediate stays near :data:`CHUNK_ELEMENTS`, with as little
padding as the resulting number of chunks allows.

>>> data = chunk(jnp.ones((5, 2)), 2)
>>> data.x.shape, data.w.tolist()
((3, 2, 2), [[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
>>> chunk_rows(10_000, 16 * 16 * 16), chunk_rows(10_000, 16 * 16 * 16, shards=4)
(1000, 834)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.data.reduce import add, data_shards, zeros

# Elements of one chunk's largest intermediate (16 MiB in float32).
CHUNK_ELEMENTS = 2 ** 22
# Fewer rows than this per chunk make the per-chunk overhead dominate.
MIN_CHUNK_ROWS = 256

# A *small pass*: one pass of a batched step over in-memory data with at most
# this many elements n * d * (what each sample meets per restart, e.g. k) *
# (restarts stepped together), padded shapes. There compile time dominates
# warm time, so in float32 the E-step compiles its exact path alone
# (jaxmix.gmm.stats.static_path; float64 keeps the switch); every restart also
# gets its own driver slot, up to a larger size
# (jaxmix.fit.buckets.ONE_SLOT_EACH). The seed notebook fit's shapes (n=1250
# padded to 1280, d=2, k=3 padded to 8, 10 restarts padded to 12: 245,760) are
# one: on 2 CPU cores (2026-12-03) its first call without a cache took 3.4 s
# with both E-step paths and 8 Lloyd slots, 2.3 s with the exact path alone
# and a slot per restart; warm, the exact path alone costs it 18 -> 27 ms
# (scikit-learn 44 ms). digits (PCA 10, k=10, R=16: 3.4e6) is not: the exact
# path alone was 2-2.8x slower there warm; where the GEMM path's bound fails
# anyway it is faster alone (wine, k=8, R=8: 0.33 -> 0.21 ms per
# restart-iteration).
SMALL_PASS = 2 ** 18


def chunk_rows(n: int, row_elements: int, shards: int = 1) -> int:
    """Rows per chunk for ``n`` samples whose largest per-chunk intermediate
    holds ``row_elements`` elements per row: at most ``CHUNK_ELEMENTS`` per
    chunk (but at least ``MIN_CHUNK_ROWS`` rows), the number of chunks a
    multiple of ``shards`` (devices), and the padding as small as that allows."""
    size = int(min(n, max(MIN_CHUNK_ROWS, CHUNK_ELEMENTS // max(1, int(row_elements)))))
    n_chunks = shards * -(-n // (shards * size))
    return max(1, -(-n // n_chunks))


def pass_elements(data, per_sample: int) -> int | None:
    """Elements ``n * d * per_sample`` of one pass over in-memory
    :class:`Chunked` ``data`` (padded rows included), ``None`` for a stream
    (its size is not static)."""
    return data.x.size * int(per_sample) if isinstance(data, Chunked) else None


def small_pass(data, per_sample: int) -> bool:
    """Whether one pass of ``per_sample`` restart-components per padded
    sample over ``data`` is small (:data:`SMALL_PASS`; never for a stream)."""
    size = pass_elements(data, per_sample)
    return size is not None and size <= SMALL_PASS


class Chunked(NamedTuple):
    """Samples split into equal chunks.

    Attributes:
      x: ``(n_chunks, chunk, d)`` samples, zero-padded at the end.
      w: ``(n_chunks, chunk)`` sample weights, ``0`` on padding rows.
    """

    x: jax.Array
    w: jax.Array

    @property
    def n_features(self) -> int:
        return self.x.shape[-1]

    @property
    def dtype(self):
        return self.x.dtype

    def flat(self):
        """``(x (n_pad, d), w (n_pad,))`` without the chunk axis."""
        return self.x.reshape(-1, self.x.shape[-1]), self.w.reshape(-1)

    def total_weight(self):
        """``sum_n w_n`` (padding rows have weight 0)."""
        return jnp.sum(self.w)

    def reduce(self, fn, combine=add, identity=zeros):
        """See :func:`jaxmix.data.reduce.reduce`."""
        return reduce_in_memory(fn, combine, identity, self.x, self.w)


def scan_chunks(fn, combine, identity, xs, ws, index):
    """``combine`` of ``fn(xs[t], ws[t], index[t])`` over ``t`` by ``lax.scan``
    from ``identity`` (one chunk: ``fn`` alone)."""
    if xs.shape[0] == 1:
        return fn(xs[0], ws[0], index[0])

    def body(acc, inp):
        return combine(acc, fn(*inp)), None

    init = identity(jax.eval_shape(fn, xs[0], ws[0], index[0]))
    acc, _ = jax.lax.scan(body, init, (xs, ws, index))
    return acc


def reduce_in_memory(fn, combine, identity, x, w):
    """:func:`reduce` for chunks ``x (C, m, d)``, ``w (C, m)`` held as arrays,
    in blocks per device when the chunk axis is sharded (module docstring)."""
    n_chunks = x.shape[0]
    shards = data_shards(x)
    if shards <= 1 or n_chunks % shards:
        return scan_chunks(fn, combine, identity, x, w, jnp.arange(n_chunks))
    per = n_chunks // shards

    def blocks(a):  # (n_chunks, ...) -> (per, shards, ...)
        return jnp.swapaxes(a.reshape((shards, per) + a.shape[1:]), 0, 1)

    index = jnp.arange(shards)[None, :] * per + jnp.arange(per)[:, None]
    partial = scan_chunks(jax.vmap(fn), jax.vmap(combine), identity, blocks(x), blocks(w), index)
    if combine is add:
        return jax.tree.map(lambda a: jnp.sum(a, axis=0, dtype=a.dtype), partial)
    out = jax.tree.map(lambda a: a[0], partial)
    for j in range(1, shards):
        out = combine(out, jax.tree.map(lambda a: a[j], partial))
    return out


def chunk(x, chunk_size: int | None = None, sample_weight=None, n_rows: int = 0) -> Chunked:
    """Split ``x`` ``(n, d)`` into chunks of ``chunk_size`` rows (``None``: one
    chunk), zero-weight rows appended up to at least ``n_rows`` rows in all.
    NumPy input is cut on the host and placed on the device once."""
    xp = np if isinstance(x, np.ndarray) else jnp
    x = xp.asarray(x)
    n, rows = x.shape[0], max(x.shape[0], int(n_rows))
    w = xp.ones((n,), x.dtype) if sample_weight is None else xp.asarray(sample_weight, x.dtype)
    size = rows if chunk_size is None else max(1, min(int(chunk_size), rows))
    n_chunks = -(-rows // size)
    pad = n_chunks * size - n
    if pad:
        x = xp.concatenate([x, xp.zeros((pad, x.shape[1]), x.dtype)])
        w = xp.concatenate([w, xp.zeros((pad,), x.dtype)])
    put = jax.device_put if xp is np else jnp.asarray  # jnp.asarray of NumPy compiles a copy
    return Chunked(put(x.reshape(n_chunks, size, -1)), put(w.reshape(n_chunks, size)))


def one_chunk(x, w) -> Chunked:
    """A single chunk ``x (m, d)``, ``w (m,)`` as :class:`Chunked`."""
    return Chunked(x[None], w[None])
