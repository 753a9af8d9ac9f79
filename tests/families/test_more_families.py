"""Categorical, exponential, diagonal Gaussian and product families: densities
against scipy.stats (or direct lookups), M-steps against closed forms,
planted components recovered, support checked over every chunk (every
placement giving the same fit: tests/fit/test_conformance.py)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as st

import jaxmix as jm
from jaxmix.families import (Bernoulli, Categorical, DiagGaussian, DiagParams, Exponential,
                             MixtureParams, Poisson, Product, fit_mixture, log_prob,
                             n_parameters, sample)

K = 3
CAT = Categorical((3, 2, 4))
CAT_THETA = np.array([  # (k, d, C): codes a column lacks have probability 0
    [[0.8, 0.1, 0.1, 0], [0.9, 0.1, 0, 0], [0.1, 0.1, 0.1, 0.7]],
    [[0.1, 0.8, 0.1, 0], [0.2, 0.8, 0, 0], [0.7, 0.1, 0.1, 0.1]],
    [[0.1, 0.1, 0.8, 0], [0.5, 0.5, 0, 0], [0.1, 0.7, 0.1, 0.1]]])
EXP_THETA = np.array([[0.5, 4.0], [3.0, 0.3], [1.0, 1.0]])
GAUSS_THETA = DiagParams(np.array([[-5.0, 0.0], [5.0, 0.0], [0.0, 6.0]]),
                         np.array([[1.0, 0.5], [0.5, 2.0], [1.0, 1.0]]))
POIS_THETA = np.array([[1.0], [8.0], [3.0]])
MIXED = Product(((DiagGaussian(), (0, 2)), (Categorical((3,)), (1,)), (Poisson(), (3,))))
MIXED_THETA = (GAUSS_THETA, CAT_THETA[:, :1, :3], POIS_THETA)
CASES = {"categorical": (CAT, CAT_THETA), "exponential": (Exponential(), EXP_THETA),
         "gaussian": (DiagGaussian(), GAUSS_THETA), "mixed": (MIXED, MIXED_THETA)}
WEIGHTS = np.array([0.3, 0.3, 0.4])


def planted(name, n=1500, seed=0):
    family, theta = CASES[name]
    params = MixtureParams(jnp.asarray(WEIGHTS), jax.tree.map(jnp.asarray, theta))
    x, labels = sample(family, jax.random.PRNGKey(seed), params, n)
    return np.asarray(x, np.float64), np.asarray(labels)


def reference_component_log_prob(name, x):
    """(n, k) per-component log-densities from scipy.stats / direct lookups."""
    def block(kind, theta, xb):
        if kind == "categorical":
            codes = xb.astype(int)
            return np.stack([np.sum(np.log(theta[j][np.arange(xb.shape[1]), codes]), axis=1)
                             for j in range(K)], axis=1)
        if kind == "exponential":
            return np.stack([st.expon(scale=1 / theta[j]).logpdf(xb).sum(axis=1)
                             for j in range(K)], axis=1)
        if kind == "gaussian":
            return np.stack([st.norm(theta.means[j], np.sqrt(theta.variances[j])).logpdf(
                xb).sum(axis=1) for j in range(K)], axis=1)
        return np.stack([st.poisson(theta[j]).logpmf(xb).sum(axis=1) for j in range(K)], axis=1)
    if name != "mixed":
        return block(name, CASES[name][1], x)
    return (block("gaussian", GAUSS_THETA, x[:, [0, 2]])
            + block("categorical", CAT_THETA[:, :1, :3], x[:, [1]])
            + block("poisson", POIS_THETA, x[:, [3]]))


@pytest.mark.parametrize("name", CASES)
def test_log_density_is_the_reference(name):
    family, theta = CASES[name]
    x, _ = planted(name, 60)
    per = reference_component_log_prob(name, x)
    expected = np.logaddexp.reduce(np.log(WEIGHTS) + per, axis=1)
    got = log_prob(family, MixtureParams(jnp.asarray(WEIGHTS), jax.tree.map(jnp.asarray, theta)),
                   x)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("name", ["categorical", "exponential", "gaussian"])
def test_m_step_is_the_weighted_closed_form(name):
    """ML M-steps against numpy's weighted frequencies, 1 / mean, mean and variance."""
    family, _ = CASES[name]
    x, _ = planted(name, 300)
    r = np.random.default_rng(1).dirichlet(np.ones(K), size=len(x))
    nk = r.sum(axis=0)
    theta = family.m_step(None, jnp.asarray(nk), family.stats(None, jnp.asarray(x),
                                                               jnp.asarray(r)), None)
    mean = (r.T @ x) / nk[:, None]
    if name == "categorical":
        for i, c in enumerate(CAT.n_categories):
            freq = np.stack([np.bincount(x[:, i].astype(int), r[:, j], c) for j in range(K)])
            np.testing.assert_allclose(np.asarray(theta)[:, i, :c], freq / nk[:, None],
                                       rtol=1e-10)
    elif name == "exponential":
        np.testing.assert_allclose(theta, 1 / mean, rtol=1e-10)
    else:
        var = (r.T @ x ** 2) / nk[:, None] - mean ** 2 + family.reg_covar
        np.testing.assert_allclose(theta.means, mean, rtol=1e-10)
        np.testing.assert_allclose(theta.variances, var, rtol=1e-8)
        # centred about given means: the same M-step
        again = family.m_step(theta, jnp.asarray(nk), family.stats(theta, jnp.asarray(x),
                                                                    jnp.asarray(r)), None)
        np.testing.assert_allclose(again.variances, var, rtol=1e-8)


def _matched(theta, truth):
    """``theta``'s components in the order closest to ``truth``'s."""
    first = lambda t: np.asarray(jax.tree.leaves(t)[0]).reshape(K, -1)  # noqa: E731
    order = min(itertools.permutations(range(K)),
                key=lambda p: np.abs(first(theta)[list(p)] - first(truth)).sum())
    return jax.tree.map(lambda a: np.asarray(a)[list(order)], theta)


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n == "mixed" else pytest.mark.slow)
                                  for n in CASES])
def test_em_recovers_planted_components(name):
    """Default run: the product (three families); each family alone: slow set."""
    family, truth = CASES[name]
    x, _ = planted(name)
    result = fit_mixture(0, x, K, family, n_restarts=8, max_iter=300, tol=1e-8)
    for h in np.asarray(result.history):
        h = h[~np.isnan(h)]
        assert np.all(np.diff(h) >= -1e-10 * np.abs(h).max())
    got = _matched(result.best_params.theta, truth)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(truth)):
        np.testing.assert_allclose(a, b, atol=0.15 * max(1.0, np.abs(b).max()))
    per = reference_component_log_prob(name, x)
    at_truth = np.logaddexp.reduce(np.log(WEIGHTS) + per, axis=1).mean()
    assert float(result.objective[result.best]) >= at_truth - 1e-3
    assert not np.any(result.failed)


def test_support_is_checked_over_every_chunk_of_a_stream():
    x = planted("mixed", 400)[0].copy()
    x[350, 3] = -2.0  # a negative count in the last chunk
    with pytest.raises(ValueError, match=r"1 row\(s\) lie outside .*poisson columns \[3\]"):
        fit_mixture(0, jm.open_source(x), K, MIXED, chunk_size=100, max_iter=2)


def test_a_product_counts_its_blocks_parameters():
    assert n_parameters(MIXED, MixtureParams(jnp.ones(K) / K, MIXED_THETA), 4) == \
        (K - 1) + K * (2 * 2 + 2 + 1)
    assert CAT.n_free(3) == 2 + 1 + 3
    with pytest.raises(ValueError, match="cover the columns"):
        Product(((Poisson(), (0, 1)), (Bernoulli(), (1,))))


def test_gaussian_blocks_keep_float32_accuracy_far_from_the_origin():
    """Two unit-variance blobs moved to 1e4 (float32 spacing there ~1e-3):
    centred statistics and log-densities still give variances near 1."""
    rng = np.random.default_rng(0)
    labels = np.arange(2000) % 2
    z = rng.normal(size=(2000, 2)) + np.where(labels[:, None] == 1, 3.0, -3.0)
    result = fit_mixture(0, (z + 1e4).astype(np.float32), 2, DiagGaussian(), n_restarts=4,
                         max_iter=50)
    np.testing.assert_allclose(np.asarray(result.best_params.theta.variances), 1.0, atol=0.1)
    assert float(result.objective[result.best]) < 0  # a density of unit-variance blobs


def test_collapsed_gaussian_components_and_short_category_lists_are_reported():
    x = np.concatenate([np.repeat([[0.0, 1.0]], 50, axis=0),
                        np.random.default_rng(0).normal(size=(50, 2)) + 5])
    result = fit_mixture(0, x, 2, DiagGaussian(), n_restarts=2, max_iter=20)
    assert np.all(result.degenerate)  # one component sits on the repeated point
    with pytest.raises(ValueError, match="one number of categories per column"):
        fit_mixture(0, np.zeros((10, 2)), 1, Categorical((3,)))
