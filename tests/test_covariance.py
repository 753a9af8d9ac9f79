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

from jaxmix import family
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
