"""Gradient fitting: the bijection, the loss, fits with optax optimizers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import TYPES, blobs, random_params

from jaxmix import GMMParams, chunk, fit_gmm
from jaxmix.gmm import component_log_prob
from jaxmix.fit.gradient import fit_gradient
from jaxmix.gmm.gradient import (Unconstrained, constrain, loss, mean_log_posterior,
                             unconstrain)
from jaxmix.gmm.priors import default_prior, log_prior_terms

# Optimizers are static arguments of the compiled fit: one instance each, so
# that tests sharing shapes share compilations.
ADAM = optax.adam(0.02)
LBFGS = optax.lbfgs()
SGD = optax.sgd(1e-2, momentum=0.9)
OPTIMIZERS = {"adam": ADAM, "lbfgs": LBFGS, "sgd": SGD}


def finite(tree):
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_bijection_round_trips(rng, covariance_type):
    params, _ = random_params(rng, covariance_type, 3, 4)
    back = constrain(unconstrain(params), covariance_type)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # and the other way, from arbitrary unconstrained values (lower triangle
    # of a triangular factor and the mean of the logits are not identified)
    u = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape)), unconstrain(params))
    p = constrain(u, covariance_type)
    np.testing.assert_allclose(jnp.sum(p.weights), 1.0, rtol=1e-12)
    assert np.all(np.asarray(p.weights) > 0)
    pc = np.asarray(p.precisions_cholesky)
    if pc.ndim >= 2 and covariance_type in ("full", "tied"):
        np.testing.assert_array_equal(np.tril(pc, -1), 0.0)
        assert np.all(np.diagonal(pc, axis1=-2, axis2=-1) > 0)
    else:
        assert np.all(pc > 0)
    again = unconstrain(p)
    np.testing.assert_allclose(again.logits, u.logits - jnp.mean(u.logits), atol=1e-12)
    np.testing.assert_allclose(again.means, u.means)
    expected_chol = np.triu(u.chol) if covariance_type in ("full", "tied") else u.chol
    np.testing.assert_allclose(again.chol, expected_chol, atol=1e-12)


def test_loss_is_negative_mean_log_posterior(rng):
    params, _ = random_params(rng, "full", 3, 2)
    x = jnp.asarray(rng.normal(size=(50, 2)) * 3)
    prior = default_prior(x, 3, "full")
    data = chunk(x, 16)  # padded chunks carry zero weight
    value = loss(unconstrain(params), "full", data, prior)
    np.testing.assert_allclose(-value, mean_log_posterior(params, chunk(x), prior), rtol=1e-12)
    np.testing.assert_allclose(-loss(unconstrain(params), "full", data, None),
                               mean_log_posterior(params, chunk(x), None), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("path", ["exact", "gemm"])
def test_stats_gradient_equals_autodiff(rng, covariance_type, path):
    """The loss's gradient (Fisher's identity on E-step statistics) equals
    autodiff through the per-sample log-densities."""
    x = jnp.asarray(rng.normal(size=(200, 3)) * 2)
    params, _ = random_params(rng, covariance_type, 3, 3, spread=2.0)
    prior = default_prior(x, 3, covariance_type)
    u = unconstrain(params)

    def direct(u):
        p = constrain(u, covariance_type)
        log_w = jax.nn.log_softmax(u.logits)
        log_lik = jnp.sum(jax.nn.logsumexp(component_log_prob(p, x) + log_w, axis=1))
        return -(log_lik + log_prior_terms(p, prior, log_w)) / x.shape[0]

    expected = jax.grad(direct)(u)
    for chunk_size in (None, 64):
        data = chunk(x, chunk_size)
        np.testing.assert_allclose(loss(u, covariance_type, data, prior, path), direct(u),
                                   rtol=1e-12)
        got = jax.grad(loss)(u, covariance_type, data, prior, path)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# Every fit below shares n=300, d=2, k=3, float32, 2 restarts, init_params and
# MAX_ITER, so each (optimizer, prior or not) compiles once for the module.
N, K, R, MAX_ITER = 300, 3, 2, 150


def separated(rng):
    return blobs(rng, N, [[-6.0, 0.0], [6.0, 0.0], [0.0, 8.0]], scale=1.0).astype(np.float32)


def degenerate_data(rng):
    """Three points repeated 95 times each, plus 15 others."""
    base = rng.normal(size=(3, 2))
    return np.concatenate([np.repeat(base, 95, axis=0), rng.normal(size=(15, 2))]
                          ).astype(np.float32)


def em_optimum(x, prior, tol=1e-7):
    # the exact E-step: L-BFGS in float32 is chaotic at an optimum (its curvature
    # pairs are rounding noise there); from the whitened-GEMM optimum, whose
    # gradient is 2.9e-6 instead of 1.5e-6, it takes a step that loses 2.6 nats
    # before it recovers (the line search accepts it), see issue 18
    return fit_gmm(0, x, K, prior=prior, n_restarts=R, tol=tol, max_iter=500, path="exact")


def kmeans_start(x):
    """One ML-EM step from fit_gmm's k-means start (a huge tol stops it there;
    tol is traced, so this shares em_optimum's compilation)."""
    return em_optimum(x, None, tol=1e30).best_params


def fit(x, name, prior, start, **kw):
    return fit_gradient(0, x, K, OPTIMIZERS[name], prior=prior, init_params=start,
                        n_restarts=R, **{"tol": 0.0, "max_iter": MAX_ITER, **kw})


@pytest.mark.parametrize("prior", [None, "default"])
@pytest.mark.parametrize("name", ["adam", "lbfgs"])
def test_reaches_em_objective_on_separated_data(rng, prior, name):
    x = separated(rng)
    em = em_optimum(x, prior)
    gd = fit(x, name, prior, kmeans_start(x), tol=1e-7)
    assert not np.any(gd.failed)
    # compare the objective of the final parameters, both on the same scale
    data = chunk(jnp.asarray(x))
    prior_v = None if prior is None else default_prior(x, K, "full")
    target = float(mean_log_posterior(em.best_params, data, prior_v))
    reached = float(mean_log_posterior(gd.best_params, data, prior_v))
    assert reached > target - 1e-3, (reached, target)
    # restarts from the same start are independent copies
    np.testing.assert_array_equal(gd.history[0], gd.history[1])


@pytest.mark.parametrize("name", ["adam", "lbfgs", "sgd"])
def test_gradient_fit_stays_at_map_em_optimum(rng, name):
    x = separated(rng)
    prior = default_prior(x, K, "full")
    start = em_optimum(x, prior).best_params
    # adam's normalised steps have size ~lr even at zero gradient: a small lr
    gd = fit(x, name, prior, start) if name != "adam" else fit_gradient(
        0, x, K, optax.adam(1e-3), prior=prior, init_params=start, n_restarts=R, tol=0.0,
        max_iter=MAX_ITER)
    data = chunk(jnp.asarray(x))
    at_start = float(mean_log_posterior(start, data, prior))
    hist = np.asarray(gd.history[0], np.float64)
    # float32, and the fit's objective is on the GEMM path (error ~ eps * kappa)
    np.testing.assert_allclose(hist[0], at_start, rtol=3e-6)
    tol = 2e-5 if name == "adam" else 1e-5
    assert np.all(np.abs(hist - hist[0]) < tol), (name, np.abs(hist - hist[0]).max())
    moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                zip(jax.tree.leaves(gd.best_params), jax.tree.leaves(start)))
    assert moved < 1e-4, (name, moved)  # measured: 3e-6 (sgd) to 1.3e-5 (L-BFGS)


def test_gradient_fit_away_from_optimum_moves(rng):
    """Guards the test above: from a poor start the same fit does move."""
    x = separated(rng)
    start = kmeans_start(degenerate_data(rng))
    gd = fit(x, "lbfgs", "default", start.replace(means=start.means * 0.5 + 1.0))
    assert float(gd.objective[0]) > float(gd.history[0, 0]) + 0.1


@pytest.mark.parametrize("name", ["adam", "lbfgs", "sgd"])
def test_no_nan_on_degenerate_data(rng, name):
    """Duplicated points (k-means start: components at reg_covar) and a
    component started collapsed on one point. ML diverges there (flagged,
    kept finite); MAP stays finite and, for adam and L-BFGS, never fails."""
    x = degenerate_data(rng)
    collapsed = GMMParams(jnp.array([0.4, 0.4, 0.2], jnp.float32),
                          jnp.asarray(np.stack([[-1.0, 0.0], [1.0, 0.0], x[0]]), jnp.float32),
                          jnp.stack([jnp.eye(2), jnp.eye(2), 1e3 * jnp.eye(2)]).astype(
                              jnp.float32), "full")
    for start in (kmeans_start(x), collapsed):
        for prior in (None, "default"):
            result = fit(x, name, prior, start)
            assert finite(result.params) and finite(result.objective), (name, prior)
            assert finite(result.best_params)
            if prior is not None and name != "sgd":
                assert not np.any(result.failed), name
                assert np.all(np.isfinite(np.asarray(result.history)))


def test_mini_batch_keyed_and_close(rng):
    x = separated(rng)
    start = kmeans_start(x)
    kw = dict(batch_size=64, max_iter=40)
    a = fit(x, "adam", "default", start, **kw)
    b = fit(x, "adam", "default", start, **kw)
    c = fit_gradient(7, x, K, ADAM, prior="default", init_params=start, n_restarts=R,
                     tol=0.0, **kw)
    np.testing.assert_array_equal(a.history, b.history)  # same key, same result
    assert not np.array_equal(a.history, c.history)  # shuffling is keyed
    assert not np.array_equal(a.history[0], a.history[1])  # ... per restart
    em = em_optimum(x, "default")
    assert float(a.objective[a.best]) > float(em.objective[em.best]) - 1e-2


def test_validation():
    x = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match="optimizer must be an optax"):
        fit_gradient(0, x, 2, "adam")
    with pytest.raises(ValueError, match="covariance_prior must have shape"):
        fit_gradient(0, x, 2, ADAM, covariance_type="spherical",
                     prior=default_prior(x, 2, "diag"))
    with pytest.raises(ValueError, match="batch_size"):
        fit_gradient(0, x, 2, ADAM, batch_size=0)
    assert isinstance(unconstrain(GMMParams(np.ones(1), np.zeros((1, 2)), np.ones((1,)),
                                            "spherical")), Unconstrained)


def test_a_learning_rate_sweep_compiles_once_and_matches_fixed_rates():
    """``hyperparams`` are traced: learning rates with one
    ``inject_hyperparams`` optimizer compile one fit, each equal to the fit
    with ``optax.adam`` at that rate; ``(n_restarts,)`` values give each
    restart its own rate in one call (restart r as the scalar fit's restart r)."""
    from jaxmix.fit.rows import TRACE_COUNT
    x = blobs(np.random.default_rng(0), 120, [[-3.0, 0.0], [3.0, 0.0]])
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
    rates = [3e-3, 3e-2]
    kw = dict(max_iter=10, tol=0.0, n_restarts=2)
    fit_gradient(0, x, 2, opt, hyperparams={"learning_rate": rates[0]}, **kw)
    before = TRACE_COUNT["gradient"]
    swept = [fit_gradient(0, x, 2, opt, hyperparams={"learning_rate": lr}, **kw) for lr in rates]
    assert TRACE_COUNT["gradient"] == before, "a new learning rate recompiled the fit"
    for lr, res in zip(rates, swept):
        ref = fit_gradient(0, x, 2, optax.adam(lr), **kw)
        np.testing.assert_allclose(res.history, ref.history, rtol=1e-10)
    per_restart = fit_gradient(0, x, 2, opt, hyperparams={"learning_rate": np.array(rates)}, **kw)
    for r, res in enumerate(swept):
        np.testing.assert_allclose(per_restart.history[r], res.history[r], rtol=1e-10)


@pytest.mark.parametrize("bad, match", [
    ({"learning_rate": [1.0, 2.0]}, r"shape \(3,\)"), ({"learning_rate": np.nan}, "finite"),
    ({"momentum": 0.9}, "no hyper-parameter"), ([0.1], "must be a dict")])
def test_hyperparams_are_checked(bad, match):
    x = blobs(np.random.default_rng(0), 60, [[-3.0, 0.0], [3.0, 0.0]])
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
    with pytest.raises(ValueError, match=match):
        fit_gradient(0, x, 2, opt, hyperparams=bad, n_restarts=3, max_iter=2)
    with pytest.raises(ValueError, match="inject_hyperparams"):
        fit_gradient(0, x, 2, optax.adam(1e-2), hyperparams={"learning_rate": 0.1}, max_iter=2)


@pytest.mark.parametrize("prior", [None, "default"])
def test_every_method_starts_from_the_same_point(prior):
    """``history[:, 0]`` is the objective of the same starting parameters for
    EM / MAP-EM and every gradient optimizer (same key); with a prior the
    gradient fit's MAP refit is its iteration 1, so its ``history[:, 1]`` is
    MAP-EM's too: no method is a step ahead."""
    from jaxmix.datasets import seed_blobs
    x = seed_blobs()[::4]
    kw = dict(n_restarts=2, prior=prior, max_iter=4, tol=0.0)
    em = fit_gmm(0, x, 3, **kw)
    # without a prior the start is the initialiser's for every optimizer alike
    for opt in (ADAM,) if prior is None else (ADAM, optax.lbfgs()):
        gd = fit_gradient(0, x, 3, opt, **kw)
        np.testing.assert_allclose(gd.history[:, 0], em.history[:, 0], rtol=1e-12)
        assert np.all(np.asarray(gd.n_iter) == 4)
        if prior is not None:
            np.testing.assert_allclose(gd.history[:, 1], em.history[:, 1], rtol=1e-12)
