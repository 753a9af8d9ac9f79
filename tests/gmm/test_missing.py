"""EM with missing values (jaxmix.gmm.missing): with nothing missing it is
complete-data EM; with values missing its objective is the observed data's
log-likelihood computed by brute force with scipy, it never falls, its
optimum is stationary for that likelihood (finite differences), and the
conditional-mean imputation is the closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

import jaxmix as jm
from jaxmix.gmm.covariance import family
from jaxmix.gmm.missing import impute

RNG = np.random.default_rng(0)
X = np.concatenate([RNG.normal(-3, 1, (40, 3)), RNG.normal(3, 1, (40, 3))]) @ np.array(
    [[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
HOLES = RNG.random(X.shape) < 0.2
HOLES[HOLES.all(axis=1)] = False
XM = np.where(HOLES, np.nan, X)


def brute_log_lik(weights, means, covs, x):
    """Mean over rows of log sum_j w_j N(x_o; mu_o, Sigma_oo), row by row."""
    total = 0.0
    for row in x:
        o = ~np.isnan(row)
        total += np.log(sum(w * st.multivariate_normal(m[o], c[np.ix_(o, o)]).pdf(row[o])
                            for w, m, c in zip(weights, means, covs)))
    return total / len(x)


def dense(p):
    k, d = p.means.shape
    return np.asarray(family(p.covariance_type).dense_covariance(p.precisions_cholesky, k, d))


@pytest.mark.parametrize("ct", ["full"] + [pytest.param(c, marks=pytest.mark.slow)
                                           for c in ("diag", "tied", "spherical")])
def test_nothing_missing_is_complete_data_em(ct):
    a = jm.fit_gmm(0, X, 2, covariance_type=ct, path="exact", max_iter=15, tol=0.0)
    b = jm.fit_gmm(0, X, 2, covariance_type=ct, missing="marginalize", max_iter=15, tol=0.0)
    np.testing.assert_allclose(np.asarray(b.history), np.asarray(a.history), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b.params.means), np.asarray(a.params.means),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ct", ["full", pytest.param("diag", marks=pytest.mark.slow)])
def test_missing_values_em_maximises_the_observed_likelihood(ct):
    res = jm.fit_gmm(0, XM, 2, covariance_type=ct, missing="marginalize", tol=1e-12,
                     max_iter=500)
    p = res.best_params
    h = np.asarray(res.history[0])
    h = h[~np.isnan(h)]
    assert bool(res.converged[0]) and np.all(np.diff(h) >= -1e-12 * np.abs(h[:-1]))
    w, mu, cov = np.asarray(p.weights), np.asarray(p.means), dense(p)
    value = brute_log_lik(w, mu, cov, XM)
    np.testing.assert_allclose(value, float(res.objective[0]), atol=1e-10)
    # stationary: every mean coordinate and variance, by central differences
    eps = 1e-5
    for j in range(2):
        for i in range(3):
            up, down = mu.copy(), mu.copy()
            up[j, i] += eps
            down[j, i] -= eps
            slope = (brute_log_lik(w, up, cov, XM) - brute_log_lik(w, down, cov, XM)) / (2 * eps)
            assert abs(slope) < 1e-5, (j, i, slope)
            cu, cd = cov.copy(), cov.copy()
            cu[j, i, i] += eps
            cd[j, i, i] -= eps
            slope = (brute_log_lik(w, mu, cu, XM) - brute_log_lik(w, mu, cd, XM)) / (2 * eps)
            assert abs(slope) < 1e-4, ("variance", j, i, slope)


def test_imputation_is_the_conditional_mean_and_the_checks():
    p = jm.fit_gmm(0, XM, 2, missing="marginalize").best_params
    got = np.asarray(impute(p, XM))
    w, mu, cov = np.asarray(p.weights), np.asarray(p.means), dense(p)
    for n in np.flatnonzero(HOLES.any(axis=1))[:10]:
        o, m = ~HOLES[n], HOLES[n]
        dens = np.array([wj * st.multivariate_normal(mu[j][o], cov[j][np.ix_(o, o)]).pdf(X[n, o])
                         for j, wj in enumerate(w)])
        cond = [mu[j][m] + cov[j][np.ix_(m, o)] @ np.linalg.solve(cov[j][np.ix_(o, o)],
                                                                   X[n, o] - mu[j][o])
                for j in range(2)]
        np.testing.assert_allclose(got[n, m], (dens / dens.sum()) @ np.array(cond), rtol=1e-9)
        np.testing.assert_array_equal(got[n, o], X[n, o])
    bad = XM.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="every value missing"):
        jm.fit_gmm(0, bad, 2, missing="marginalize")
    bad = XM.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="only NaN marks a missing value"):
        jm.fit_gmm(0, bad, 2, missing="marginalize")
    with pytest.raises(ValueError, match="missing"):
        jm.fit_gmm(0, XM, 2, missing="impute")
    with pytest.raises(ValueError, match="NaN"):
        jm.fit_gmm(0, XM, 2)  # the default is unchanged: NaN is an error
    with pytest.raises(ValueError, match="in-memory array"):
        jm.fit_gmm(0, jm.open_source(X), 2, missing="marginalize")
