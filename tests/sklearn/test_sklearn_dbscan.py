"""jaxmix.sklearn.DBSCAN against sklearn.cluster.DBSCAN."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import cluster
from sklearn.base import clone
from sklearn.datasets import make_moons
from scipy import sparse
from sklearn.exceptions import NotFittedError
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import KNeighborsClassifier, radius_neighbors_graph
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks as ec

from jaxmix.sklearn import DBSCAN

# No check is expected to fail (sparse input is clustered on the graph path).
EXPECTED_FAILED: dict[str, str] = {}


@pytest.fixture(scope="module")
def moons():
    return make_moons(n_samples=1000, noise=0.05, random_state=42)[0]


@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_seed_moons_vs_sklearn(moons, eps):
    db, sk = DBSCAN(eps=eps, min_samples=5).fit(moons), cluster.DBSCAN(eps=eps).fit(moons)
    np.testing.assert_array_equal(db.labels_, sk.labels_)
    np.testing.assert_array_equal(db.core_sample_indices_, sk.core_sample_indices_)
    np.testing.assert_array_equal(db.components_, sk.components_)
    assert db.labels_.dtype == sk.labels_.dtype and db.components_.dtype == moons.dtype
    assert db.n_features_in_ == 2
    np.testing.assert_array_equal(DBSCAN(eps=eps).fit_predict(moons), sk.labels_)


def test_seed_anomaly_workflow(moons):
    # the seed: k-NN on the core samples, then distance > 0.2 -> anomaly
    db, sk = DBSCAN(eps=0.2).fit(moons), cluster.DBSCAN(eps=0.2).fit(moons)
    knn = KNeighborsClassifier(n_neighbors=50).fit(sk.components_,
                                                   sk.labels_[sk.core_sample_indices_])
    X_new = np.array([[-0.5, 0], [0, 0.5], [1, -0.1], [2, 1]])
    dist, idx = knn.kneighbors(X_new, n_neighbors=1)
    expected = knn.classes_[knn._y[idx]].ravel()
    expected[dist.ravel() > 0.2] = -1
    np.testing.assert_array_equal(db.predict(X_new), expected)
    assert db.predict(X_new).tolist() == [-1, 0, 1, -1]
    assert db.predict(X_new, max_distance=2.0).tolist() == [1, 0, 1, 0]
    assert db.predict(X_new).dtype == np.intp


def test_sample_weight_vs_sklearn(moons):
    w = np.random.default_rng(0).integers(0, 3, size=len(moons)).astype(float)
    db = DBSCAN(eps=0.05, min_samples=6).fit(moons, sample_weight=w)
    sk = cluster.DBSCAN(eps=0.05, min_samples=6).fit(moons, sample_weight=w)
    np.testing.assert_array_equal(db.labels_, sk.labels_)
    np.testing.assert_array_equal(db.core_sample_indices_, sk.core_sample_indices_)


def test_float32_and_no_core_samples(moons):
    X = moons.astype(np.float32)
    db = DBSCAN(eps=0.05).fit(X)
    np.testing.assert_array_equal(db.labels_, cluster.DBSCAN(eps=0.05).fit(X).labels_)
    assert db.components_.dtype == np.float32
    empty = DBSCAN(eps=1e-3, min_samples=3).fit(moons)
    assert (empty.labels_ == -1).all() and empty.core_sample_indices_.size == 0
    assert empty.components_.shape == (0, 2)
    assert (empty.predict(moons[:5]) == -1).all()


METRICS = [dict(metric="manhattan"), dict(metric="minkowski", p=1),
           dict(metric="minkowski", p=3), dict(metric="chebyshev"),
           dict(metric="minkowski", metric_params={"p": 1.5}),
           dict(metric="cosine", eps=0.01), dict(metric=lambda a, b: np.abs(a - b).sum())]


@pytest.mark.parametrize("kw", METRICS, ids=lambda kw: str(kw.get("metric"))[:9] + str(
    kw.get("p", kw.get("metric_params", ""))))
def test_metrics_match_sklearn(moons, kw):
    """Every metric scikit-learn's DBSCAN takes gives its labels, core samples
    and components exactly (the eps-neighbourhood graph path), and predict
    labels the training core samples with their own clusters."""
    x = moons[::4]
    kw = dict(eps=0.1, min_samples=4) | kw
    db, sk = DBSCAN(**kw).fit(x), cluster.DBSCAN(**kw).fit(x)
    np.testing.assert_array_equal(db.labels_, sk.labels_)
    np.testing.assert_array_equal(db.core_sample_indices_, sk.core_sample_indices_)
    np.testing.assert_array_equal(db.components_, sk.components_)
    core = db.core_sample_indices_
    np.testing.assert_array_equal(db.predict(x[core]), db.labels_[core])


@pytest.mark.parametrize("container", [np.asarray, sparse.csr_matrix, sparse.csc_array])
def test_sparse_and_precomputed_match_sklearn(moons, container):
    """Sparse samples, precomputed dense distances and a sparse radius graph
    (only stored entries are neighbours; every sample its own) give
    scikit-learn's clusters, weighted too."""
    x, w = moons[::4], np.random.default_rng(0).uniform(0.5, 2.0, moons[::4].shape[0])
    kw = dict(eps=0.1, min_samples=5)
    cases = [(container(x), {}), (container(pairwise_distances(x)), dict(metric="precomputed"))]
    if container is not np.asarray:  # a radius graph is sparse by nature
        cases.append((container(radius_neighbors_graph(x, 0.1, mode="distance")),
                      dict(metric="precomputed")))
    for data, extra in cases:
        for sw in (None, w):
            db = DBSCAN(**kw, **extra).fit(data, sample_weight=sw)
            sk = cluster.DBSCAN(**kw, **extra).fit(data, sample_weight=sw)
            np.testing.assert_array_equal(db.labels_, sk.labels_)
            np.testing.assert_array_equal(db.core_sample_indices_, sk.core_sample_indices_)


def test_a_directed_precomputed_graph_is_read_as_scikit_learn_reads_it():
    """Row i of a precomputed graph is i's neighbourhood: with an asymmetric
    graph, clusters are what scikit-learn's search reaches from each core
    sample in index order (brute-force comparison on random directed graphs)."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        d = rng.uniform(0, 1, (30, 30))
        d[rng.uniform(size=d.shape) < 0.8] = 0
        g = sparse.csr_matrix(d)  # some diagonal entries stored beyond eps, some not
        before = g.copy()
        for m in (2, 3):
            db = DBSCAN(eps=0.5, min_samples=m, metric="precomputed").fit(g)
            sk = cluster.DBSCAN(eps=0.5, min_samples=m, metric="precomputed").fit(g)
            np.testing.assert_array_equal(db.labels_, sk.labels_)
            np.testing.assert_array_equal(db.core_sample_indices_, sk.core_sample_indices_)
        assert (g != before).nnz == 0 and g.nnz == before.nnz  # the user's graph unchanged


def test_metric_parameter_validation(moons):
    DBSCAN(metric="minkowski", p=2).fit(moons[:50])
    with pytest.warns(SyntaxWarning, match="Parameter p is found in metric_params"):
        DBSCAN(metric="minkowski", p=2, metric_params={"p": 1}).fit(moons[:50])
    with pytest.raises(ValueError, match="must be square"):
        DBSCAN(metric="precomputed").fit(moons[:50])
    for kw in (dict(eps=0.0), dict(eps=-1.0), dict(min_samples=0), dict(block_size=0)):
        with pytest.raises(ValueError, match="parameter of DBSCAN must be"):
            DBSCAN(**kw).fit(moons[:50])


def test_bad_input_and_unfitted(moons):
    with pytest.raises(NotFittedError):
        DBSCAN().predict(moons)
    db = DBSCAN(eps=0.2).fit(moons)
    with pytest.raises(ValueError, match="features"):
        db.predict(np.zeros((2, 3)))
    bad = moons.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        DBSCAN().fit(bad)
    with pytest.raises(ValueError, match="NaN"):
        db.predict(bad)


def test_clone_and_pipeline(moons):
    c = clone(DBSCAN(eps=0.3, block_size=64)).set_params(min_samples=7)
    assert c.get_params()["eps"] == 0.3 and c.get_params()["min_samples"] == 7
    labels = make_pipeline(StandardScaler(), DBSCAN(eps=0.3)).fit_predict(moons)
    sk = make_pipeline(StandardScaler(), cluster.DBSCAN(eps=0.3)).fit_predict(moons)
    np.testing.assert_array_equal(labels, sk)


# a fast subset (the full suite, slow, runs the rest: pickling, idempotence,
# NaN/inf, n_features_in_, ...; NaN input and a wrong feature count are also
# tested above)
FAST_CHECKS = ("check_parameters_default_constructible", "check_no_attributes_set_in_init",
               "check_get_params_invariance", "check_estimators_unfitted",
               "check_clustering")


@pytest.mark.parametrize("check", FAST_CHECKS)
def test_check_estimator_subset(check):
    getattr(ec, check)("DBSCAN", DBSCAN())


@pytest.mark.slow
def test_check_estimator_full():
    ec.check_estimator(DBSCAN(), expected_failed_checks=EXPECTED_FAILED)


def test_predict_after_a_sparse_fit_and_weighted_minkowski(moons):
    x = moons[::4]
    dense = DBSCAN(eps=0.1, min_samples=4).fit(x)
    sp = DBSCAN(eps=0.1, min_samples=4).fit(sparse.csr_matrix(x))
    np.testing.assert_array_equal(sp.labels_, dense.labels_)
    new = moons[1::4]
    np.testing.assert_array_equal(sp.predict(new), dense.predict(new))
    np.testing.assert_array_equal(sp.predict(sparse.csr_matrix(new)), dense.predict(new))
    kw = dict(eps=0.1, min_samples=4, metric="minkowski", p=2,
              metric_params={"w": np.array([1.0, 2.0])})
    np.testing.assert_array_equal(DBSCAN(**kw).fit(x).labels_, cluster.DBSCAN(**kw).fit(x).labels_)


def test_precomputed_predict_reads_missing_entries_as_no_neighbour():
    d = sparse.csr_matrix(np.array([[0.0, 0.1, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    db = DBSCAN(eps=0.2, min_samples=2, metric="precomputed").fit(d)
    assert db.labels_.tolist() == [0, 0, -1]
    new = sparse.csr_matrix(np.array([[50.0, 0.0, 0.0], [0.0, 0.05, 0.0], [0.0, 0.0, 0.0]]))
    assert db.predict(new).tolist() == [-1, 0, -1]  # no stored distance: no neighbour
    with pytest.raises(ValueError, match="X: negative values"):
        DBSCAN(metric="precomputed").fit(np.array([[0.0, -1.0], [-1.0, 0.0]]))
