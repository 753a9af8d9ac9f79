"""Helpers shared by the estimators: ``random_state`` to a key, dtypes, and
blockwise evaluation on padded row blocks (few compiled shapes for many ``n``)."""

from __future__ import annotations

import contextlib
import functools
import numbers
import threading

import jax
import numpy as np
from scipy import sparse
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, validate_data

from jaxmix.compiling import jit
from jaxmix.fit.buckets import component_bucket
from jaxmix.gmm.covariance import family
from jaxmix.numerics import float_dtype
from jaxmix.validation import seed_key

# Rows per evaluation block: one block's (rows, k, d) intermediate stays near
# this many elements. Blocks are padded to a power of two rows (at least 16) so
# that calls on many different n reuse a handful of compiled shapes.
EVAL_BUDGET = 2 ** 22

_JITTED = {}


_X64 = {"users": 0, "saved": None}
_X64_LOCK = threading.Lock()


@contextlib.contextmanager
def _x64_on():
    """JAX's x64 flag on process-wide while any estimator method runs (the
    first to enter saves the user's value, the last to leave restores it).
    Process-wide, not ``jax.enable_x64``'s thread-local switch: the threads
    in which streamed fits read their chunks (``io_callback``) would not see
    a thread-local one, and would hand float64 chunks back as float32. So
    while an estimator method runs, other threads see the flag on too, and a
    ``jax.config.update`` of the flag made meanwhile is undone when the last
    method returns."""
    with _X64_LOCK:
        if _X64["users"] == 0:
            _X64["saved"] = bool(jax.config.jax_enable_x64)
            jax.config.update("jax_enable_x64", True)
        _X64["users"] += 1
    try:
        with jax.enable_x64(True):  # also over a thread-local enable_x64(False)
            yield
    finally:
        with _X64_LOCK:
            _X64["users"] -= 1
            if _X64["users"] == 0:
                jax.config.update("jax_enable_x64", _X64["saved"])


def native_dtype(method):
    """Run an estimator ``method`` with JAX's 64-bit types available, as
    scikit-learn computes: float64 input is fitted and evaluated in float64,
    float32 input in float32 (:func:`jaxmix.numerics.float_dtype` under x64),
    whether or not the user enabled ``jax_enable_x64``. Every array the
    method returns or stores is numpy, so nothing 64-bit leaves it."""
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with _x64_on():
            return method(*args, **kwargs)
    return wrapped


def checked_X(est, X, **kwargs):
    """scikit-learn's ``validate_data(est, X, dtype=[float64, float32],
    **kwargs)``, complex input refused by name first (scikit-learn's own
    message does not say which argument)."""
    try:
        return validate_data(est, X, dtype=[np.float64, np.float32], **kwargs)
    except ValueError as err:
        if "Complex data not supported" not in str(err):
            raise
        raise ValueError("Complex data not supported: X must hold real numbers; pass "
                         "X.real, or the real and imaginary parts as separate features") from err


def checked_weights(sample_weight, X):
    """scikit-learn's ``_check_sample_weight`` in the dtype of ``X``, strings
    and other non-numbers refused by name (scikit-learn parses ``"1"``)."""
    if sample_weight is None:
        return None
    kind = np.asarray(sample_weight).dtype.kind
    if kind not in "biuf":
        raise ValueError(f"sample_weight must hold numbers, got dtype "
                         f"{np.asarray(sample_weight).dtype}")
    return _check_sample_weight(sample_weight, X, dtype=X.dtype)


def key_from_random_state(random_state):
    """A ``jax.random`` key from sklearn's ``random_state`` (None, int, RandomState).

    An int ``s`` gives ``PRNGKey(s)`` directly; a ``RandomState`` (or ``None``,
    numpy's global state) is advanced by one draw, as sklearn consumes it.
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return seed_key(int(random_state) % (2 ** 32))
    rng = check_random_state(random_state)
    return seed_key(int(rng.randint(np.iinfo(np.int32).max)))


# Fewest rows an evaluation block or a sample is padded to: evaluating 256
# rows costs microseconds, compiling another block shape a tenth of a second
# (scikit-learn's suites predict and sample 16, 32, 64, 128 and 256 rows).
MIN_BLOCK = 256


def bucket(n: int) -> int:
    """``n`` rounded up to a power of two, at least :data:`MIN_BLOCK`."""
    return max(MIN_BLOCK, 1 << (int(n) - 1).bit_length())


def _jit(fn):
    """``jax.jit(fn)``, made once per function."""
    if fn not in _JITTED:
        _JITTED[fn] = jit(fn)
    return _JITTED[fn]


def apply_in_blocks(fn, params, x: np.ndarray, width: int) -> np.ndarray:
    """``fn(params, x)`` evaluated on row blocks of ``x`` (host loop, jitted
    per padded block shape); results concatenated as numpy. A SciPy sparse
    ``x`` is made dense one block at a time."""
    n = x.shape[0]
    block = bucket(min(n, max(16, EVAL_BUDGET // max(1, width, x.shape[1]))))
    f = _jit(fn)
    out = []
    for start in range(0, n, block):
        part = x[start:start + block]
        part = part.toarray() if sparse.issparse(part) else part
        m = part.shape[0]
        size = bucket(m) if start == 0 else block
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
    w = np.asarray(params.weights)
    pc = np.asarray(params.precisions_cholesky)
    if family(params.covariance_type).per_component:
        pc = with_copies(pc, extra)
    padded = params.replace(weights=np.concatenate([w, np.zeros(extra, w.dtype)]),
                            means=with_copies(np.asarray(params.means), extra),
                            precisions_cholesky=pc)
    return as_jax_params(padded, dtype)


def with_copies(a: np.ndarray, extra: int) -> np.ndarray:
    """``a`` with ``extra`` copies of its first row appended (the padding of
    a model's components to their bucket)."""
    return np.concatenate([a, np.repeat(a[:1], extra, axis=0)])


def compute_dtype(x: np.ndarray):
    """The dtype JAX computes ``x`` in (its own under :func:`native_dtype`)."""
    return float_dtype(x.dtype)
