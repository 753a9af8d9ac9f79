"""Densities, responsibilities, predictions and sampling against sklearn / scipy.

Density comparisons run in float64. jaxmix and the references evaluate the
same closed form (centred Mahalanobis distance, log-det of the Cholesky
factor), so the differences are rounding only: a few ulps of quantities of
size |log p| <~ 1e2, i.e. ~1e-13 absolute. ``RTOL = ATOL = 1e-9`` keeps a
wide margin yet is 4 orders tighter than the 1e-5 an error in any term
(a missing 2 pi, a log-weight, a transposed factor) would exceed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TYPES, blobs, random_params, sk_weighted_log_prob
from scipy.special import logsumexp, softmax
from scipy.stats import multivariate_normal, norm
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _estimate_log_gaussian_prob

import jaxmix as jm
from jaxmix import GMMParams

RTOL = ATOL = 1e-9


@jax.jit
def evaluate(p, x):
    """Every density function at once: one compile per (type, shape) instead
    of one per primitive in eager mode."""
    return dict(component=jm.gmm.component_log_prob(p, x),
                weighted=jm.gmm.weighted_log_prob(p, x),
                log_prob=jm.gmm.log_prob(p, x), score_samples=jm.gmm.log_prob(p, x),
                mean=jm.gmm.mean_log_likelihood(p, x), resp=jm.gmm.responsibilities(p, x),
                proba=jm.gmm.responsibilities(p, x), predict=jm.gmm.predict(p, x))


@pytest.fixture(scope="module", params=TYPES)
def case(request):
    """Random float64 params (k=3, d=4) and points spread around them."""
    ct = request.param
    rng = np.random.default_rng(TYPES.index(ct))
    p, cov = random_params(rng, ct, 3, 4)
    x = np.concatenate([p.means[i] + 2.0 * rng.normal(size=(20, 4)) for i in range(3)])
    return p, cov, x


def test_component_log_prob_matches_sklearn(case):
    p, _, x = case
    got = np.asarray(evaluate(p, x)["component"])
    assert got.shape == (x.shape[0], 3) and got.dtype == np.float64
    expected = _estimate_log_gaussian_prob(x, p.means, p.precisions_cholesky, p.covariance_type)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_component_log_prob_matches_scipy(case):
    # Independent of sklearn: scipy's multivariate normal on the covariances.
    p, cov, x = case
    k, d = p.means.shape
    dense = {"full": lambda i: cov[i], "tied": lambda i: cov,
             "diag": lambda i: np.diag(cov[i]), "spherical": lambda i: cov[i] * np.eye(d)}
    expected = np.stack([multivariate_normal(p.means[i], dense[p.covariance_type](i)).logpdf(x)
                         for i in range(k)], axis=1)
    np.testing.assert_allclose(np.asarray(evaluate(p, x)["component"]), expected,
                               rtol=RTOL, atol=ATOL)


def test_log_prob_and_responsibilities(case):
    p, _, x = case
    out = evaluate(p, x)
    wlp = sk_weighted_log_prob(x, p)
    np.testing.assert_allclose(np.asarray(out["weighted"]), wlp, rtol=RTOL, atol=ATOL)
    ref_lp = logsumexp(wlp, axis=1)
    for name in ("log_prob", "score_samples"):
        np.testing.assert_allclose(np.asarray(out[name]), ref_lp, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(float(out["mean"]), ref_lp.mean(), rtol=RTOL)
    resp = np.asarray(out["resp"])
    np.testing.assert_allclose(resp, softmax(wlp, axis=1), rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(out["proba"]), resp)
    np.testing.assert_array_equal(np.asarray(out["predict"]), np.argmax(wlp, axis=1))


@pytest.mark.parametrize("ct", TYPES)
def test_fitted_sklearn_model_outputs(ct):
    """A model fitted by sklearn, evaluated by jaxmix: score_samples,
    predict_proba, predict and score equal sklearn's own methods."""
    rng = np.random.default_rng(3)
    x = blobs(rng, 150, [[0, 0, 0], [4, 1, -2], [-3, 5, 1]])
    gm = GaussianMixture(3, covariance_type=ct, random_state=0).fit(x)
    p = GMMParams(gm.weights_, gm.means_, gm.precisions_cholesky_, ct)
    xt = rng.normal(size=(150, 3)) * 4
    out = evaluate(p, xt)
    np.testing.assert_allclose(np.asarray(out["score_samples"]), gm.score_samples(xt),
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(out["proba"]), gm.predict_proba(xt),
                               rtol=RTOL, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(out["predict"]), gm.predict(xt))
    np.testing.assert_allclose(float(evaluate(p, x)["mean"]), gm.score(x), rtol=RTOL)


def test_docstring_value():
    # log N(0 | 0, I_2) = -log(2 pi).
    p = GMMParams(jnp.array([1.0]), jnp.zeros((1, 2)), jnp.eye(2)[None])
    np.testing.assert_allclose(float(jm.gmm.log_prob(p, jnp.zeros((1, 2)))[0]),
                               -np.log(2 * np.pi), rtol=1e-14)


def test_far_tail_is_finite_and_responsibilities_one_hot():
    # 60 standard deviations out: densities underflow in exp but not in log.
    p = GMMParams(np.array([0.5, 0.5]), np.array([[0.0], [1.0]]), np.ones(2), "spherical")
    x = np.array([[-60.0], [61.0]])
    lp = np.asarray(jm.gmm.log_prob(p, x))
    expected = logsumexp(np.log(0.5) + norm.logpdf(x, loc=[[0.0, 1.0]]), axis=1)
    np.testing.assert_allclose(lp, expected, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jm.gmm.responsibilities(p, x)), [[1, 0], [0, 1]],
                               atol=1e-12)


def test_float32_densities_track_float64():
    """float32 in, float32 out; error within float32 rounding of the terms.

    |x L| and |mu L| reach ~40, so each coordinate of the centred
    difference y = x L - mu L carries ~40 eps32 ~ 5e-6 absolute error; with
    |y| up to ~30 that is ~3e-4 on |y|^2, against |log p| up to ~6e2: a
    relative error below ~1e-6 (measured: 3e-7). rtol = 1e-5 (~80 eps32)
    bounds that with margin; it checks that float32 input is computed in
    float32 without a precision loss beyond rounding (e.g. a term evaluated
    at lower precision, or a float32 -> bfloat16/TF32 matmul).
    """
    rng = np.random.default_rng(5)
    p, _ = random_params(rng, "full", 3, 4, spread=10.0)
    x = rng.normal(size=(50, 4)) * 10
    lp64 = np.asarray(evaluate(p, x)["log_prob"])
    p32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p)
    lp32 = evaluate(p32, jnp.asarray(x, jnp.float32))["log_prob"]
    assert lp32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(lp32), lp64, rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------- sampling

N_SAMPLES = 200_000
sample = jax.jit(jm.gmm.sample, static_argnums=2)


def _dense(cov, ct, k, d):
    return {"full": lambda: cov, "tied": lambda: np.broadcast_to(cov, (k, d, d)),
            "diag": lambda: np.stack([np.diag(c) for c in cov]),
            "spherical": lambda: cov[:, None, None] * np.eye(d)}[ct]()


@pytest.mark.parametrize("ct", TYPES)
def test_sample_moments(ct):
    """Label frequencies, per-component means and covariances of a large
    sample agree with the params within 5 standard errors (CLT):

    * frequency of label k: sd sqrt(w_k (1 - w_k) / n);
    * mean: sd sqrt(Sigma_ii / n_k);
    * covariance entry (i, j) of Gaussian data: sd
      sqrt((Sigma_ii Sigma_jj + Sigma_ij^2) / n_k).

    The key is fixed so the test is deterministic; 5 sd would be exceeded by
    chance with probability < 1e-5 per statistic for a fresh key, while a
    wrong scale (e.g. precision instead of covariance, a transposed factor)
    moves the statistics by hundreds of standard errors.
    """
    rng = np.random.default_rng(11)
    k, d = 3, 3
    p, cov = random_params(rng, ct, k, d)
    if ct in ("full", "tied"):  # strong correlations exercise the factor's orientation
        a = rng.normal(size=(d, d)) + 2 * np.eye(d)
        cov = a @ a.T if ct == "tied" else np.stack([cov[0], a @ a.T, cov[2]])
        p = p.replace(precisions_cholesky=jm.gmm.family(ct).precision_cholesky(cov))
    x, labels = sample(jax.random.PRNGKey(0), p, N_SAMPLES)
    x, labels = np.asarray(x), np.asarray(labels)
    assert x.shape == (N_SAMPLES, d) and x.dtype == np.float64
    assert labels.shape == (N_SAMPLES,) and labels.min() >= 0 and labels.max() < k
    freq = np.bincount(labels, minlength=k) / N_SAMPLES
    np.testing.assert_array_less(np.abs(freq - p.weights),
                                 5 * np.sqrt(p.weights * (1 - p.weights) / N_SAMPLES))
    dense = _dense(cov, ct, k, d)
    for i in range(k):
        xi = x[labels == i]
        n_i = xi.shape[0]
        sig = dense[i]
        var = np.diag(sig)
        np.testing.assert_array_less(np.abs(xi.mean(axis=0) - p.means[i]), 5 * np.sqrt(var / n_i))
        emp = np.cov(xi, rowvar=False)
        se = np.sqrt((np.outer(var, var) + sig ** 2) / n_i)
        np.testing.assert_array_less(np.abs(emp - sig), 5 * se)


def test_sample_is_deterministic_and_float32():
    rng = np.random.default_rng(12)
    p, _ = random_params(rng, "diag", 2, 2)
    key = jax.random.PRNGKey(3)
    a, la = sample(key, p, 50)
    b, lb = sample(key, p, 50)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(la), np.asarray(lb))
    c, _ = sample(jax.random.PRNGKey(4), p, 50)
    assert not np.allclose(np.asarray(a), np.asarray(c))
    p32 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), p)
    x32, _ = sample(key, p32, 50)
    assert x32.dtype == jnp.float32
