"""Shape buckets (jaxmix.fit.buckets): padded fits equal unpadded ones, and
refits inside a bucket compile nothing."""

import collections

import jax
import jax.monitoring
import numpy as np
import optax
import pytest

import jaxmix
from jaxmix.fit.buckets import (bucket, component_bucket, exact_shapes, history_bucket,
                                restart_bucket, sample_bucket)
from jaxmix.fit.rows import TRACE_COUNT

RNG = np.random.default_rng(3)
X = np.concatenate([RNG.normal(c, 0.7, (60, 3)) for c in (-3.0, 0.0, 3.0)]).astype(np.float32)
TYPES = ("full", "tied", "diag", "spherical")
COMPILES = collections.Counter()


def _count(name, *_args, **_kwargs):
    if name == "/jax/core/compile/backend_compile_duration":
        COMPILES["n"] += 1


jax.monitoring.register_event_duration_secs_listener(_count)


@pytest.mark.parametrize("per_octave", [1, 2, 8])
def test_bucket_is_the_smallest_size_of_its_form(per_octave):
    """Brute force: the smallest m * 2^e >= n with per_octave <= m < 2 per_octave."""
    sizes = sorted({m << e for e in range(12) for m in range(per_octave, 2 * per_octave)}
                   | set(range(1, per_octave)))
    for n in range(1, 1500):
        want = min(s for s in sizes if s >= n)
        assert bucket(n, 1, per_octave) == want
        assert (want - n) * per_octave < want or want == n


def test_buckets_and_exact_shapes():
    assert [component_bucket(k) for k in (1, 8, 9, 12, 13)] == [8, 8, 12, 12, 16]
    assert [restart_bucket(r) for r in (1, 3, 5, 10)] == [1, 3, 6, 12]
    assert sample_bucket(100) == 256 and history_bucket(100) == 1024 == history_bucket(1000)
    with exact_shapes():
        assert (component_bucket(3), restart_bucket(5), sample_bucket(100),
                history_bucket(7)) == (3, 5, 100, 7)
    assert component_bucket(3) == 8


def _same(a, b, atol=2e-5):
    for name in ("objective", "n_iter", "converged", "failed", "degenerate"):
        np.testing.assert_allclose(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)),
                                   rtol=1e-5, atol=atol, err_msg=name)
    # the best restart: the same one, or one tied with it to rounding (two
    # restarts that reach the same optimum differ in the last float32 bits)
    best_a, best_b = int(a.best), int(b.best)
    np.testing.assert_allclose(np.asarray(a.objective)[[best_a, best_b]],
                               np.asarray(b.objective)[[best_b, best_a]], rtol=1e-5,
                               err_msg="best")  # the objectives' own tolerance
    for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        assert u.shape == v.shape
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-4, atol=atol)
    ha, hb = np.asarray(a.history), np.asarray(b.history)
    assert ha.shape == hb.shape
    np.testing.assert_array_equal(np.isnan(ha), np.isnan(hb))
    np.testing.assert_allclose(ha[~np.isnan(ha)], hb[~np.isnan(hb)], rtol=1e-5, atol=atol)


# The fit of the padded-versus-exact tests below: k=3 padded to 8 components,
# R=5 to 6 rows, n=180 to 256 rows, max_iter=40 to a history of 1024. Tests
# that only need some fit of X use these shapes too (one compiled program).
EM = dict(n_restarts=5, max_iter=40)
# MAP-EM padded: diag in the default run (the prior's padded-component rule is
# one for every family); full (9 s), tied and spherical with the prior in the
# slow set (each case compiles two programs, the padded and the exact one).
PRIOR_CASES = [(ct, None) for ct in TYPES] + [("diag", "default")] + [
    pytest.param(ct, "default", marks=pytest.mark.slow) for ct in ("full", "tied", "spherical")]


@pytest.mark.parametrize("covariance_type, prior", PRIOR_CASES)
def test_padded_em_equals_unpadded(covariance_type, prior):
    """k=3 padded to 8 components, R=5 to 6 rows, n=180 to 256 rows,
    max_iter=40 to a history of 1024: the same fit as the exact shapes. The
    slow set adds MAP-EM (``prior="default"``) for the tied and spherical
    families."""
    args = dict(covariance_type=covariance_type, prior=prior, **EM)
    padded = jaxmix.fit_gmm(0, X, 3, **args)
    with exact_shapes():
        exact = jaxmix.fit_gmm(0, X, 3, **args)
    _same(padded, exact)
    assert padded.params.means.shape == (5, 3, 3) and padded.history.shape == (5, 40)


@pytest.mark.parametrize("init", ["kmeans", "random", "random_from_data", "k-means++"])
def test_padded_em_equals_unpadded_for_every_init(init):
    """The shapes of test_padded_em_equals_unpadded (diag): its programs serve
    the "kmeans" case, another key gives other starts."""
    args = dict(covariance_type="diag", init=init, **EM)
    padded = jaxmix.fit_gmm(1, X, 3, **args)
    with exact_shapes():
        exact = jaxmix.fit_gmm(1, X, 3, **args)
    _same(padded, exact)


def test_padded_em_from_init_params_and_with_weights():
    start = jaxmix.fit_gmm(0, X, 3, n_restarts=EM["n_restarts"], max_iter=2).best_params
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    args = dict(init_params=start, n_restarts=2, sample_weight=w)
    padded = jaxmix.fit_gmm(0, X, 3, **args)
    with exact_shapes():
        exact = jaxmix.fit_gmm(0, X, 3, **args)
    _same(padded, exact)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_padded_kmeans_equals_unpadded(init):
    padded = jaxmix.fit_kmeans(0, X, 3, n_restarts=5, init=init)
    with exact_shapes():
        exact = jaxmix.fit_kmeans(0, X, 3, n_restarts=5, init=init)
    _same(padded, exact, atol=1e-3)
    c0 = X[:3]
    padded = jaxmix.fit_kmeans(0, X, 3, init_centroids=c0, n_restarts=2)
    with exact_shapes():
        exact = jaxmix.fit_kmeans(0, X, 3, init_centroids=c0, n_restarts=2)
    _same(padded, exact, atol=1e-3)


def test_padded_kmeans_from_centroids_outside_the_data():
    """Masked centroids are copies of centroid 0, not parked far away: real
    starting centroids far outside the data must not let a masked one take
    samples (sklearn's and the unpadded fit's solution, true inertia)."""
    from sklearn.cluster import KMeans

    x = np.concatenate([RNG.normal(3, 0.5, (50, 2)), RNG.normal(-3, 0.5, (50, 2))])
    c0 = np.array([[200.0, 200.0], [300.0, 300.0]])
    padded = jaxmix.fit_kmeans(0, x, 2, init_centroids=c0)
    with exact_shapes():
        exact = jaxmix.fit_kmeans(0, x, 2, init_centroids=c0)
    sk = KMeans(2, init=c0, n_init=1, algorithm="lloyd").fit(x)
    cents = np.asarray(padded.best_params.centroids)
    true = np.sum(np.min(((x[:, None] - cents[None]) ** 2).sum(-1), axis=1))
    np.testing.assert_allclose(-float(padded.objective[0]), true, rtol=1e-5)
    np.testing.assert_allclose(-float(padded.objective[0]), sk.inertia_, rtol=1e-5)
    _same(padded, exact, atol=1e-3)


def test_padded_streamed_kmeans_keeps_samples_beyond_the_init_sample(tmp_path):
    """A streamed fit seeds on init_size rows; samples beyond them (far
    outliers) still belong to real clusters: equal to the in-memory fit."""
    x = np.concatenate([RNG.normal(3, 0.5, (300, 2)), RNG.normal(-3, 0.5, (300, 2)),
                        np.full((3, 2), 60.0)]).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x[RNG.permutation(len(x))])
    streamed = jaxmix.fit_kmeans(0, str(path), 2, init_size=200)
    cents = np.asarray(streamed.best_params.centroids)
    true = np.sum(np.min(((x[:, None] - cents[None]) ** 2).sum(-1), axis=1))
    np.testing.assert_allclose(-float(streamed.objective[0]), true, rtol=1e-4)


def test_padded_gradient_fit_equals_unpadded():
    # sgd: adam's normalised steps turn rounding-level gradient differences
    # (another reduction order over the padded rows, on the exact path this
    # small fit takes) into steps of the learning rate's size (9e-4 here)
    opt = optax.sgd(0.05)
    padded = jaxmix.fit_gradient(0, X, 3, opt, n_restarts=3, max_iter=30)
    with exact_shapes():
        exact = jaxmix.fit_gradient(0, X, 3, opt, n_restarts=3, max_iter=30)
    _same(padded, exact, atol=1e-4)


@pytest.mark.parametrize("opt, cov, prior", [(optax.lbfgs(), "full", "default"),
                                             (optax.adam(0.05), "spherical", None)])
def test_padded_components_of_a_gradient_fit_change_nothing(opt, cov, prior):
    """k=3 runs in the 8-component bucket with a mask: the same fit as k=3
    alone (float64: L-BFGS's line search in float32 turns rounding-level
    differences into different trial points mid-fit)."""
    x = X.astype(np.float64)
    kw = dict(covariance_type=cov, prior=prior, n_restarts=2, max_iter=20, tol=0.0)
    padded = jaxmix.fit_gradient(0, x, 3, opt, **kw)
    with exact_shapes():
        exact = jaxmix.fit_gradient(0, x, 3, opt, **kw)
    assert padded.params.means.shape == exact.params.means.shape == (2, 3, 3)
    _same(padded, exact, atol=1e-8)


def test_a_gradient_k_sweep_compiles_one_program():
    """k = 2..8 share the 8-component bucket: at most one trace (none where
    test_padded_gradient_fit_equals_unpadded compiled it already)."""
    opt = optax.sgd(0.05)
    before = TRACE_COUNT["gradient"]
    for k in range(2, 9):
        res = jaxmix.fit_gradient(0, X, k, opt, n_restarts=3, max_iter=30)
        assert res.params.means.shape == (3, k, 3)
    assert TRACE_COUNT["gradient"] - before <= 1


def test_restart_r_does_not_depend_on_how_many_run():
    """Restart r starts from fold_in(key, r): R=3 (a program of 3 rows) is the
    first three of R=5 (6 rows: the shapes of the padded fits above)."""
    few, many = jaxmix.fit_gmm(4, X, 3, n_restarts=3), jaxmix.fit_gmm(4, X, 3, n_restarts=5)
    np.testing.assert_allclose(np.asarray(few.params.means),
                               np.asarray(many.params.means[:3]), atol=1e-5)
    few, many = jaxmix.fit_kmeans(4, X, 3, n_restarts=3), jaxmix.fit_kmeans(4, X, 3,
                                                                          n_restarts=5)
    np.testing.assert_allclose(np.asarray(few.params.centroids),
                               np.asarray(many.params.centroids[:3]), atol=1e-5)


def test_a_k_sweep_compiles_two_programs_and_refits_compile_nothing():
    """k = 2..9 (buckets 8 and 12): at most two traces of the EM program;
    then other max_iter, tol, reg_covar, R and k inside the buckets compile
    nothing at all (no program, large or small). R=5 and n=170: the restart
    and sample buckets of the padded fits above (6 rows, 256 samples), whose
    k-bucket-8 program this file has compiled already."""
    x = X[:170]
    before = TRACE_COUNT["gmm"]
    for k in range(2, 10):
        jaxmix.fit_gmm(0, x, k, n_restarts=5)
    assert TRACE_COUNT["gmm"] - before <= 2
    compiles = COMPILES["n"]
    jaxmix.fit_gmm(0, x, 5, n_restarts=6, max_iter=37, tol=1e-5, reg_covar=1e-4)
    jaxmix.fit_gmm(1, x, 7, n_restarts=5, max_iter=120)
    jaxmix.fit_gmm(0, x[:165], 4, n_restarts=5)  # n within its sample bucket
    assert COMPILES["n"] == compiles


def test_small_passes_take_the_simple_programs():
    """The seed notebook fit's shapes (1280 padded rows, d=2, k=8, 12 rows)
    are a small pass (the exact E-step alone); ten times the rows or a
    stream are not. Up to ONE_SLOT_EACH (the demo's sweep, 64 rows) every
    row gets its own slot; above it, or for a stream, Lloyd takes 8 slots on
    a CPU and EM 16."""
    from jaxmix.data.chunked import SMALL_PASS, chunk, pass_elements, small_pass
    from jaxmix.fit.buckets import ONE_SLOT_EACH, restart_slots
    data = chunk(np.zeros((1280, 2), np.float32), 640)
    stream = iter([np.zeros((1280, 2))])
    assert 1280 * 2 * 8 * 12 <= SMALL_PASS
    assert small_pass(data, 8 * 12) and not small_pass(data, 8 * 120)
    assert not small_pass(stream, 1) and pass_elements(stream, 1) is None
    assert pass_elements(data, 8 * 64) == 1280 * 2 * 8 * 64 <= ONE_SLOT_EACH
    assert restart_slots(12, "lloyd", pass_elements(data, 8 * 12)) == 12
    assert restart_slots(64, "em", pass_elements(data, 8 * 64)) == 64
    if jax.default_backend() == "cpu":
        assert restart_slots(12, "lloyd") == 8 and restart_slots(120, "em") == 16
        assert restart_slots(200, "em", pass_elements(data, 8 * 2000)) == 16


def test_chunks_are_sized_for_the_rows_stepped_together(monkeypatch):
    """The driver steps at most restart_slots rows at a time and the final
    passes go in groups of that size, so 200 restarts are chunked like 16
    (the rows once set the chunk: 256-row chunks for 200 restarts on 2e4 x 16
    samples, k=16). The grouped final pass is the all-rows one: each row's
    mean log-likelihood equals log_prob's mean, for more rows than a group."""
    import jaxmix.fit.buckets as buckets
    from jaxmix.data.chunked import chunk, chunk_rows
    from jaxmix.fit.gmm import em_row_elements, mean_log_likelihoods
    from jaxmix.gmm.density import log_prob
    from jaxmix.gmm.stats import row_elements
    if jax.default_backend() == "cpu":
        assert em_row_elements(200, 16, 16) == row_elements(16, 16, 16)
        assert chunk_rows(20_000, em_row_elements(200, 16, 16)) == 1000
    assert em_row_elements(3, 4, 2) == row_elements(3, 4, 2)
    fit = jaxmix.fit_gmm(0, X, 3, n_restarts=5, max_iter=3)  # this file's shapes
    monkeypatch.setattr(buckets, "RESTART_SLOTS", 2)  # groups of 2, 2 and 1
    scores = mean_log_likelihoods(fit.params, chunk(jax.numpy.asarray(X), 64))
    want = [np.mean(np.asarray(log_prob(jax.tree.map(lambda a: a[r], fit.params), X)))
            for r in range(5)]
    np.testing.assert_allclose(np.asarray(scores), want, rtol=1e-5)


MB = dict(n_restarts=5, batch_size=32, max_iter=3)


@pytest.mark.parametrize("case", ["k-means++", "random", "weighted", "init_centroids"])
def test_padded_minibatch_kmeans_equals_unpadded(case):
    """k=3 padded to 8 clusters, R=5 to 6 runs, batches of 32 rows drawn as
    they are (one program for the four cases but init_centroids): the same
    runs as the exact shapes."""
    args = dict(MB, init="random" if case == "random" else "k-means++")
    if case == "weighted":
        args["sample_weight"] = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    if case == "init_centroids":
        args["init_centroids"] = np.stack([X[[0, 70, 140]] + r for r in range(5)])
    padded = jaxmix.fit_minibatch_kmeans(2, X, 3, **args)
    with exact_shapes():
        exact = jaxmix.fit_minibatch_kmeans(2, X, 3, **args)
    _same(padded, exact, atol=1e-4)
    assert padded.params.centroids.shape == (5, 3, 3)


@pytest.mark.parametrize("sizes", [dict(batch_size=21, init_size=15),
                                   dict(batch_size=5, reassignment_ratio=0.5),
                                   dict(batch_size=25, init="random", sample_weight=True)])
def test_padded_minibatch_batches_equal_unpadded(sizes):
    """Batches of 21, 5, 25 rows drawn in buckets of 24, 16, 28 (init
    samples of 15, 60, 75 in 16, 64, 80), the extra rows weighted 0: the
    same batches, centroids and step counts as the exact shapes."""
    args = dict(sizes)
    if args.pop("sample_weight", False):
        args["sample_weight"] = np.random.default_rng(2).uniform(0.5, 2.0, len(X))
    padded = jaxmix.fit_minibatch_kmeans(3, X, 3, n_restarts=3, max_iter=3, **args)
    with exact_shapes():
        exact = jaxmix.fit_minibatch_kmeans(3, X, 3, n_restarts=3, max_iter=3, **args)
    np.testing.assert_array_equal(np.asarray(padded.params.centroids),
                                  np.asarray(exact.params.centroids))
    np.testing.assert_array_equal(padded.n_iter, exact.n_iter)
    _same(padded, exact, atol=1e-4)


def test_minibatch_batch_sizes_in_a_bucket_share_one_program():
    """batch_size 17 and 18 (bucket 20; default init_size 3 * batch_size: 51
    and 54, bucket 56) share a program, and so do 29 and 30 (32; 87 and 90:
    96)."""
    for first, second in ((17, 18), (29, 30)):
        jaxmix.fit_minibatch_kmeans(0, X, 3, batch_size=first, max_iter=2)
        compiles = COMPILES["n"]
        jaxmix.fit_minibatch_kmeans(0, X, 3, batch_size=second, max_iter=2)
        assert COMPILES["n"] == compiles


def test_a_minibatch_k_sweep_compiles_once_per_bucket():
    """k = 2..7 (bucket 8) and R = 5, 6 (bucket 6): the program of the test
    above serves every fit; nothing compiles."""
    jaxmix.fit_minibatch_kmeans(0, X, 2, **MB)
    compiles = COMPILES["n"]
    for k in range(3, 8):
        jaxmix.fit_minibatch_kmeans(k, X, k, **MB)
    jaxmix.fit_minibatch_kmeans(0, X, 4, **dict(MB, n_restarts=6, max_iter=4))
    assert COMPILES["n"] == compiles


def test_masked_centroids_never_take_a_sample():
    """The assignment excludes padded centroids outright: even one placed on
    a sample (so strictly nearest) takes nothing."""
    from jaxmix.kmeans.assign import nearest
    from jaxmix.kmeans.stats import kmeans_stats
    from jaxmix.data.chunked import one_chunk
    c = np.stack([X[[0, 70, 140, 5]]])  # the padded 4th sits on sample 5
    mask = np.array([[True, True, True, False]])
    labels, dist = nearest(X, c, mask)
    want = np.argmin(((X[:, None] - c[0, :3][None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(np.asarray(labels[0]), want)
    np.testing.assert_allclose(np.asarray(dist[0]),
                               ((X - c[0, want]) ** 2).sum(-1), rtol=1e-4, atol=1e-4)
    stats = kmeans_stats(c, one_chunk(X, np.ones(len(X), np.float32)), mask)
    assert float(stats.counts[0, 3]) == 0 and float(stats.counts[0].sum()) == len(X)
