"""The ``"kmeans"`` initialiser on a large sample clusters a subsample
(jaxmix.kmeans.subsample): which rows it draws, when, and what the start is.

References: NumPy indexing for the drawn rows; scikit-learn's KMeans on all
rows and sklearn's M-step on its labels for the start (well-separated
blobs, so any converged K-Means has the same labels); scikit-learn's
GaussianMixture for the fit. float64 (the tests' mode).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_params_close, blobs, index, match_components, sk_params_from_resp
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

import jaxmix as jm
from jaxmix.data.chunked import chunk
from jaxmix.fit.buckets import sample_bucket
from jaxmix.kmeans.subsample import (LLOYD_ROWS, MIN_ROWS_PER_CENTROID, SAMPLE_TAG,
                                     SUBSAMPLE_FROM, lloyd_rows, subsample, subsample_words)

CENTRES = [[0.0, 0.0], [8.0, 1.0], [-3.0, 9.0]]
N = 40_000  # above SUBSAMPLE_FROM: the subsample is drawn
X = blobs(np.random.default_rng(3), N, CENTRES) + 5.0
KW = dict(covariance_type="full", reg_covar=1e-6)


@functools.lru_cache(maxsize=None)
def start(n_restarts, seed=0):
    """The fit's starting parameters (``max_iter=0``), restart-batched."""
    return jm.fit_gmm(seed, X, 3, n_restarts=n_restarts, max_iter=0, **KW).params


def test_rows_are_fixed_words_mod_the_rows_before_the_padding_with_their_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 2))
    w = rng.uniform(0.5, 2.0, size=1000)
    w[-3:] = 0.0  # trailing weightless rows count as padding: never drawn
    key = jnp.array([0, SAMPLE_TAG], jnp.uint32)  # the words are JAX's bits of this key
    words = np.asarray(jax.random.bits(key, (64,), jnp.uint32))
    np.testing.assert_array_equal(subsample_words(64), words)
    idx = words % 997
    for size in (None, 100):  # the chunking of the sample does not change the draw
        sub = subsample(chunk(x, size, w, n_rows=1280), 64, 16)
        sx, sw = (np.asarray(a) for a in sub.flat())
        np.testing.assert_array_equal(sx[:64], x[idx])
        np.testing.assert_array_equal(sw[:64], w[idx])
        assert not np.any(sw[64:])  # the subsample's own chunk padding


def test_only_samples_beyond_a_bucket_of_two_to_the_fifteen_rows_are_subsampled_for_small_k():
    assert sample_bucket(2 ** 15) <= SUBSAMPLE_FROM < sample_bucket(2 ** 15 + 1)
    assert lloyd_rows(chunk(np.zeros((sample_bucket(2 ** 15), 1))), 8) is None
    big = chunk(np.zeros((sample_bucket(2 ** 15 + 1), 1)))
    assert lloyd_rows(big, 8) == LLOYD_ROWS
    # at least MIN_ROWS_PER_CENTROID drawn rows per centroid, else all rows
    assert lloyd_rows(big, LLOYD_ROWS // MIN_ROWS_PER_CENTROID) == LLOYD_ROWS
    assert lloyd_rows(big, LLOYD_ROWS // MIN_ROWS_PER_CENTROID + 1) is None


def test_start_is_the_m_step_on_labels_of_kmeans_of_all_rows():
    """The subsample's centroids label every row as K-Means of all rows does."""
    assert lloyd_rows(chunk(X, n_rows=sample_bucket(N)), 8) == LLOYD_ROWS
    km = KMeans(3, n_init=1, random_state=0).fit(X)
    ref = sk_params_from_resp(X, np.eye(3)[km.labels_], KW["reg_covar"], "full")
    p = start(3)
    for r in range(3):
        got = index(p, r)
        perm = match_components(got.means, ref.means)
        got = jax.tree.map(lambda a: np.asarray(a)[perm], got)
        assert_params_close(got, ref, 1e-9, 1e-9, f"restart {r}")


def test_restarts_do_not_depend_on_how_many_run():
    a, b = start(2), start(3)
    for name in ("weights", "means", "precisions_cholesky"):
        np.testing.assert_array_equal(np.asarray(getattr(a, name)),
                                      np.asarray(getattr(b, name))[:2])


def test_traced_key_gives_the_same_start():
    """Under jit (a traced key: the seeds hashed in the program) the same start."""
    fit = jax.jit(lambda key: jm.fit_gmm(key, X, 3, n_restarts=3, max_iter=0, **KW).params)
    traced, concrete = fit(jax.random.PRNGKey(0)), start(3)
    for name in ("weights", "means", "precisions_cholesky"):
        np.testing.assert_allclose(np.asarray(getattr(traced, name)),
                                   np.asarray(getattr(concrete, name)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_reaches_sklearns_optimum(seed):
    res = jm.fit_gmm(seed, X, 3, n_restarts=3, **KW)
    sk = GaussianMixture(3, n_init=3, random_state=seed, **KW).fit(X)
    np.testing.assert_allclose(float(jm.gmm.mean_log_likelihood(res.best_params, jnp.asarray(X))),
                               sk.score(X), rtol=0, atol=1e-7)
