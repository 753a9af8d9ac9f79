"""Sufficient statistics, accumulated over sample chunks.

Data enters a fit once as :class:`Chunked`: ``x`` reshaped to
``(n_chunks, chunk, d)`` with a per-sample weight ``w`` that is ``0`` on the
padding rows. :func:`scan_sum` adds any per-chunk statistic over the chunks
with ``lax.scan``, so memory is bounded by one chunk's intermediates.

Gaussian-mixture statistics are taken about a per-component ``shift``
(``(k, d)``; the previous means on the exact path, zero on the GEMM path)::

    nk  = sum_n r_nk                  (k,)
    sx  = sum_n r_nk (x_n - c_k)      (k, d)
    sxx = sum_n r_nk (x_n - c_k)^2    family layout (see covariance.py)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmix.numerics import HIGHEST


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

    def flat(self):
        """``(x (n_pad, d), w (n_pad,))`` without the chunk axis."""
        return self.x.reshape(-1, self.x.shape[-1]), self.w.reshape(-1)


def chunk(x, chunk_size: int | None = None, sample_weight=None) -> Chunked:
    """Split ``x`` ``(n, d)`` into chunks of ``chunk_size`` rows (``None``: one chunk)."""
    x = jnp.asarray(x)
    n = x.shape[0]
    w = jnp.ones((n,), x.dtype) if sample_weight is None else jnp.asarray(sample_weight, x.dtype)
    size = n if chunk_size is None else max(1, min(int(chunk_size), n))
    n_chunks = -(-n // size)
    pad = n_chunks * size - n
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)])
        w = jnp.concatenate([w, jnp.zeros((pad,), x.dtype)])
    return Chunked(x.reshape(n_chunks, size, -1), w.reshape(n_chunks, size))


def scan_sum(fn, data: Chunked):
    """``sum_c fn(x_c, w_c, c)`` over chunks; ``fn`` returns any pytree of arrays.

    When ``data`` lives on a mesh with a ``"data"`` axis of ``D > 1`` devices
    (see :mod:`jaxmix.data.sharding`) and ``D`` divides the number of chunks, the
    chunks are read as ``D`` contiguous blocks, one per device: each scan step
    applies ``fn`` to the ``t``-th chunk of every block (``vmap`` over blocks,
    split over the devices by GSPMD), each device sums its own block, and one
    all-reduce per pass adds the ``D`` partial sums. ``fn`` still sees each
    chunk with its global index ``c``.
    """
    n_chunks = data.x.shape[0]
    shards = data_shards(data.x)
    if shards > 1 and n_chunks % shards == 0:
        per = n_chunks // shards

        def blocks(a):  # (n_chunks, ...) -> (per, shards, ...)
            return jnp.swapaxes(a.reshape((shards, per) + a.shape[1:]), 0, 1)

        index = jnp.arange(shards)[None, :] * per + jnp.arange(per)[:, None]
        partial = _scan_add(jax.vmap(fn), blocks(data.x), blocks(data.w), index)
        return jax.tree.map(lambda a: jnp.sum(a, axis=0, dtype=a.dtype), partial)
    if n_chunks == 1:
        return fn(data.x[0], data.w[0], 0)
    return _scan_add(fn, data.x, data.w, jnp.arange(n_chunks))


def _scan_add(fn, xs, ws, index):
    """``sum_t fn(xs[t], ws[t], index[t])`` by ``lax.scan``."""
    init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                        jax.eval_shape(fn, xs[0], ws[0], index[0]))

    def body(acc, inp):
        out = fn(*inp)
        return jax.tree.map(jnp.add, acc, out), None

    acc, _ = jax.lax.scan(body, init, (xs, ws, index))
    return acc


# Name of the mesh axis that samples are split over (jaxmix.data.sharding).
DATA_AXIS = "data"


def data_shards(x) -> int:
    """Devices the leading axis of ``x`` is split over: the size of the
    ``"data"`` axis of the mesh in ``x``'s sharding type (1 without one)."""
    mesh = jax.typeof(x).sharding.mesh
    return 1 if mesh.empty else dict(mesh.shape).get(DATA_AXIS, 1)


class GMMStats(NamedTuple):
    """Additive Gaussian-mixture statistics (see module docstring)."""

    nk: jax.Array
    sx: jax.Array
    sxx: jax.Array
    loglik: jax.Array


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


def gmm_stats_centred(fam, x, rw, shift, loglik=0.0) -> GMMStats:
    """Statistics about ``shift`` ``(k, d)`` from explicit differences (exact)."""
    z = x[:, None, :] - shift[None]
    sx = jnp.einsum("nk,nkd->kd", rw, z, precision=HIGHEST)
    return GMMStats(jnp.sum(rw, axis=0), sx, fam.scatter(rw, z), jnp.asarray(loglik, x.dtype))

