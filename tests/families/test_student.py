"""Student-t mixtures: density against scipy.stats.multivariate_t, the ECM
degrees-of-freedom step against its defining equation, EM monotone, planted
heavy-tailed clusters recovered (and better than a Gaussian mixture's
likelihood on them)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats as st

from jaxmix import fit_gmm
from jaxmix.families import MixtureParams, StudentParams, StudentT, fit_mixture, log_prob, sample
from jaxmix.families.student import _dof

TRUE = StudentParams(np.array([[-6.0, 0.0], [6.0, 1.0]]),
                     np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]]]),
                     np.array([3.0, 5.0]))
WEIGHTS = np.array([0.4, 0.6])


def planted(n=2000):
    params = MixtureParams(jnp.asarray(WEIGHTS), jax.tree.map(jnp.asarray, TRUE))
    x, labels = sample(StudentT(), jax.random.PRNGKey(0), params, n)
    return np.asarray(x, np.float64), np.asarray(labels)


def test_density_is_scipys():
    x, _ = planted(50)
    got = log_prob(StudentT(), MixtureParams(jnp.asarray(WEIGHTS), jax.tree.map(jnp.asarray,
                                                                              TRUE)), x)
    per = np.stack([np.log(WEIGHTS[j]) + st.multivariate_t(TRUE.means[j], TRUE.covariances[j],
                                                           df=TRUE.dof[j]).logpdf(x)
                    for j in range(2)], axis=1)
    np.testing.assert_allclose(got, np.logaddexp.reduce(per, axis=1), rtol=1e-10)


def test_degrees_of_freedom_solve_the_ecm_equation():
    old, mean_log_term, d = jnp.array([4.0, 20.0]), jnp.array([-1.05, -1.3]), 2
    nu = np.asarray(_dof(old, mean_log_term, d))
    lhs = (1 + np.log(nu / 2) - special.digamma(nu / 2) + np.asarray(mean_log_term)
           + special.digamma((np.asarray(old) + d) / 2) - np.log((np.asarray(old) + d) / 2))
    np.testing.assert_allclose(lhs, 0.0, atol=1e-9)


@pytest.mark.slow
def test_em_recovers_heavy_tailed_clusters():
    x, labels = planted(1000)
    result = fit_mixture(0, x, 2, StudentT(), n_restarts=4, max_iter=200, tol=1e-9)
    for h in np.asarray(result.history):
        h = h[~np.isnan(h)]
        assert np.all(np.diff(h) >= -1e-10 * np.abs(h).max())
    best = result.best_params.theta
    order = np.argsort(np.asarray(best.means)[:, 0])
    np.testing.assert_allclose(np.asarray(best.means)[order], TRUE.means, atol=0.12)
    np.testing.assert_allclose(np.asarray(best.covariances)[order], TRUE.covariances, atol=0.2)
    assert np.all((np.asarray(best.dof)[order] > 2) & (np.asarray(best.dof)[order] < 8))
    gauss = fit_gmm(0, x, 2, n_restarts=4, tol=1e-9, max_iter=200)
    assert float(result.objective[result.best]) > float(gauss.objective[gauss.best]) + 0.05


def test_a_student_t_model_file_round_trips(tmp_path):
    from jaxmix.io.mixture_file import load_mixture, save_mixture
    x, _ = planted(200)
    family = StudentT(dof=4.0, fixed_dof=True)
    result = fit_mixture(0, x, 2, family, max_iter=5)
    save_mixture(tmp_path / "t.npz", family, result.best_params)
    loaded, params, _ = load_mixture(tmp_path / "t.npz")
    assert loaded == family
    np.testing.assert_array_equal(params.theta.dof, result.best_params.theta.dof)
    np.testing.assert_allclose(params.theta.dof, 4.0)  # fixed
