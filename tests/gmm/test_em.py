"""E-step statistics and M-step against scikit-learn's EM, both E-step paths.

Reference: sklearn's ``_estimate_log_gaussian_prob`` (E-step) and
``_estimate_gaussian_parameters`` + ``_compute_precision_cholesky`` (M-step),
in float64 (``conftest.sk_em_step``). jaxmix takes the statistics about the
previous means ("exact") or about the origin ("gemm") and forms covariances
as ``sxx / nk - dev dev^T``; sklearn forms ``sum r (x - m)(x - m)^T / nk``.
In float64 both are rounding-level apart: on the GEMM path the cancellation
error is ``eps * (mu^T P mu + d)`` ~ 1e-14 for these data (|mu| < ~10,
unit-scale covariances), measured below 1e-12 relative. ``RTOL = 1e-9``
keeps three orders of margin; any formula error (missing ``reg_covar``, the
``10 eps`` on ``nk``, biased/unbiased normalisation, a wrong weight
normaliser) is far above it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (TYPES, assert_params_close, blobs, index, np_params, random_params,
                      sk_em_step, sk_params_from_resp, sk_weighted_log_prob)
from scipy.special import logsumexp, softmax

import jaxmix as jm
from jaxmix import GMMParams
from jaxmix.gmm.covariance import family
from jaxmix.gmm.stats import (GEMM_ERROR_BUDGET, design_features, gemm_coefficients,
                              gemm_is_accurate)
from jaxmix.gmm.step import batched_em_step
from jaxmix.gmm.update import params_at, params_from_labels, params_from_resp

RTOL = 1e-9
ATOL = 1e-11
REG = 1e-6
PATHS = ("gemm", "exact")

em_step = jax.jit(jm.gmm.em_step, static_argnames="path")


@functools.partial(jax.jit, static_argnames="path")
def e_and_em_step(p, data, path):
    """``(stats, shift, new_params, mean_loglik)``: one compile serves both tests."""
    stats = jm.gmm.e_step(p, data, path)
    shift = stats.shift
    new, ll = jm.gmm.em_step(p, data, REG, path)
    return stats, shift, new, ll


@functools.lru_cache(maxsize=None)
def case(ct):
    """float64 params (k=3, d=3) and 90 points near their means, off the origin."""
    rng = np.random.default_rng(20 + TYPES.index(ct))
    p, _ = random_params(rng, ct, 3, 3)
    p = p.replace(means=p.means + 5.0)
    x = blobs(rng, 90, p.means, scale=1.5)
    return p, x


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("ct", TYPES)
def test_em_step_matches_sklearn(ct, path):
    p, x = case(ct)
    _, _, new, ll = e_and_em_step(p, jm.chunk(x), path)
    ref, ref_ll = sk_em_step(x, p, REG)
    assert_params_close(new, ref, RTOL, ATOL, f"{ct}/{path}")
    # The objective is the mean log-likelihood of the params *before* the step.
    np.testing.assert_allclose(float(ll), ref_ll, rtol=RTOL)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("ct", TYPES)
def test_e_step_statistics(ct, path):
    """nk, sx (about the returned shift) and the summed log-likelihood."""
    p, x = case(ct)
    stats, shift, _, _ = e_and_em_step(p, jm.chunk(x), path)
    wlp = sk_weighted_log_prob(x, p)
    resp = softmax(wlp, axis=1)
    np.testing.assert_allclose(np.asarray(stats.nk), resp.sum(0), rtol=RTOL)
    expected_shift = p.means if path == "exact" else np.zeros_like(p.means)
    np.testing.assert_allclose(np.asarray(shift), expected_shift, rtol=0, atol=0)
    sx = np.einsum("nk,nkd->kd", resp, x[:, None, :] - expected_shift[None])
    np.testing.assert_allclose(np.asarray(stats.sx), sx, rtol=RTOL, atol=1e-10)
    np.testing.assert_allclose(float(stats.loglik), logsumexp(wlp, axis=1).sum(), rtol=RTOL)
    # m_step on these statistics is the sklearn M-step.
    new = jm.gmm.m_step(stats, REG, ct)
    assert_params_close(new, sk_em_step(x, p, REG)[0], RTOL, ATOL, f"{ct}/{path} m_step")


@pytest.mark.parametrize("ct", TYPES)
def test_params_from_resp_matches_sklearn(ct):
    p, x = case(ct)
    rng = np.random.default_rng(1)
    resp = rng.uniform(size=(x.shape[0], 3))
    resp /= resp.sum(1, keepdims=True)
    got = params_from_resp(lambda xc, i: jnp.asarray(resp), jm.chunk(x), REG, ct)
    assert_params_close(got, sk_params_from_resp(x, resp, REG, ct), RTOL, ATOL, ct)


@pytest.mark.parametrize("ct", TYPES)
def test_params_from_one_hot_on_single_points(ct):
    """One sample per component (the random_from_data / k-means++ inits):
    means are the samples and every covariance is exactly ``reg_covar * I``.

    sklearn is not the reference for "tied" here: its tied estimate
    ``X^T X - sum_k nk mu_k mu_k^T`` assumes every row's responsibilities sum
    to one, which one-hot rows on 3 of 90 samples violate (it returns the
    scatter of all 90 rows); jaxmix pools only the responsibility-weighted
    scatter, which is zero.
    """
    _, x = case(ct)
    rows = np.array([3, 40, 77])
    resp = np.zeros((x.shape[0], 3))
    resp[rows, np.arange(3)] = 1.0
    got = params_from_resp(lambda xc, i: jnp.asarray(resp), jm.chunk(x), REG, ct)
    np.testing.assert_allclose(np.asarray(got.means), x[rows], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(got.weights), 1 / 3, rtol=1e-12)
    fam = family(ct)
    # Scatter about the exact means is ~eps^2 |x|^2 ~ 1e-30, far below reg_covar.
    dense = np.broadcast_to(np.asarray(fam.variances(got.precisions_cholesky)), (3, 3))
    np.testing.assert_allclose(dense, REG, rtol=1e-9)
    if ct in ("full", "tied"):
        cov = np.asarray(fam.covariance(got.precisions_cholesky))
        np.testing.assert_allclose(cov, np.broadcast_to(REG * np.eye(3), cov.shape), rtol=1e-9,
                                   atol=1e-15)
    if ct != "tied":
        ref = sk_params_from_resp(x, resp, REG, ct)
        np.testing.assert_allclose(np.asarray(got.precisions_cholesky), ref.precisions_cholesky,
                                   rtol=1e-6, atol=1e-12)


def _labels_fn(labels):
    labels = jnp.asarray(labels)
    return lambda xc, i: jnp.take(labels, i * xc.shape[0] + jnp.arange(xc.shape[0]),
                                  mode="clip")


@pytest.mark.parametrize("ct", TYPES)
def test_params_from_labels_is_the_one_hot_m_step(ct):
    """The label form (one GEMM of the differences' features) against
    sklearn's M-step on the one-hot matrix, over several chunks with weights,
    and against ``params_from_resp`` where some samples have no component
    (label -1, a row of zeros: sklearn's tied estimate assumes rows sum to one)."""
    _, x = case(ct)
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, x.shape[0])
    onehot = np.eye(3)[labels]
    got = params_from_labels(_labels_fn(labels), jm.chunk(x, 32), 3, REG, ct)
    want = sk_params_from_resp(x, onehot, REG, ct)
    assert_params_close(got, want, RTOL, ATOL, ct)
    # one pass about given centres (within the clusters' spread), moved to the means
    centres = want.means + 0.3 * rng.normal(size=want.means.shape)
    got = params_from_labels(_labels_fn(labels), jm.chunk(x, 32), 3, REG, ct,
                             centres=jnp.asarray(centres, x.dtype))
    assert_params_close(got, want, RTOL, ATOL, f"{ct} about centres")
    w = rng.uniform(0.5, 2.0, x.shape[0])
    labels[::7] = -1
    onehot = np.where(labels[:, None] >= 0, np.eye(3)[labels], 0.0)
    data = jm.chunk(x, 32, sample_weight=w)
    got = params_from_labels(_labels_fn(labels), data, 3, REG, ct)
    ref = params_from_resp(_resp_fn(onehot), data, REG, ct)
    assert_params_close(got, ref, RTOL, ATOL, f"{ct} unlabelled rows")


def _resp_fn(resp):
    resp = jnp.asarray(resp)
    return lambda xc, i: jnp.take(resp, i * xc.shape[0] + jnp.arange(xc.shape[0]), axis=0,
                                  mode="clip")


@pytest.mark.parametrize("ct", TYPES)
def test_params_from_labels_in_float32_far_from_the_origin(ct):
    """Clusters at 1e4 with unit spread: the labels' M-step in float32 gives
    float64's covariances to float32 rounding (a moment about the origin
    would lose them entirely: 1e8 against 1)."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 600)
    x = 1e4 + 3.0 * np.arange(3)[labels][:, None] + rng.normal(size=(600, 3))
    ref = sk_params_from_resp(x, np.eye(3)[labels], REG, ct)
    fam = family(ct)
    var = lambda p: np.asarray(fam.variances(jnp.asarray(p.precisions_cholesky, jnp.float64)))  # noqa: E731
    centres = jnp.asarray(ref.means + rng.normal(size=ref.means.shape), jnp.float32)
    for c in (None, centres):  # two passes, or one about centres within the spread
        got = params_from_labels(_labels_fn(labels), jm.chunk(x.astype(np.float32)), 3, REG, ct,
                                 centres=c)
        np.testing.assert_allclose(var(np_params(got)), var(ref), rtol=1e-3)
        np.testing.assert_allclose(np.asarray(got.means, np.float64), ref.means, rtol=1e-6)


@pytest.mark.parametrize("ct", TYPES)
def test_params_at_single_samples_is_the_one_hot_m_step(ct):
    """The closed form on single samples (no pass over the data) against the
    M-step on the one-hot matrix, an empty component (index -1) included."""
    _, x = case(ct)
    w = np.random.default_rng(4).uniform(0.5, 2.0, x.shape[0])
    rows = np.array([3, 40, -1])
    resp = np.zeros((x.shape[0], 3))
    resp[rows[:2], np.arange(2)] = 1.0
    got = params_at(jnp.asarray(rows), jnp.asarray(x), jnp.asarray(w), REG, ct)
    ref = params_from_resp(_resp_fn(resp), jm.chunk(x, sample_weight=w), REG, ct)
    assert_params_close(got, ref, 1e-12, 1e-12, ct)
    np.testing.assert_array_equal(np.asarray(got.means[:2]), x[rows[:2]])


@pytest.mark.parametrize("path", PATHS)
def test_chunks_and_integer_weights(path):
    """Chunks of 7 rows (90 = 12 * 7 + 6: the last chunk is padded) give the
    same statistics and step as one chunk (summation order differs only, so
    1e-12); integer sample weights equal repeating the rows."""
    p, x = case("full")
    one = e_and_em_step(p, jm.chunk(x), path)
    assert jm.chunk(x, 7).x.shape == (13, 7, 3)
    many = e_and_em_step(p, jm.chunk(x, 7), path)
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(many)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(2).integers(0, 4, size=x.shape[0])
    weighted = e_and_em_step(p, jm.chunk(x, 7, sample_weight=w.astype(float)), path)
    repeated = e_and_em_step(p, jm.chunk(np.repeat(x, w, axis=0)), path)
    assert_params_close(weighted[2], repeated[2], 1e-11, 1e-12, path)
    np.testing.assert_allclose(float(weighted[3]), float(repeated[3]), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(weighted[0].nk), np.asarray(repeated[0].nk), rtol=1e-12)


@pytest.mark.parametrize("ct", TYPES)
def test_gemm_coefficients_give_weighted_log_prob(ct):
    p, x = case(ct)
    fam = family(ct)
    got = np.asarray(design_features(fam, jnp.asarray(x)) @ gemm_coefficients(p).T)
    np.testing.assert_allclose(got, sk_weighted_log_prob(x, p), rtol=RTOL, atol=1e-10)


def test_e_step_rejects_unknown_path():
    p, x = case("diag")
    with pytest.raises(ValueError, match="path"):
        jm.gmm.e_step(p, jm.chunk(x), "auto")


def test_batched_step_is_per_restart_step():
    """vmap over restarts: restart r of the batched step is em_step on r."""
    p, x = case("full")
    rng = np.random.default_rng(4)
    batch = jax.tree.map(lambda a: jnp.stack([a, a]), p)
    batch = batch.replace(means=batch.means.at[1].add(rng.normal(size=(3, 3)) * 0.3))
    data = jm.chunk(x)
    new, obj = jax.jit(lambda q: batched_em_step(data, REG, "exact")(q))(batch)
    for r in range(2):
        single, ll = em_step(index(batch, r), data, REG, "exact")
        assert_params_close(index(new, r), single, 1e-12, 1e-13)
        np.testing.assert_allclose(float(obj[r]), float(ll), rtol=1e-13)


# ------------------------------------------------------------ GEMM accuracy

def _float32(p):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p)


def _cov_rel_error(p32, p64, ct):
    fam = family(ct)
    c32 = np.asarray(fam.covariance(jnp.asarray(p32.precisions_cholesky, jnp.float64)))
    c64 = np.asarray(fam.covariance(p64.precisions_cholesky))
    return np.max(np.abs(c32 - c64)) / np.max(np.abs(c64))


@pytest.mark.parametrize("ct", ["full", pytest.param("diag", marks=pytest.mark.slow),
                                pytest.param("tied", marks=pytest.mark.slow),
                                pytest.param("spherical", marks=pytest.mark.slow)])
def test_gemm_accuracy(ct):
    """The contract of ``gemm_is_accurate``: while it holds, one float32 GEMM
    EM step yields covariances within ``GEMM_ERROR_BUDGET`` (relative, up to
    a small constant) of the float64 exact step; far from the origin it does
    not hold, and there the float32 exact path is still accurate.

    The clusters sit at offset ``s`` (in units of their width) from the
    origin; the GEMM path's cancellation error grows like ``eps32 * s^2``
    (measured: 0.1-3 times ``eps32 * max_k mu_k^T P_k mu_k``). ``5 *
    GEMM_ERROR_BUDGET`` is the bound with margin for that constant; at
    ``s = 3000`` the GEMM error is O(1) or NaN while the exact path's is
    ~1e-4 (bounded here by 1e-3).
    """
    rng = np.random.default_rng(9)
    p0, _ = random_params(rng, ct, 3, 3, spread=3.0)
    seen_accurate = False
    for s in (0.0, 10.0, 30.0, 100.0, 3000.0):
        p = p0.replace(means=p0.means + s)
        x32 = blobs(np.random.default_rng(10), 300, p.means).astype(np.float32)
        ref, _ = em_step(p, jm.chunk(x32.astype(np.float64)), REG, "exact")
        got, _ = em_step(_float32(p), jm.chunk(x32), REG, "gemm")
        assert got.means.dtype == jnp.float32
        accurate = bool(gemm_is_accurate(jax.tree.map(lambda a: a[None], _float32(p))))
        err = _cov_rel_error(got, ref, ct)
        if s == 0.0:
            assert accurate and err < 1e-5, err  # float32 rounding only near the origin
        if accurate:
            seen_accurate = True
            assert err <= 5 * GEMM_ERROR_BUDGET, (s, err)
        if s == 3000.0:
            assert not accurate
            exact32, _ = em_step(_float32(p), jm.chunk(x32), REG, "exact")
            assert _cov_rel_error(exact32, ref, ct) < 1e-3
    assert seen_accurate
