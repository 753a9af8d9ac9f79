"""MAP-EM: the closed-form MAP M-step, monotone log-posterior, same objective
as the gradient fit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TYPES, blobs, random_params

from jaxmix import chunk, fit_gmm
from jaxmix.gmm import e_step, em_step, m_step
from jaxmix.gmm.density import component_log_prob, responsibilities
from jaxmix.gmm.gradient import Objective, constrain, unconstrain
from jaxmix.gmm.objective import mean_log_posterior
from jaxmix.gmm.priors import default_prior, log_prior, log_prior_terms

CENTERS = [[-4.0, 0.0, 1.0], [3.0, 2.0, -1.0], [0.0, -4.0, 2.0]]


# One set of static fit arguments for every fit below, so each (type, dtype)
# compiles once.
FIT = dict(n_restarts=4, init="random", max_iter=1000)


def data_and_prior(rng, covariance_type, offset=10.0):
    x = blobs(rng, 240, CENTERS) + offset
    x = np.concatenate([x, x[:30]])  # duplicated points
    prior = default_prior(x, 3, covariance_type)
    # a prior that matters: pull on the weights and the means, a wide scale
    prior = prior._replace(weight_concentration=jnp.asarray(3.0),
                           mean_precision=jnp.asarray(0.8),
                           degrees_of_freedom=prior.degrees_of_freedom + 2.0,
                           covariance_prior=4.0 * prior.covariance_prior)
    return x, prior


def some_params(x, covariance_type):
    """Random parameters around the data (not an optimum of anything)."""
    p, _ = random_params(np.random.default_rng(5), covariance_type, 3, x.shape[1])
    return p.replace(means=p.means + x.mean(0))


def flat_norm(tree):
    return float(jnp.sqrt(sum(jnp.sum(leaf ** 2) for leaf in jax.tree.leaves(tree))))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_map_m_step_maximises_expected_log_posterior(rng, covariance_type):
    """At the MAP M-step output, the gradient of E_r[log p(x, z | theta)] +
    log p(theta) w.r.t. the unconstrained parameters vanishes, on both E-step
    paths (statistics about the previous means or about the origin), and
    perturbing the output decreases it."""
    x, prior = data_and_prior(rng, covariance_type)
    old = some_params(x, covariance_type)
    xj = jnp.asarray(x)
    resp = responsibilities(old, xj)

    def expected(u):
        p = constrain(u, covariance_type)
        log_w = jax.nn.log_softmax(u.logits)
        complete = jnp.sum(resp * (component_log_prob(p, xj) + log_w))
        return complete + log_prior_terms(p, prior, log_w)

    expected, grad_fn = jax.jit(expected), jax.jit(jax.grad(expected))
    results = []
    for path in ("exact", "gemm"):
        new = m_step(e_step(old, chunk(xj, 100), path), 0.0, covariance_type, prior)
        u = unconstrain(new)
        grad = grad_fn(u)
        scale = flat_norm(grad_fn(unconstrain(old)))
        assert flat_norm(grad) < 1e-8 * scale, (path, flat_norm(grad), scale)
        results.append(u)
        base = float(expected(u))
        for seed in range(3):
            keys = jax.random.split(jax.random.PRNGKey(seed), 3)
            bumped = jax.tree.map(lambda a, kk: a + 1e-3 * jax.random.normal(kk, a.shape),
                                  u, type(u)(*keys))
            assert float(expected(bumped)) < base
    for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_map_em_fixed_point_is_stationary_for_log_posterior(rng, covariance_type):
    """Converged MAP-EM: gradient of the mean log-posterior ~ 0."""
    x, prior = data_and_prior(rng, covariance_type)
    result = fit_gmm(0, x, 3, covariance_type=covariance_type, prior=prior, reg_covar=0.0,
                     tol=1e-13, **FIT)
    assert bool(result.converged[result.best])
    data = chunk(jnp.asarray(x))
    value = Objective(covariance_type, data, prior).value
    grad = jax.grad(value)(unconstrain(result.best_params))
    away = jax.grad(value)(unconstrain(some_params(x, covariance_type)))
    assert flat_norm(grad) < 1e-6 * flat_norm(away), (flat_norm(grad), flat_norm(away))


@pytest.mark.parametrize("covariance_type, dtype", [(t, np.float64) for t in TYPES] + [
    ("full", np.float32), ("diag", np.float32)])
def test_map_em_log_posterior_never_decreases(rng, covariance_type, dtype):
    x, prior = data_and_prior(rng, covariance_type)
    x = x.astype(dtype)
    result = fit_gmm(1, x, 3, covariance_type=covariance_type, prior=prior, reg_covar=0.0,
                     tol=0.0, **FIT)
    hist = np.asarray(result.history, np.float64)[:, :200]
    assert np.all(np.isfinite(hist)) and not np.any(result.failed)
    slack = 0.0 if dtype == np.float64 else 8 * np.finfo(np.float32).eps * np.abs(hist).max()
    drops = np.diff(hist, axis=1)
    assert drops.min() >= -max(slack, 1e-12), drops.min()
    assert np.all(hist[:, -1] > hist[:, 0])


def test_em_objective_is_the_mean_log_posterior(rng):
    """em_step's objective with a prior = mean_log_posterior = -gradient loss."""
    x, prior = data_and_prior(rng, "full")
    params = some_params(x, "full")
    data = chunk(jnp.asarray(x), 64)
    _, objective = em_step(params, data, 0.0, "exact", prior)
    expected = (jnp.sum(jax.nn.logsumexp(
        component_log_prob(params, jnp.asarray(x)) + jnp.log(params.weights), axis=1))
        + log_prior(params, prior)) / x.shape[0]
    np.testing.assert_allclose(objective, expected, rtol=1e-12)
    np.testing.assert_allclose(mean_log_posterior(params, data, prior), expected, rtol=1e-12)
    np.testing.assert_allclose(Objective("full", data, prior).value(unconstrain(params)),
                               expected, rtol=1e-12)
    _, ml = em_step(params, data, 0.0, "exact")
    np.testing.assert_allclose(ml, mean_log_posterior(params, data, None), rtol=1e-12)


def test_fit_gmm_with_prior_is_translation_equivariant(rng):
    """fit_gmm centres the data: the prior's mean must move with it."""
    x, _ = data_and_prior(rng, "full", offset=0.0)
    shift = np.array([50.0, -20.0, 5.0])
    prior = default_prior(x, 3, "full")._replace(mean_precision=jnp.asarray(2.0))
    a = fit_gmm(0, x, 3, prior=prior, tol=1e-10, **FIT)
    b = fit_gmm(0, x + shift, 3, prior=prior._replace(mean_prior=prior.mean_prior + shift),
                tol=1e-10, **FIT)
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-9)
    np.testing.assert_allclose(a.best_params.means + shift, b.best_params.means, atol=1e-7)
    # and the prior changes the answer (kappa = 2 shrinks the means)
    ml = fit_gmm(0, x, 3, tol=1e-10, **FIT)
    assert np.abs(np.asarray(ml.best_params.means - a.best_params.means)).max() > 1e-3


def test_fit_gmm_prior_default_and_validation(rng):
    x, _ = data_and_prior(rng, "diag")
    a = fit_gmm(0, x, 3, covariance_type="diag", prior="default", **FIT)
    b = fit_gmm(0, x, 3, covariance_type="diag", prior=default_prior(x, 3, "diag"), **FIT)
    np.testing.assert_allclose(a.history, b.history, rtol=1e-12)
    with pytest.raises(ValueError, match="covariance_prior must have shape"):
        fit_gmm(0, x, 3, covariance_type="diag", prior=default_prior(x, 3, "full"))
