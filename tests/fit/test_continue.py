"""A fit continued from an earlier one (``init_objective``, scikit-learn's
``warm_start``) and restarts that do not depend on the restarts beside them."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxmix as jm
from jaxmix.data import chunked


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


def test_a_restart_does_not_depend_on_the_restarts_beside_it(monkeypatch):
    """Restart 0 run alone and in a batch of 10 (whose other restarts may
    need the exact E-step where restart 0 takes the GEMM one) gives the same
    objective, bit for bit: each restart picks its own E-step path. This is
    scikit-learn's promise that the best of ``n_init`` starts is at least as
    good as the first start alone. On a small pass (the default for data
    this size) "auto" is the exact path on the whole batch: equal to
    rounding."""
    def check(equal):
        for seed in range(15):
            rng = np.random.default_rng(seed)
            x = np.concatenate([rng.normal(size=(25, 2)) + 3, rng.normal(size=(25, 2))])
            alone = jm.fit_gmm(seed, x, 2, n_restarts=1, max_iter=5)
            batch = jm.fit_gmm(seed, x, 2, n_restarts=10, max_iter=5)
            equal(np.asarray(alone.objective[0]), np.asarray(batch.objective[0]))
            equal(np.asarray(alone.params.means[0]), np.asarray(batch.params.means[0]))

    check(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-13))
    jax.clear_caches()  # the switch: programs traced without the small-pass rule
    monkeypatch.setattr(chunked, "SMALL_PASS", -1)
    check(np.testing.assert_array_equal)
    jax.clear_caches()


def test_a_fit_result_continues_every_restart(blobs):
    """``init_params=result``: each of the 4 restarts goes on from its own
    parameters and objective; two calls equal one fit restart by restart
    (iterations, parameters, objective: float64, same operations)."""
    kw = dict(n_restarts=4, tol=1e-6, init="random_from_data")
    full = jm.fit_gmm(0, blobs, 3, max_iter=300, **kw)
    head = jm.fit_gmm(0, blobs, 3, max_iter=3, **kw)
    tail = jm.fit_gmm(0, blobs, 3, init_params=head, tol=1e-6, max_iter=300)
    np.testing.assert_array_equal(np.asarray(head.n_iter + tail.n_iter), np.asarray(full.n_iter))
    np.testing.assert_allclose(np.asarray(tail.params.means), np.asarray(full.params.means),
                               rtol=1e-12)
    np.testing.assert_allclose(np.asarray(tail.objective), np.asarray(full.objective),
                               rtol=1e-12)
    assert int(tail.best) == int(full.best)
    with pytest.raises(ValueError, match="FitResult of 4 restarts"):
        jm.fit_gmm(0, blobs, 3, init_params=head, n_restarts=3)


def test_restart_batched_starts(blobs):
    """One parameter set per restart starts each restart there (each equals
    the fit from that set alone)."""
    import jax
    starts = jm.fit_gmm(0, blobs, 3, n_restarts=3, max_iter=1, init="random_from_data").params
    both = jm.fit_gmm(0, blobs, 3, n_restarts=3, init_params=starts, max_iter=5, tol=0.0)
    for r in range(3):
        one = jm.fit_gmm(0, blobs, 3, init_params=jax.tree.map(lambda a: a[r], starts),
                         max_iter=5, tol=0.0)
        np.testing.assert_allclose(np.asarray(both.params.means[r]),
                                   np.asarray(one.params.means[0]), rtol=1e-12)
    with pytest.raises(ValueError, match="holds 3 restarts' parameters but n_restarts=2"):
        jm.fit_gmm(0, blobs, 3, n_restarts=2, init_params=starts)


@pytest.mark.slow
def test_gradient_and_family_fits_continue_a_fit_result(blobs):
    """The gradient fit's first recorded objective is the earlier fit's final
    one; a family fit continued equals one long fit restart by restart."""
    import optax

    from jaxmix.families import Poisson, fit_mixture
    adam = optax.adam(0.05)
    g1 = jm.fit_gradient(0, blobs, 3, adam, n_restarts=2, max_iter=5)
    g2 = jm.fit_gradient(0, blobs, 3, adam, init_params=g1, max_iter=5)
    np.testing.assert_allclose(np.asarray(g2.history[:, 0]), np.asarray(g1.objective),
                               rtol=1e-10)
    counts = np.round(np.abs(blobs)).astype(float)
    long = fit_mixture(0, counts, 2, Poisson(), n_restarts=2, tol=1e-8, max_iter=300)
    first = fit_mixture(0, counts, 2, Poisson(), n_restarts=2, tol=1e-8, max_iter=2)
    rest = fit_mixture(0, counts, 2, Poisson(), init_params=first, tol=1e-8, max_iter=300)
    np.testing.assert_array_equal(np.asarray(first.n_iter + rest.n_iter), np.asarray(long.n_iter))
    np.testing.assert_allclose(np.asarray(rest.params.theta), np.asarray(long.params.theta),
                               rtol=1e-12)


@pytest.mark.slow
def test_continuing_under_jit_and_the_objective_checks(blobs):
    """A FitResult continued inside jit (its objectives traced); a
    per-restart init_objective must have one value per restart."""
    import jax
    fit = jax.jit(lambda x: jm.fit_gmm(0, x, 3, init_params=jm.fit_gmm(
        0, x, 3, n_restarts=2, max_iter=3), max_iter=5).objective)
    assert np.all(np.isfinite(np.asarray(fit(blobs))))
    head = jm.fit_gmm(0, blobs, 3, n_restarts=3, max_iter=2)
    with pytest.raises(ValueError, match="init_objective holds 2 values but n_restarts=3"):
        jm.fit_gmm(0, blobs, 3, init_params=head.params, n_restarts=3,
                   init_objective=np.zeros(2))
