"""jaxmix.dbscan (functional DBSCAN and predict) against sklearn.cluster.DBSCAN."""

from __future__ import annotations

import jax
import jax.extend
import numpy as np
import pytest
from sklearn.cluster import DBSCAN as SkDBSCAN
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

import jaxmix.dbscan.clusters as dbscan_mod
import jaxmix.dbscan.tiling as tiling
from jaxmix.dbscan import DBSCANResult, fit_dbscan, predict


def moons(n=1000):
    return make_moons(n_samples=n, noise=0.05, random_state=42)[0]


# Most data sets below have between 769 and 1024 samples: with the default
# block (256) they share one padded shape, hence one compilation per
# (features, dtype, method), which keeps this module fast.

def noisy_blobs(n=900, d=3, seed=0):
    """Blobs plus 10% uniform noise over their bounding box (990 samples)."""
    X, _ = make_blobs(n_samples=n, n_features=d, centers=4, cluster_std=0.6, random_state=seed)
    rng = np.random.default_rng(seed)
    return np.vstack([X, rng.uniform(X.min(0), X.max(0), size=(n // 10, d))])


def assert_same_as_sklearn(X, eps, min_samples=5, sample_weight=None, **kw):
    """Labels (border samples included), core indices and numbering equal sklearn's."""
    sk = SkDBSCAN(eps=eps, min_samples=min_samples).fit(X, sample_weight=sample_weight)
    res = fit_dbscan(X, eps, min_samples, sample_weight, **kw)
    labels, core = np.asarray(res.labels), np.flatnonzero(np.asarray(res.core))
    np.testing.assert_array_equal(core, sk.core_sample_indices_)
    assert adjusted_rand_score(sk.labels_, labels) == 1.0
    np.testing.assert_array_equal(labels, sk.labels_)
    assert int(res.n_clusters) == sk.labels_.max() + 1
    return res, sk


# --------------------------------------------------------------------------
# Partition and core set equal sklearn's
# --------------------------------------------------------------------------

# float64 on the GEMM path: slow only to spare a compilation (float32 is the
# harder case for it)
METHOD_DTYPE = [("exact", np.float64), ("exact", np.float32), ("gemm", np.float32),
                pytest.param("gemm", np.float64, marks=pytest.mark.slow)]


@pytest.mark.parametrize("method, dtype", METHOD_DTYPE)
@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_moons_seed_settings(eps, dtype, method):
    # the seed's two settings; float32 input: sklearn sees the same float32
    # values (in float64), jaxmix computes in float32
    res, sk = assert_same_as_sklearn(moons().astype(dtype), eps, method=method)
    assert res.labels.dtype == np.int32 and res.core.dtype == bool
    assert int(res.n_sweeps) <= 6


@pytest.mark.parametrize("d, method", [
    (2, "exact"), (8, "gemm"), pytest.param(2, "gemm", marks=pytest.mark.slow),
    pytest.param(8, "exact", marks=pytest.mark.slow)])
@pytest.mark.parametrize("min_samples", [1, 4, 12])
def test_noisy_blobs(d, method, min_samples):
    X = noisy_blobs(d=d)
    eps = {2: 0.5, 8: 1.6}[d]
    res, sk = assert_same_as_sklearn(X, eps, min_samples, method=method)
    assert (sk.labels_ == -1).any() or min_samples == 1


def test_elongated_diagonal_clusters():
    # thin clusters along a diagonal, far from the origin: the tree works in
    # the principal axes, whose rounding must not prune a true neighbour
    rng = np.random.default_rng(7)
    t = rng.uniform(-1, 1, size=(1000, 1))
    X = np.hstack([t, t]) * 40 + rng.normal(0, 0.02, size=(1000, 2)) + [5e3, -2e3]
    X[::2] += [0.0, 0.5]
    res, sk = assert_same_as_sklearn(X, 0.3, 4)
    assert int(res.n_clusters) > 50 and (sk.labels_ == -1).sum() > 100
    assert_same_as_sklearn(X.astype(np.float32), 0.3, 4)


@pytest.mark.slow
def test_many_features_without_rotation():
    X = noisy_blobs(n=450, d=tiling.ROTATE_MAX_FEATURES + 1)
    assert_same_as_sklearn(X, 7.5, 5)


def test_weighted_counts_as_sklearn():
    X = noisy_blobs(d=2, seed=1)
    rng = np.random.default_rng(1)
    w = rng.integers(0, 4, size=len(X)).astype(float)
    w[::17] = -1.5  # sklearn allows negative weights (they inhibit neighbours)
    assert_same_as_sklearn(X, 0.5, 6, sample_weight=w)
    # integer weights equal repetition, up to numbering (repeats keep the order)
    reps = rng.integers(1, 4, size=len(X))
    a = fit_dbscan(X, 0.5, 6, reps.astype(float))
    b = fit_dbscan(np.repeat(X, reps, axis=0), 0.5, 6)
    np.testing.assert_array_equal(np.repeat(np.asarray(a.labels), reps), np.asarray(b.labels))


@pytest.mark.parametrize("method, dtype", METHOD_DTYPE)
def test_distance_exactly_eps_counts(method, dtype):
    # sklearn counts neighbours at distance <= eps; here every lattice edge is
    # exactly eps, far from the origin (GEMM cancellation would flip them)
    g = np.stack(np.meshgrid(np.arange(30.0), np.arange(30.0)), -1).reshape(-1, 2)
    g = np.vstack([g, g[:60] + [40.0, 0.0], [[50.0, 50.0]]]) + 4096.0
    X = g.astype(dtype)
    res, sk = assert_same_as_sklearn(X, 1.0, 5, method=method)
    assert len(sk.core_sample_indices_) > 0 and (sk.labels_ == -1).any()


@pytest.mark.parametrize("method", ["exact", pytest.param("gemm", marks=pytest.mark.slow)])
def test_float64_rounding_at_eps_matches_sklearn(method):
    # a 0.1-spaced lattice far from the origin: neighbour distances round to
    # just above or below eps = 0.1; exact differences decide as sklearn does
    g = np.stack(np.meshgrid(np.arange(31), np.arange(31)), -1).reshape(-1, 2) * 0.1 + 1000.3
    rng = np.random.default_rng(0)
    X = g[rng.permutation(len(g))]
    d2 = ((X[:, None] - X[None]) ** 2).sum(-1)
    assert np.any(np.isclose(d2, 0.01, rtol=1e-9, atol=0) & (d2 > 0.01))  # both sides occur
    assert np.any(np.isclose(d2, 0.01, rtol=1e-9, atol=0) & (d2 <= 0.01))
    for ms in (3, 4, 5):
        assert_same_as_sklearn(X, 0.1, ms, method=method)


def test_duplicates_single_sample_and_min_samples_one():
    dup = np.array([[0.0, 0.0]] * 4 + [[5.0, 5.0]] + [[5.0, 5.0]] * 2 + [[9.0, 0.0]])
    grid = np.stack(np.meshgrid(np.arange(30.0), np.arange(30.0)), -1).reshape(-1, 2)
    X = np.vstack([dup, grid + 20.0])  # isolated grid points (shape shared with moons)
    assert_same_as_sklearn(X, 0.1, 3)
    assert_same_as_sklearn(X, 0.1, 1)  # every sample is core
    one = fit_dbscan(np.array([[1.0]]), 0.5, 1)  # 1 feature: shares the border tests' shape
    assert one.labels.tolist() == [0] and one.core.tolist() == [True]
    assert fit_dbscan(np.array([[1.0]]), 0.5, 2).labels.tolist() == [-1]


@pytest.mark.parametrize("block", [48, pytest.param(8, marks=pytest.mark.slow)])
def test_block_size_does_not_change_the_result(block):
    X = moons()
    ref = fit_dbscan(X, 0.1, 5)
    res = fit_dbscan(X, 0.1, 5, block=block)
    for a, b in zip(ref[:4], res[:4]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_deterministic_and_numbered_by_first_core_sample():
    X = noisy_blobs(d=2, seed=3)
    a, b = fit_dbscan(X, 0.4, 5), fit_dbscan(X, 0.4, 5)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    labels, core = np.asarray(a.labels), np.asarray(a.core)
    firsts = [labels[core][labels[core] == c] for c in range(int(a.n_clusters))]
    order = [np.flatnonzero(core & (labels == c))[0] for c in range(int(a.n_clusters))]
    assert order == sorted(order) and all(len(f) for f in firsts)


def test_neighbour_counts_are_sklearn_radius_counts():
    X = noisy_blobs(d=2, seed=2)
    res = fit_dbscan(X, 0.45, 5)
    nn = NearestNeighbors(radius=0.45).fit(X).radius_neighbors(X, return_distance=False)
    np.testing.assert_array_equal(np.asarray(res.n_neighbors), [len(r) for r in nn])


# --------------------------------------------------------------------------
# Border samples within eps of two clusters
# --------------------------------------------------------------------------

def border_line():
    """Clusters A = {0, .1, .2, .3} and B = {1, 1.1, 1.2, 1.3} on a line and a
    border sample p = 0.68, within eps = 0.4 of A's 0.3 (0.38) and of B's 1.0
    (0.32), neighbourhood {0.3, p, 1.0} too small for a core sample."""
    a = np.array([0.0, 0.1, 0.2, 0.3])
    return a, a + 1.0, 0.68


@pytest.mark.parametrize("a_first", [True, False])
def test_border_within_eps_of_two_clusters_joins_the_lowest_numbered(a_first):
    a, b, p = border_line()
    X = (np.concatenate([a, b, [p]]) if a_first else np.concatenate([b, a, [p]]))[:, None]
    res, sk = assert_same_as_sklearn(X, 0.4, 4)
    labels = np.asarray(res.labels)
    assert not res.core[-1] and labels[-1] == 0       # the first cluster, A or B
    assert set(labels[:4]) == {0} and set(labels[4:8]) == {1}
    # predict: the nearest core sample (B's 1.0 at 0.32) decides instead
    core = np.asarray(res.core)
    in_b = 1 if a_first else 0
    assert int(predict(np.array([[p]]), X[core], labels[core], 0.4)[0]) == in_b


def test_border_rule_on_random_data():
    # every border sample takes the lowest label among its core neighbours
    rng = np.random.default_rng(5)
    X = rng.uniform(0, 10, size=(1000, 2))
    res, sk = assert_same_as_sklearn(X, 0.4, 6)
    labels, core = np.asarray(res.labels), np.asarray(res.core)
    d = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    shared = 0
    for i in np.flatnonzero(~core):
        near = labels[(d[i] <= 0.4) & core]
        assert labels[i] == (near.min() if near.size else -1)
        shared += len(set(near)) > 1
    assert shared > 0  # the case occurs in this data


# --------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------

def seed_predict(sk, X_new, max_distance):
    """The seed's rule: nearest core sample (k-NN, k=1), -1 beyond max_distance."""
    nn = NearestNeighbors(n_neighbors=1).fit(sk.components_)
    dist, idx = nn.kneighbors(X_new)
    y = sk.labels_[sk.core_sample_indices_][idx[:, 0]]
    y[dist[:, 0] > max_distance] = -1
    return y


@pytest.mark.parametrize("method", ["exact", pytest.param("gemm", marks=pytest.mark.slow)])
@pytest.mark.parametrize("max_distance", [0.2, 0.05])
def test_predict_matches_seed_rule(method, max_distance):
    X = moons()
    sk = SkDBSCAN(eps=0.2).fit(X)
    rng = np.random.default_rng(0)
    X_new = np.vstack([[[-0.5, 0], [0, 0.5], [1, -0.1], [2, 1]],
                       rng.uniform([-1.5, -1], [2.5, 1.5], size=(300, 2))])
    core = sk.core_sample_indices_
    got = predict(X_new, X[core], sk.labels_[core], max_distance, method=method)
    np.testing.assert_array_equal(np.asarray(got), seed_predict(sk, X_new, max_distance))
    assert np.asarray(got)[:4].tolist() == seed_predict(sk, X_new[:4], max_distance).tolist()


def test_predict_distance_exactly_max_distance_and_no_components():
    cores, labels = np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([0, 1])
    out = predict(np.array([[0.0, 1.0], [3.0, 5.0], [3.0, 5.01], [6.0, 8.0]]), cores, labels, 1.0)
    assert out.tolist() == [0, 1, -1, -1]
    assert predict(np.ones((3, 2)), np.zeros((0, 2)), np.zeros(0, int), 1.0).tolist() == [-1] * 3


def test_predict_ties_take_the_lowest_index_core():
    cores = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert predict(np.zeros((1, 2)), cores, np.array([4, 2]), 2.0).tolist() == [4]
    assert predict(np.zeros((1, 2)), cores[::-1], np.array([2, 4]), 2.0).tolist() == [2]


# --------------------------------------------------------------------------
# Memory: nothing n x n is ever formed
# --------------------------------------------------------------------------

def _largest_intermediate(jaxpr) -> int:
    biggest = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            biggest = max(biggest, int(np.prod(getattr(v.aval, "shape", ()))))
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            biggest = max(biggest, _largest_intermediate(sub))
    return biggest


@pytest.mark.parametrize("method", ["exact", "gemm"])
def test_no_n_by_n_intermediate(method):
    n, d, block = 8192, 3, 64
    x = jax.ShapeDtypeStruct((n, d), np.float32)
    w = jax.ShapeDtypeStruct((n,), np.float32)
    jaxpr = jax.make_jaxpr(dbscan_mod._dbscan, static_argnums=(5, 6))(
        x, w, n, 0.1, 5, block, method).jaxpr
    largest = _largest_intermediate(jaxpr)
    assert largest <= max(block * block * d, n * d) < n * n // 100, largest


def test_padded_size_buckets():
    sizes = {n: dbscan_mod.padded_size(n, 256) for n in (1, 256, 257, 1000, 2049, 20000)}
    assert sizes == {1: 256, 256: 256, 257: 512, 1000: 1024, 2049: 2560, 20000: 20480}
    for n in range(1, 5000, 37):  # whole tiles, at most 25% (or one tile) of padding
        size = dbscan_mod.padded_size(n, 64)
        assert size % 64 == 0 and n <= size <= max(1.25 * n, n + 64)
    with pytest.raises(ValueError, match="use block >= 336"):
        dbscan_mod.padded_size(11_000_000, 256)


# --------------------------------------------------------------------------
# Validation at the edge
# --------------------------------------------------------------------------

@pytest.mark.parametrize("bad, match", [
    (np.array([[0.0, np.nan], [1.0, 1.0]]), "x contains NaN"),
    (np.array([[0.0, np.inf], [1.0, 1.0]]), "x contains NaN or infinity"),
    (np.zeros(5), "x must be 2-D"),
    (np.zeros((2, 2, 2)), "x must be 2-D"),
    (np.zeros((0, 2)), "x is empty"),
    (np.array([["a", "b"]]), "x must be numeric"),
])
def test_bad_data(bad, match):
    with pytest.raises(ValueError, match=match):
        fit_dbscan(bad, 0.5, 5)
    with pytest.raises(ValueError, match=match.replace("x ", "x_new ")):
        predict(bad, np.zeros((1, 2)), np.zeros(1, int), 0.5)


@pytest.mark.parametrize("kw, match", [
    (dict(eps=0.0), "eps must be a finite number > 0"),
    (dict(eps=-1.0), "eps must be a finite number > 0"),
    (dict(eps=np.inf), "eps must be a finite number > 0"),
    (dict(min_samples=0), "min_samples must be at least 1"),
    (dict(min_samples=2.5), "min_samples must be an integer"),
    (dict(sample_weight=np.ones(3)), r"sample_weight must have shape \(4,\)"),
    (dict(sample_weight=np.array([1, np.nan, 1, 1])), "sample_weight must be finite"),
    (dict(block=0), "block must be at least 1"),
    (dict(method="fast"), "method must be one of"),
])
def test_bad_parameters(kw, match):
    args = dict(eps=0.5, min_samples=2) | kw
    with pytest.raises(ValueError, match=match):
        fit_dbscan(np.zeros((4, 2)), **args)


def test_bad_predict_arguments():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="components must be 2-D with 2 features"):
        predict(x, np.zeros((4, 3)), np.zeros(4, int), 0.5)
    with pytest.raises(ValueError, match="component_labels must be 4 integers"):
        predict(x, np.zeros((4, 2)), np.zeros(3, int), 0.5)
    with pytest.raises(ValueError, match="max_distance must be a finite number > 0"):
        predict(x, np.zeros((4, 2)), np.zeros(4, int), 0.0)
    with pytest.raises(ValueError, match="components contains NaN"):
        predict(x, np.full((4, 2), np.nan), np.zeros(4, int), 0.5)


def test_result_is_a_pytree():
    res = fit_dbscan(moons(), 0.2)
    assert isinstance(res, DBSCANResult)
    assert len(jax.tree.leaves(res)) == 5
