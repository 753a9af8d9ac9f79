"""Lloyd K-Means (jaxmix.kmeans, jaxmix.fit.kmeans) against scikit-learn.

Compile time dominates on the CPU test machine, so tests share a few shapes:
``X8`` (400 x 3, k=4) for most fits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps
from sklearn.cluster import KMeans
from sklearn.cluster import kmeans_plusplus as sk_kmeans_plusplus

from jaxmix.fit.kmeans import run_lloyd
from jaxmix.kmeans.assign import assign, predict, sq_distances, transform
from jaxmix.kmeans.init import kmeans_plusplus, random_centroids
from jaxmix.kmeans.stats import inertia, kmeans_stats, relocate_empty
from jaxmix.kmeans.update import lloyd_step, scaled_tol, score
from jaxmix.fit.kmeans import fit_kmeans
from jaxmix.params import KMeansParams
from jaxmix.data.chunked import chunk

K = 4


def blob_data(seed=0, n=400, d=3, k=K, spread=6.0, offset=0.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, (k, d))
    labels = np.arange(n) % k
    return centres[labels] + rng.normal(0, 1, (n, d)) * rng.uniform(0.5, 2, (k, 1, d))[labels, 0] \
        + offset


X = blob_data()


def sk_lloyd(x, init, n_iter, tol=0.0, sample_weight=None):
    return KMeans(init.shape[0], init=init, n_init=1, max_iter=n_iter, tol=tol,
                  algorithm="lloyd").fit(x, sample_weight=sample_weight)


# --------------------------------------------------------------------------
# distances and assignment
# --------------------------------------------------------------------------

def test_assign_matches_bruteforce_and_breaks_ties_by_first_index(rng):
    x = rng.normal(size=(300, 5))
    c = rng.normal(size=(7, 5))
    c[4] = c[1]  # duplicate centroid: ties must go to the first (as sklearn's argmin)
    d2 = ((x[:, None] - c[None]) ** 2).sum(-1)
    labels, dist = assign(x, c)
    np.testing.assert_array_equal(np.asarray(labels), d2.argmin(1))
    assert not np.any(np.asarray(labels) == 4)
    np.testing.assert_allclose(np.asarray(dist), d2.min(1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.asarray(sq_distances(x, c)), d2, rtol=1e-10, atol=1e-10)


def test_stats_and_exact_inertia_over_chunks(rng):
    x = rng.normal(size=(101, 4))
    w = rng.uniform(0.1, 2, 101)
    c = rng.normal(size=(2, 5, 4))  # two restarts
    whole = kmeans_stats(c, chunk(x, None, w))
    chunked = kmeans_stats(c, chunk(x, 16, w))
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10)
    for r in range(2):
        d2 = ((x[:, None] - c[r][None]) ** 2).sum(-1)
        lab = d2.argmin(1)
        np.testing.assert_allclose(np.asarray(whole.counts[r]),
                                   np.bincount(lab, w, minlength=5), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(whole.sums[r]),
                                   [(w[lab == j, None] * x[lab == j]).sum(0) for j in range(5)],
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(float(inertia(c[r], chunk(x, 16, w))),
                                   (w * d2.min(1)).sum(), rtol=1e-12)


# --------------------------------------------------------------------------
# Lloyd against sklearn
# --------------------------------------------------------------------------

@pytest.mark.parametrize("n_iter", [1, 3, 10])
def test_same_centroids_as_sklearn_after_n_iterations(n_iter):
    init = X[[0, 1, 2, 5]] + 0.3  # a poor start, so that 10 iterations still move
    sk = sk_lloyd(X, init, n_iter)
    res = fit_kmeans(0, X, K, init_centroids=init, tol=0.0, max_iter=n_iter)
    assert int(res.n_iter[0]) == sk.n_iter_
    np.testing.assert_allclose(np.asarray(res.best_params.centroids), sk.cluster_centers_,
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(-float(res.objective[0]), sk.inertia_, rtol=1e-10)


def test_float32_far_from_origin_matches_sklearn():
    x = blob_data(1, offset=1e4).astype(np.float32)
    init = x[[0, 1, 2, 3]]
    sk = sk_lloyd(x, init, 20)
    res = fit_kmeans(0, x, K, init_centroids=init, tol=0.0, max_iter=20)
    assert res.best_params.centroids.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(res.best_params.centroids), sk.cluster_centers_,
                               rtol=0, atol=1e-3)
    np.testing.assert_allclose(-float(res.objective[0]), sk.inertia_, rtol=1e-4)


def test_tol_semantics_match_sklearn():
    """Stop when the total squared shift <= tol * mean feature variance."""
    init = X[[0, 1, 2, 5]] + 0.3
    for tol in (1e-1, 1e-3):
        sk = sk_lloyd(X, init, 300, tol=tol)
        res = fit_kmeans(0, X, K, init_centroids=init, tol=tol, max_iter=300)
        assert bool(res.converged[0])
        assert int(res.n_iter[0]) == sk.n_iter_
        np.testing.assert_allclose(np.asarray(res.best_params.centroids), sk.cluster_centers_,
                                   rtol=1e-9, atol=1e-9)


def test_inertia_within_1e4_of_sklearn_best_of_10():
    x = blob_data(2, n=600, d=4, k=6, spread=4.0)
    sk = KMeans(6, n_init=10, random_state=0, algorithm="lloyd").fit(x)
    res = fit_kmeans(jax.random.PRNGKey(0), x, 6, n_restarts=10)
    best = -float(res.objective[res.best])
    assert best <= sk.inertia_ * (1 + 1e-4), (best, sk.inertia_)
    assert best == -float(np.max(np.asarray(res.objective)))
    # the reported objective is the exact inertia of the returned centroids
    np.testing.assert_allclose(best, -float(score(res.best_params, x)), rtol=1e-12)
    assert np.all(np.asarray(res.converged)) and not np.any(np.asarray(res.degenerate))


def test_restarts_are_independent_with_their_own_stopping():
    inits = np.stack([X[[0, 1, 2, 5]] + 0.3, X[[0, 4, 8, 12]], X[[3, 2, 1, 0]] - 0.1])
    batched = fit_kmeans(0, X, K, init_centroids=inits, tol=1e-4, max_iter=50)
    assert batched.params.centroids.shape == (3, K, 3)
    for r in range(3):
        single = fit_kmeans(0, X, K, init_centroids=inits[r], tol=1e-4, max_iter=50)
        assert int(batched.n_iter[r]) == int(single.n_iter[0])
        np.testing.assert_allclose(np.asarray(batched.params.centroids[r]),
                                   np.asarray(single.params.centroids[0]), rtol=1e-12)
    assert len(set(np.asarray(batched.n_iter).tolist())) > 1  # they did stop separately


def test_sample_weight_equals_repetition():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 4, X.shape[0])
    counts[:K] = 1
    init = X[:K]
    weighted = fit_kmeans(0, X, K, init_centroids=init, tol=0.0, max_iter=10,
                          sample_weight=counts.astype(float))
    repeated = fit_kmeans(0, np.repeat(X, counts, axis=0), K, init_centroids=init, tol=0.0,
                          max_iter=10)
    np.testing.assert_allclose(np.asarray(weighted.params.centroids),
                               np.asarray(repeated.params.centroids), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.asarray(weighted.objective), np.asarray(repeated.objective),
                               rtol=1e-9)
    sk = sk_lloyd(X, init, 10, sample_weight=counts.astype(float))
    np.testing.assert_allclose(np.asarray(weighted.best_params.centroids),
                               sk.cluster_centers_, rtol=1e-9, atol=1e-9)


def test_chunking_does_not_change_the_fit():
    init = X[[0, 1, 2, 5]] + 0.3
    init[3] = 100.0  # forces a relocation, whose farthest-sample search spans chunks
    whole = fit_kmeans(0, X, K, init_centroids=init, tol=0.0, max_iter=10)
    chunked = fit_kmeans(0, X, K, init_centroids=init, tol=0.0, max_iter=10, chunk_size=37)
    np.testing.assert_allclose(np.asarray(chunked.params.centroids),
                               np.asarray(whole.params.centroids), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------
# empty clusters
# --------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["far", "two_far", "duplicate"])
def test_empty_clusters_reseeded_like_sklearn(case):
    init = X[[0, 1, 2, 5]] + 0.3
    if case == "far":
        init[2] = 50.0
    elif case == "two_far":  # two empties: sklearn's order is defined for two
        init[1], init[3] = 50.0, -60.0
    else:
        init[3] = init[0]
    for n_iter in (1, 2, 6):
        sk = sk_lloyd(X, init, n_iter)
        res = fit_kmeans(0, X, K, init_centroids=init, tol=0.0, max_iter=n_iter)
        np.testing.assert_allclose(np.asarray(res.best_params.centroids), sk.cluster_centers_,
                                   rtol=1e-9, atol=1e-9, err_msg=f"{case} after {n_iter}")
    assert np.all(np.isfinite(np.asarray(res.params.centroids)))


def test_relocation_takes_the_farthest_sample_out_of_its_cluster(rng):
    x = np.concatenate([rng.normal(0, 1, (50, 2)), [[30.0, 0.0]]])
    c = np.array([[[0.0, 0.0], [100.0, 100.0]]])  # cluster 1 is empty
    data = chunk(x, 8)
    s = kmeans_stats(c, data)
    assert float(s.counts[0, 1]) == 0
    moved = relocate_empty(s, jnp.asarray(c), data)
    np.testing.assert_allclose(np.asarray(moved.counts[0]), [50, 1])
    np.testing.assert_allclose(np.asarray(moved.sums[0, 1]), [30.0, 0.0])
    np.testing.assert_allclose(np.asarray(moved.sums[0, 0]), x[:50].sum(0), atol=1e-9)


def test_more_clusters_than_distinct_points_stays_finite():
    x = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]]), 10, axis=0)
    res = fit_kmeans(0, x, 5, n_restarts=3, max_iter=20)
    assert np.all(np.isfinite(np.asarray(res.params.centroids)))
    assert not np.any(np.asarray(res.failed))
    np.testing.assert_allclose(-float(res.objective[res.best]), 0.0, atol=1e-9)


def test_low_level_lloyd_keeps_empty_centroids_unless_asked():
    """Empty centroids stay where they are unless relocation is asked for."""
    data = chunk(X, None)
    init = X[[0, 1, 2, 5]] + 0.3
    init[2] = 1e3
    p, _ = lloyd_step(KMeansParams(jnp.asarray(init)), data)
    np.testing.assert_array_equal(np.asarray(p.centroids[2]), init[2])
    p, _ = lloyd_step(KMeansParams(jnp.asarray(init)), data, relocate_empty=True)
    assert np.abs(np.asarray(p.centroids[2])).max() < 100
    res = run_lloyd(data, jnp.asarray(init)[None], scaled_tol(data, 1e-4), 20, relocate=False)
    np.testing.assert_array_equal(np.asarray(res.params.centroids[0, 2]), init[2])


# --------------------------------------------------------------------------
# seeding
# --------------------------------------------------------------------------

def _plusplus_pairs(x, w, n_draws, trials):
    keys = jax.random.split(jax.random.PRNGKey(1), n_draws)
    idx = jax.jit(jax.vmap(lambda key: kmeans_plusplus(key, x, w, 2, trials)[1]))(keys)
    return np.asarray(idx)


def test_kmeans_plusplus_follows_the_weighted_d2_distribution():
    """With one local trial, P(first=i, second=j) = w_i / W * w_j D_ij^2 / sum_l w_l D_il^2."""
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 1.0], [-1.0, -1.0], [2.0, -2.0]])
    w = np.array([1.0, 2.0, 0.5, 1.0, 1.5, 0.0])  # the last sample must never be drawn
    n_draws = 30000
    idx = _plusplus_pairs(jnp.asarray(x), jnp.asarray(w), n_draws, 1)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    cond = w[None] * d2
    expected = (w / w.sum())[:, None] * cond / cond.sum(1, keepdims=True)
    observed = np.zeros_like(expected)
    np.add.at(observed, (idx[:, 0], idx[:, 1]), 1)
    assert observed[5].sum() == 0 and observed[:, 5].sum() == 0
    cells = expected > 0
    assert observed[~cells].sum() == 0
    _, p = sps.chisquare(observed[cells], n_draws * expected[cells])
    assert p > 1e-3, p
    # the test has power: D (not D^2) sampling is rejected on the same counts
    cond_d = w[None] * np.sqrt(d2)
    wrong = (w / w.sum())[:, None] * cond_d / cond_d.sum(1, keepdims=True)
    _, p_wrong = sps.chisquare(observed[cells], n_draws * wrong[cells])
    assert p_wrong < 1e-6, p_wrong


def test_greedy_kmeans_plusplus_potential_matches_sklearn():
    """Greedy seeding (2 + ln k trials): the mean potential over many seeds
    matches sklearn's and is clearly below plain D^2 sampling's."""
    x = blob_data(4, n=300, d=2, k=8, spread=5.0)
    n_seeds = 200
    xj, w = jnp.asarray(x), jnp.ones(x.shape[0])
    keys = jax.random.split(jax.random.PRNGKey(0), n_seeds)

    def potentials(trials):
        c = jax.jit(jax.vmap(lambda key: kmeans_plusplus(key, xj, w, 8, trials)[0]))(keys)
        return np.asarray(jax.vmap(lambda c: jnp.sum(assign(xj, c)[1]))(c))

    ours, plain = potentials(None), potentials(1)
    theirs = np.array([((x[:, None] - sk_kmeans_plusplus(x, 8, random_state=s)[0][None]) ** 2)
                       .sum(-1).min(1).sum() for s in range(n_seeds)])
    _, p_same = sps.mannwhitneyu(ours, theirs)
    _, p_plain = sps.mannwhitneyu(ours, plain, alternative="less")
    assert p_same > 1e-3, (ours.mean(), theirs.mean())
    assert p_plain < 1e-3, (ours.mean(), plain.mean())


def _reference_plusplus(key, x, w, k, n_trials):
    """k-means++ as documented, step by step in float32 numpy: the first
    centre from ``uniform(fold_in(key, 0))``, candidate ``t`` of centre ``c``
    from ``uniform(fold_in(fold_in(key, c), t))``; a draw is the first index
    whose cumulative weight reaches ``total * (1 - u)``. Exact for small
    integer data (every sum is an integer below 2^24)."""
    f32 = np.float32
    x, w = np.asarray(x, f32), np.asarray(w, f32)
    last_valid = np.flatnonzero(w > 0).max(initial=0)

    def draw(p, key):
        u = f32(jax.random.uniform(key, (), jnp.float32))
        cum = np.cumsum(p, dtype=f32)
        return min(int(np.searchsorted(cum, cum[-1] * (f32(1) - u), side="left")), len(p) - 1)

    idx = [draw(w, jax.random.fold_in(key, 0))]
    closest = ((x - x[idx[0]]) ** 2).sum(-1)
    for c in range(1, k):
        cands = [min(draw(w * closest, jax.random.fold_in(jax.random.fold_in(key, c), t)),
                     last_valid) for t in range(n_trials)]
        new = np.minimum(closest[None], ((x[None] - x[cands][:, None]) ** 2).sum(-1))
        best = int(np.argmin((w[None] * new).sum(1)))
        idx.append(cands[best])
        closest = new[best]
    return idx


@pytest.mark.parametrize("typed_key", [False, True])
def test_kmeans_plusplus_draws_from_the_documented_keys(rng, typed_key):
    """Seeds equal a plain step-by-step reference of the key scheme and the
    draw rule (``n_trials`` traced below ``max_trials``, zero weights)."""
    x = rng.integers(-6, 7, (40, 2)).astype(np.float32)
    w = rng.integers(0, 4, 40).astype(np.float32)
    w[-3:] = 0.0
    seeds = [jax.random.key(s) if typed_key else jax.random.PRNGKey(s) for s in range(4)]
    run = jax.jit(lambda key, t: kmeans_plusplus(key, jnp.asarray(x), jnp.asarray(w), 5, t, 4)[1])
    for key in seeds:
        for t in (1, 3):
            assert np.asarray(run(key, t)).tolist() == _reference_plusplus(key, x, w, 5, t)


def test_kmeans_plusplus_is_prefix_stable_and_ignores_max_trials(rng):
    x, w = jnp.asarray(rng.normal(size=(300, 3))), jnp.ones(300)
    keys = jax.random.split(jax.random.PRNGKey(3), 6)
    run = lambda k, m: np.asarray(jax.jit(jax.vmap(  # noqa: E731
        lambda key: kmeans_plusplus(key, x, w, k, 3, m)[1]))(keys))
    three = run(3, 3)
    np.testing.assert_array_equal(run(7, 3)[:, :3], three)
    np.testing.assert_array_equal(run(3, 6), three)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 33])
def test_search_is_the_first_index_reaching_the_target(n):
    """The bisection equals ``searchsorted(side="left")`` on a non-decreasing
    array with flat runs, clipped to the last index."""
    from jaxmix.kmeans.init import _search
    cum = np.cumsum(np.arange(n) % 3 == 1).astype(np.float32)  # runs of equal values
    r = np.r_[-1.0, 0.0, np.unique(cum), cum[-1] + 0.5, 0.25].astype(np.float32)
    want = np.minimum(np.searchsorted(cum, r, side="left"), n - 1)
    np.testing.assert_array_equal(np.asarray(_search(jnp.asarray(cum), jnp.asarray(r))), want)


def test_random_init_draws_distinct_positive_weight_samples(rng):
    x = jnp.asarray(rng.normal(size=(30, 2)))
    w = jnp.asarray(np.r_[np.zeros(10), np.ones(20)])
    for s in range(20):
        c, idx = random_centroids(jax.random.PRNGKey(s), x, w, 8)
        idx = np.asarray(idx)
        assert len(set(idx.tolist())) == 8 and idx.min() >= 10
        np.testing.assert_array_equal(np.asarray(c), np.asarray(x)[idx])


def test_random_init_fit_is_deterministic_and_finite():
    a = fit_kmeans(jax.random.PRNGKey(5), X, K, init="random", n_restarts=3)
    b = fit_kmeans(jax.random.PRNGKey(5), X, K, init="random", n_restarts=3)
    np.testing.assert_array_equal(np.asarray(a.params.centroids), np.asarray(b.params.centroids))
    assert np.all(np.isfinite(np.asarray(a.objective)))


# --------------------------------------------------------------------------
# predict / transform / score
# --------------------------------------------------------------------------

def test_predict_transform_score_match_sklearn(rng):
    sk = KMeans(K, n_init=1, random_state=0).fit(X)
    p = KMeansParams(jnp.asarray(sk.cluster_centers_))
    xt = rng.normal(0, 5, (50, 3))
    wt = rng.uniform(0, 2, 50)
    np.testing.assert_array_equal(np.asarray(predict(p, xt)), sk.predict(xt))
    np.testing.assert_allclose(np.asarray(transform(p, xt)), sk.transform(xt), rtol=1e-9)
    np.testing.assert_allclose(float(score(p, xt)), sk.score(xt), rtol=1e-12)
    np.testing.assert_allclose(float(score(p, xt, wt, chunk_size=7)),
                               sk.score(xt, sample_weight=wt), rtol=1e-12)


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(x=np.array([[0.0, np.nan]] * 10)), "X contains NaN"),
    (dict(x=np.zeros(10)), "X must be 2-D"),
    (dict(x=np.zeros((0, 2))), "X is empty"),
    (dict(x=np.array([["a", "b"]] * 5)), "X must be numeric"),
    (dict(n_clusters=500), "n_clusters=500 is larger"),
    (dict(n_clusters=0), "n_clusters must be at least 1"),
    (dict(n_clusters=2.5), "n_clusters must be an integer"),
    (dict(n_restarts=0), "n_restarts must be at least 1"),
    (dict(init="kmeans"), "init must be one of"),
    (dict(init_centroids=np.zeros((3, 3))), r"init_centroids must have shape \(4, 3\)"),
    (dict(init_centroids=np.full((4, 3), np.nan)), "init_centroids must be finite"),
    (dict(init_centroids=np.zeros((2, 4, 3)), n_restarts=3), "init_centroids holds 2 restarts"),
    (dict(tol=-1.0), "tol must be"),
    (dict(max_iter=-1), "max_iter must be at least 0"),
    (dict(chunk_size=0), "chunk_size must be at least 1"),
    (dict(sample_weight=np.ones(3)), r"sample_weight must have shape \(400,\)"),
    (dict(sample_weight=-np.ones(400)), "sample_weight must be finite, non-negative"),
    (dict(sample_weight=np.r_[np.ones(3), np.zeros(397)]), "fewer positive entries"),
])
def test_bad_input_raises_naming_the_argument(kwargs, match):
    args = dict(x=X, n_clusters=K)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fit_kmeans(0, args.pop("x"), args.pop("n_clusters"), **args)


def test_assignment_of_raw_samples_far_from_the_origin_is_exact_in_float32():
    """predict / transform / inertia take raw samples (fits centre theirs):
    distances are taken about the centroids' mean, so clusters of spread 0.3
    at 3e4 from the origin are assigned as the exact (float64) rule does."""
    rng = np.random.default_rng(3)
    c = rng.normal(size=(3, 2)) * 3 + 3e4
    x = (c[np.arange(900) % 3] + rng.normal(size=(900, 2)) * 0.3).astype(np.float32)
    centroids = jnp.asarray(c, jnp.float32)
    exact = np.argmin(((x[:, None].astype(np.float64) - c[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(np.asarray(predict(KMeansParams(centroids), x)), exact)
    ref = ((x.astype(np.float64) - c[exact]) ** 2).sum()
    np.testing.assert_allclose(-float(score(KMeansParams(centroids), x)), ref, rtol=1e-3)
