"""``fit_kmeans``: Lloyd K-Means with batched restarts, as scikit-learn's
``KMeans(algorithm="lloyd")``.

The fit runs :func:`jaxmix.fit.driver.iterate` (the driver EM uses) on
:func:`jaxmix.kmeans.core.batched_lloyd_step`: every restart's assignment is one
distance GEMM per chunk, the update comes from additive statistics, empty
clusters are re-seeded from the farthest samples inside ``jit``. A restart
stops when its total squared centroid shift is at most ``tol`` times the mean
feature variance (sklearn's rule). The reported objective is ``-inertia`` of
the *final* centroids (one exact pass, like sklearn's ``inertia_``) and the
best restart is the one with the lowest inertia.

>>> import jax, numpy as np
>>> from jaxmix import fit_kmeans
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(-5, 1, (200, 2)), rng.normal(5, 1, (200, 2))])
>>> result = fit_kmeans(jax.random.PRNGKey(0), x, 2, n_restarts=4)
>>> np.sort(np.asarray(result.best_params.centroids[:, 0])).round(0)
array([-5.,  5.], dtype=float32)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.data.sharding import (check_global_data, n_shards, place, resolve_mesh,
                                shard_chunk_size)
from jaxmix.fit.driver import FitResult
from jaxmix.kmeans.core import (KMEANS_INITS, init_centroids, run_lloyd, scaled_tol,
                           with_final_inertia)
from jaxmix.params import KMeansParams
from jaxmix.data.chunked import chunk
from jaxmix.validation import (as_key, check_choice, check_int, check_n_components,
                               check_nonneg, check_sample_weight)

# Chunks are sized so that one chunk's largest intermediate, ``chunk * R * k``
# distances (or ``chunk * R * d`` gathered centroids), stays near this many:
# 4 MiB in float32, which keeps the distance block in cache. Measured at
# n=2e5, d=32, k=64, R=8 on the 2-core CPU: chunks of 2048-4096 rows were
# 1.3-2.5x faster than 8192-32768 (experiments/bench_kmeans.py --chunk).
CHUNK_BUDGET = 2 ** 20


def default_chunk_size(n: int, d: int, k: int, n_restarts: int) -> int:
    per_row = max(1, n_restarts * max(k, d))
    return int(min(n, max(256, CHUNK_BUDGET // per_row)))


def fit_kmeans(key, x, n_clusters: int, *, n_restarts: int | None = None,
               init: str = "k-means++", init_centroids=None, tol: float = 1e-4,
               max_iter: int = 300, chunk_size: int | None = None,
               sample_weight=None, mesh=None) -> FitResult:
    """Lloyd K-Means from ``n_restarts`` starts in one compiled call.

    Args:
      key: ``jax.random`` key (or int seed); restart ``r`` uses ``split(key, R)[r]``.
      x: ``(n, d)`` data.
      n_clusters: ``k``.
      n_restarts: ``R`` restarts run together (default 1, or the leading axis
        of a 3-D ``init_centroids``).
      init: ``"k-means++"`` (greedy, ``2 + ln k`` local trials) or ``"random"``
        (``k`` distinct samples, probability proportional to the weights);
        ignored when ``init_centroids`` is given.
      init_centroids: ``(k, d)`` starting centroids for every restart, or
        ``(R, k, d)`` one set per restart.
      tol: stop a restart when its total squared centroid shift is at most
        ``tol`` times the mean feature variance of ``x``.
      max_iter: Lloyd iterations cap per restart.
      chunk_size: samples per chunk (bounds memory); ``None`` picks one.
      sample_weight: optional ``(n,)`` non-negative weights.
      mesh: a :class:`jax.sharding.Mesh` with a ``"data"`` axis to split the
        samples over (``None``: the mesh of ``x`` if it is placed on one, see
        :mod:`jaxmix.data.sharding`); the result equals the single-device fit.

    Returns:
      :class:`~jaxmix.fit.driver.FitResult` whose ``params`` are
      :class:`~jaxmix.params.KMeansParams` ``centroids (R, k, d)``;
      ``objective`` is ``-inertia`` of the final centroids, ``best`` the
      restart with the lowest inertia, ``degenerate`` flags restarts that end
      with an empty cluster.
    """
    mesh = resolve_mesh(mesh, x)
    inp = check_kmeans_inputs(x, n_clusters, n_restarts, init, init_centroids, sample_weight)
    max_iter = check_int(max_iter, "max_iter", low=0)
    n, d = inp.x.shape
    size = (shard_chunk_size(n, default_chunk_size(n, d, inp.k, inp.n_restarts), n_shards(mesh))
            if chunk_size is None else check_int(chunk_size, "chunk_size"))
    offset = jnp.mean(inp.x, axis=0)  # sklearn centres on the unweighted mean
    data = place(chunk(inp.x - offset, size, inp.weights), mesh)
    centroids0 = None if inp.centroids0 is None else inp.centroids0 - offset
    result = _fit(as_key(key), data, centroids0, check_nonneg(tol, "tol"), k=inp.k,
                  n_restarts=inp.n_restarts, init=init, max_iter=max_iter)
    return result._replace(params=KMeansParams(result.params.centroids + offset))


class KMeansInputs(NamedTuple):
    x: jax.Array                   # (n, d) validated data
    k: int
    n_restarts: int
    weights: jax.Array | None      # (n,) or None
    centroids0: jax.Array | None   # (R, k, d) given starts, or None


def check_kmeans_inputs(x, n_clusters, n_restarts, init, init_centroids,
                        sample_weight) -> KMeansInputs:
    """Validation shared by the K-Means entry points (host side)."""
    x = check_global_data(x)
    n, d = x.shape
    k = check_n_components(n_clusters, n, "n_clusters")
    weights = check_sample_weight(sample_weight, n, x.dtype)
    if weights is not None and int(jnp.sum(weights > 0)) < k:
        raise ValueError(f"sample_weight has fewer positive entries than n_clusters={k}; "
                         "give at least n_clusters samples a positive weight")
    if init_centroids is None:
        check_choice(init, "init", KMEANS_INITS)
        n_restarts = 1 if n_restarts is None else check_int(n_restarts, "n_restarts")
        return KMeansInputs(x, k, n_restarts, weights, None)
    c = _check_init_centroids(init_centroids, k, d, x.dtype)
    if n_restarts is None:
        n_restarts = c.shape[0] if c.ndim == 3 else 1
    n_restarts = check_int(n_restarts, "n_restarts")
    if c.ndim == 3 and c.shape[0] != n_restarts:
        raise ValueError(f"init_centroids holds {c.shape[0]} restarts but "
                         f"n_restarts={n_restarts}; make them agree")
    return KMeansInputs(x, k, n_restarts, weights, jnp.broadcast_to(c, (n_restarts, k, d)))


@functools.partial(jax.jit, static_argnames=("k", "n_restarts", "init", "max_iter"))
def _fit(key, data, centroids0, tol, *, k, n_restarts, init, max_iter) -> FitResult:
    tol = jnp.asarray(tol, data.x.dtype)
    if centroids0 is None:
        centroids0 = init_centroids(key, data, k, n_restarts, init)
    result = run_lloyd(data, centroids0, scaled_tol(data, tol), max_iter)
    return with_final_inertia(result, data)


def _check_init_centroids(c, k: int, d: int, dtype):
    a = np.asarray(c)
    if a.ndim not in (2, 3) or a.shape[-2:] != (k, d):
        raise ValueError(f"init_centroids must have shape ({k}, {d}) or (n_restarts, {k}, {d}), "
                         f"got {a.shape}")
    if np.dtype(a.dtype).kind not in "biuf" or not np.all(np.isfinite(a)):
        raise ValueError("init_centroids must be finite numbers")
    return jnp.asarray(a, dtype)
