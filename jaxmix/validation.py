"""Validation at the edge: every argument that enters a fit is checked here.

Errors name the argument and say how to fix it. Checks are *tracer-aware*:
under ``jax.jit`` / ``jax.vmap`` values are unknown, so only structure, shapes
and dtypes are checked, and value problems (NaN data, say) surface in the
fit's per-restart status flags instead (``failed``). Arrays that span
several processes are checked with reductions whose results every host can
read.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.gmm.covariance import family
from jaxmix.numerics import float_dtype, mixture_weights
from jaxmix.params import GMMParams


def is_traced(*values) -> bool:
    """Whether any of ``values`` (or a leaf of it) is a JAX tracer."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(values))


def _on_host_cpu(x) -> bool:
    """A concrete JAX array held whole by one CPU device: NumPy can view it
    without a copy, so it is checked and cut on the host like NumPy input."""
    if not isinstance(x, jax.Array) or is_traced(x) or not x.is_fully_addressable:
        return False
    devices = x.devices()
    return len(devices) == 1 and next(iter(devices)).platform == "cpu"


def _as_array(x, name: str):
    if _on_host_cpu(x):
        return np.asarray(x)
    if isinstance(x, (np.ndarray, jax.Array)):
        return x
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as err:  # ragged nested lists, odd objects
        raise ValueError(f"{name} must be a 2-D array of numbers (n_samples, n_features); "
                         f"np.asarray({name}) failed: {err}") from None


def _check_structure(arr, name: str):
    kind = np.dtype(arr.dtype).kind
    if kind not in "biu" and not jnp.issubdtype(arr.dtype, jnp.floating):  # bfloat16 is "V"
        raise ValueError(
            f"{name} must be numeric (float or int), got dtype {arr.dtype}; "
            f"convert it with np.asarray({name}, dtype=float)")
    if arr.ndim != 2:
        hint = f" (use {name}.reshape(-1, 1) for a single feature)" if arr.ndim == 1 else ""
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}{hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); it needs at least one "
                         "sample and one feature")


def host(x) -> bool:
    """Whether ``x`` is a NumPy array: checked, converted and cut on the host
    (no device program is compiled for it)."""
    return isinstance(x, np.ndarray)


def check_data(x, name: str = "X"):
    """A finite, non-empty 2-D float array ``(n_samples, n_features)`` in the
    compute dtype (:func:`float_dtype`), for data of any placement. NumPy
    input stays NumPy (checked on the host); JAX arrays stay on device."""
    arr = _as_array(x, name)
    _check_structure(arr, name)
    dtype = float_dtype(arr.dtype)
    if host(arr):
        with np.errstate(over="ignore", invalid="ignore"):
            out = arr.astype(dtype, copy=False)
            bad = ~np.all(np.isfinite(out), axis=1)
    else:
        out = jnp.asarray(arr).astype(dtype)
        if is_traced(out):
            return out
        if not out.is_fully_addressable:
            if not bool(jnp.all(jnp.isfinite(out))):
                raise ValueError(f"{name} contains NaN or infinity; drop or impute those rows "
                                 "first")
            return out
        bad = ~np.asarray(jnp.all(jnp.isfinite(out), axis=1))
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{name} contains NaN or infinity in {rows.size} row(s) (first: {rows[:5].tolist()}); "
            "drop or impute those rows first")
    return out


def check_sample_weight(sample_weight, n_samples: int, dtype, k: int | None = None, *,
                        name: str = "sample_weight", allow_zero: bool = False):
    """``(n,)`` weights in the compute ``dtype``: finite there (a weight or a
    sum that overflows ``dtype`` is refused), non-negative, not all zero
    (unless ``allow_zero``), and (given ``k``) at least ``k`` positive.
    ``None`` stays ``None``; NumPy weights stay NumPy (checked on the host).
    Errors name the argument ``name``."""
    if sample_weight is None:
        return None
    if _on_host_cpu(sample_weight):
        sample_weight = np.asarray(sample_weight)
    on_host = not isinstance(sample_weight, jax.Array)
    xp = np if on_host else jnp
    w = xp.asarray(sample_weight)
    if w.shape != (n_samples,):
        raise ValueError(f"{name} must have shape ({n_samples},), got {w.shape}")
    if np.dtype(w.dtype).kind not in "biuf" and not jnp.issubdtype(w.dtype, jnp.floating):
        raise ValueError(f"{name} must be numeric, got dtype {w.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        w = w.astype(dtype)
        if is_traced(w):
            return w
        total = float(xp.sum(w))
        finite = bool(xp.all(xp.isfinite(w)))
    if not finite or not np.isfinite(total):
        raise ValueError(f"{name} must be finite in {np.dtype(dtype).name}, and so must "
                         "its sum; rescale the weights (only their ratios matter)")
    if bool(xp.any(w < 0)) or (total <= 0 and not allow_zero):
        raise ValueError(f"{name} must be finite, non-negative and not all zero")
    if k is not None and int(xp.sum(w > 0)) < k:
        raise ValueError(f"{name} has fewer positive entries than the {k} components; "
                         "give at least that many samples a positive weight")
    return w


# Headroom below the dtype's largest value for the fits' sums of squares (a
# k-means inertia, a scatter matrix, a quadratic form's partial sums).
SPREAD_HEADROOM = 2.0 ** -8


def check_spread(x, w, name: str = "X"):
    """``ValueError`` naming the argument unless the fit's weighted sums of
    squares stay finite in ``x``'s dtype (see :func:`check_range`). Checked
    data, concrete values (host data stay on the host). Returns the data's
    extent ``(lo, hi, total weight)`` (per-feature minimum and maximum)."""
    xp = np if isinstance(x, np.ndarray) else jnp
    total = x.shape[0] if w is None else float(xp.sum(xp.asarray(w, np.float64)
                                                       if xp is np else w))
    lo, hi = np.asarray(xp.min(x, axis=0)), np.asarray(xp.max(x, axis=0))
    check_range(lo, hi, total, x.dtype, weighted=w is not None, name=name)
    return lo, hi, total


def check_range(lo, hi, total_weight, dtype, *, weighted: bool, name: str = "X"):
    """``ValueError`` unless total weight x the squared range of the rows
    (summed over features; it bounds every sum of ``w_n ||x_n - c||^2`` with
    ``c`` among the data) stays below ``dtype``'s largest value by
    :data:`SPREAD_HEADROOM`. ``lo``, ``hi``: per-feature minimum and maximum.
    Values that are finite in ``dtype`` one by one can still overflow there
    in these sums (weights of 1e36, or one row at 1e20, in float32)."""
    with np.errstate(over="ignore"):
        square = float(np.sum(np.square(np.asarray(hi, np.float64) - np.asarray(lo, np.float64))))
        bound = float(total_weight) * square
    limit = float(jnp.finfo(dtype).max) * SPREAD_HEADROOM
    if bound < limit:
        return
    blame = "sample_weight" if weighted and total_weight > 1 and square < limit else name
    raise ValueError(
        f"{blame}: the fit's weighted sums of squares would overflow {np.dtype(dtype).name} "
        f"(total weight {float(total_weight):.3g} x squared range of {name} {square:.3g} "
        f"= {bound:.3g}, above {limit:.3g}); rescale {name} (standardise it, say)"
        + (" or sample_weight" if weighted else "")
        + ", or compute in float64 (jax.config.update('jax_enable_x64', True))")


def check_gmm_params(p, name: str, *, k=None, d=None, covariance_type=None, dtype=None,
                     batched: bool = False) -> GMMParams:
    """The one :class:`GMMParams` checker: type, covariance type, leaf shapes
    (``k``, ``d`` when given; any leading restart axes when ``batched``), and on
    concrete values finiteness, positive weights and positive factor diagonals.
    Returns the params with leaves in ``dtype`` (weights renormalised)."""
    if not isinstance(p, GMMParams):
        raise ValueError(f"{name} must be a GMMParams, got {type(p).__name__}")
    for field in ("weights", "means", "precisions_cholesky"):
        leaf = getattr(p, field)
        if not is_traced(leaf) and np.dtype(getattr(leaf, "dtype", np.asarray(leaf).dtype)).kind \
                not in "biuf":
            raise ValueError(f"{name}.{field} must be numeric, got dtype "
                             f"{np.asarray(leaf).dtype}")
    ct = p.covariance_type if covariance_type is None else covariance_type
    if p.covariance_type != ct:
        raise ValueError(f"{name} has covariance_type={p.covariance_type!r} but "
                         f"{ct!r} is expected; make them agree")
    fam = family(ct)
    on_host = not is_traced(p) and all(
        not isinstance(a, jax.Array) or a.is_fully_addressable for a in jax.tree.leaves(p))
    xp = np if on_host else jnp  # concrete params are checked on the host: nothing compiles
    means = xp.asarray(p.means)
    lead = means.shape[:-2] if batched else ()
    if means.ndim < 2 or (not batched and means.ndim != 2):
        raise ValueError(f"{name}.means must have shape {'(..., k, d)' if batched else '(k, d)'}, "
                         f"got {means.shape}" + ("" if batched else "; for restart-batched "
                                                 "params pass result.best_params"))
    if k is None and d is not None and means.shape[-1] != d:
        raise ValueError(f"{name} has {means.shape[-1]} features but X has {d}; use data "
                         "with the features the model was fitted on")
    k = means.shape[-2] if k is None else k
    d = means.shape[-1] if d is None else d
    expected = {"weights": lead + (k,), "means": lead + (k, d),
                "precisions_cholesky": lead + fam.pc_shape(k, d)}
    out = {}
    for field, shape in expected.items():
        a = xp.asarray(getattr(p, field))
        if a.shape != shape:
            raise ValueError(f"{name}.{field} must have shape {shape}, got {a.shape}")
        with np.errstate(over="ignore"):  # a value beyond dtype is refused just below
            out[field] = a if dtype is None else a.astype(dtype)
    if not is_traced(out):
        _check_gmm_values(out, name, ct, xp)
    checked = GMMParams(mixture_weights(out["weights"], xp), out["means"],
                        out["precisions_cholesky"], ct)
    return jax.tree.map(jax.device_put, checked) if on_host else checked


def _check_gmm_values(out, name, covariance_type, xp):
    with np.errstate(invalid="ignore"):
        for field, a in out.items():
            if not bool(xp.all(xp.isfinite(a))):
                raise ValueError(f"{name}.{field} contains NaN or infinity (in "
                                 f"{np.dtype(a.dtype).name}, the dtype the fit computes in)")
        if bool(xp.any(out["weights"] <= 0)):
            raise ValueError(f"{name}.weights must be positive")
        pc = out["precisions_cholesky"]
        dense = family(covariance_type).dense_factor
        if not bool(xp.all(xp.diagonal(pc, axis1=-2, axis2=-1) > 0 if dense else pc > 0)):
            raise ValueError(f"{name}.precisions_cholesky must have a positive diagonal "
                             "(Cholesky factors of positive-definite precisions)")
        if dense and bool(xp.any(xp.tril(pc, -1) != 0)):
            raise ValueError(
                f"{name}.precisions_cholesky must be upper triangular (P = L @ L.T with L "
                "upper triangular, as scikit-learn's precisions_cholesky_); build it from "
                "precisions with jaxmix.gmm.family(covariance_type)"
                ".precision_cholesky_from_precisions")


# Every count a compiled program holds is an int32.
MAX_INT = 2 ** 31 - 1


def check_int(value, name: str, low: int = 1, high: int | None = MAX_INT) -> int:
    """An integer (not a bool) in ``[low, high]`` (default ``high``: int32's
    largest); errors name the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f" and at most {high}"
        raise ValueError(f"{name} must be at least {low}{upper}, got {value}")
    return value


# Caps that keep a fit's arrays in memory: the history is (R, max_iter).
MAX_ITER = 2 ** 20
MAX_RESTARTS = 2 ** 16


def check_max_iter(value, name: str = "max_iter") -> int:
    """An iteration cap in ``[0, MAX_ITER]`` (the history holds one value per iteration)."""
    return check_int(value, name, low=0, high=MAX_ITER)


def check_n_restarts(value, name: str = "n_restarts") -> int:
    """A restart count in ``[1, MAX_RESTARTS]`` (more: run them in several calls)."""
    return check_int(value, name, high=MAX_RESTARTS)


def check_n_components(k, n_samples: int, name: str = "n_components") -> int:
    k = check_int(k, name)
    if k > n_samples:
        raise ValueError(
            f"{name}={k} is larger than the number of samples ({n_samples}); "
            f"use at most {n_samples} components or provide more data")
    return k


def check_number(value, name: str):
    """A real number as a float (infinite or NaN allowed: the caller decides);
    a traced value passes unchecked. Strings and bools are not numbers here."""
    if is_traced(value):
        return value
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def check_nonneg(value, name: str, strict: bool = False, dtype=None):
    """A finite number ``>= 0`` (``> 0`` if ``strict``), finite also in the
    compute ``dtype`` when given; a traced value passes unchecked (it is a
    hyper-parameter of a traced fit). Strings and bools are not numbers here."""
    if is_traced(value):
        return value
    v = check_number(value, name)
    if not np.isfinite(v) or v < 0 or (strict and v == 0):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} 0, got {value!r}")
    if dtype is not None and v > float(jnp.finfo(dtype).max):
        raise ValueError(f"{name}={value!r} is not finite in {np.dtype(dtype).name}, the dtype "
                         "the fit computes in; use a smaller value")
    return v


def check_choice(value, name: str, choices) -> str:
    """The member of ``choices`` equal to ``value`` (so ``np.str_("random")``
    comes back as ``"random"``: one static argument, one compiled program)."""
    for choice in choices:
        if value == choice:
            return choice
    raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def seed_key(seed: int):
    """``jax.random.PRNGKey(seed)`` without running a program where JAX's
    default PRNG is threefry (JAX's own call compiles one: 0.1 s of a new
    process's first fit): the key is the seed's two 32-bit halves, the high
    half 0 without x64, as JAX's ``threefry_seed`` makes it."""
    if jax.config.jax_default_prng_impl != "threefry2x32":
        return jax.random.PRNGKey(seed)
    bits = int(seed) & (2 ** 64 - 1)
    high = bits >> 32 if jax.config.jax_enable_x64 else 0
    return jax.device_put(np.array([high, bits & 0xFFFFFFFF], np.uint32))


def as_key(key, name: str = "key"):
    """A PRNG key from a key or an integer seed (in ``[-2**63, 2**63)``)."""
    if isinstance(key, numbers.Integral) and not isinstance(key, (bool, np.bool_)):
        if not -2 ** 63 <= int(key) < 2 ** 63:
            raise ValueError(f"{name}: an integer seed must be in [-2**63, 2**63), got {key}")
        return seed_key(int(key))
    if isinstance(key, (jax.Array, np.ndarray)) and (
            jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
            or (key.dtype == np.uint32 and key.shape in ((2,), (4,)))):
        return key
    raise ValueError(f"{name} must be a jax.random key (e.g. jax.random.PRNGKey(0) or "
                     f"jax.random.key(0)) or an integer seed, got {type(key).__name__}"
                     + (f" of dtype {key.dtype} and shape {key.shape}"
                        if hasattr(key, "dtype") else ""))
