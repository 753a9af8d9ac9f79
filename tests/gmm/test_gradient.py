"""Gradient fitting: the bijection, the loss, fits with optax optimizers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import TYPES, blobs, index, random_params

from jaxmix import GMMParams, chunk, fit_gmm
from jaxmix.gmm import component_log_prob
from jaxmix.fit.gradient import fit_gradient
from jaxmix.gmm.gradient import Objective, Unconstrained, constrain, unconstrain
from jaxmix.gmm.objective import mean_log_posterior
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


def _covariances(p: GMMParams):
    """Dense ``(k or 1, d, d)`` covariances of ``p`` (independent of the families)."""
    pc, d = np.asarray(p.precisions_cholesky, np.float64), p.means.shape[-1]
    if p.covariance_type in ("full", "tied"):
        pc = pc.reshape((-1, d, d))
        return np.linalg.inv(pc @ np.swapaxes(pc, -1, -2))
    scale = pc.reshape((pc.shape[0], -1)) if pc.ndim else pc.reshape(1, 1)
    return np.stack([np.eye(d) / np.broadcast_to(s, (d,)) ** 2 for s in scale])


@pytest.mark.parametrize("covariance_type", TYPES)
def test_bijection_floors_covariances_at_reg_covar(rng, covariance_type):
    """constrain(u, t, r) has covariances S + r I, S those of constrain(u, t, 0)
    (closed form), and unconstrain(., r) is its inverse; a covariance on the
    floor (a start on duplicated points) comes back within 100 eps of it."""
    params, _ = random_params(rng, covariance_type, 3, 4)
    reg = 0.05
    u = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape)), unconstrain(params))
    plain, floored = constrain(u, covariance_type), constrain(u, covariance_type, reg)
    np.testing.assert_allclose(_covariances(floored), _covariances(plain) + reg * np.eye(4),
                               rtol=1e-10, atol=1e-12)
    back = constrain(unconstrain(floored, reg), covariance_type, reg)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(floored)):
        np.testing.assert_allclose(a, b, rtol=1e-9)
    on_floor = params.replace(precisions_cholesky=constrain(
        Unconstrained(u.logits, u.means, jnp.full_like(u.chol, 30.0)), covariance_type, reg
    ).precisions_cholesky)  # S ~ e^-60: every covariance is r I
    again = _covariances(constrain(unconstrain(on_floor, reg), covariance_type, reg))
    np.testing.assert_allclose(again, _covariances(on_floor), rtol=1e-12, atol=reg * 1e-12)
    assert np.all(np.isfinite(jax.tree.leaves(unconstrain(on_floor, reg))[-1]))


def test_loss_is_negative_mean_log_posterior(rng):
    params, _ = random_params(rng, "full", 3, 2)
    x = jnp.asarray(rng.normal(size=(50, 2)) * 3)
    prior = default_prior(x, 3, "full")
    data = chunk(x, 16)  # padded chunks carry zero weight
    value = Objective("full", data, prior).loss(unconstrain(params))
    np.testing.assert_allclose(-value, mean_log_posterior(params, chunk(x), prior), rtol=1e-12)
    np.testing.assert_allclose(-Objective("full", data).loss(unconstrain(params)),
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
        objective = Objective(covariance_type, data, prior, path=path)
        np.testing.assert_allclose(objective.loss(u), direct(u), rtol=1e-12)
        got = jax.grad(objective.loss)(u)
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


# With the default prior both optimizers repeat the maximum-likelihood case
# on a MAP objective that test_gradient_fit_stays_at_map_em_optimum covers in
# the default run; 22 s of the default run, so they are in the slow set.
@pytest.mark.parametrize("prior", [None, pytest.param("default", marks=pytest.mark.slow)])
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


# L-BFGS (15 s) reaches EM's optimum in test_reaches_em_objective_on_separated_data
# in the default run; here it is in the slow set.
@pytest.mark.parametrize("name", ["adam", pytest.param("lbfgs", marks=pytest.mark.slow), "sgd"])
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
    # the recorded iterations (on this small problem the exact path: at the
    # optimum its objective can stop changing, and the fit stops there)
    hist = np.asarray(gd.history[0], np.float64)[:int(gd.n_iter[0])]
    assert hist.size >= 10
    # float32 (on the GEMM path the error is ~ eps * kappa)
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


# The MAP case (23 s: every optimizer's MAP program) is in the slow set; the
# default run keeps the maximum-likelihood one.
@pytest.mark.parametrize("prior", [None, pytest.param("default", marks=pytest.mark.slow)])
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


# -- stopping, cost counts and the covariance floor (issue 18) ----------------

def em_step_gain(x, params, prior=None):
    """What one EM step from ``params`` gains, by fit_gmm itself (independent
    of the gradient fit's own test): its history over two iterations."""
    h = np.asarray(fit_gmm(0, x, K, init_params=params, prior=prior, max_iter=2, tol=0.0,
                           path="exact").history[0], np.float64)
    return h[1] - h[0]


def test_a_tiny_first_step_is_not_convergence(rng):
    """A schedule warming up from 0 makes no move at iteration 1 (the objective
    does not change: the old rule called that converged at iteration 2); the
    fit goes on, and every restart it calls converged passes EM's own test."""
    x = separated(rng)
    start = kmeans_start(x)
    start = start.replace(means=start.means * 0.5 + 1.0)
    warmup = optax.adam(optax.warmup_cosine_decay_schedule(0.0, 0.2, 20, 300))
    result = fit_gradient(0, x, K, warmup, init_params=start, n_restarts=R, max_iter=MAX_ITER)
    hist = np.asarray(result.history)
    assert hist[0, 1] == hist[0, 0]  # the first update was a zero step
    assert np.all(np.asarray(result.n_iter) > 20) and not np.any(result.stalled)
    assert np.all(result.converged), "the warmed-up fit should converge within MAX_ITER"
    for r in range(R):
        assert em_step_gain(x, index(result.params, r)) < 1e-3


def test_an_optimizer_that_cannot_move_stalls(rng):
    """Zero learning rate: the parameters never change; the fit stops as
    stalled (not converged) after STALL_ITERATIONS iterations."""
    from jaxmix.gmm.objective import STALL_ITERATIONS
    x = separated(rng)
    start = kmeans_start(x)
    result = fit_gradient(0, x, K, optax.sgd(0.0), init_params=start.replace(
        means=start.means * 0.5 + 1.0), n_restarts=R, max_iter=MAX_ITER)
    assert np.all(result.stalled) and not np.any(result.converged)
    assert np.all(np.asarray(result.n_iter) == STALL_ITERATIONS)


def counting(optimizer, calls: list):
    """``optimizer`` whose line search's objective evaluations are counted
    (host callback): an independent count of its passes over the data."""
    def update(updates, state, params=None, *, value_fn=None, **extra):
        def counted(u, *args, **kwargs):
            jax.debug.callback(lambda: calls.append(1))
            return value_fn(u, *args, **kwargs)
        return optimizer.update(updates, state, params, value_fn=counted, **extra)
    return optax.GradientTransformationExtraArgs(optimizer.init, update)


@pytest.mark.slow  # 16 s: compiles a counting wrapper around every optimizer
def test_cost_counts_every_pass_over_the_data(rng):
    """EM: one evaluating pass per iteration, no gradients. Adam: one value
    and gradient per iteration. L-BFGS: the start's evaluation plus every
    line-search trial, counted independently by a host callback."""
    x = separated(rng)
    start = kmeans_start(x)
    em = fit_gmm(0, x, K, init_params=start, n_restarts=R, max_iter=20, tol=0.0)
    np.testing.assert_array_equal(em.n_evals, em.n_iter)
    np.testing.assert_array_equal(em.n_grads, 0)
    adam = fit(x, "adam", None, start, max_iter=20)
    np.testing.assert_array_equal(adam.n_evals, adam.n_iter)
    np.testing.assert_array_equal(adam.n_grads, adam.n_iter)
    # L-BFGS's count against a host callback in its line search. Outside
    # vmap a cond runs one branch, so the callback counts evaluations (under
    # vmap both branches of the line search's conds run: wall time, not the
    # count, shows that)
    from jaxmix.gmm.gradient_steps import full_batch_step, init_state
    calls, objective = [], Objective("full", chunk(jnp.asarray(x)), None, 1e-6, "exact")
    opt = counting(LBFGS, calls)
    state = init_state(opt, unconstrain(start.replace(means=start.means * 0.5 + 1.0), 1e-6),
                       jnp.zeros(2, jnp.uint32), objective, -jnp.inf)
    step = jax.jit(full_batch_step(opt, objective))
    for _ in range(6):
        state, _ = step(state)
    assert int(state.n_grads) == int(state.n_evals) == 1 + len(calls) >= 1 + 6
    # the stopping test's EM step is counted too: two passes per test
    stopped = fit(x, "adam", None, start, tol=1e-3)
    assert np.all(np.asarray(stopped.n_evals) > np.asarray(stopped.n_grads))
    assert np.all((np.asarray(stopped.n_evals) - np.asarray(stopped.n_grads)) % 2 == 0)


@pytest.mark.parametrize("name", ["adam", "lbfgs"])
def test_maximum_likelihood_gradient_fits_keep_the_covariance_floor(rng, name):
    """Duplicated points: the unregularised likelihood is unbounded; with
    ``reg_covar`` the gradient fit, like EM, keeps every covariance at least
    ``reg_covar`` in every direction, and both flag the collapse."""
    x = degenerate_data(rng)
    reg = 1e-3
    start = kmeans_start(x)
    gd = fit(x, name, None, start, reg_covar=reg)
    em = fit_gmm(0, x, K, init_params=start, n_restarts=R, reg_covar=reg, max_iter=MAX_ITER)
    for result in (gd, em):
        cov = _covariances(index(result.params, 0))
        assert np.linalg.eigvalsh(cov).min() >= reg * (1 - 1e-5)
        assert np.all(result.degenerate)
    assert finite(gd.params) and not np.any(gd.failed)


def test_the_defaults_and_the_command_line_agree():
    """One objective, one stopping rule: fit_gradient's tol, max_iter and
    reg_covar defaults are fit_gmm's, and the command line's gradient
    methods default to maximum likelihood, as fit_gradient does."""
    import inspect
    from jaxmix.cli.fit import make_method
    em, gd = (inspect.signature(f).parameters for f in (fit_gmm, fit_gradient))
    for name in ("tol", "max_iter", "reg_covar", "prior", "n_restarts", "init"):
        assert em[name].default == gd[name].default, name
    assert make_method("adam").prior is None and make_method("em").prior is None
    assert make_method("map-em").prior == "default"
    assert make_method("adam", prior="default").prior == "default"


def test_the_returned_parameters_are_those_the_objective_belongs_to(rng):
    """An optimizer step can lower the objective (EM's cannot): a gradient fit
    returns the parameters its reported objective was evaluated at, not the
    last update's, which was never evaluated."""
    x = separated(rng)
    start = kmeans_start(x)
    result = fit(x, "adam", None, start.replace(means=start.means * 0.5 + 1.0), max_iter=7)
    data = chunk(jnp.asarray(x))
    for r in range(R):
        np.testing.assert_allclose(float(mean_log_posterior(index(result.params, r), data)),
                                   float(result.objective[r]), rtol=2e-6)
