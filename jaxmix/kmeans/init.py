"""K-Means seeding: greedy k-means++ and random samples, batched over restarts.

Both are *prefix-stable*: the first ``k`` centres drawn for ``k_max > k``
centres are exactly the ``k`` centres of a ``k``-centre draw with the same
key. k-means++ draws candidate ``t`` of centre ``c`` from its own key
(``fold_in(fold_in(key, c), t)``, all hashed before the seeding loop) and
takes the number of local trials as a value, so a padded model selection grid
(:func:`jaxmix.select_k`) seeds every ``k`` as a run of that ``k`` alone would.
Random samples without replacement are the top ``k`` of Gumbel-perturbed
log-weights, whose top ``k`` is a prefix of its top ``k_max``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix import host_random
from jaxmix.compiling import jit
from jaxmix.data.chunked import pass_elements
from jaxmix.numerics import HIGHEST, uniform_from_bits

KMEANS_INITS = ("k-means++", "random")


def local_trials(k) -> int:
    """scikit-learn's number of k-means++ candidates per centre, ``2 + int(ln k)``."""
    return 2 + int(math.log(k))


def _search(cum, r):
    """First index ``i`` with ``cum[i] >= r`` (``cum`` non-decreasing), for
    each entry of ``r``: a bisection whose ``log2 n`` steps are one rolled loop
    body (unrolled, each step was compiled apart; ``jnp.searchsorted``
    compiles slowly inside loops, or compares all)."""
    n = cum.shape[0]

    def halve(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) >> 1  # == // 2 here (non-negative), without floor_divide's sign fix-ups
        right = cum[jnp.minimum(mid, n - 1)] < r
        return jnp.where(right, mid + 1, lo), jnp.where(right, hi, mid)

    start = (jnp.zeros(r.shape, jnp.int32), jnp.full(r.shape, n, jnp.int32))
    lo, _ = jax.lax.fori_loop(0, max(1, n.bit_length()), halve, start)
    return jnp.minimum(lo, n - 1)


def _draw(p, u):
    """One index per entry of ``u`` (uniforms in ``[0, 1)``), drawn with
    probability proportional to ``p >= 0``."""
    cum = jnp.cumsum(p)
    return _search(cum, cum[-1] * (1 - u))


class Draws(NamedTuple):
    """A restart's random input hashed before its program
    (:mod:`jaxmix.host_random`): its raw ``key`` (``(2,)`` uint32) and, for
    k-means++ seeding, its :func:`plusplus_bits` (``None``: the program
    hashes them from ``key``). Wherever a restart's key is taken, a
    :class:`Draws` may stand in for it."""
    key: Any
    plusplus: Any = None


def restart_key(key):
    """The PRNG key of a restart given as a key or as :class:`Draws`."""
    return key.key if isinstance(key, Draws) else key


def plusplus_bits(key, k: int, trials: int):
    """The ``(k, trials, 2)`` uint32 words of k-means++'s uniforms
    (:func:`jaxmix.numerics.uniform_from_bits`): ``[0, :]`` all from
    ``fold_in(key, 0)`` (the first centre), ``[c, t]`` from
    ``fold_in(fold_in(key, c), t)`` for ``c >= 1``. Three vectorised hashes
    before the seeding loop instead of three inside its body."""
    per_c = jax.vmap(lambda c: jax.random.fold_in(key, c))(jnp.arange(k))
    per_t = jax.vmap(lambda kc: jax.vmap(lambda t: jax.random.fold_in(kc, t))(
        jnp.arange(trials)))(per_c[1:])
    keys = jnp.concatenate([per_c[:1], per_t.reshape((-1,) + per_t.shape[2:])])
    bits = jax.vmap(lambda kt: jax.random.bits(kt, (2,), jnp.uint32))(keys)
    return jnp.concatenate([jnp.broadcast_to(bits[:1], (1, trials, 2)),
                            bits[1:].reshape(k - 1, trials, 2)])


def host_plusplus_bits(keys, k: int, trials: int) -> np.ndarray:
    """:func:`plusplus_bits` of each raw key of ``keys (B, 2)``, hashed on the
    host: ``(B, k, trials, 2)``, the same bits."""
    per_c = host_random.fold_in(keys[:, None], np.arange(k))
    per_t = host_random.fold_in(per_c[:, 1:, None], np.arange(trials))
    first = host_random.word_pairs(per_c[:, :1, None])
    return np.concatenate([np.broadcast_to(first, (len(keys), 1, trials, 2)),
                           host_random.word_pairs(per_t)], axis=1)


def _uniforms(key, k: int, trials: int, dtype):
    """The ``(k, trials)`` uniforms of k-means++ from a key or :class:`Draws`."""
    bits = key.plusplus if isinstance(key, Draws) else None
    if bits is None:
        bits = plusplus_bits(restart_key(key), k, trials)
    if bits.shape != (k, trials, 2):
        raise ValueError(f"k-means++ draws of shape {bits.shape} for {k} centres and "
                         f"{trials} candidates; hash them with host_plusplus_bits(keys, "
                         f"{k}, {trials})")
    return uniform_from_bits(bits, dtype)


def kmeans_plusplus(key, x, w, k: int, n_trials=None, max_trials: int | None = None):
    """Greedy k-means++ seeding as in scikit-learn.

    The first centre is drawn with probability ``w / sum(w)``; each next one is
    the best (lowest potential ``sum w * D^2``) of ``n_trials`` candidates
    drawn with probability proportional to ``w * D(x)^2``, where ``D`` is the
    distance to the nearest centre chosen so far. ``n_trials`` (default
    :func:`local_trials` of ``k``) may be a traced integer up to the static
    ``max_trials`` (default ``local_trials(k)``); with ``1`` it is plain D^2
    sampling. The first centre is drawn from ``fold_in(key, 0)`` and candidate
    ``t`` of centre ``c`` from ``fold_in(fold_in(key, c), t)``, so seeds do
    not depend on ``max_trials``. One loop body draws every centre (the first
    one from ``w`` alone, keeping one candidate).

    Args:
      key: PRNG key, or :class:`Draws` hashed before the program.
      x: ``(n, d)`` samples; ``w``: ``(n,)`` weights (0 = ignore the row).
      k: number of centres.
    Returns:
      ``(centres (k, d), indices (k,))``.
    """
    n = x.shape[0]
    if max_trials is None:
        max_trials = max(local_trials(k), n_trials if isinstance(n_trials, int) else 0)
    n_trials = local_trials(k) if n_trials is None else n_trials
    last_valid = jnp.max(jnp.where(w > 0, jnp.arange(n, dtype=jnp.int32), 0))
    xx = jnp.sum(x * x, axis=-1)
    u = _uniforms(key, k, max_trials, jnp.result_type(w, xx))

    def dist_to(rows):
        """``(len(rows), n)`` squared distances (samples on the minor axis, so
        that under ``vmap`` all restarts' candidates make one GEMM)."""
        c = x[rows]
        xc = jnp.matmul(c, x.T, precision=HIGHEST)
        return jnp.maximum(jnp.sum(c * c, axis=-1)[:, None] - 2.0 * xc + xx[None], 0.0)

    def body(c, carry):
        idx, closest = carry  # closest: D^2, +inf before the first centre
        later = c > 0
        cand = _draw(jnp.where(later, w * closest, w), u[c])
        cand = jnp.where(later, jnp.minimum(cand, last_valid), cand)
        new = jnp.minimum(closest[None], dist_to(cand))
        live = jnp.arange(max_trials) < jnp.where(later, n_trials, 1)
        # the potentials as a product with w: XLA's CPU fusion of sum(w * new)
        # over the samples was 4x slower (n=2e5, d=32, k=64, 8 restarts:
        # 2.1 s of seeding against 0.53 s), when w is not a constant
        best = jnp.argmin(jnp.where(live, jnp.matmul(new, w, precision=HIGHEST), jnp.inf))
        return idx.at[c].set(cand[best]), new[best]

    start = (jnp.zeros((k,), jnp.int32), jnp.full((n,), jnp.inf, xx.dtype))
    idx, _ = jax.lax.fori_loop(0, k, body, start)
    return x[idx], idx


def random_rows(key, w, k: int):
    """``k`` distinct indices drawn with probability ``w / sum(w)`` without
    replacement (the top ``k`` of ``log w + Gumbel noise``; prefix-stable)."""
    # drawn in float32 whatever the data's dtype: the same key picks the same rows
    noise = jax.random.gumbel(restart_key(key), w.shape, jnp.float32).astype(w.dtype)
    g = jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1)) + noise, -jnp.inf)
    return jax.lax.top_k(g, k)[1]


def random_centroids(key, x, w, k: int):
    """``k`` distinct samples drawn with probability ``w / sum(w)`` (sklearn's
    ``init="random"``); returns ``(centres (k, d), indices (k,))``."""
    idx = random_rows(key, w, k)
    return x[idx], idx


def seed(method: str, key, x, w, k: int, n_trials=None, max_trials=None):
    """``(centres, indices)`` of ``method`` (``"k-means++"`` or ``"random"``)."""
    if method == "k-means++":
        return kmeans_plusplus(key, x, w, k, n_trials, max_trials)
    if method == "random":
        return random_centroids(key, x, w, k)
    raise ValueError(f"init must be one of {KMEANS_INITS}, got {method!r}")


def _init_work(key, data, k, n_restarts, **_):
    return pass_elements(data, k * n_restarts)


@jit(static_argnames=("k", "n_restarts", "method", "max_trials"), work=_init_work)
def init_centroids(key, data, k: int, n_restarts: int, method: str = "k-means++",
                   n_trials=None, max_trials: int | None = None):
    """Restart-batched initial centroids ``(n_restarts, k, d)`` of in-memory
    ``data``; restart ``r`` uses ``jax.random.split(key, n_restarts)[r]``
    (``key`` may be those restarts' :class:`Draws`, :func:`host_seed_draws`).
    k-means++ takes ``n_trials`` (traced, at most the static ``max_trials``;
    :func:`kmeans_plusplus`), so a padded run seeds its first centres as an
    unpadded one. One compiled program: the scikit-learn face's
    ``partial_fit`` and ``_init_centroids`` call it outside any program,
    where running it operation by operation compiled each operation apart."""
    x, w = data.flat()
    keys = key if isinstance(key, Draws) else jax.random.split(key, n_restarts)
    return jax.vmap(lambda key: seed(method, key, x, w, k, n_trials, max_trials)[0])(keys)


def host_seed_draws(key, n_restarts: int, k: int, method: str, max_trials: int | None = None):
    """The restarts' :class:`Draws` of :func:`init_centroids` (``key`` split
    ``n_restarts`` ways; k-means++'s ``(n_restarts, k, max_trials, 2)`` words)
    hashed on the host, to pass as its ``key``; ``None`` where the host
    cannot hash ``key`` (:func:`jaxmix.host_random.host_key`)."""
    raw = host_random.host_key(key)
    if raw is None:
        return None
    keys = host_random.fold_in(raw, np.arange(n_restarts))  # split(key, n) under threefry
    trials = local_trials(k) if max_trials is None else max_trials
    bits = host_plusplus_bits(keys, k, trials) if method == "k-means++" else None
    return Draws(keys, bits)


def seed_key(key, n_restarts: int, k: int, method: str):
    """The ``key`` to give :func:`init_centroids`: its draws hashed on the
    host where they can be (:func:`host_seed_draws`), else ``key`` itself."""
    draws = host_seed_draws(key, n_restarts, k, method)
    return key if draws is None else draws
