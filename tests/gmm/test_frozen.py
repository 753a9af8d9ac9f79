"""Frozen parameters (jaxmix.gmm.frozen): EM's constrained M-step against
the closed form written out in numpy, EM's objective never falling, the
gradient fit reaching EM's optimum on the same constrained objective, frozen
values kept, and the argument checks."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import jaxmix as jm
from jaxmix import Frozen

RNG = np.random.default_rng(0)
X = np.concatenate([RNG.normal(-3, 1, (150, 2)), RNG.normal(3, 1, (150, 2)),
                    RNG.normal((0, 4), 0.5, (100, 2))])
REG = 1e-6
MIXED = Frozen(weights=np.array([True, False, False]), means=np.array([False, False, True]),
               covariances=np.array([False, True, False]))


def start(ct="full"):
    return jm.fit_gmm(0, X, 3, covariance_type=ct, max_iter=1).best_params


def covariances(p):
    return np.asarray(jm.gmm.covariance.family(p.covariance_type).covariance(
        p.precisions_cholesky))


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_one_constrained_em_step_is_the_closed_form(ct):
    """From the start's responsibilities r: free weights share 1 - w_0 in
    proportion to their n_j; a frozen mean keeps its value and its
    covariance is the scatter about it; a frozen covariance keeps its value
    while its mean is the weighted mean."""
    p0 = start(ct)
    new = jm.fit_gmm(0, X, 3, covariance_type=ct, init_params=p0, frozen=MIXED, max_iter=1,
                     tol=0.0).best_params
    r = np.asarray(jm.gmm.responsibilities(p0, X))
    nk = r.sum(axis=0)
    w0 = float(p0.weights[0])
    np.testing.assert_allclose(np.asarray(new.weights),
                               [w0, *(1 - w0) * nk[1:] / nk[1:].sum()], rtol=1e-12)
    assert float(new.weights[0]) == w0
    means = (r.T @ X) / nk[:, None]
    np.testing.assert_allclose(np.asarray(new.means[:2]), means[:2], rtol=1e-10)
    np.testing.assert_array_equal(np.asarray(new.means[2]), np.asarray(p0.means[2]))
    z = X - np.asarray(p0.means[2])
    scatter = (r[:, 2, None] * z).T @ z / nk[2]
    want = scatter + REG * np.eye(2) if ct == "full" else np.diag(scatter) + REG
    np.testing.assert_allclose(covariances(new)[2], want, rtol=1e-9)
    np.testing.assert_array_equal(np.asarray(new.precisions_cholesky[1]),
                                  np.asarray(p0.precisions_cholesky[1]))


@pytest.mark.parametrize("ct", ["full", pytest.param("tied", marks=pytest.mark.slow),
                                pytest.param("spherical", marks=pytest.mark.slow)])
def test_em_and_lbfgs_reach_one_constrained_optimum(ct):
    """EM never lowers the objective; L-BFGS from the same start and the
    same frozen parameters reaches EM's objective and parameters (the same
    constrained objective); both keep the frozen values (EM exactly, the
    gradient fit to the bijector's rounding)."""
    frozen = MIXED._replace(covariances=True) if ct == "tied" else MIXED
    p0 = start(ct)
    em = jm.fit_gmm(0, X, 3, covariance_type=ct, init_params=p0, frozen=frozen, tol=1e-12,
                    max_iter=1000)
    grad = jm.fit_gradient(0, X, 3, optax.lbfgs(), covariance_type=ct, init_params=p0,
                           frozen=frozen, tol=1e-10, max_iter=500)
    h = np.asarray(em.history[0])
    h = h[~np.isnan(h)]
    assert np.all(np.diff(h) >= -1e-12 * np.abs(h[:-1]))
    assert bool(em.converged[0]) and bool(grad.converged[0])
    np.testing.assert_allclose(float(grad.objective[0]), float(em.objective[0]), atol=1e-9)
    pe, pg = em.best_params, grad.best_params
    np.testing.assert_allclose(np.asarray(pg.means), np.asarray(pe.means), atol=1e-4)
    for p, exact in ((pe, True), (pg, False)):
        check = np.testing.assert_array_equal if exact else (
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15))
        check(np.asarray(p.weights[0]), np.asarray(p0.weights[0]))
        check(np.asarray(p.means[2]), np.asarray(p0.means[2]))
        pc = np.asarray(p.precisions_cholesky)
        check(pc if ct == "tied" else pc[1],
              np.asarray(p0.precisions_cholesky if ct == "tied" else p0.precisions_cholesky[1]))


def test_a_gradient_fit_holds_a_frozen_weight_while_the_others_move():
    """Adam with weight 0 frozen: that weight stays at its start (to the
    bijector's rounding), the free weights move (the fit is not padded: a
    frozen fit keeps its k)."""
    p0 = start("diag")
    frozen = Frozen(weights=np.array([True, False, False]))
    res = jm.fit_gradient(0, X, 3, optax.adam(0.1), covariance_type="diag", init_params=p0,
                          frozen=frozen, tol=0.0, max_iter=20)
    w = np.asarray(res.best_params.weights)
    np.testing.assert_allclose(w[0], np.asarray(p0.weights[0]), rtol=1e-12)
    assert np.max(np.abs(w[1:] - np.asarray(p0.weights[1:]))) > 1e-4
    np.testing.assert_allclose(np.sum(w), 1.0, rtol=1e-12)


def test_everything_frozen_is_the_start_and_the_checks():
    p0 = start()
    held = jm.fit_gmm(0, X, 3, init_params=p0,
                      frozen=Frozen(weights=True, means=True, covariances=True), max_iter=5)
    for a, b in zip(jax.tree.leaves(held.best_params), jax.tree.leaves(p0)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="give init_params"):
        jm.fit_gmm(0, X, 3, frozen=Frozen(means=True))
    with pytest.raises(ValueError, match=r"frozen.weights must be True, False or 3 booleans"):
        jm.fit_gmm(0, X, 3, init_params=p0, frozen=Frozen(weights=[True, False]))
    with pytest.raises(ValueError, match="tied covariance is shared"):
        jm.fit_gmm(0, X, 3, covariance_type="tied", init_params=start("tied"),
                   frozen=Frozen(covariances=np.array([True, False, False])))
    with pytest.raises(ValueError, match="jaxmix.Frozen"):
        jm.fit_gmm(0, X, 3, init_params=p0, frozen={"means": True})


@pytest.mark.slow
def test_map_em_with_a_frozen_mean_is_the_conditional_map():
    """Under the default prior, one MAP-EM step keeps the frozen mean and
    gives its covariance (Psi + S_mu + kappa (mu - m0)(mu - m0)^T) /
    (nu + n_j + d + 2) + reg_covar; free weights share 1 - w_0 in proportion
    to n_j + alpha - 1; L-BFGS on the log-posterior reaches MAP-EM's optimum."""
    from jaxmix.gmm.priors import default_prior
    p0 = start()
    prior = default_prior(X, 3, "full")
    frozen = Frozen(weights=np.array([True, False, False]), means=np.array([False, False, True]))
    new = jm.fit_gmm(0, X, 3, init_params=p0, frozen=frozen, prior=prior, max_iter=1,
                     tol=0.0).best_params
    r = np.asarray(jm.gmm.responsibilities(p0, X))
    nk = r.sum(axis=0)
    mu = np.asarray(p0.means[2])
    z = X - mu
    delta = mu - np.asarray(prior.mean_prior)
    kappa, nu = float(prior.mean_precision), float(prior.degrees_of_freedom)
    want = (np.asarray(prior.covariance_prior) + (r[:, 2, None] * z).T @ z
            + kappa * np.outer(delta, delta)) / (nu + nk[2] + 2 + 2) + REG * np.eye(2)
    np.testing.assert_allclose(covariances(new)[2], want, rtol=1e-9)
    np.testing.assert_array_equal(np.asarray(new.means[2]), mu)
    alpha = float(prior.weight_concentration)
    free = nk[1:] + alpha - 1
    w0 = float(p0.weights[0])
    np.testing.assert_allclose(np.asarray(new.weights[1:]), (1 - w0) * free / free.sum(),
                               rtol=1e-12)
    em = jm.fit_gmm(0, X, 3, init_params=p0, frozen=frozen, prior=prior, tol=1e-12,
                    max_iter=1000)
    grad = jm.fit_gradient(0, X, 3, optax.lbfgs(), init_params=p0, frozen=frozen, prior=prior,
                           tol=1e-10, max_iter=500)
    h = np.asarray(em.history[0])
    h = h[~np.isnan(h)]
    assert np.all(np.diff(h) >= -1e-12 * np.abs(h[:-1]))
    np.testing.assert_allclose(float(grad.objective[0]), float(em.objective[0]), atol=1e-9)
