"""The four covariance families against scikit-learn's and numpy's definitions.

All comparisons are float64 on well-conditioned matrices (condition number
< ~10, see ``conftest.random_spd``). Both sides evaluate the same closed forms
(a Cholesky factor, a triangular solve, a log of a diagonal), whose rounding
errors are a few ``cond * eps ~ 1e-14`` relative; ``RTOL = 1e-10`` leaves
four orders of magnitude of margin while still catching any formula error
(wrong transpose, missing factor of 2 or d, lower vs upper factor).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TYPES, random_covariances, random_params
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import (_compute_log_det_cholesky,
                                               _compute_precision_cholesky)

from jaxmix.gmm.covariance import family
from jaxmix.gmm import covariance
from jaxmix.params import COVARIANCE_TYPES

RTOL = 1e-10
SHAPES = [(1, 1), (3, 2), (3, 3)]  # (k, d); k == d makes tied and diag shapes coincide


def dense_covariances(cov, covariance_type, k, d):
    """sklearn-layout covariances expanded to ``(k, d, d)``."""
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.broadcast_to(cov, (k, d, d))
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return cov[:, None, None] * np.eye(d)


def test_families_cover_all_types():
    assert COVARIANCE_TYPES == TYPES
    for ct in TYPES:
        assert family(ct).name == ct


@pytest.mark.parametrize("bad", ["Full", "", "diagonal", None])
def test_unknown_family_raises(bad):
    with pytest.raises(ValueError, match="covariance_type"):
        family(bad)


@pytest.mark.parametrize("k,d", SHAPES)
@pytest.mark.parametrize("ct", TYPES)
def test_precision_cholesky_matches_sklearn(ct, k, d):
    rng = np.random.default_rng(k * 10 + d)
    cov = random_covariances(rng, ct, k, d)
    fam = family(ct)
    pc = np.asarray(fam.precision_cholesky(cov))
    expected = _compute_precision_cholesky(cov, ct)
    assert pc.shape == expected.shape == fam.pc_shape(k, d)
    np.testing.assert_allclose(pc, expected, rtol=RTOL, atol=1e-12)
    if ct in ("full", "tied"):
        # Upper triangular with L L^T = Sigma^{-1} (independent of sklearn).
        np.testing.assert_array_equal(np.tril(pc, -1), 0.0)
        prec = pc @ np.swapaxes(pc, -1, -2)
        np.testing.assert_allclose(prec, np.linalg.inv(cov), rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("k,d", SHAPES)
@pytest.mark.parametrize("ct", TYPES)
def test_covariance_round_trip(ct, k, d):
    rng = np.random.default_rng(100 + k * 10 + d)
    cov = random_covariances(rng, ct, k, d)
    fam = family(ct)
    back = np.asarray(fam.covariance(fam.precision_cholesky(cov)))
    np.testing.assert_allclose(back, cov, rtol=RTOL, atol=1e-12)
    # variances(): the per-feature variances, (k or 1, d) for the dense types.
    variances = np.asarray(fam.variances(fam.precision_cholesky(cov)))
    dense = dense_covariances(cov, ct, k, d)
    expected = np.diagonal(dense, axis1=-2, axis2=-1)
    np.testing.assert_allclose(np.broadcast_to(variances, expected.shape), expected, rtol=RTOL)


@pytest.mark.parametrize("k,d", SHAPES)
@pytest.mark.parametrize("ct", TYPES)
def test_log_det_matches_sklearn_and_slogdet(ct, k, d):
    rng = np.random.default_rng(200 + k * 10 + d)
    cov = random_covariances(rng, ct, k, d)
    pc = _compute_precision_cholesky(cov, ct)
    log_det = np.asarray(family(ct).log_det(pc, d))
    np.testing.assert_allclose(log_det, _compute_log_det_cholesky(pc, ct, d), rtol=RTOL)
    # log det L = -0.5 log det Sigma, checked against numpy's slogdet.
    _, logdet_cov = np.linalg.slogdet(dense_covariances(cov, ct, k, d))
    np.testing.assert_allclose(np.broadcast_to(log_det, logdet_cov.shape), -0.5 * logdet_cov,
                               rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("k,d", SHAPES + [(2, 5), (5, 16)])
@pytest.mark.parametrize("ct", TYPES)
def test_n_params_matches_sklearn(ct, k, d):
    gm = GaussianMixture(k, covariance_type=ct)
    gm.means_ = np.zeros((k, d))
    # family.n_params counts covariance parameters only; sklearn adds the
    # means (k d) and the free weights (k - 1).
    assert family(ct).n_params(k, d) + k * d + k - 1 == gm._n_parameters()


@pytest.mark.parametrize("ct", TYPES)
def test_sq_mahalanobis_and_precision_times(ct):
    rng = np.random.default_rng(7)
    k, d, n = 3, 4, 11
    p, cov = random_params(rng, ct, k, d)
    x = rng.normal(size=(n, d)) * 3
    fam = family(ct)
    prec = np.linalg.inv(dense_covariances(cov, ct, k, d))
    diff = x[:, None, :] - p.means[None]
    expected = np.einsum("nki,kij,nkj->nk", diff, prec, diff)
    got = np.asarray(fam.sq_mahalanobis(x, p.means, p.precisions_cholesky))
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    v = rng.normal(size=(k, d))
    np.testing.assert_allclose(np.asarray(fam.precision_times(p.precisions_cholesky, v)),
                               np.einsum("kij,kj->ki", prec, v), rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("ct", TYPES)
def test_quadratic_features_give_x_p_x(ct):
    # quad_features(x) @ quad_coefs(pc) = x^T P_k x: the GEMM path's basis.
    rng = np.random.default_rng(8)
    k, d, n = 3, 4, 9
    p, cov = random_params(rng, ct, k, d)
    x = rng.normal(size=(n, d))
    fam = family(ct)
    prec = np.linalg.inv(dense_covariances(cov, ct, k, d))
    feats = np.asarray(fam.quad_features(x))
    coefs = np.asarray(fam.quad_coefs(p.precisions_cholesky, k))
    np.testing.assert_allclose(feats @ coefs.T, np.einsum("ni,kij,nj->nk", x, prec, x),
                               rtol=RTOL)


PROTOCOL = ("n_params", "pc_shape", "precision_cholesky", "covariance", "precisions",
            "precision_cholesky_from_precisions", "variances", "log_det", "sq_mahalanobis",
            "precision_times", "quad_features", "quad_coefs", "sample_noise", "scatter",
            "moments_from_features", "features_from_moments", "covariance_from_stats",
            "add_reg", "component_max_precision", "component_abs_quad", "constrain_factor",
            "unconstrain_factor", "prior_scale_shape", "prior_min_dof", "default_prior_scale",
            "check_prior_scale", "log_covariance_prior", "map_covariance")


def test_every_family_implements_the_documented_protocol():
    doc = covariance.__doc__
    for name in PROTOCOL + ("name", "per_component"):
        assert f"``{name}" in doc, f"{name} is not documented in jaxmix.gmm.covariance"
    for ct in TYPES:
        fam = family(ct)
        missing = [name for name in PROTOCOL if not callable(getattr(fam, name, None))]
        assert not missing, f"{ct} lacks {missing}"
        assert fam.per_component == (fam.pc_shape(2, 5)[0] == 2)  # a leading k axis


@pytest.mark.parametrize("ct", TYPES)
def test_component_max_precision_matches_eigvalsh(ct):
    rng = np.random.default_rng(9)
    k, d = 3, 4
    p, cov = random_params(rng, ct, k, d)
    fam = family(ct)
    expected = np.linalg.eigvalsh(np.linalg.inv(dense_covariances(cov, ct, k, d)))[:, -1]
    got = np.asarray(fam.component_max_precision(p.precisions_cholesky, k))
    assert got.shape == (k,)
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    # Leading batch axes (restarts) are kept.
    batched = np.stack([p.precisions_cholesky] * 2)
    np.testing.assert_allclose(np.asarray(fam.component_max_precision(batched, k)),
                               np.stack([expected] * 2), rtol=RTOL)


@pytest.mark.parametrize("ct", TYPES)
def test_component_abs_quad_is_the_entrywise_absolute_quadratic_form(ct):
    rng = np.random.default_rng(10)
    k, d = 3, 4
    p, cov = random_params(rng, ct, k, d)
    a = np.abs(rng.normal(size=(k, d)))
    prec = np.abs(np.linalg.inv(dense_covariances(cov, ct, k, d)))
    expected = np.einsum("ki,kij,kj->k", a, prec, a)
    got = np.asarray(family(ct).component_abs_quad(p.precisions_cholesky, a))
    np.testing.assert_allclose(got, expected, rtol=RTOL)


@pytest.mark.parametrize("ct", TYPES)
def test_constrain_unconstrain_round_trip(ct):
    rng = np.random.default_rng(10)
    k, d = 3, 4
    fam = family(ct)
    p, _ = random_params(rng, ct, k, d)
    raw = np.asarray(fam.unconstrain_factor(p.precisions_cholesky))
    assert raw.shape == fam.pc_shape(k, d)
    np.testing.assert_allclose(np.asarray(fam.constrain_factor(raw)), p.precisions_cholesky,
                               rtol=RTOL)
    # Any finite raw value gives a valid factor, and unconstrain inverts it.
    pc = np.asarray(fam.constrain_factor(rng.normal(size=fam.pc_shape(k, d))))
    np.testing.assert_allclose(np.asarray(fam.precision_cholesky(fam.covariance(pc))), pc,
                               rtol=1e-8)
    np.testing.assert_allclose(np.asarray(fam.constrain_factor(fam.unconstrain_factor(pc))),
                               pc, rtol=RTOL)


@pytest.mark.parametrize("ct", TYPES)
def test_features_from_moments_inverts_moments_from_features(ct):
    rng = np.random.default_rng(11)
    k, d, n = 3, 4, 20
    fam = family(ct)
    z = rng.normal(size=(n, k, d))
    sxx = np.asarray(fam.scatter(rng.uniform(size=(n, k)), z))
    feats = np.asarray(fam.features_from_moments(sxx))
    assert feats.shape == (k, np.asarray(fam.quad_features(z[:, 0])).shape[-1])
    np.testing.assert_allclose(np.asarray(fam.moments_from_features(feats, d)), sxx, rtol=RTOL)
