"""SciPy sparse data in every K-Means fit and estimator (issue 17): the
results of the dense data, and memory bounded by the sparse matrix and one
dense chunk (the whole matrix is never made dense)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import sparse

import jaxmix as jm
from jaxmix.data.chunked import CHUNK_ELEMENTS
from jaxmix.fit.inputs import small_sparse
from jaxmix.fit.minibatch import fit_minibatch_kmeans
from jaxmix.sklearn import KMeans, MiniBatchKMeans


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.4, (150, 12)) for c in (0.0, 2.0, 4.0)])
    x[x < 1.0] = 0.0  # about half the entries zero
    return x, rng.uniform(0.5, 2.0, x.shape[0])


# The restarts and batch size of every fit here, the estimators' and the
# functions': fits with equal settings share their compiled programs.
N_INIT, BATCH = 2, 40


# chunk_size=None: the matrix is one chunk's budget, fitted dense in memory;
# 100 rows per chunk: streamed, made dense one chunk at a time
@pytest.mark.parametrize("chunk_size", [None, 100])
@pytest.mark.parametrize("container", [sparse.csr_matrix, sparse.csc_array])
def test_fit_kmeans_on_sparse_data_is_the_dense_fit(data, container, chunk_size):
    x, w = data
    assert small_sparse(container(x), chunk_size) == (chunk_size is None)
    for sw in (None, w):
        dense = jm.fit_kmeans(1, x, 3, n_restarts=N_INIT, sample_weight=sw,
                              chunk_size=chunk_size)
        sp = jm.fit_kmeans(1, container(x), 3, n_restarts=N_INIT, sample_weight=sw,
                           chunk_size=chunk_size)
        np.testing.assert_array_equal(sp.params.centroids, dense.params.centroids)
        np.testing.assert_array_equal(sp.objective, dense.objective)


def test_only_a_small_sparse_matrix_is_made_dense():
    """At most CHUNK_ELEMENTS dense values, and not asked to be read in parts."""
    small = sparse.random(CHUNK_ELEMENTS // 8, 8, density=0.01, format="csr")
    assert small_sparse(small)
    assert not small_sparse(sparse.random(CHUNK_ELEMENTS // 8 + 1, 8, density=0.01))
    assert not small_sparse(small, chunk_size=small.shape[0] - 1)
    assert not small_sparse(small, init_size=100)
    assert small_sparse(small, chunk_size=small.shape[0], init_size=small.shape[0])
    assert not small_sparse(small.toarray())


def test_minibatch_on_sparse_data_and_memmaps_is_the_dense_fit(data, tmp_path):
    """The batches are read on the host from a sparse matrix or a memory map,
    and they are the rows the in-memory fit draws: the same runs."""
    x, w = data
    path = tmp_path / "x.npy"
    np.save(path, x)
    kw = dict(n_restarts=N_INIT, batch_size=BATCH)
    for sw in (None, w):
        dense = fit_minibatch_kmeans(2, x, 3, sample_weight=sw, **kw)
        for src in (sparse.csr_matrix(x), np.load(path, mmap_mode="r")):
            got = fit_minibatch_kmeans(2, src, 3, sample_weight=sw, **kw)
            np.testing.assert_allclose(got.params.centroids, dense.params.centroids,
                                       rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(got.n_iter, dense.n_iter)


def test_a_sequential_source_is_refused_by_minibatch(data):
    with pytest.raises(ValueError, match="draws rows at random"):
        fit_minibatch_kmeans(0, lambda: iter([data[0]]), 3)


def test_fit_gmm_on_sparse_data_is_the_dense_fit(data):
    x, _ = data
    dense = jm.fit_gmm(0, x, 3, covariance_type="diag")
    sp = jm.fit_gmm(0, sparse.csr_matrix(x), 3, covariance_type="diag")
    np.testing.assert_allclose(sp.best_params.means, dense.best_params.means, rtol=1e-12)


@pytest.mark.parametrize("Est", [KMeans, MiniBatchKMeans])
def test_estimators_take_sparse_input(data, Est):
    x, w = data
    kw = dict(n_clusters=3, random_state=0, n_init=N_INIT)
    if Est is MiniBatchKMeans:
        kw["batch_size"] = BATCH
    dense, sp = Est(**kw).fit(x, sample_weight=w), Est(**kw).fit(sparse.csr_matrix(x),
                                                                 sample_weight=w)
    # a small sparse matrix is fitted dense (jaxmix.fit.inputs.small_sparse)
    np.testing.assert_array_equal(sp.cluster_centers_, dense.cluster_centers_)
    np.testing.assert_array_equal(sp.labels_, dense.labels_)
    s = sparse.csr_matrix(x)
    np.testing.assert_array_equal(sp.predict(s), dense.predict(x))
    np.testing.assert_allclose(sp.transform(s), dense.transform(x), rtol=1e-10)
    np.testing.assert_allclose(sp.score(s, sample_weight=w), dense.score(x, sample_weight=w),
                               rtol=1e-10)
    if Est is MiniBatchKMeans:
        sp.partial_fit(s[:40])  # one batch, made dense
        assert sp.cluster_centers_.shape == (3, 12)


LARGE = """
import resource, numpy as np
from scipy import sparse
import jaxmix as jm
from jaxmix.data.chunked import CHUNK_ELEMENTS
from jaxmix.fit.inputs import small_sparse
rng = np.random.default_rng(0)
n, d, per_row = 100_000, 5_000, 10
rows = np.repeat(np.arange(n), per_row)
cols = rng.integers(0, d, n * per_row)
x = sparse.csr_matrix((rng.uniform(0.5, 1.5, rows.size).astype(np.float32), (rows, cols)),
                      shape=(n, d))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
res = jm.fit_kmeans(0, x, 4, max_iter=2)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
assert np.all(np.isfinite(np.asarray(res.best_params.centroids)))
print(grown)
"""


@pytest.mark.slow
def test_a_large_sparse_matrix_is_never_made_dense():
    """100,000 x 5,000 float32 with about 10 entries per row: 2 GB dense, 12 MB
    sparse. In a fresh process (its peak memory is this fit's alone), the
    fit's peak resident memory grows by well under the dense size."""
    proc = subprocess.run([sys.executable, "-c", LARGE], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr
    grown = int(proc.stdout.split()[-1])
    assert grown < 1.0e9, f"peak memory grew by {grown / 1e9:.2f} GB (dense: 2 GB)"
