"""Validation at the edge (host side, before anything is traced).

Errors name the argument and say how to fix it. Inside ``jit`` nothing is
checked (values are not known there); only shapes are.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np


def float_dtype(dtype) -> np.dtype:
    """float64 kept when x64 is enabled; everything else computes in float32."""
    if np.dtype(dtype) == np.float64 and jax.config.jax_enable_x64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def check_data(x, name: str = "X") -> jax.Array:
    """A finite, non-empty 2-D float array ``(n_samples, n_features)``."""
    if isinstance(x, jax.core.Tracer):
        if x.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {x.shape}")
        return x.astype(float_dtype(x.dtype))
    if isinstance(x, (np.ndarray, jax.Array)):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as err:  # ragged nested lists, odd objects
            raise ValueError(f"{name} must be a 2-D array of numbers (n_samples, n_features); "
                             f"np.asarray({name}) failed: {err}") from None
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
    out = jnp.asarray(arr, float_dtype(arr.dtype))
    bad = ~np.asarray(jnp.all(jnp.isfinite(out), axis=1))
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{name} contains NaN or infinity in {rows.size} row(s) (first: {rows[:5].tolist()}); "
            "drop or impute those rows first")
    return out


def check_int(value, name: str, low: int = 1, high: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f" and at most {high}"
        raise ValueError(f"{name} must be at least {low}{upper}, got {value}")
    return value


def check_n_components(k, n_samples: int, name: str = "n_components") -> int:
    k = check_int(k, name)
    if k > n_samples:
        raise ValueError(
            f"{name}={k} is larger than the number of samples ({n_samples}); "
            f"use at most {n_samples} components or provide more data")
    return k


def check_nonneg(value, name: str, strict: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (strict and v == 0):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} 0, got {value!r}")
    return v


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_sample_weight(sample_weight, n_samples: int, dtype):
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("sample_weight must be finite, non-negative and not all zero")
    return jnp.asarray(w, dtype)


def as_key(key, name: str = "key"):
    """A PRNG key from a key or an integer seed."""
    if isinstance(key, numbers.Integral) and not isinstance(key, (bool, np.bool_)):
        return jax.random.PRNGKey(int(key))
    if isinstance(key, (jax.Array, np.ndarray)):
        return key
    raise ValueError(f"{name} must be a jax.random key (e.g. jax.random.PRNGKey(0)) or an "
                     f"integer seed, got {type(key).__name__}")
