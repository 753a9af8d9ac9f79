"""JAX's default PRNG (threefry-2x32) evaluated with NumPy on the host, bit
for bit, for the hashes a fit makes before its first iteration.

Every restart of a fit derives its random input from the fit's key: its own
key (:func:`jaxmix.fit.rows.row_keys`) and, for k-means++ seeding, one pair
of random words per centre and candidate
(:func:`jaxmix.kmeans.init.plusplus_bits`). Hashed inside the compiled fit,
each of those vectorised hashes is a copy of threefry's 20 rounds that is
traced, lowered and compiled with the fit: in the seed notebook fit
(``GaussianMixture(n_components=3, n_init=10)``, 2-core CPU) about 0.3 s of
a 1.9 s first call, and a fifth of the optimised program's instructions.
Where the key is concrete, the fit hashes here instead and the program gets
the results as data (:class:`jaxmix.kmeans.init.Draws`); under a
transformation (a traced key) the program hashes as before. Both give the
same bits (``tests/test_host_random.py``), so a fit starts from the same
point either way; the two programs are not the same program, so XLA may
round the iterations after the start differently (the same fit equal bit
for bit with the default init in the tests; ``init="k-means++"`` in float32
differed by up to 7e-7 in its means). A given call always takes the same
side: the same key and data give the same result.

Only JAX's default configuration is mirrored: ``jax_default_prng_impl=
"threefry2x32"``, raw ``uint32[2]`` keys or typed threefry keys, and
``jax_threefry_partitionable`` on; :func:`host_key` returns ``None`` for
anything else, and the program hashes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
PARITY = np.uint32(0x1BD11BDA)


def split_prefix_stable(key) -> bool:
    """Whether ``jax.random.split(key, m)[:r]`` equals ``split(key, r)`` for
    every ``r <= m`` (so a fit may split for more restarts than it runs):
    threefry keys with ``jax_threefry_partitionable`` on, JAX's default,
    where key ``i`` of a split hashes the counter ``i`` alone."""
    if not jax.config.jax_threefry_partitionable:
        return False
    if jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        return str(jax.random.key_impl(key)) == "threefry2x32"
    return jax.config.jax_default_prng_impl == "threefry2x32"


def host_key(key) -> np.ndarray | None:
    """The raw ``(2,)`` uint32 threefry key of a concrete ``key``, or ``None``
    where the host cannot reproduce JAX's hashes of it (traced, another PRNG
    implementation, or the non-partitionable threefry)."""
    # the default implementation too: the keys handed on are raw, which JAX
    # reads with the default implementation
    if (not jax.config.jax_threefry_partitionable or isinstance(key, jax.core.Tracer)
            or jax.config.jax_default_prng_impl != "threefry2x32"):
        return None
    if isinstance(key, jax.Array) and not key.is_fully_addressable:
        return None
    if jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32" or key.shape != ():
            return None
        key = jax.random.key_data(key)
    raw = np.asarray(key)
    return raw if raw.shape == (2,) and raw.dtype == np.uint32 else None


def _rotate_left(x, r: int):
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(k1, k2, x1, x2):
    """The threefry-2x32 block of keys ``(k1, k2)`` on counts ``(x1, x2)``
    (uint32 arrays, broadcast): JAX's ``threefry2x32_p``."""
    k1, k2, x1, x2 = np.broadcast_arrays(*(np.asarray(a, np.uint32) for a in (k1, k2, x1, x2)))
    ks = (k1, k2, k1 ^ k2 ^ PARITY)
    with np.errstate(over="ignore"):
        a, b = x1 + ks[0], x2 + ks[1]
        for i in range(5):
            for r in ROTATIONS[i % 2]:
                a = a + b
                b = _rotate_left(b, r) ^ a
            a = a + ks[(i + 1) % 3]
            b = b + ks[(i + 2) % 3] + np.uint32(i + 1)
    return a, b


def fold_in(keys, data) -> np.ndarray:
    """``jax.random.fold_in`` of raw keys ``(..., 2)`` with integers ``data``
    (broadcast against the keys' leading shape)."""
    keys = np.asarray(keys, np.uint32)
    a, b = threefry2x32(keys[..., 0], keys[..., 1], 0, np.asarray(data).astype(np.uint32))
    return np.stack([a, b], axis=-1)


def random_bits(keys, n: int) -> np.ndarray:
    """``jax.random.bits(key, (n,), uint32)`` of each raw key ``(..., 2)``:
    ``(..., n)``."""
    keys = np.asarray(keys, np.uint32)[..., None, :]
    a, b = threefry2x32(keys[..., 0], keys[..., 1], np.zeros(n, np.uint32),
                        np.arange(n, dtype=np.uint32))
    return a ^ b


def word_pairs(keys) -> np.ndarray:
    """``jax.random.bits(key, (2,), uint32)`` of each raw key ``(..., 2)``."""
    return random_bits(keys, 2)


def fold_in_key(key, data):
    """``jax.random.fold_in(key, d)`` for the integer ``data`` or each entry
    of a 1-D ``data``: hashed here where :func:`host_key` mirrors ``key``
    (a raw NumPy key, no eager program), else by JAX (in the caller's
    program when ``key`` is traced)."""
    raw = host_key(key)
    if raw is not None:
        return fold_in(raw, data)
    if np.ndim(data) == 0:
        return jax.random.fold_in(key, data)
    return jax.vmap(lambda d: jax.random.fold_in(key, d))(jnp.asarray(data))
