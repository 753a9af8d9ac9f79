"""Helpers shared by the estimators: ``random_state`` to a key, dtypes, and
blockwise evaluation on padded row blocks (few compiled shapes for many ``n``)."""

from __future__ import annotations

import numbers

import jax
import numpy as np
from sklearn.utils import check_random_state

from jaxmix.compiling import jit
from jaxmix.fit.buckets import component_bucket
from jaxmix.gmm.covariance import family
from jaxmix.numerics import float_dtype

# Rows per evaluation block: one block's (rows, k, d) intermediate stays near
# this many elements. Blocks are padded to a power of two rows (at least 16) so
# that calls on many different n reuse a handful of compiled shapes.
EVAL_BUDGET = 2 ** 22

_JITTED = {}


def key_from_random_state(random_state):
    """A ``jax.random`` key from sklearn's ``random_state`` (None, int, RandomState).

    An int ``s`` gives ``PRNGKey(s)`` directly; a ``RandomState`` (or ``None``,
    numpy's global state) is advanced by one draw, as sklearn consumes it.
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return jax.random.PRNGKey(int(random_state) % (2 ** 32))
    rng = check_random_state(random_state)
    return jax.random.PRNGKey(int(rng.randint(np.iinfo(np.int32).max)))


def _bucket(n: int) -> int:
    """``n`` rounded up to a power of two, at least 16."""
    return max(16, 1 << (int(n) - 1).bit_length())


def _jit(fn):
    """``jax.jit(fn)``, made once per function."""
    if fn not in _JITTED:
        _JITTED[fn] = jit(fn)
    return _JITTED[fn]


def apply_in_blocks(fn, params, x: np.ndarray, width: int) -> np.ndarray:
    """``fn(params, x)`` evaluated on row blocks of ``x`` (host loop, jitted
    per padded block shape); results concatenated as numpy."""
    n = x.shape[0]
    block = _bucket(min(n, max(16, EVAL_BUDGET // max(1, width))))
    f = _jit(fn)
    out = []
    for start in range(0, n, block):
        part = x[start:start + block]
        m = part.shape[0]
        size = _bucket(m) if start == 0 else block
        if m < size:
            part = np.concatenate([part, np.repeat(part[:1], size - m, axis=0)])
        out.append(np.asarray(f(params, jax.device_put(part)))[:m])
    return np.concatenate(out)


def as_jax_params(params, dtype):
    """Every leaf of ``params`` as a JAX array of ``dtype`` (``device_put`` of
    host arrays: no copy program is compiled)."""
    return jax.tree.map(lambda a: jax.device_put(np.asarray(a, dtype)), params)


def padded_gmm(params, dtype):
    """Host ``GMMParams`` padded to their component bucket
    (:mod:`jaxmix.fit.buckets`: weight-0 copies of component 0), on the
    device: evaluations of models of different ``k`` share programs, and
    the padding never takes a sample (its log-weight is ``-inf``)."""
    k = np.shape(params.weights)[0]
    extra = component_bucket(k) - k
    w, m = np.asarray(params.weights), np.asarray(params.means)
    pc = np.asarray(params.precisions_cholesky)
    if family(params.covariance_type).per_component:
        pc = np.concatenate([pc, np.repeat(pc[:1], extra, axis=0)])
    padded = params.replace(weights=np.concatenate([w, np.zeros(extra, w.dtype)]),
                            means=np.concatenate([m, np.repeat(m[:1], extra, axis=0)]),
                            precisions_cholesky=pc)
    return as_jax_params(padded, dtype)


def compute_dtype(x: np.ndarray):
    """The dtype JAX computes ``x`` in (float32 unless x64 is on)."""
    return float_dtype(x.dtype)
