"""Variational Bayesian Gaussian mixtures (jaxmix.gmm.variational and
jaxmix.sklearn.BayesianGaussianMixture) against scikit-learn's: from the same
starting responsibilities (scikit-learn's own k-means labels) the fits agree
iteration for iteration (same n_iter, lower bound, posterior parameters, in
float64); the estimator's lower bound never falls; scikit-learn's
parameters and checks."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.mixture import BayesianGaussianMixture as SkBGM
from sklearn.utils._param_validation import InvalidParameterError

from jaxmix.data import chunk
from jaxmix.gmm import variational as vb
from jaxmix.sklearn import BayesianGaussianMixture

RNG = np.random.default_rng(0)
X = np.concatenate([RNG.normal(-3, 1, (150, 2)), RNG.normal(3, 1, (150, 2)),
                    RNG.normal((0, 4), 0.5, (100, 2))])
K = 5
CASES = [(ct, wp, () if ct == "full" else pytest.mark.slow)
         for ct in ("full", "tied", "diag", "spherical")
         for wp in ("dirichlet_process", "dirichlet_distribution")]


@pytest.mark.parametrize("ct,wp", [pytest.param(c, w, marks=m, id=f"{c}-{w}")
                                   for c, w, m in CASES])
def test_same_start_same_fit_as_sklearn(ct, wp):
    """scikit-learn's ``init_params="kmeans"`` with ``random_state=0`` takes
    the labels of ``KMeans(n_init=1, random_state=RandomState(0))``; from
    those, jaxmix's fit stops at the same iteration with the same lower
    bound (1e-9 relative: float64, another summation order) and posterior."""
    sk = SkBGM(n_components=K, covariance_type=ct, weight_concentration_prior_type=wp,
               random_state=0, max_iter=200).fit(X)
    labels = KMeans(n_clusters=K, n_init=1, random_state=np.random.RandomState(0)).fit(X).labels_
    resp = np.eye(K)[labels]
    est = BayesianGaussianMixture(n_components=K, covariance_type=ct,
                                  weight_concentration_prior_type=wp, max_iter=200)
    est._set_priors(X)
    res = vb.fit_states(jnp.asarray(resp)[None], chunk(X), est._prior(X.dtype), 1e-3, 1e-6, 200,
                        covariance_type=ct, process=wp == "dirichlet_process", history=1024)
    assert int(res.n_iter[0]) == sk.n_iter_
    np.testing.assert_allclose(float(res.objective[0]), float(np.squeeze(sk.lower_bound_)),
                               rtol=1e-9)
    est._set_state(jax_tree_first(res.params))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "mean_precision_",
                 "degrees_of_freedom_"):
        np.testing.assert_allclose(getattr(est, name), getattr(sk, name), rtol=1e-7, atol=1e-10,
                                   err_msg=name)
    conc = est.weight_concentration_
    for a, b in zip(conc if isinstance(conc, tuple) else (conc,),
                    sk.weight_concentration_ if isinstance(conc, tuple)
                    else (sk.weight_concentration_,)):
        np.testing.assert_allclose(a, b, rtol=1e-7)
    est.converged_ = True
    np.testing.assert_allclose(est.predict_proba(X[:50]), sk.predict_proba(X[:50]), atol=1e-7)
    np.testing.assert_allclose(est.score_samples(X[:50]), sk.score_samples(X[:50]), rtol=1e-7)


def jax_tree_first(state):
    import jax
    return jax.tree.map(lambda a: np.asarray(a[0]), state)


def test_estimator_fits_like_sklearn_and_keeps_its_contract():
    """Restarts batched, lower bound non-decreasing, sklearn's attributes,
    priors and errors; warm_start continues from the fitted posterior."""
    est = BayesianGaussianMixture(n_components=K, n_init=3, random_state=0).fit(X)
    sk = SkBGM(n_components=K, n_init=3, random_state=0).fit(X)
    bounds = np.asarray(est.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-9 * np.abs(bounds[:-1]))
    assert est.converged_ and est.lower_bound_ == bounds[-1]
    assert abs(est.lower_bound_ - sk.lower_bound_) < 1e-3 * abs(sk.lower_bound_)
    np.testing.assert_allclose(np.sort(est.weights_), np.sort(sk.weights_), atol=5e-3)
    assert est.weight_concentration_prior_ == 1 / K and est.degrees_of_freedom_prior_ == 2
    np.testing.assert_allclose(est.covariance_prior_, np.cov(X.T))
    assert est.predict(X).shape == (len(X),) and est.sample(7)[0].shape == (7, 2)
    warm = BayesianGaussianMixture(n_components=K, max_iter=2, warm_start=True, random_state=0)
    with pytest.warns(Warning, match="did not converge"):
        warm.fit(X)
    first = warm.lower_bound_
    warm.set_params(max_iter=200).fit(X)
    assert warm.lower_bound_ >= first - 1e-9
    with pytest.raises(InvalidParameterError):
        BayesianGaussianMixture(weight_concentration_prior_type="beta").fit(X)
    with pytest.raises(ValueError, match="degrees_of_freedom_prior"):
        BayesianGaussianMixture(degrees_of_freedom_prior=0.5).fit(X)
    with pytest.raises(ValueError, match="covariance_prior"):
        BayesianGaussianMixture(covariance_prior=-np.eye(2)).fit(X)


@pytest.mark.slow
def test_check_estimator_passes():
    from sklearn.utils.estimator_checks import check_estimator
    results = check_estimator(BayesianGaussianMixture(n_components=2, max_iter=20), on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert not failed and len(results) > 30, failed
