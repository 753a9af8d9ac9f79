"""A fit continued from an earlier one (``init_objective``, scikit-learn's
``warm_start``) and restarts that do not depend on the restarts beside them."""

from __future__ import annotations

import numpy as np
import pytest

import jaxmix as jm


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(3)
    return np.concatenate([rng.normal(c, 1.0, (60, 2)) for c in (-3, 0, 4)])


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_continuing_a_fit_equals_running_it_longer(blobs, covariance_type):
    """Two iterations, then continuing from the result with ``init_objective``
    one iteration at a time, reach the parameters, objective and stopping
    iteration of one uninterrupted fit (the tol test compares with the
    carried objective, so the continued fit stops where the long one does)."""
    kw = dict(covariance_type=covariance_type, tol=1e-4)
    full = jm.fit_gmm(0, blobs, 3, max_iter=200, **kw)
    res = jm.fit_gmm(0, blobs, 3, max_iter=2, **kw)
    steps = 2
    while not bool(res.converged[0]):
        res = jm.fit_gmm(0, blobs, 3, max_iter=1, init_params=res.best_params,
                         init_objective=float(res.objective[0]), **kw)
        steps += int(res.n_iter[0])
        assert steps <= 200
    assert steps == int(full.n_iter[0])
    np.testing.assert_allclose(res.best_params.means, full.best_params.means, rtol=1e-12)
    np.testing.assert_allclose(float(res.objective[0]), float(full.objective[0]), rtol=1e-13)


def test_without_the_objective_a_continued_fit_cannot_stop_at_once(blobs):
    res = jm.fit_gmm(0, blobs, 3, max_iter=300)
    again = jm.fit_gmm(0, blobs, 3, max_iter=1, init_params=res.best_params)
    assert not bool(again.converged[0])  # compared with -inf
    carried = jm.fit_gmm(0, blobs, 3, max_iter=1, init_params=res.best_params,
                         init_objective=float(res.objective[0]))
    assert bool(carried.converged[0])


@pytest.mark.parametrize("bad, match", [(np.nan, "number or -inf"), (np.inf, "number or -inf"),
                                        ("1", "must be a number")])
def test_init_objective_is_checked(blobs, bad, match):
    init = jm.fit_gmm(0, blobs, 3, max_iter=2).best_params
    with pytest.raises(ValueError, match=match):
        jm.fit_gmm(0, blobs, 3, init_params=init, init_objective=bad)
    with pytest.raises(ValueError, match="give init_params too"):
        jm.fit_gmm(0, blobs, 3, init_objective=-1.0)


def test_a_restart_does_not_depend_on_the_restarts_beside_it():
    """Restart 0 run alone and in a batch of 10 (whose other restarts may
    need the exact E-step where restart 0 takes the GEMM one) gives the same
    objective, bit for bit: each restart picks its own E-step path. This is
    scikit-learn's promise that the best of ``n_init`` starts is at least as
    good as the first start alone."""
    for seed in range(15):
        rng = np.random.default_rng(seed)
        x = np.concatenate([rng.normal(size=(25, 2)) + 3, rng.normal(size=(25, 2))])
        alone = jm.fit_gmm(seed, x, 2, n_restarts=1, max_iter=5)
        batch = jm.fit_gmm(seed, x, 2, n_restarts=10, max_iter=5)
        assert float(alone.objective[0]) == float(batch.objective[0])
        np.testing.assert_array_equal(alone.params.means[0], batch.params.means[0])
