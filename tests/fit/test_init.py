"""Initialisers: each method's responsibilities and the M-step on them.

References: sklearn's KMeans (Lloyd from the same seeds) and sklearn's
M-step (``_estimate_gaussian_parameters``) for "kmeans"; jaxmix's own
``kmeans_plusplus`` seeds for "k-means++" (the seeding itself is tested in
test_kmeans*.py); the data rows for "random_from_data". All float64.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import INITS, assert_params_close, blobs, index, sk_params_from_resp
from sklearn.cluster import KMeans

import jaxmix as jm
from jaxmix.gmm.covariance import family
from jaxmix.fit import init as fit_init
from jaxmix.fit.init import broadcast_params

K, R, REG = 3, 4, 1e-6
SEED = 42
KEY = jax.random.PRNGKey(SEED)
X = blobs(np.random.default_rng(0), 200, [[0.0, 0.0], [6.0, 1.0], [-2.0, 7.0]]) + 10.0

initialize = jax.jit(fit_init.initialize,
                     static_argnames=("k", "covariance_type", "n_restarts", "method"))
kmeans_plusplus = jax.jit(jm.kmeans.kmeans_plusplus, static_argnames="k")


# One covariance type (diag: cheapest to compile) throughout: what differs
# between the methods is the responsibilities; the M-step on them is tested
# for all four types in test_em.py.
@functools.lru_cache(maxsize=None)
def init(method, chunk_size=None, seed=SEED):
    return initialize(jax.random.PRNGKey(seed), jm.chunk(X, chunk_size), K, "diag", R, method,
                      REG)


@pytest.mark.parametrize("method", INITS)
def test_shapes_finite_and_normalised(method):
    p = init(method)
    assert p.weights.shape == (R, K) and p.means.shape == (R, K, 2)
    assert p.precisions_cholesky.shape == (R, K, 2)
    for leaf in jax.tree.leaves(p):
        assert leaf.dtype == jnp.float64 and np.all(np.isfinite(np.asarray(leaf)))
    np.testing.assert_allclose(np.asarray(p.weights).sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("method", ["kmeans", "random", "random_from_data",
                                    pytest.param("k-means++", marks=pytest.mark.slow)])
def test_independent_of_chunking(method):
    """Chunk size is a memory knob: 200 rows in chunks of 37 (last one
    padded) initialise exactly like one chunk, up to summation order."""
    one, many = init(method), init(method, 37)
    assert_params_close(many, one, 1e-10, 1e-12, method)


@pytest.mark.parametrize("method", ["random", "random_from_data", "k-means++"])
def test_deterministic_and_restarts_differ(method):
    a = init(method)
    b = initialize(KEY, jm.chunk(X), K, "diag", R, method, REG)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    means = np.asarray(a.means)
    assert not np.allclose(means[0], means[1])
    c = init(method, seed=SEED + 1)
    assert not np.allclose(np.asarray(c.means), means)


def test_random_from_data_picks_distinct_rows():
    """One-hot on k distinct samples: means are those rows (never a padding
    row), weights 1/k, variances reg_covar."""
    for chunk_size in (None, 37):
        p = init("random_from_data", chunk_size)
        for r in range(R):
            means = np.asarray(p.means[r])
            d2 = np.sum((means[:, None, :] - X[None]) ** 2, axis=-1)
            rows = np.argmin(d2, axis=1)
            np.testing.assert_allclose(means, X[rows], rtol=1e-12)
            assert len(set(rows.tolist())) == K
        np.testing.assert_allclose(np.asarray(p.weights), 1 / K, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(family("diag").covariance(p.precisions_cholesky)),
                                   REG, rtol=1e-9)


def test_kmeans_plusplus_init_uses_the_seeds():
    """Restart r starts on the k-means++ seeds drawn with fold_in(key, r)."""
    p = init("k-means++")
    keys = [jax.random.fold_in(KEY, r) for r in range(R)]
    for r in range(R):
        seeds, _ = kmeans_plusplus(keys[r], jnp.asarray(X), jnp.ones(len(X)), k=K)
        np.testing.assert_allclose(np.asarray(p.means[r]), np.asarray(seeds), rtol=1e-12)


def test_kmeans_init_matches_sklearn_lloyd():
    """Lloyd from the same k-means++ seeds (sklearn's KMeans, tol 1e-4 as
    used by the initialiser) gives the same labels on these well-separated
    blobs, and sklearn's M-step on those one-hot labels is the initial
    mixture (1e-10: same closed form on identical labels)."""
    p = init("kmeans")
    keys = [jax.random.fold_in(KEY, r) for r in range(R)]
    for r in range(R):
        seeds, _ = kmeans_plusplus(keys[r], jnp.asarray(X), jnp.ones(len(X)), k=K)
        km = KMeans(K, init=np.asarray(seeds), n_init=1, tol=1e-4, max_iter=300).fit(X)
        resp = np.eye(K)[km.labels_]
        ref = sk_params_from_resp(X, resp, REG, "diag")
        assert_params_close(index(p, r), ref, 1e-10, 1e-12, f"restart {r}")


def test_random_init_is_a_soft_average():
    """Uniform responsibilities: every component takes ~1/k of the weight
    (std of a weight ~ 0.24 / sqrt(n) = 0.02 for n = 200, bounded at 0.1)
    and its mean lies near the data mean, inside the data's range."""
    p = init("random")
    assert np.all(np.abs(np.asarray(p.weights) - 1 / K) < 0.1)
    means = np.asarray(p.means)
    assert np.all(means > X.min(0)) and np.all(means < X.max(0))
    assert np.all(np.abs(means - X.mean(0)) < 0.25 * X.std(0))


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="init"):
        fit_init.initialize(KEY, jm.chunk(X), K, "diag", R, "kmeans++", REG)


def test_broadcast_params():
    p = index(init("random"), 0)
    b = broadcast_params(p, 5)
    for leaf, orig in zip(jax.tree.leaves(b), jax.tree.leaves(p)):
        assert leaf.shape == (5,) + orig.shape
        np.testing.assert_array_equal(np.asarray(leaf[3]), np.asarray(orig))
    assert b.covariance_type == p.covariance_type
