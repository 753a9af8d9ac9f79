"""Shared numerics: constants and small pure helpers used by every family.

This module imports nothing of jaxmix, so any module may depend on it.

>>> import jax.numpy as jnp
>>> rw, norm = normalise(jnp.log(jnp.array([[1.0, 3.0]])), jnp.ones(1))
>>> [round(float(r), 4) for r in rw[0]], round(float(norm[0]), 4)
([0.25, 0.75], 1.3863)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

# Matmul precision of every distance and log-density product: on GPUs with TF32
# the default would round inputs to 10 mantissa bits and spoil the cancellation
# in ``||x||^2 - 2 x.c + ||c||^2``.
HIGHEST = jax.lax.Precision.HIGHEST

LOG_2PI = math.log(2.0 * math.pi)


def float_dtype(dtype) -> np.dtype:
    """The compute dtype of data of ``dtype``: float64 kept when x64 is
    enabled; everything else computes in float32."""
    if np.dtype(dtype) == np.float64 and jax.config.jax_enable_x64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def eps(dtype) -> float:
    """Machine epsilon of ``dtype`` (a Python float)."""
    return float(np.finfo(dtype).eps)


def uniform(key, shape, dtype):
    """Uniforms in ``[0, 1)`` of ``dtype`` from 64 random bits, ``hi 2^-32 +
    lo 2^-64``: float64 gets its 53 bits of resolution (a cumulative-weight
    search over 2^30 rows stays unbiased) and float32 the same value rounded,
    so the same key makes the same random choices (seeds, initial
    responsibilities) whether the data are float32 or float64, but for draws
    that fall within rounding of a boundary."""
    return uniform_from_bits(jax.random.bits(key, tuple(shape) + (2,), jnp.uint32), dtype)


def uniform_from_bits(bits, dtype):
    """:func:`uniform` of random words ``bits (..., 2)`` uint32, hashed
    elsewhere (:mod:`jaxmix.host_random`)."""
    u = bits[..., 0].astype(dtype) * 2.0 ** -32 + bits[..., 1].astype(dtype) * 2.0 ** -64
    one = np.dtype(dtype).type(1)
    return jnp.minimum(u, jnp.asarray(np.nextafter(one, one - one), dtype))  # < 1 after rounding


def mixture_weights(nk, xp=jnp):
    """``nk / sum(nk)`` over the last axis, at least the dtype's smallest
    normal number: an empty component of a fit whose total weight is huge
    (1e293, say), or given weights as far apart as 1e-30 and 1e300, keep a
    positive weight instead of underflowing to 0. ``xp``: ``numpy`` for
    parameters checked on the host (nothing compiles)."""
    share = nk / xp.sum(nk, axis=-1, keepdims=True)
    return xp.maximum(share, xp.asarray(np.finfo(share.dtype).tiny, share.dtype))


def normalise(logp, w):
    """Weighted responsibilities ``w_n r_nk`` and ``log sum_k exp(logp_nk)``.

    One ``exp`` per entry (``logsumexp`` followed by ``exp(logp - norm)`` would
    take two); rows whose maximum is not finite are shifted by 0.
    """
    top = jnp.max(logp, axis=-1, keepdims=True)
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0))
    e = jnp.exp(logp - top)
    total = jnp.sum(e, axis=-1)
    return e * (w / total)[:, None], top[:, 0] + jnp.log(total)


def all_finite(tree, batch_dims: int = 0):
    """Whether every entry of every leaf is finite: a scalar, or one value per
    index of the ``batch_dims`` leading axes (e.g. per restart)."""
    leaves = [jnp.all(jnp.isfinite(leaf), axis=tuple(range(batch_dims, leaf.ndim)))
              for leaf in inexact_leaves(tree)]
    return jnp.all(jnp.stack(leaves), axis=0)


def inexact_leaves(tree) -> list:
    """The floating (and complex) leaves of ``tree``: integers are always
    finite, and PRNG keys (a mini-batch run's state holds one) have no
    numeric dtype."""
    return [leaf for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.inexact)]


def safe_log(w):
    """``log w`` with ``-inf`` where ``w == 0`` and a zero (not NaN) derivative
    there: masked components of a padded mixture (weight exactly 0) stay out
    of every sum and out of every gradient."""
    positive = w > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, w, 1.0)), -jnp.inf)
