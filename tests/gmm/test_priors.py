"""Priors: log-density against scipy.stats, defaults, validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TYPES, random_covariances
from scipy import stats
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

from jaxmix import GMMParams
from jaxmix.gmm.priors import (DefaultPriorOf, GMMPrior, check_prior, default_prior, in_program,
                               log_prior, requested_prior)


def scipy_log_prior(w, means, cov, covariance_type, alpha, m0, kappa, nu, psi):
    """The prior's log-density as a sum of scipy.stats log-pdfs."""
    k, d = means.shape
    out = stats.dirichlet.logpdf(w, alpha * np.ones(k))
    if covariance_type == "full":
        for j in range(k):
            out += stats.invwishart.logpdf(cov[j], nu, psi)
            out += stats.multivariate_normal.logpdf(means[j], m0, cov[j] / kappa)
    elif covariance_type == "tied":
        out += stats.invwishart.logpdf(cov, nu, psi)
        for j in range(k):
            out += stats.multivariate_normal.logpdf(means[j], m0, cov / kappa)
    elif covariance_type == "diag":
        out += np.sum(stats.invgamma.logpdf(cov, nu / 2, scale=psi / 2))
        out += np.sum(stats.norm.logpdf(means, m0, np.sqrt(cov / kappa)))
    else:
        out += np.sum(stats.invgamma.logpdf(cov, d * nu / 2, scale=d * psi / 2))
        out += np.sum(stats.norm.logpdf(means, m0, np.sqrt(cov[:, None] / kappa)))
    return out


def random_scale(rng, covariance_type, d):
    if covariance_type in ("full", "tied"):
        return random_covariances(rng, "tied", 1, d, scale=2.0)
    if covariance_type == "diag":
        return rng.uniform(0.5, 3.0, size=d)
    return float(rng.uniform(0.5, 3.0))


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("alpha", [0.6, 1.0, 3.0])
def test_log_prior_matches_scipy(rng, covariance_type, alpha):
    k, d = 3, 4
    w = rng.dirichlet(np.ones(k))
    means = rng.normal(size=(k, d))
    cov = random_covariances(rng, covariance_type, k, d, scale=1.5)
    m0, kappa, nu = rng.normal(size=d), 0.37, d + 0.8
    psi = random_scale(rng, covariance_type, d)
    params = GMMParams(w, means, _compute_precision_cholesky(cov, covariance_type),
                       covariance_type)
    prior = GMMPrior(jnp.asarray(alpha), jnp.asarray(m0), jnp.asarray(kappa), jnp.asarray(nu),
                     jnp.asarray(psi))
    expected = scipy_log_prior(w, means, cov, covariance_type, alpha, m0, kappa, nu,
                               np.asarray(psi))
    np.testing.assert_allclose(float(log_prior(params, prior)), expected, rtol=1e-10)


def test_no_prior_is_zero(rng):
    params = GMMParams(np.ones(2) / 2, rng.normal(size=(2, 3)), np.stack([np.eye(3)] * 2))
    assert float(log_prior(params, None)) == 0.0


def test_families_coincide_in_one_dimension(rng):
    """IW(nu, psi) in 1-D is InvGamma(nu/2, psi/2): all four families agree."""
    w, mu, var = np.array([1.0]), np.array([[0.3]]), 0.7
    pc = 1 / np.sqrt(var)
    layouts = {"full": (np.array([[[pc]]]), np.array([[1.3]])),
               "tied": (np.array([[pc]]), np.array([[1.3]])),
               "diag": (np.array([[pc]]), np.array([1.3])),
               "spherical": (np.array([pc]), np.array(1.3))}
    values = []
    for covariance_type, (pcs, psi) in layouts.items():
        prior = GMMPrior(jnp.asarray(2.0), jnp.array([0.1]), jnp.asarray(0.5), jnp.asarray(3.0),
                         jnp.asarray(psi))
        values.append(float(log_prior(GMMParams(w, mu, pcs, covariance_type), prior)))
    np.testing.assert_allclose(values, values[0], rtol=1e-12)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_default_prior(rng, covariance_type):
    k, d = 4, 3
    x = rng.normal(size=(500, d)) * np.array([1.0, 2.0, 0.5]) + 7.0
    prior = default_prior(x, k, covariance_type)
    cov = np.cov(x.T, bias=True)
    floor = 1e-6 * np.mean(np.diag(cov))
    scale = cov / k ** (2 / d) + floor * np.eye(d)
    expected = {"full": scale, "tied": scale, "diag": np.diag(scale),
                "spherical": np.mean(np.diag(scale))}[covariance_type]
    np.testing.assert_allclose(prior.covariance_prior, expected, rtol=1e-10)
    np.testing.assert_allclose(prior.mean_prior, x.mean(0), rtol=1e-12)
    assert float(prior.weight_concentration) == 1.0
    assert float(prior.mean_precision) == 0.01
    assert float(prior.degrees_of_freedom) == d + 2
    check_prior(prior, d, covariance_type, jnp.float64)  # valid


def test_default_prior_is_proper_for_constant_features(rng):
    x = np.concatenate([rng.normal(size=(50, 2)), np.zeros((50, 1))], axis=1)
    prior = default_prior(x, 3, "full")
    assert np.linalg.eigvalsh(np.asarray(prior.covariance_prior)).min() > 0
    check_prior(prior, 3, "full", jnp.float64)
    prior = default_prior(np.ones((10, 2)), 2, "diag")  # no variance at all
    assert np.all(np.asarray(prior.covariance_prior) > 0)


def test_default_prior_sample_weight(rng):
    x = rng.normal(size=(40, 2))
    w = rng.integers(0, 3, size=40)
    p_w = default_prior(x, 2, "full", sample_weight=w)
    p_rep = default_prior(np.repeat(x, w, axis=0), 2, "full")
    np.testing.assert_allclose(p_w.covariance_prior, p_rep.covariance_prior, rtol=1e-10)
    np.testing.assert_allclose(p_w.mean_prior, p_rep.mean_prior, rtol=1e-10)


@pytest.mark.parametrize("field, value, match", [
    ("covariance_prior", np.eye(3), "shape"),
    ("covariance_prior", -np.eye(2), "positive definite"),
    ("covariance_prior", np.array([[1.0, 0.5], [0.0, 1.0]]), "symmetric"),
    ("degrees_of_freedom", 0.5, "degrees_of_freedom must be > 1"),
    ("weight_concentration", 0.0, "weight_concentration"),
    ("mean_precision", -1.0, "mean_precision"),
    ("mean_prior", np.array([np.nan, 0.0]), "NaN"),
])
def test_check_prior_errors_name_the_field(field, value, match):
    prior = default_prior(np.random.default_rng(0).normal(size=(20, 2)), 2, "full")
    with pytest.raises(ValueError, match=match):
        check_prior(prior._replace(**{field: value}), 2, "full")


def test_requested_prior():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(20, 2)))
    assert requested_prior(None, 2, 2, "diag", x.dtype) is None
    request = requested_prior("default", 3, 2, "diag", x.dtype)
    assert isinstance(request, DefaultPriorOf)
    with pytest.raises(ValueError, match="'default'"):
        requested_prior("flat", 2, 2, "diag", x.dtype)
    with pytest.raises(ValueError, match="GMMPrior"):
        requested_prior({"alpha": 1.0}, 2, 2, "diag", x.dtype)
    # built inside a fit's program from the fit's (chunked) sample: default_prior's values
    w = jnp.asarray(np.random.default_rng(1).uniform(size=20))
    built = jax.jit(lambda r, xc, wc: in_program(r, xc, wc, "diag"))(
        request, x.reshape(4, 5, 2), w.reshape(4, 5))
    expected = default_prior(x, 3, "diag", sample_weight=w)
    for a, b in zip(built, expected):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)
    given = default_prior(x, 2, "diag")
    assert in_program(given, x, w, "diag") is given


def test_prior_values_are_traced_not_static(rng):
    """Changing a prior's values does not recompile a jitted function of it."""
    params = GMMParams(np.ones(2) / 2, rng.normal(size=(2, 2)), np.stack([np.eye(2)] * 2))
    fn = jax.jit(log_prior)
    x = rng.normal(size=(30, 2))
    a = fn(params, default_prior(x, 2))
    b = fn(params, default_prior(x, 2, mean_precision=0.5))
    assert float(a) != float(b)
    assert fn._cache_size() == 1
