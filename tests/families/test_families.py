"""Mixtures of Bernoulli and Poisson components (jaxmix.families): densities
against scipy.stats, M-steps against brute force, EM's monotone objective,
one compiled call for all restarts, placements, weights, criteria, sampling."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as st
from scipy.optimize import minimize_scalar

import jaxmix as jm
from jaxmix.families import (Bernoulli, BetaPrior, GammaPrior, MixtureParams, Poisson, bic,
                             fit_mixture, log_prob, n_parameters, sample)
from jaxmix.families.fit import TRACE_COUNT

FAMILIES = {"bernoulli": Bernoulli(), "poisson": Poisson()}
TRUE = {"bernoulli": np.tile([[0.9, 0.8, 0.1, 0.2], [0.1, 0.9, 0.9, 0.1], [0.2, 0.1, 0.8, 0.9]],
                             (1, 2)),  # 8 binary features: identifiable at n = 1500
        "poisson": np.array([[1.0, 8.0, 0.5, 3.0], [6.0, 0.5, 2.0, 3.0], [3.0, 3.0, 9.0, 0.2]])}


def planted(name, n=1500, seed=0):
    rng = np.random.default_rng(seed)
    theta = TRUE[name][np.arange(n) % 3]
    x = rng.random(theta.shape) < theta if name == "bernoulli" else rng.poisson(theta)
    return x.astype(np.float64)


def scipy_log_prob(name, weights, theta, x):
    dist = st.bernoulli if name == "bernoulli" else st.poisson
    per = np.stack([dist.logpmf(x, t).sum(axis=1) for t in theta], axis=1)
    return np.logaddexp.reduce(np.log(weights) + per, axis=1)


@pytest.mark.parametrize("name", FAMILIES)
def test_log_density_is_scipys(name):
    x = planted(name, 50)
    weights = np.array([0.2, 0.5, 0.3])
    got = log_prob(FAMILIES[name], MixtureParams(jnp.asarray(weights), jnp.asarray(TRUE[name])), x)
    np.testing.assert_allclose(got, scipy_log_prob(name, weights, TRUE[name], x), rtol=1e-12)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("with_prior", [False, True])
def test_m_step_maximises_the_expected_log_posterior(name, with_prior):
    """Each coordinate of the M-step is the 1-D maximiser (found by scipy) of
    sum_n r_n log p(x_n | theta) + log prior(theta)."""
    family, x = FAMILIES[name], planted(name, 200)
    r = np.random.default_rng(1).dirichlet(np.ones(3), size=len(x))
    prior = (BetaPrior(2.0, 3.0) if name == "bernoulli" else GammaPrior(2.0, 0.5)) \
        if with_prior else None
    nk = r.sum(axis=0)
    theta = np.asarray(family.m_step(None, jnp.asarray(nk), family.stats(None, jnp.asarray(x), jnp.asarray(r)),
                                     prior))
    dist = st.bernoulli if name == "bernoulli" else st.poisson
    for j in range(3):
        for i in range(x.shape[1]):
            def negative(t):
                value = np.sum(r[:, j] * dist.logpmf(x[:, i], t))
                if prior is not None:
                    value += (st.beta(prior.a, prior.b).logpdf(t) if name == "bernoulli"
                              else st.gamma(prior.shape, scale=1 / prior.rate).logpdf(t))
                return -value
            bounds = (1e-9, 1 - 1e-9) if name == "bernoulli" else (1e-9, 50.0)
            best = minimize_scalar(negative, bounds=bounds, method="bounded",
                                   options=dict(xatol=1e-10))
            np.testing.assert_allclose(theta[j, i], best.x, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", FAMILIES)
def test_log_prior_is_scipys(name):
    family, theta = FAMILIES[name], TRUE[name]
    if name == "bernoulli":
        prior, ref = BetaPrior(2.0, 3.0), st.beta(2.0, 3.0).logpdf(theta).sum()
    else:
        prior, ref = GammaPrior(2.0, 0.5), st.gamma(2.0, scale=2.0).logpdf(theta).sum()
    np.testing.assert_allclose(family.log_prior(jnp.asarray(theta), prior), ref, rtol=1e-12)


@pytest.mark.parametrize("name", FAMILIES)
def test_em_recovers_planted_components_in_one_compiled_call(name):
    x = planted(name)
    before = TRACE_COUNT["mixture"]
    result = fit_mixture(0, x, 3, FAMILIES[name], n_restarts=8, max_iter=200, tol=1e-8)
    assert TRACE_COUNT["mixture"] == before + 1  # eight restarts, one program
    hist = np.asarray(result.history)
    for h in hist:  # EM never lowers its objective
        h = h[~np.isnan(h)]
        assert np.all(np.diff(h) >= -1e-12), np.diff(h).min()
    best = result.best_params
    theta = np.asarray(best.theta)
    order = min(itertools.permutations(range(3)),
                key=lambda p: np.abs(theta[list(p)] - TRUE[name]).sum())
    scale = 0.06 if name == "bernoulli" else 0.5  # a few standard errors at n=500 each
    np.testing.assert_allclose(theta[list(order)], TRUE[name], atol=scale)
    np.testing.assert_allclose(np.asarray(best.weights), 1 / 3, atol=0.05)
    at_truth = scipy_log_prob(name, np.full(3, 1 / 3), TRUE[name], x).mean()
    assert float(result.objective[result.best]) >= at_truth  # the MLE beats the truth
    assert not np.any(result.failed) and np.all(result.converged)


@pytest.mark.parametrize("name", FAMILIES)
def test_chunks_and_weights_change_nothing(name):
    """Chunked passes equal one chunk; integer weights equal repeated rows."""
    x = planted(name, 300)
    family, kw = FAMILIES[name], dict(n_restarts=2, max_iter=30, tol=0.0)
    one = fit_mixture(0, x, 3, family, **kw)
    chunked = fit_mixture(0, x, 3, family, chunk_size=64, **kw)
    np.testing.assert_allclose(chunked.history, one.history, rtol=1e-10)
    counts = np.random.default_rng(2).integers(1, 4, len(x))
    start = jax.tree.map(lambda a: a[0], one.params)
    weighted = fit_mixture(0, x, 3, family, sample_weight=counts.astype(float), prior="default",
                           init_params=start, **kw)
    repeated = fit_mixture(0, np.repeat(x, counts, axis=0), 3, family, prior="default",
                           init_params=start, **kw)
    np.testing.assert_allclose(weighted.history, repeated.history, rtol=1e-10)


@pytest.mark.parametrize("name", FAMILIES)
def test_criteria_and_sampling(name):
    family = FAMILIES[name]
    params = MixtureParams(jnp.array([0.2, 0.5, 0.3]), jnp.asarray(TRUE[name]))
    x, labels = sample(family, jax.random.PRNGKey(0), params, 30000)
    x, labels = np.asarray(x), np.asarray(labels)
    np.testing.assert_allclose(np.bincount(labels) / len(labels), [0.2, 0.5, 0.3], atol=0.01)
    for j in range(3):
        np.testing.assert_allclose(x[labels == j].mean(axis=0), TRUE[name][j],
                                   atol=0.03 if name == "bernoulli" else 0.15)
    free = 2 + 3 * TRUE[name].shape[1]
    assert n_parameters(family, params, TRUE[name].shape[1]) == free
    total = scipy_log_prob(name, np.array([0.2, 0.5, 0.3]), TRUE[name], x[:500]).sum()
    np.testing.assert_allclose(bic(family, params, x[:500]), -2 * total + free * np.log(500),
                               rtol=1e-10)
    # anomaly thresholds: the 4th percentile of scipy's log-densities
    density = scipy_log_prob(name, np.array([0.2, 0.5, 0.3]), TRUE[name], x[:2000])
    threshold = jm.density_threshold(params, x[:2000], 4.0, family=family, chunk_size=300)
    np.testing.assert_allclose(threshold, np.percentile(density, 4.0), rtol=1e-10)
    flags = jm.flag_anomalies(params, x[:2000], threshold, family=family)
    clear = np.abs(density - threshold) > 1e-9  # discrete data: many rows tie at the threshold
    np.testing.assert_array_equal(flags[clear], (density < threshold)[clear])


def test_data_outside_the_support_is_refused():
    with pytest.raises(ValueError, match="support \\(0 or 1\\)"):
        fit_mixture(0, np.array([[0.0, 2.0], [1.0, 0.0]]), 1, Bernoulli())
    with pytest.raises(ValueError, match="integers >= 0"):
        fit_mixture(0, np.array([[0.0, -1.0], [1.0, 0.0]]), 1, Poisson())
    with pytest.raises(ValueError, match="prior"):
        fit_mixture(0, np.array([[0.0, 1.0], [1.0, 0.0]]), 1, Poisson(), prior="strong")


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n == "poisson" else pytest.mark.slow)
                                  for n in FAMILIES])
def test_padded_components_change_nothing_and_share_one_program(name):
    """k = 3 and k = 5 run in the 8-component bucket: one program for both,
    each equal to the fit compiled for its exact k (padding off), with a
    prior (whose padding terms are taken off) and by a gradient fit."""
    import optax
    from jaxmix.fit.buckets import exact_shapes
    from jaxmix.families import fit_mixture_gradient
    x, family = planted(name, 300), FAMILIES[name]
    kw = dict(n_restarts=2, max_iter=15, tol=0.0, prior="default")
    before = TRACE_COUNT["mixture"]
    padded = {k: fit_mixture(0, x, k, family, **kw) for k in (3, 5)}
    assert TRACE_COUNT["mixture"] == before + 1
    with exact_shapes():
        for k, result in padded.items():
            exact = fit_mixture(0, x, k, family, **kw)
            np.testing.assert_allclose(result.history, exact.history, rtol=1e-10)
            np.testing.assert_allclose(result.params.theta, exact.params.theta, rtol=1e-8)
    opt = optax.adam(0.05)
    gd = fit_mixture_gradient(0, x, 3, family, opt, **kw)
    with exact_shapes():
        ref = fit_mixture_gradient(0, x, 3, family, opt, **kw)
    np.testing.assert_allclose(gd.history, ref.history, rtol=1e-8)
    assert gd.params.weights.shape == (2, 3)


def test_select_mixture_k_tabulates_the_grid_in_one_program_per_bucket():
    """k = 1..5 on planted Poisson data (3 components): one compiled fit for
    the whole grid (one bucket), BIC picks 3, each row is the fit of its own
    key whatever the grid, and the criteria are scipy's log-likelihood plus
    the counted parameters."""
    from jaxmix.families import select_mixture_k
    x = planted("poisson", 600)
    kw = dict(n_restarts=2, max_iter=60)
    before = TRACE_COUNT["mixture"]
    sel = select_mixture_k(0, x, [1, 2, 3, 4, 5], Poisson(), **kw)
    assert TRACE_COUNT["mixture"] - before <= 1
    assert sel.chosen_k("bic") == 3 and sel.covariance_types == ("poisson",)
    alone = fit_mixture(jax.random.fold_in(jax.random.PRNGKey(0), 4), x, 4, Poisson(), **kw)
    np.testing.assert_allclose(sel.best_params(4).theta, alone.best_params.theta, rtol=1e-10)
    for g, k in enumerate(sel.ks):
        p = sel.best_params(int(k))
        loglik = scipy_log_prob("poisson", np.asarray(p.weights), np.asarray(p.theta), x).sum()
        n_par = k - 1 + k * 4
        np.testing.assert_allclose(sel.bic[0, g], -2 * loglik + n_par * np.log(600), rtol=1e-10)
        np.testing.assert_allclose(sel.aic[0, g], -2 * loglik + 2 * n_par, rtol=1e-10)
    assert "| poisson | 3 |" in sel.to_markdown()
    with pytest.raises(ValueError, match="repeated"):
        select_mixture_k(0, x, [2, 2], Poisson())


def test_rows_outside_the_support_score_minus_infinity():
    """A Categorical model scores codes it cannot produce at -inf (they are
    the first anomalies), not at its highest density."""
    from jaxmix.families import Categorical, score_samples_chunked
    fam = Categorical((3, 3))
    params = MixtureParams(jnp.array([0.5, 0.5]),
                           jnp.full((2, 2, 3), 1.0 / 3))
    x = np.array([[0.0, 1.0], [7.0, 9.0], [-1.0, 2.0], [2.0, 2.0]])
    got = np.asarray(score_samples_chunked(fam, params, x))
    assert np.isneginf(got[1]) and np.isneginf(got[2])
    np.testing.assert_allclose(got[[0, 3]], 2 * np.log(1 / 3), rtol=1e-12)
