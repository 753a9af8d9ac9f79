"""Initialisers for Gaussian mixtures, batched over restarts.

Each method (as in scikit-learn's ``init_params``) yields responsibilities,
and the initial parameters are the M-step on them:

* ``"kmeans"``: labels of k-means++ seeding followed by Lloyd iterations.
* ``"k-means++"``: one-hot responsibilities on the k-means++ seeds only.
* ``"random_from_data"``: one-hot on ``k`` distinct random samples.
* ``"random"``: uniform random responsibilities, normalised per sample.

User-given parameters are broadcast to every restart instead. Restart ``r``
uses ``jax.random.split(key, R)[r]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmix.gmm.em import params_from_resp
from jaxmix.kmeans.core import assign, kmeans_plusplus, lloyd
from jaxmix.params import GMMParams
from jaxmix.data.chunked import Chunked

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")

# Lloyd settings of the "kmeans" initialiser (sklearn KMeans defaults).
KMEANS_INIT_TOL = 1e-4
KMEANS_INIT_MAX_ITER = 300


def onehot_at(indices, k):
    """Responsibilities that are one-hot on the samples ``indices`` only."""
    def resp(x, i):
        rows = i * x.shape[0] + jnp.arange(x.shape[0])
        return (rows[:, None] == indices[None, :]).astype(x.dtype)
    return resp


def onehot_nearest(centroids):
    """Responsibilities one-hot on each sample's nearest centroid."""
    k = centroids.shape[0]
    return lambda x, i: jax.nn.one_hot(assign(x, centroids)[0], k, dtype=x.dtype)


def _uniform_resp(key, k):
    """Uniform responsibilities drawn per sample from ``fold_in(key, row)``,
    so they do not depend on how the samples are chunked."""
    def resp(x, i):
        rows = i * x.shape[0] + jnp.arange(x.shape[0])
        r = jax.vmap(lambda row: jax.random.uniform(jax.random.fold_in(key, row), (k,),
                                                    x.dtype))(rows)
        return r / jnp.sum(r, axis=1, keepdims=True)
    return resp


def _seeds(keys, data: Chunked, k):
    x, w = data.flat()
    return jax.vmap(lambda key: kmeans_plusplus(key, x, w, k))(keys)


def random_indices(keys, data: Chunked, k):
    """Per key, ``k`` distinct indices of positive-weight samples (uniform)."""
    _, w = data.flat()
    p = (w > 0) / jnp.sum(w > 0)
    return jax.vmap(lambda key: jax.random.choice(key, w.shape[0], (k,), replace=False, p=p))(keys)


def initialize(key, data: Chunked, k: int, covariance_type: str, n_restarts: int,
               method: str, reg_covar) -> GMMParams:
    """Restart-batched initial parameters (leading axis ``n_restarts``)."""
    keys = jax.random.split(key, n_restarts)
    if method == "kmeans":
        centres, _ = _seeds(keys, data, k)
        centres = lloyd(data, centres, KMEANS_INIT_TOL, KMEANS_INIT_MAX_ITER,
                        relocate_empty=True).params.centroids
        resp_fns = centres, onehot_nearest
    elif method == "k-means++":
        resp_fns = _seeds(keys, data, k)[1], lambda ind: onehot_at(ind, k)
    elif method == "random_from_data":
        resp_fns = random_indices(keys, data, k), lambda ind: onehot_at(ind, k)
    elif method == "random":
        resp_fns = keys, lambda key: _uniform_resp(key, k)
    else:
        raise ValueError(f"init must be one of {INIT_METHODS}, got {method!r}")
    per_restart, make_resp = resp_fns
    return jax.vmap(
        lambda a: params_from_resp(make_resp(a), data, reg_covar, covariance_type)
    )(per_restart)


def broadcast_params(params: GMMParams, n_restarts: int) -> GMMParams:
    """Repeat single parameters ``n_restarts`` times along a new leading axis."""
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (n_restarts,) + a.shape), params)
