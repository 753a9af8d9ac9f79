"""Mini-batch K-Means (jaxmix.kmeans.minibatch) against scikit-learn's rule and full K-Means."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster._kmeans import _mini_batch_step

from jaxmix.compiling import jit
from jaxmix.kmeans.stats import kmeans_stats
from jaxmix.kmeans.update import minibatch_update, score
from jaxmix.fit.buckets import exact_shapes
from jaxmix.fit.kmeans import fit_kmeans
from jaxmix.fit.minibatch import fit_minibatch_kmeans
from jaxmix.kmeans.minibatch import make_config, minibatch_init, minibatch_step
from jaxmix.params import KMeansParams
from jaxmix.data.chunked import chunk

K = 5


def blobs(seed=0, n=4000, d=3, k=K):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (k, d))
    labels = rng.integers(0, k, n)
    return centres[labels] + rng.normal(0, 1, (n, d))


X = blobs()


# The step under test, compiled once per batch shape with jaxmix's compiler
# options (called eagerly, each of its operations compiles on its own).
# Hand-made batches have BATCH rows of X's 3 features where the check allows
# (one compiled step for them all).
step = jit(minibatch_step)
BATCH = 256


def no_reseed(dtype=jnp.float64, **kw):
    args = dict(tol=0.0, alpha=0.1, max_no_improvement=None, reassignment_ratio=0.0)
    args.update(kw)
    return make_config(dtype=dtype, **args)


def test_update_rule_matches_sklearn_mini_batch_step(rng):
    centers = rng.normal(0, 3, (K, 3))
    counts = np.array([0.0, 3.0, 10.0, 1.5, 7.0])
    xb = rng.normal(0, 3, (BATCH, 3))
    wb = rng.uniform(0.2, 2.0, BATCH)
    sk_new, sk_counts = np.empty_like(centers), counts.copy()
    sk_inertia = _mini_batch_step(xb, wb, centers, sk_new, sk_counts,
                                  np.random.RandomState(0), random_reassign=False)
    state = minibatch_init(jax.random.PRNGKey(0), jnp.asarray(centers))._replace(
        counts=jnp.asarray(counts))
    new, batch_inertia = step(state, jnp.asarray(xb), jnp.asarray(wb), no_reseed())
    np.testing.assert_allclose(np.asarray(new.centroids), sk_new, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.counts), sk_counts, rtol=1e-12)
    np.testing.assert_allclose(float(batch_inertia) * wb.sum(), sk_inertia, rtol=1e-10)
    # the rule on its own, from the shared additive statistics
    c, n = minibatch_update(jnp.asarray(centers), jnp.asarray(counts),
                            kmeans_stats(jnp.asarray(centers), chunk(xb, None, wb)))
    np.testing.assert_allclose(np.asarray(c), sk_new, rtol=1e-10, atol=1e-12)


def test_low_count_clusters_are_reseeded_from_the_batch(rng):
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [500.0, 500.0]])  # the last gets no samples
    xb = np.concatenate([rng.normal(0, 1, (20, 2)), rng.normal(10, 1, (20, 2))])
    wb = np.r_[np.ones(39), 0.0]  # a zero-weight row is never a new centre
    state = minibatch_init(jax.random.PRNGKey(3), jnp.asarray(centers))._replace(
        counts=jnp.asarray([50.0, 40.0, 0.0]))
    new, _ = step(state, jnp.asarray(xb), jnp.asarray(wb), no_reseed(reassignment_ratio=0.01))
    c = np.asarray(new.centroids)
    assert np.any(np.all(np.isclose(xb[:39], c[2]), axis=1)), c[2]
    counts = np.asarray(new.counts)
    np.testing.assert_allclose(counts[2], counts[:2].min())  # sklearn's count floor
    # without re-seeding, it stays where it was
    kept, _ = step(state, jnp.asarray(xb), jnp.asarray(wb), no_reseed())
    np.testing.assert_array_equal(np.asarray(kept.centroids[2]), centers[2])


def test_minibatch_within_5_percent_of_full_kmeans():
    full = fit_kmeans(jax.random.PRNGKey(0), X, K, n_restarts=4)
    mb = fit_minibatch_kmeans(jax.random.PRNGKey(0), X, K, n_restarts=4, batch_size=128)
    best_full = -float(full.objective[full.best])
    best_mb = -float(mb.objective[mb.best])
    assert best_mb <= 1.05 * best_full, (best_mb, best_full)
    # objective is the exact inertia of the returned centroids on all of X
    np.testing.assert_allclose(best_mb, -float(score(mb.best_params, X)), rtol=1e-10)
    assert np.all(np.asarray(mb.converged))  # early stopping fired
    assert np.all(np.asarray(mb.n_iter) < 100 * X.shape[0] // 128)


def test_runs_every_step_without_early_stopping():
    mb = fit_minibatch_kmeans(0, X, K, batch_size=400, max_iter=2, max_no_improvement=None)
    assert int(mb.n_iter[0]) == 2 * X.shape[0] // 400
    assert not bool(mb.converged[0])
    assert np.all(np.isfinite(np.asarray(mb.history)))
    assert mb.history.shape == (1, 2 * X.shape[0] // 400), "history cut to the step cap"


def test_other_sizes_and_step_caps_share_one_program():
    """``n`` and the step cap are traced: another ``max_iter``, or another
    ``n`` in the same sample bucket, compiles nothing (shapes of its own:
    d=3, k=4, batch 64), and the padded rows are never drawn."""
    from jaxmix.fit import programs
    x = X[:300] + 0.0
    first = fit_minibatch_kmeans(0, x, 4, batch_size=64, max_iter=3, max_no_improvement=None)
    compiled = programs.compiled_programs()
    again = fit_minibatch_kmeans(0, x, 4, batch_size=64, max_iter=3, max_no_improvement=None)
    longer = fit_minibatch_kmeans(0, x, 4, batch_size=64, max_iter=5, max_no_improvement=None)
    fewer = fit_minibatch_kmeans(0, x[:290], 4, batch_size=64, max_iter=3,
                                 max_no_improvement=None)
    assert programs.compiled_programs() == compiled
    np.testing.assert_array_equal(np.asarray(first.params.centroids),
                                  np.asarray(again.params.centroids))
    assert int(longer.n_iter[0]) == 5 * 300 // 64 and int(fewer.n_iter[0]) == 3 * 290 // 64
    with exact_shapes():  # 290 rows unpadded: the same draws, so the same fit
        exact = fit_minibatch_kmeans(0, x[:290], 4, batch_size=64, max_iter=3,
                                     max_no_improvement=None)
    np.testing.assert_allclose(np.asarray(fewer.params.centroids),
                               np.asarray(exact.params.centroids), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fewer.objective), np.asarray(exact.objective),
                               rtol=1e-12)


def test_tol_stops_on_small_centroid_change():
    mb = fit_minibatch_kmeans(0, X, K, batch_size=400, max_iter=2, max_no_improvement=None,
                              tol=1e-2)
    assert bool(mb.converged[0]) and int(mb.n_iter[0]) < 2 * X.shape[0] // 400


def test_sample_weight_zero_rows_are_never_drawn():
    outliers = np.full((400, 3), 1e3)
    x = np.concatenate([X, outliers])
    w = np.r_[np.ones(len(X)), np.zeros(len(outliers))]
    mb = fit_minibatch_kmeans(0, x, K, batch_size=128, sample_weight=w)
    assert np.abs(np.asarray(mb.params.centroids)).max() < 100


def test_stream_equals_manual_loop_and_pads_short_batches():
    rng = np.random.default_rng(1)
    batches = [X[rng.integers(0, len(X), BATCH)] for _ in range(30)] + [X[:100]]
    init = X[:K]
    res = fit_minibatch_kmeans(jax.random.PRNGKey(2), iter(batches), K, init_centroids=init,
                                  max_no_improvement=None, reassignment_ratio=0.0)
    assert int(res.n_iter[0]) == len(batches)
    # same steps by hand, in centred coordinates as the stream does
    offset = batches[0].mean(0)
    cfg = make_config(0.0, 2 * BATCH / (100 * BATCH + 1), None, 0.0, jnp.float64)
    state = minibatch_init(jax.random.split(jax.random.PRNGKey(2))[1],
                           jnp.asarray(init - offset))
    for xb in batches:  # the short last batch unpadded: zero-weight padding changes nothing
        state, _ = step(state, jnp.asarray(xb - offset), jnp.ones(len(xb)), cfg)
    np.testing.assert_allclose(np.asarray(res.params.centroids[0]),
                               np.asarray(state.centroids) + offset, rtol=1e-10, atol=1e-10)


def test_stream_stops_early_and_fits_blobs():
    def gen():
        rng = np.random.default_rng(2)
        while True:  # endless: only early stopping ends the loop
            yield X[rng.integers(0, len(X), BATCH)]

    res = fit_minibatch_kmeans(0, gen(), K, n_samples=len(X))
    assert bool(res.converged[0])
    full = fit_kmeans(0, X, K, n_restarts=4)
    stream_inertia = -float(score(KMeansParams(res.params.centroids[0]), X))
    assert stream_inertia <= 1.05 * -float(full.objective[full.best])


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "batch_size must be at least 1"),
    (dict(max_iter=-1), "max_iter must be at least 0"),
    (dict(init="kmeans"), "init must be one of"),
    (dict(init_size=2), "init_size must be at least 5"),
    (dict(max_no_improvement=-1), "max_no_improvement must be at least 0"),
    (dict(reassignment_ratio=-0.1), "reassignment_ratio must be"),
    (dict(tol=np.nan), "tol must be"),
    (dict(sample_weight=np.ones(5)), r"sample_weight must have shape \(4000,\)"),
    (dict(init_centroids=np.zeros((K, 2))), "init_centroids must have shape"),
])
def test_bad_input_raises_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_minibatch_kmeans(0, X, K, **kwargs)


def test_stream_bad_input():
    with pytest.raises(ValueError, match="batches is empty"):
        fit_minibatch_kmeans(0, iter([]), K)
    with pytest.raises(ValueError, match="n_clusters=5 is larger"):
        fit_minibatch_kmeans(0, iter([X[:3]]), K)
    with pytest.raises(ValueError, match="batch 1 must have at most 64 rows and 3 columns"):
        fit_minibatch_kmeans(0, iter([X[:64], X[:65]]), K, max_no_improvement=None)
    with pytest.raises(ValueError, match="batch 2 contains NaN or infinity in 8 row"):
        fit_minibatch_kmeans(0, iter([X[:64], X[:8], np.full((8, 3), np.nan)]), K,
                             max_no_improvement=None)
    with pytest.raises(ValueError, match="sample_weight of batch 1 must be finite in float(32|64), and so must its sum"):
        fit_minibatch_kmeans(0, iter([X[:64], (X[:8], np.full(8, 1e308))]), K,
                             max_no_improvement=None)
