"""``fit_gmm`` end to end: against sklearn's GaussianMixture, EM monotonicity,
batched restarts vs single runs, determinism, chunking and sample weights.

To keep compiles few, almost every fit here has the shape of the seed data
(1250 x 2, k = 3, max_iter = 100): fits started from ``init_params`` with one
restart compile once per covariance type and are reused across tests (tol,
reg_covar, data values and initial parameters are traced, not static).

Tolerances (float64): sklearn and jaxmix evaluate the same EM updates, so
after N iterations from the same start they differ by accumulated rounding,
measured at ~1e-12 relative after 100 iterations on the seed data. ``RTOL =
1e-9`` leaves 3 orders of margin; any algorithmic difference (regularisation,
weights normaliser, an off-by-one iteration) shows up at >= 1e-6.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TYPES, assert_params_close, index, match_components
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

import jaxmix as jm
from jaxmix import GMMParams
from jaxmix.datasets import seed_blobs
from jaxmix.data.chunked import chunk
from jaxmix.fit.init import initialize

X = seed_blobs()
N, D = X.shape
K = 3
MAX_ITER = 100
RTOL, ATOL = 1e-9, 1e-12
SEED_WEIGHTS = np.array([0.39, 0.40, 0.21])
SEED_MEANS = np.array([[0.05131611, 0.07521837], [-1.40763156, 1.4276412],
                       [3.39893794, 1.05928295]])


def _datasets():
    """Several (1250, 2) float64 data sets (one shape: one compile per type)."""
    rng = np.random.default_rng(0)
    overlap = rng.normal(size=(N, 2)) + np.repeat([[0, 0], [1.0, 0.5], [0.3, 1.2]], [500, 500, 250],
                                                  axis=0)
    return {
        "seed": X,
        "seed_far_narrow": X * 0.01 + 1000.0,  # far from the origin relative to its width
        "overlapping": overlap,
        "uniform": rng.uniform(-3, 3, size=(N, 2)),
        "heavy_tailed": rng.standard_t(2.5, size=(N, 2)) * [1.0, 3.0],
    }


DATASETS = _datasets()


def start_params(x, covariance_type, seed=0):
    """A deliberately poor start: 3 random rows as means, the data covariance
    for every component, equal weights (numpy only, no jaxmix involved)."""
    rng = np.random.default_rng(seed)
    means = x[rng.choice(len(x), K, replace=False)]
    cov = np.cov(x.T)
    cov0 = {"full": np.stack([cov] * K), "tied": cov, "diag": np.stack([np.diag(cov)] * K),
            "spherical": np.full(K, np.trace(cov) / D)}[covariance_type]
    return GMMParams(np.full(K, 1 / K), means, _compute_precision_cholesky(cov0, covariance_type),
                     covariance_type)


def precisions(p: GMMParams):
    """sklearn's ``precisions_init``: the precision matrices, not their Cholesky."""
    pc = np.asarray(p.precisions_cholesky)
    if p.covariance_type in ("full", "tied"):
        return pc @ np.swapaxes(pc, -1, -2)
    return pc ** 2


def fit_from(p0, x=X, tol=0.0, **kw):
    """One restart started at ``p0``; compiled once per covariance type."""
    return jm.fit_gmm(0, x, K, covariance_type=p0.covariance_type, init_params=p0, tol=tol,
                      max_iter=MAX_ITER, **kw)


def sk_fit_from(p0, x=X, tol=0.0, max_iter=MAX_ITER):
    gm = GaussianMixture(K, covariance_type=p0.covariance_type, weights_init=p0.weights,
                         means_init=p0.means, precisions_init=precisions(p0), tol=tol,
                         max_iter=max_iter, init_params="random_from_data", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gm.fit(x)


def assert_results_equal(a, b, rtol=RTOL, atol=ATOL, restarts=None):
    """Two FitResults agree restart by restart (params, objective, status)."""
    restarts = range(a.objective.shape[0]) if restarts is None else restarts
    for r in restarts:
        assert_params_close(index(a.params, r), index(b.params, r), rtol, atol, f"restart {r}")
    np.testing.assert_allclose(np.asarray(a.objective), np.asarray(b.objective), rtol=rtol)
    np.testing.assert_array_equal(np.asarray(a.n_iter), np.asarray(b.n_iter))
    np.testing.assert_array_equal(np.asarray(a.converged), np.asarray(b.converged))


@functools.lru_cache(maxsize=None)
def seed_fit(covariance_type="full", init="kmeans", chunk_size=None):
    return jm.fit_gmm(jax.random.PRNGKey(0), X, K, covariance_type=covariance_type, init=init,
                      n_restarts=10, chunk_size=chunk_size)


# ---------------------------------------------------------------- seed data

def test_seed_data_recovers_the_mixture():
    """10 restarts of a full 3-component fit (default kmeans init, tol 1e-3)
    recover the seed notebook's mixture to 1e-3 (up to label order), with a
    lower bound at least sklearn's ``GaussianMixture(3, n_init=10)``.

    sklearn's lower bound is the same quantity (mean log-likelihood before
    the last M-step); both fits reach the same optimum, so the comparison
    tolerance is float64 rounding of a mean of 1250 terms (1e-12).
    """
    result = seed_fit()
    best = result.best_params
    perm = match_components(best.means, SEED_MEANS)
    np.testing.assert_allclose(np.asarray(best.means)[perm], SEED_MEANS, atol=1e-3)
    np.testing.assert_allclose(np.asarray(best.weights)[perm], SEED_WEIGHTS, atol=5e-3)
    gm = GaussianMixture(K, n_init=10, random_state=0).fit(X)
    lower_bound = float(result.objective[result.best])
    assert lower_bound >= gm.lower_bound_ - 1e-12
    # The best restart is the highest objective, and its lower bound equals
    # sklearn's score of the params one M-step earlier, so it is <= score.
    assert int(result.best) == int(np.argmax(np.asarray(result.objective)))
    assert float(jm.gmm.mean_log_likelihood(best, X)) >= lower_bound - 1e-12
    assert not np.any(np.asarray(result.failed))


def test_history_and_status():
    """history[r] holds the objective per iteration (NaN after the stop);
    objective is its last value; converged restarts stopped on |change| < tol."""
    result = seed_fit()
    h = np.asarray(result.history)
    assert h.shape == (10, MAX_ITER)
    for r in range(10):
        n_iter = int(result.n_iter[r])
        assert 2 <= n_iter < MAX_ITER and bool(result.converged[r])
        assert np.all(np.isfinite(h[r, :n_iter])) and np.all(np.isnan(h[r, n_iter:]))
        assert h[r, n_iter - 1] == float(result.objective[r])
        assert abs(h[r, n_iter - 1] - h[r, n_iter - 2]) < 1e-3
        assert np.all(np.abs(np.diff(h[r, :n_iter - 1])) >= 1e-3)


def test_same_key_same_result():
    a = seed_fit()
    b = jm.fit_gmm(jax.random.PRNGKey(0), X.copy(), K, n_restarts=10)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    c = jm.fit_gmm(jax.random.PRNGKey(1), X, K, n_restarts=10)
    assert not np.allclose(np.asarray(c.objective), np.asarray(a.objective))


@pytest.mark.slow
def test_seed_data_float32():
    """float32: same optimum as sklearn up to float32 rounding of the mean
    log-likelihood (1250 terms of |log p| ~ 3.5: ~1e-5 with margin). The
    means are compared at 3e-3: float32 k-means++ draws different candidates
    (uniforms in float32), and on this slowly converging component the
    tol = 1e-3 stopping point moves the third mean by ~1e-3."""
    result = jm.fit_gmm(jax.random.PRNGKey(0), X.astype(np.float32), K, n_restarts=10)
    assert result.params.means.dtype == jnp.float32
    best = result.best_params
    perm = match_components(best.means, SEED_MEANS)
    np.testing.assert_allclose(np.asarray(best.means)[perm], SEED_MEANS, atol=3e-3)
    np.testing.assert_allclose(np.asarray(best.weights)[perm], SEED_WEIGHTS, atol=5e-3)
    gm = GaussianMixture(K, n_init=10, random_state=0).fit(X)
    assert float(result.objective[result.best]) >= gm.lower_bound_ - 1e-5


# --------------------------------------------------- against sklearn's EM

@pytest.mark.parametrize("ct", TYPES)
def test_same_start_same_parameters_as_sklearn(ct):
    """From the same initial parameters, 100 EM iterations (tol = 0) of
    jaxmix and sklearn reach the same parameters and lower bound; with
    tol = 1e-3 both stop at the same iteration."""
    p0 = start_params(X, ct)
    result = fit_from(p0)
    gm = sk_fit_from(p0)
    assert int(result.n_iter[0]) == gm.n_iter_ == MAX_ITER
    ref = GMMParams(gm.weights_, gm.means_, gm.precisions_cholesky_, ct)
    assert_params_close(index(result.params, 0), ref, RTOL, ATOL, ct)
    np.testing.assert_allclose(float(result.objective[0]), gm.lower_bound_, rtol=RTOL)
    early = fit_from(p0, tol=1e-3)
    gm_early = sk_fit_from(p0, tol=1e-3)
    assert int(early.n_iter[0]) == gm_early.n_iter_ < MAX_ITER
    assert bool(early.converged[0]) and gm_early.converged_
    assert_params_close(index(early.params, 0),
                        GMMParams(gm_early.weights_, gm_early.means_,
                                  gm_early.precisions_cholesky_, ct), RTOL, ATOL, ct)


@pytest.mark.slow
def test_same_start_exact_path_matches_sklearn():
    """The exact (centred) E-step path in the full fit, same check."""
    p0 = start_params(X, "full", seed=1)
    result = fit_from(p0, path="exact")
    gm = sk_fit_from(p0)
    ref = GMMParams(gm.weights_, gm.means_, gm.precisions_cholesky_, "full")
    assert_params_close(index(result.params, 0), ref, RTOL, ATOL)


# ------------------------------------------------------------ monotonicity

@pytest.mark.parametrize("name", list(DATASETS))
@pytest.mark.parametrize("ct", TYPES)
def test_loglik_never_decreases(ct, name):
    """EM's mean log-likelihood is non-decreasing. With reg_covar the M-step
    is not exactly the maximiser, but the loss is second order in reg_covar
    (~1e-12); float64 rounding of a mean of 1250 terms is ~1e-15 relative.
    Allowed decrease: 1e-10 (measured worst: 9e-14)."""
    x = DATASETS[name]
    result = fit_from(start_params(x, ct, seed=2), x=x)
    h = np.asarray(result.history[0])
    assert np.all(np.isfinite(h)) and not bool(result.failed[0])
    assert np.min(np.diff(h)) >= -1e-10, np.min(np.diff(h))
    assert h[-1] > h[0] + 1e-3  # it did climb from the poor start


@pytest.mark.parametrize("ct", ["full", pytest.param("tied", marks=pytest.mark.slow),
                                pytest.param("diag", marks=pytest.mark.slow),
                                pytest.param("spherical", marks=pytest.mark.slow)])
def test_loglik_never_decreases_float32(ct):
    """float32: the mean of 1250 float32 log-densities (|log p| ~ 3.5) is
    rounded to a few ulps, so plateaus may wiggle by ~1e-6 (measured: 1.2e-6).
    Allowed decrease: 32 eps32 |loglik| ~ 1.4e-5."""
    x = X.astype(np.float32)
    result = fit_from(start_params(X, ct, seed=2), x=x)
    h = np.asarray(result.history[0], np.float64)
    assert result.params.means.dtype == jnp.float32
    assert np.all(np.isfinite(h))
    eps32 = float(np.finfo(np.float32).eps)
    assert np.min(np.diff(h)) >= -32 * eps32 * np.max(np.abs(h))


# ------------------------------------------- batched restarts = single runs

def initial_params(key, covariance_type, method, n_restarts, x=X):
    """The batched initial params fit_gmm starts from (it centres the data)."""
    offset = x.mean(axis=0)
    init = jax.jit(initialize,
                   static_argnames=("k", "covariance_type", "n_restarts", "method"))
    p = init(key, chunk(x - offset), K, covariance_type, n_restarts, method, 1e-6)
    return p.replace(means=p.means + offset)


@pytest.mark.parametrize("ct,method", [("full", "kmeans"), ("diag", "random"),
                                       pytest.param("spherical", "k-means++",
                                                    marks=pytest.mark.slow),
                                       pytest.param("tied", "random_from_data",
                                                    marks=pytest.mark.slow)])
def test_batched_restarts_equal_single_runs(ct, method):
    """Restart r of an R = 10 fit equals a 1-restart fit started from that
    restart's initial parameters (finished restarts are frozen; the vmapped
    step is per-restart). Tolerance: RTOL (float64, summation order only)."""
    key = jax.random.PRNGKey(0)
    batched = seed_fit(ct, method)
    p0 = initial_params(key, ct, method, 10)
    objectives = np.asarray(batched.objective)
    assert len(np.unique(np.round(objectives, 6))) > 1 or len(np.unique(
        np.asarray(batched.n_iter))) > 1, "restarts should differ for this test to mean much"
    for r in range(10):
        alone = fit_from(index(p0, r), tol=1e-3)
        assert_params_close(index(alone.params, 0), index(batched.params, r), RTOL, ATOL,
                            f"restart {r}")
        assert int(alone.n_iter[0]) == int(batched.n_iter[r])
        np.testing.assert_allclose(float(alone.objective[0]), objectives[r], rtol=RTOL)
        np.testing.assert_allclose(np.asarray(alone.history[0]), np.asarray(batched.history[r]),
                                   rtol=RTOL, equal_nan=True)


# ------------------------------------------------- chunking, sample weights

def test_chunked_fit_equals_one_chunk():
    """chunk_size = 100 (1250 = 12 * 100 + 50: the last chunk is padded)
    gives the same fit as one chunk, init included (diag / "random": the
    other initialisers' chunking is tested in test_init.py)."""
    assert chunk(X, 100).x.shape == (13, 100, 2)
    assert_results_equal(seed_fit("diag", "random", 100), seed_fit("diag", "random"))


@pytest.mark.parametrize("ct", ["full", "spherical"])
def test_integer_sample_weight_equals_repeated_rows(ct):
    """Weights in {0, 1, 2, 3} (summing to 1250) equal dropping / repeating
    the rows, from the same start."""
    rng = np.random.default_rng(3)
    w = rng.permutation(np.repeat([0, 1, 2, 3], [400, 550, 200, 100]))
    assert w.sum() == N
    x_rep = np.repeat(X, w, axis=0)
    p0 = start_params(X, ct, seed=4)
    weighted = fit_from(p0, tol=1e-4, sample_weight=w.astype(float))
    repeated = fit_from(p0, x=x_rep, tol=1e-4)
    assert_results_equal(weighted, repeated)
    assert int(weighted.n_iter[0]) > 2


def test_max_iter_zero_returns_the_start():
    """sklearn accepts max_iter=0 and keeps the initial parameters;
    ``check_int(max_iter, low=0)`` accepts it too."""
    p0 = start_params(X, "diag")
    result = jm.fit_gmm(0, X, K, covariance_type="diag", init_params=p0, max_iter=0)
    assert int(result.n_iter[0]) == 0
    assert_params_close(index(result.params, 0), p0, 1e-12, 1e-12)
