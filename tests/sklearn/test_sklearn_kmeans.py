"""jaxmix.sklearn.KMeans / MiniBatchKMeans against sklearn.cluster."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from sklearn import cluster
from sklearn.base import clone
from sklearn.datasets import load_digits, make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils import estimator_checks as ec

import jaxmix.sklearn.kmeans as sklearn_kmeans
from jaxmix.sklearn import KMeans, MiniBatchKMeans

# sklearn lists the same two as expected failures for its own KMeans /
# MiniBatchKMeans: with random seeding, weighted data and repeated rows draw
# different seeds. (Given the same start, weights are equivalent to
# repetition: test_sample_weight_equals_repetition.)
EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data":
        "sample_weight is not equivalent to removing/repeating samples under random seeding",
    "check_sample_weight_equivalence_on_sparse_data":
        "sample_weight is not equivalent to removing/repeating samples under random seeding",
}


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=600, centers=5, random_state=7)
    km = KMeans(5, n_init=10, random_state=0).fit(X)
    sk = cluster.KMeans(5, n_init=10, random_state=0).fit(X)
    cost = cdist(km.cluster_centers_, sk.cluster_centers_)
    _, perm = linear_sum_assignment(cost.T)
    return X, km, sk, perm


def test_kmeans_blobs_vs_sklearn(blobs):
    X, km, sk, perm = blobs
    np.testing.assert_allclose(km.cluster_centers_[perm], sk.cluster_centers_, atol=1e-6)
    assert km.inertia_ == pytest.approx(sk.inertia_, rel=1e-6)
    assert km.n_features_in_ == 2 and km.labels_.shape == (600,)
    np.testing.assert_array_equal(np.argsort(perm)[km.labels_], sk.labels_)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    new = X[:7] + 0.3
    np.testing.assert_array_equal(np.argsort(perm)[km.predict(new)], sk.predict(new))
    np.testing.assert_allclose(km.transform(new)[:, perm], sk.transform(new), atol=1e-6)
    np.testing.assert_allclose(km.transform(new), cdist(new, km.cluster_centers_), atol=1e-9)
    assert km.score(X) == pytest.approx(-km.inertia_, rel=1e-9)
    assert km.n_iter_ >= 1
    assert list(km.get_feature_names_out()) == [f"kmeans{i}" for i in range(5)]


def test_fit_predict_transform_and_batched_restarts(blobs, monkeypatch):
    X = blobs[0]
    calls = []
    real = sklearn_kmeans.fit_kmeans

    def spy(*args, **kwargs):
        calls.append(kwargs["n_restarts"])
        return real(*args, **kwargs)

    monkeypatch.setattr(sklearn_kmeans, "fit_kmeans", spy)
    km = KMeans(5, init="random", random_state=1)  # n_init="auto" -> 10 for random
    labels = km.fit_predict(X)
    assert calls == [10]
    np.testing.assert_array_equal(labels, km.labels_)
    np.testing.assert_allclose(KMeans(5, random_state=1).fit_transform(X),
                               KMeans(5, random_state=1).fit(X).transform(X))


def test_sample_weight_equals_repetition(blobs):
    X = blobs[0][:200]
    w = np.arange(200) % 3
    init = X[[0, 50, 100, 150, 199]]
    a = KMeans(5, init=init, n_init=1).fit(X, sample_weight=w)
    b = KMeans(5, init=init, n_init=1).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-8)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-8)
    assert a.score(X, sample_weight=w) == pytest.approx(-a.inertia_, rel=1e-8)


def test_array_init_warns_and_validation(blobs):
    X = blobs[0]
    with pytest.warns(RuntimeWarning, match="one init"):
        KMeans(5, init=X[:5], n_init=3).fit(X)
    with pytest.raises(ValueError, match="should be >= n_clusters"):
        KMeans(5).fit(X[:3])
    with pytest.raises(ValueError, match="features"):
        KMeans(5, random_state=0).fit(X).predict(np.zeros((2, 3)))


def test_minibatch(blobs):
    X, km, sk, _ = blobs
    mb = MiniBatchKMeans(5, batch_size=100, n_init=3, random_state=0).fit(X)
    assert mb.inertia_ <= 1.05 * sk.inertia_
    assert mb.n_steps_ >= 1 and mb.n_iter_ >= 1 and mb.labels_.shape == (600,)
    np.testing.assert_array_equal(mb.predict(X), mb.labels_)
    inc = MiniBatchKMeans(5, random_state=0)
    for start in range(0, 600, 100):
        inc.partial_fit(X[start:start + 100])
    assert inc.n_steps_ == 6
    assert -inc.score(X) <= 1.2 * sk.inertia_


def _digits():
    X_digits, y_digits = load_digits(return_X_y=True)
    return train_test_split(X_digits, y_digits, random_state=42)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_digits_pipeline():
    # the seed pipeline, import changed; LogisticRegression capped at 100
    # iterations to keep the default run short (the slow test compares with sklearn)
    X_train, X_test, y_train, y_test = _digits()
    pipeline = Pipeline([("kmeans", KMeans(n_clusters=50, random_state=42)),
                         ("log_reg", LogisticRegression(max_iter=100))])
    pipeline.fit(X_train, y_train)
    assert pipeline.score(X_test, y_test) > 0.93  # sklearn's KMeans here: ~0.97


@pytest.mark.slow
def test_digits_pipeline_vs_sklearn():
    X_train, X_test, y_train, y_test = _digits()
    scores = []
    for km in (KMeans(n_clusters=50, random_state=42),
               cluster.KMeans(n_clusters=50, random_state=42)):
        p = Pipeline([("kmeans", km), ("log_reg", LogisticRegression(max_iter=5000))])
        scores.append(p.fit(X_train, y_train).score(X_test, y_test))
    assert scores[0] >= scores[1] - 0.02


def test_grid_search_and_clone(blobs):
    X = blobs[0]
    search = GridSearchCV(KMeans(random_state=0), {"n_clusters": [2, 5]}, cv=2).fit(X)
    assert search.best_params_ == {"n_clusters": 5}  # score = -inertia
    c = clone(KMeans(3, init="random")).set_params(n_clusters=4)
    assert c.get_params()["n_clusters"] == 4 and c.get_params()["init"] == "random"


FAST_CHECKS = ("check_parameters_default_constructible", "check_no_attributes_set_in_init",
               "check_get_params_invariance", "check_estimators_unfitted",
               "check_transformer_general", "check_fit_idempotent", "check_estimators_pickle")


@pytest.mark.parametrize("check", FAST_CHECKS)
@pytest.mark.parametrize("Est", [KMeans, MiniBatchKMeans])
def test_check_estimator_subset(Est, check):
    kw = dict(batch_size=10) if Est is MiniBatchKMeans else {}
    getattr(ec, check)(Est.__name__, Est(n_clusters=2, n_init=2, max_iter=20, **kw))


@pytest.mark.slow
@pytest.mark.parametrize("Est", [KMeans, MiniBatchKMeans])
def test_check_estimator_full(Est):
    ec.check_estimator(Est(n_clusters=2), expected_failed_checks=EXPECTED_FAILED)


@pytest.mark.slow
def test_random_init_partial_fit_recovers_blobs_as_often_as_sklearn():
    """The evidence behind excluding scikit-learn's
    ``test_minibatch_kmeans_partial_fit_init[random]`` (tests/sklearn/upstream.py):
    from a "random" init, 100 ``partial_fit`` calls recover its three blobs
    for most seeds but not all, with either library (46 of 60 each when
    measured); its seed 0 is one that jaxmix's draws miss. Over 60 seeds
    jaxmix must succeed as often as scikit-learn, within two standard errors."""
    from sklearn.metrics.cluster import v_measure_score
    centers = np.array([[0.0, 5.0, 0.0, 0.0, 0.0], [1.0, 1.0, 4.0, 0.0, 0.0],
                        [1.0, 0.0, 0.0, 5.0, 1.0]])
    X, y = make_blobs(n_samples=100, centers=centers, cluster_std=1.0, random_state=42)
    wins = {}
    for name, est in (("sklearn", cluster.MiniBatchKMeans), ("jaxmix", MiniBatchKMeans)):
        wins[name] = 0
        for seed in range(60):
            km = est(init="random", n_clusters=3, random_state=seed, n_init=10)
            for _ in range(100):
                km.partial_fit(X)
            wins[name] += v_measure_score(y, km.labels_) > 0.999
    assert wins["jaxmix"] >= wins["sklearn"] - 7, wins


def test_partial_fit_and_score_compile_programs_not_operations():
    """partial_fit's seeding and score run as compiled programs: run
    operation by operation they compiled 66 and 46 small programs on a new
    shape (d=11, used by no other test), now 9 and 1."""
    from jaxmix.fit import programs
    x = np.random.default_rng(2).normal(size=(60, 11))
    before = programs.compiled_programs()
    mb = MiniBatchKMeans(n_clusters=3, random_state=0, compute_labels=False).partial_fit(x)
    seeded = programs.compiled_programs()
    score = mb.score(x)
    assert seeded - before <= 10 and programs.compiled_programs() - seeded <= 2
    d2 = ((x[:, None] - mb.cluster_centers_[None]) ** 2).sum(-1).min(1)
    np.testing.assert_allclose(score, -d2.sum(), rtol=1e-12)


def test_predict_transform_score_are_brute_force_and_share_programs_across_k():
    """The centres are padded to their bucket with the padding masked: the
    nearest real centre, its distances and the inertia as brute force
    computes them, and models of k = 3 and k = 5 (bucket 8) compile nothing
    new for one another."""
    import jax.monitoring
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, *_a, **_k: compiles.append(name) if name.endswith("backend_compile_duration")
        else None)
    x = np.random.default_rng(5).normal(size=(300, 4))
    for k in (3, 5):
        m = KMeans(k, random_state=0, n_init=2).fit(x)
        before = len(compiles)
        d2 = ((x[:, None] - m.cluster_centers_[None]) ** 2).sum(-1)
        np.testing.assert_array_equal(m.predict(x), d2.argmin(1))
        np.testing.assert_allclose(m.transform(x), np.sqrt(d2), rtol=1e-10)
        np.testing.assert_allclose(m.score(x), -d2.min(1).sum(), rtol=1e-10)
        if k == 5:
            assert len(compiles) == before
