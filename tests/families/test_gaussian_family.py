"""``Gaussian(covariance_type)``: the covariance families of ``fit_gmm`` on
the component-family protocol. The generic fit from the same start follows
``fit_gmm`` step for step (ML and MAP); densities against scipy.stats; the
parameter count against ``jaxmix.criteria``; files round-trip."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import stats as st

import jaxmix as jm
from jaxmix.families import Gaussian, GaussianComponents, MixtureParams, fit_mixture
from jaxmix.families.spec import from_spec, to_spec
from jaxmix.gmm.priors import default_prior

RNG = np.random.default_rng(0)
X = np.concatenate([RNG.normal(size=(150, 3)) @ RNG.normal(size=(3, 3)),
                    RNG.normal(4.0, 0.5, (100, 3))])


def components(p: jm.GMMParams) -> MixtureParams:
    return MixtureParams(p.weights, GaussianComponents(p.means, p.precisions_cholesky))


@pytest.mark.parametrize("ct", ["full", pytest.param("spherical", marks=pytest.mark.slow),
                                pytest.param("diag", marks=pytest.mark.slow)])
@pytest.mark.parametrize("with_prior", [False, True], ids=["ml", "map"])
def test_generic_em_follows_fit_gmm_step_for_step(ct, with_prior):
    """Same start, 15 iterations, tol 0: the objective histories (mean
    log-likelihood, or log-posterior with fit_gmm's default prior, its
    normalised Dirichlet included) and the final parameters agree to float64
    rounding (fit_gmm centres the data and sums in another order)."""
    start = jm.fit_gmm(0, X, 3, covariance_type=ct, max_iter=1, tol=0.0).best_params
    prior = default_prior(X, 3, ct) if with_prior else None
    kw = dict(max_iter=15, tol=0.0, prior=prior)
    ref = jm.fit_gmm(0, X, 3, covariance_type=ct, init_params=start, **kw)
    got = fit_mixture(0, X, 3, Gaussian(ct), init_params=components(start), **kw)
    np.testing.assert_allclose(np.asarray(got.history), np.asarray(ref.history), rtol=1e-11)
    want = components(ref.best_params)
    for a, b in zip(jax.tree.leaves(got.best_params), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-8, atol=1e-10)


def test_density_parameter_count_and_files():
    cov = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])
    pc = np.linalg.cholesky(np.linalg.inv(cov))  # scikit-learn's upper factor of the precision
    theta = GaussianComponents(np.array([[0.0, 1.0, 2.0], [1.0, -1.0, 0.0]]),
                               np.stack([pc, pc / 2]))
    got = np.asarray(Gaussian("full").log_prob(theta, X[:5]))
    want = np.stack([st.multivariate_normal(theta.means[0], cov).logpdf(X[:5]),
                     st.multivariate_normal(theta.means[1], 4 * cov).logpdf(X[:5])], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    for ct in ("full", "diag", "spherical"):
        p = jm.fit_gmm(0, X, 2, covariance_type=ct, max_iter=2).best_params
        assert jm.families.n_parameters(Gaussian(ct), components(p), 3) == \
            jm.criteria.n_parameters(2, 3, ct)
        assert from_spec(to_spec(Gaussian(ct, 1e-4)), "f") == Gaussian(ct, 1e-4)
    with pytest.raises(ValueError, match="tied covariances: fit_gmm"):
        Gaussian("tied")


def test_float32_far_from_the_origin_starts_finite():
    """Two blobs at 1e4 in float32: the seeded starts take their statistics
    about the first pass's means, so no restart fails and the best reaches
    fit_gmm's optimum."""
    rng = np.random.default_rng(0)
    x = (np.concatenate([rng.normal(0, 1, (300, 3)), rng.normal(3, 1, (300, 3))])
         + 1e4).astype(np.float32)
    got = fit_mixture(0, x, 2, Gaussian("full"), n_restarts=3, tol=1e-6, max_iter=300)
    ref = jm.fit_gmm(0, x, 2, n_restarts=3)
    assert got.params.weights.dtype == np.float32  # float32 data computes in float32
    assert not np.any(np.asarray(got.failed))
    np.testing.assert_allclose(float(got.objective[got.best]), float(ref.objective[ref.best]),
                               atol=1e-3)


def test_float32_fit_on_collapsing_components_converges_as_in_float64():
    """Standardised wine, k=11: components on fewer than 14 points. The
    family's M-step is fit_gmm's (new means from the first moment about the
    origin, the floor kept exact); before, float32 fell in 1,023 iterations
    and ran to max_iter. (Which optimum a restart reaches may differ from
    float64's on this landscape; fit_gmm's test compares them.)"""
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler
    x = StandardScaler().fit_transform(load_wine().data)
    fit = fit_mixture(1, x.astype(np.float32), 11, Gaussian("full"), n_restarts=8,
                      max_iter=200)
    assert fit.falling_iterations().sum() == 0
    assert np.all(np.asarray(fit.converged)) and np.asarray(fit.n_iter).max() <= 20  # f64: 12
