"""Initial parameters of Gaussian mixtures, batched over restarts.

Each method (as in scikit-learn's ``init_params``) yields responsibilities,
and the initial parameters are the M-step on them (:mod:`jaxmix.gmm.update`:
``params_from_labels`` for one-hot starts, ``params_at`` for starts on single
samples, ``params_from_resp`` otherwise):

* ``"kmeans"``: labels of k-means++ seeding followed by Lloyd iterations
  (scikit-learn's ``KMeans`` defaults, empty clusters re-seeded), on a
  large sample run on a subsample of it
  (:mod:`jaxmix.kmeans.subsample`; the labels still cover every sample);
* ``"k-means++"``: one-hot responsibilities on the k-means++ seeds only;
* ``"random_from_data"``: one-hot on ``k`` distinct random samples;
* ``"random"``: uniform random responsibilities, normalised per sample.

Padded mixtures (``select_k``'s grid, a component ``mask``): every method is
prefix-stable (:mod:`jaxmix.kmeans.init`; the uniform draws come from one key
per sample and component), masked components get no data and Lloyd never
assigns to their centroids (copies of centroid 0), so the first ``k`` components of a
``k_max``-component start equal a ``k``-component start with the same key.
Restart ``r`` of :func:`initialize` starts from ``jax.random.fold_in(key, r)``, as
restart ``r`` of every fit does (:mod:`jaxmix.fit.rows`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmix.compiling import jit
from jaxmix.fit.kmeans import run_lloyd, seed_centres
from jaxmix.fit.buckets import restart_slots
from jaxmix.fit.rows import fit_work
from jaxmix.gmm.update import enforce_mask, params_at, params_from_labels, params_from_resp
from jaxmix.kmeans.assign import assign
from jaxmix.kmeans.init import local_trials, restart_key, seed
from jaxmix.kmeans.subsample import lloyd_rows, subsample
from jaxmix.kmeans.update import scaled_tol
from jaxmix.numerics import uniform
from jaxmix.params import GMMParams

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")
# The initialisers that start one-hot on seeds, and the seeding they use.
SEEDED = {"k-means++": "k-means++", "random_from_data": "random"}

# Lloyd settings of the "kmeans" initialiser (sklearn KMeans defaults).
KMEANS_INIT_TOL = 1e-4
KMEANS_INIT_MAX_ITER = 300


def nearest_labels(centroids):
    """Each sample's nearest of ``centroids (k, d)``, as ``labels_fn``."""
    return lambda x, i: assign(x, centroids)[0]


def uniform_resp(key, real):
    """Uniform responsibilities, ``u(fold_in(fold_in(key, row), j))`` for
    sample ``row`` and real component ``j`` (``real (k,)`` bool), normalised:
    independent of the chunking and of the components beyond the real ones."""
    k = real.shape[0]

    def resp(x, i):
        rows = i * x.shape[0] + jnp.arange(x.shape[0])
        draw = lambda row, j: uniform(  # noqa: E731
            jax.random.fold_in(jax.random.fold_in(key, row), j), (), x.dtype)
        r = jax.vmap(lambda row: jax.vmap(lambda j: draw(row, j))(jnp.arange(k)))(rows)
        r = jnp.where(real, r, 0.0)
        return r / jnp.sum(r, axis=1, keepdims=True)
    return resp


def seed_kmeans(keys, sample, k: int, mask, n_trials, tol=KMEANS_INIT_TOL,
                max_iter=KMEANS_INIT_MAX_ITER, max_trials: int | None = None,
                method: str = "k-means++"):
    """Centroids ``(B, k, d)`` of k-means++ (or ``"random"``) then Lloyd
    (``tol`` relative to the whole sample's variance, empty real clusters
    re-seeded) on ``B`` restarts of ``k`` centroids of which ``mask (B, k)``
    are real; on a large sample they cluster a subsample of it
    (:mod:`jaxmix.kmeans.subsample`)."""
    abs_tol = scaled_tol(sample, tol)
    m = lloyd_rows(sample, k)
    # chunked for the rows Lloyd steps at once, as the data are for EM's slots
    rows = sample if m is None else subsample(sample, m, restart_slots(mask.shape[0],
                                                                        "lloyd") * k)
    centres = seed_centres(keys, rows, k, mask, n_trials, method, max_trials)
    return run_lloyd(rows, centres, abs_tol, max_iter, True, mask).params.centroids


def initialize_masked(keys, sample, k: int, covariance_type: str, method: str, reg_covar,
                      mask, n_trials, max_trials: int | None = None) -> GMMParams:
    """Initial parameters of ``B`` restarts (``keys (B,)``, keys or
    :class:`~jaxmix.kmeans.init.Draws`) of ``k`` components
    of which ``mask (B, k)`` are real; ``n_trials (B,)`` k-means++ candidates
    (at most the static ``max_trials``, default ``local_trials(k)``)."""
    x, w = sample.flat()
    if method == "kmeans":
        centroids = seed_kmeans(keys, sample, k, mask, n_trials, max_trials=max_trials)
        # one restart at a time: a batched GEMM's summation order depends on
        # the batch, and a restart's start must not depend on the others
        params = jax.lax.map(lambda c: params_from_labels(
            nearest_labels(c), sample, k, reg_covar, covariance_type, centres=c), centroids)
    elif method == "random":
        params = jax.vmap(lambda key, real: params_from_resp(
            uniform_resp(restart_key(key), real), sample, reg_covar, covariance_type))(
                keys, mask)
    elif method in SEEDED:
        idx = jax.vmap(lambda key, t: seed(SEEDED[method], key, x, w, k, t, max_trials)[1])(
            keys, n_trials)
        params = jax.vmap(lambda i: params_at(i, x, w, reg_covar, covariance_type))(
            jnp.where(mask, idx, -1))
    else:
        raise ValueError(f"init must be one of {INIT_METHODS}, got {method!r}")
    return enforce_mask(params, mask)


def initialize(key, data, k: int, covariance_type: str, n_restarts: int, method: str,
               reg_covar) -> GMMParams:
    """Restart-batched initial parameters (leading axis ``n_restarts``) of
    in-memory ``data``."""
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(n_restarts))
    mask = jnp.ones((n_restarts, k), bool)
    trials = jnp.full((n_restarts,), local_trials(k), jnp.int32)
    return initialize_masked(keys, data, k, covariance_type, method, reg_covar, mask, trials)


def params_from_means(data, means, reg_covar, covariance_type: str) -> GMMParams:
    """The M-step on responsibilities one-hot on each sample's nearest of
    ``means (k, d)`` (the starting point of a fit given means only)."""
    return params_from_labels(nearest_labels(means), data, means.shape[0], reg_covar,
                              covariance_type, centres=means)


def broadcast_params(params: GMMParams, n_restarts: int) -> GMMParams:
    """Repeat single parameters ``n_restarts`` times along a new leading axis."""
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (n_restarts,) + a.shape), params)


def _one_start_work(key, data, means, reg_covar, *, k, covariance_type, **_):
    return fit_work(data, 1, k, covariance_type)


@jit(static_argnames=("k", "covariance_type", "method"), work=_one_start_work)
def one_start(key, data, means, reg_covar, *, k: int, covariance_type: str, method: str):
    """One start on in-memory ``data``: :func:`params_from_means` of
    ``means (k, d)`` if given, else restart 0 of :func:`initialize` by
    ``method``; one compiled program (called eagerly, every operation of the
    initialiser would compile on its own)."""
    if means is not None:
        return params_from_means(data, means, reg_covar, covariance_type)
    return jax.tree.map(lambda a: a[0], initialize(key, data, k, covariance_type, 1, method,
                                                   reg_covar))
