"""K-Means seeding: greedy k-means++ and random samples, batched over restarts.

Both are *prefix-stable*: the first ``k`` centres drawn for ``k_max > k``
centres are exactly the ``k`` centres of a ``k``-centre draw with the same
key. k-means++ draws each candidate from its own key (``fold_in(key, t)``)
and takes the number of local trials as a value, so a padded model selection
grid (:func:`jaxmix.select_k`) seeds every ``k`` as a run of that ``k`` alone
would. Random samples without replacement are the top ``k`` of Gumbel-
perturbed log-weights, whose top ``k`` is a prefix of its top ``k_max``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxmix.numerics import HIGHEST

KMEANS_INITS = ("k-means++", "random")


def local_trials(k) -> int:
    """scikit-learn's number of k-means++ candidates per centre, ``2 + int(ln k)``."""
    return 2 + int(math.log(k))


def _search(cum, r):
    """First index ``i`` with ``cum[i] >= r`` (``cum`` non-decreasing), for
    each entry of ``r``: an unrolled bisection, cheap to compile and to run
    (``jnp.searchsorted`` compiles slowly inside loops, or compares all)."""
    n = cum.shape[0]
    lo = jnp.zeros(r.shape, jnp.int32)
    hi = jnp.full(r.shape, n, jnp.int32)
    for _ in range(max(1, n.bit_length())):
        mid = (lo + hi) // 2
        right = cum[jnp.minimum(mid, n - 1)] < r
        lo, hi = jnp.where(right, mid + 1, lo), jnp.where(right, hi, mid)
    return jnp.minimum(lo, n - 1)


def _draw(keys, p):
    """One index per key, drawn with probability proportional to ``p >= 0``."""
    cum = jnp.cumsum(p)
    u = jax.vmap(lambda key: jax.random.uniform(key, (), p.dtype))(keys)
    return _search(cum, cum[-1] * (1 - u))


def kmeans_plusplus(key, x, w, k: int, n_trials=None, max_trials: int | None = None):
    """Greedy k-means++ seeding as in scikit-learn.

    The first centre is drawn with probability ``w / sum(w)``; each next one is
    the best (lowest potential ``sum w * D^2``) of ``n_trials`` candidates
    drawn with probability proportional to ``w * D(x)^2``, where ``D`` is the
    distance to the nearest centre chosen so far. ``n_trials`` (default
    :func:`local_trials` of ``k``) may be a traced integer up to the static
    ``max_trials`` (default ``local_trials(k)``); with ``1`` it is plain D^2
    sampling. Candidate ``t`` of centre ``c`` is drawn from
    ``fold_in(fold_in(key, c), t)``, so seeds do not depend on ``max_trials``.

    Args:
      key: PRNG key.
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

    def dist_to(rows):
        """``(len(rows), n)`` squared distances (samples on the minor axis, so
        that under ``vmap`` all restarts' candidates make one GEMM)."""
        c = x[rows]
        xc = jnp.matmul(c, x.T, precision=HIGHEST)
        return jnp.maximum(jnp.sum(c * c, axis=-1)[:, None] - 2.0 * xc + xx[None], 0.0)

    first = _draw(jax.random.fold_in(key, 0)[None], w)[0]
    idx = jnp.zeros((k,), jnp.int32).at[0].set(first)

    def body(c, carry):
        idx, closest = carry
        keys = jax.vmap(lambda t: jax.random.fold_in(jax.random.fold_in(key, c), t))(
            jnp.arange(max_trials))
        cand = jnp.minimum(_draw(keys, w * closest), last_valid)
        new = jnp.minimum(closest[None], dist_to(cand))
        potential = jnp.where(jnp.arange(max_trials) < n_trials,
                              jnp.sum(w[None] * new, axis=1), jnp.inf)
        best = jnp.argmin(potential)
        return idx.at[c].set(cand[best]), new[best]

    idx, _ = jax.lax.fori_loop(1, k, body, (idx, dist_to(first[None])[0]))
    return x[idx], idx


def random_rows(key, w, k: int):
    """``k`` distinct indices drawn with probability ``w / sum(w)`` without
    replacement (the top ``k`` of ``log w + Gumbel noise``; prefix-stable)."""
    g = jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1)) + jax.random.gumbel(key, w.shape,
                                                                              w.dtype), -jnp.inf)
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


def init_centroids(key, data, k: int, n_restarts: int, method: str = "k-means++"):
    """Restart-batched initial centroids ``(n_restarts, k, d)`` of in-memory
    ``data``; restart ``r`` uses ``jax.random.split(key, n_restarts)[r]``."""
    x, w = data.flat()
    keys = jax.random.split(key, n_restarts)
    return jax.vmap(lambda key: seed(method, key, x, w, k)[0])(keys)
