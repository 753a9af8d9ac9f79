"""float32 accuracy of EM against a float64 reference.

Clusters of width 1 are put at distance D from the data's centre. The GEMM
E-step cancels raw second moments (error ~ eps * D^2), the exact E-step only
suffers the float32 rounding of the data itself (~ eps * D). The ``auto``
path must stay within GEMM_ERROR_BUDGET-level error everywhere.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmix import GMMParams, fit_gmm
from jaxmix.compiling import jit
from jaxmix.gmm import em_step, family
from jaxmix.gmm import stats
from jaxmix.gmm.stats import GEMM_ERROR_BUDGET, gemm_is_accurate
from jaxmix.gmm.step import batched_em_step
from jaxmix.data import chunked
from jaxmix.data.chunked import chunk

K, D_FEAT, N = 4, 6, 4000


@pytest.fixture(autouse=True, scope="module")
def x64():
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.fixture(autouse=True, scope="module")
def auto_switches():
    """These passes are small: without this, "auto" would take the exact path
    alone (gmm.stats.static_path) and the switch would go untested. Programs
    traced either way are dropped before and after."""
    jax.clear_caches()
    before, chunked.SMALL_PASS = chunked.SMALL_PASS, -1
    yield
    chunked.SMALL_PASS = before
    jax.clear_caches()


def far_blobs(distance, seed=0, anisotropic=False):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, D_FEAT))
    centres *= distance / np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, K, N)
    scale = np.ones(D_FEAT)
    if anisotropic:  # one narrow direction, orthogonal-ish to nothing in particular
        scale[-1] = 0.05
    x = centres[labels] + rng.normal(size=(N, D_FEAT)) * scale
    return x - x.mean(0), centres - x.mean(0), labels


def start_params(x, labels, cov):
    """Per-cluster moments, slightly perturbed: a realistic mid-fit state."""
    fam = family(cov)
    means = np.stack([x[labels == j].mean(0) for j in range(K)]) + 0.05
    full = np.stack([np.cov(x[labels == j].T) * 1.2 for j in range(K)])
    covs = {"full": full, "tied": full.mean(0),
            "diag": np.diagonal(full, axis1=1, axis2=2),
            "spherical": np.diagonal(full, axis1=1, axis2=2).mean(1)}[cov]
    pc = fam.precision_cholesky(jnp.asarray(covs))
    return GMMParams(jnp.full((K,), 1.0 / K), jnp.asarray(means), pc, cov)


def cov_rel_error(p, ref):
    fam = family(ref.covariance_type)
    c = np.asarray(fam.covariance(p.precisions_cholesky), np.float64)
    c_ref = np.asarray(fam.covariance(ref.precisions_cholesky))
    scale = np.max(np.abs(fam.variances(ref.precisions_cholesky)))
    smallest = np.min(np.abs(fam.variances(ref.precisions_cholesky)))
    # relative to the narrowest variance: that is what the log-density feels
    return np.max(np.abs(c - c_ref)) / min(scale, smallest)


# The steps under test, compiled once per path, family and dtype with
# jaxmix's compiler options: every test here steps N x D_FEAT samples in
# chunks of 1000. (An eager step traces a new closure, so it would compile
# its scan and cond again on every call.)
@jit(static_argnames="path")
def batched_step(params, data, reg_covar, path, white=None):
    """:func:`batched_em_step` of ``data`` applied to restart-batched ``params``."""
    return batched_em_step(data, reg_covar, path, white=white)(params)


@jit(static_argnames="path")
def single_step(params, data, reg_covar, path):
    """:func:`em_step`: one model."""
    return em_step(params, data, reg_covar, path)


def one_step(x, p64, path):
    ref, _ = single_step(p64, chunk(jnp.asarray(x), 1000), 1e-6, "exact")
    p32 = jax.tree.map(lambda a: a.astype(jnp.float32), p64)
    x32 = jnp.asarray(x, jnp.float32)
    if path == "auto":
        new, _ = batched_step(jax.tree.map(lambda a: a[None], p32), chunk(x32, 1000),
                              np.float32(1e-6), "auto")
        new = jax.tree.map(lambda a: a[0], new)
    else:
        new, _ = single_step(p32, chunk(x32, 1000), np.float32(1e-6), path)
    assert new.means.dtype == jnp.float32
    return new, ref


@pytest.mark.parametrize("cov", ["full", "diag"])
@pytest.mark.parametrize("distance", [1.0, 10.0])
def test_gemm_path_accurate_near_centre(cov, distance):
    """Near the centre the GEMM path is as good as float32 allows: errors of
    (1..5) * eps * kappa, kappa ~ distance^2 (measured up to 5.4 eps kappa)."""
    x, _, labels = far_blobs(distance)
    new, ref = one_step(x, start_params(x, labels, cov), "gemm")
    kappa = distance ** 2 * 1.5 + D_FEAT
    assert cov_rel_error(new, ref) < 6 * np.finfo(np.float32).eps * kappa
    np.testing.assert_allclose(new.means, ref.means, atol=2e-5 * (1 + distance))


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("distance", [1.0, 30.0, 300.0])
def test_auto_path_within_budget(cov, distance):
    """``auto`` keeps the covariance error near GEMM_ERROR_BUDGET or below at
    every distance, including clusters 300 widths from the centre."""
    x, _, labels = far_blobs(distance)
    new, ref = one_step(x, start_params(x, labels, cov), "auto")
    # GEMM path: (3..5) eps kappa <= 5 budget (em.py); exact path: float32
    # rounding of |x| ~ D gives a few eps D
    bound = max(5 * GEMM_ERROR_BUDGET, 8 * np.finfo(np.float32).eps * distance)
    assert cov_rel_error(new, ref) < bound
    np.testing.assert_allclose(new.weights, ref.weights, atol=1e-5)


def test_gemm_path_loses_accuracy_far_away():
    """The cancellation the auto switch guards against is real: far from the
    centre the GEMM path is much worse than the exact path."""
    x, _, labels = far_blobs(300.0)
    p64 = start_params(x, labels, "full")
    gemm, ref = one_step(x, p64, "gemm")
    exact, _ = one_step(x, p64, "exact")
    assert cov_rel_error(gemm, ref) > 10 * cov_rel_error(exact, ref)


def test_switch_uses_narrowest_direction():
    """A cluster far away along wide directions but narrow in one direction
    must be judged by its narrowest variance."""
    x, _, labels = far_blobs(15.0, anisotropic=True)
    p = jax.tree.map(lambda a: a[None].astype(jnp.float32), start_params(x, labels, "full"))
    wide = jax.tree.map(lambda a: a[None].astype(jnp.float32),
                        start_params(*far_blobs(15.0)[::2], "full"))
    assert bool(gemm_is_accurate(wide))
    assert not bool(gemm_is_accurate(p))


def across_narrow_blobs(distance, seed=2):
    """Clusters of width 1 but 0.05 along the last feature, whose means are
    ``distance`` from the data's centre along the wide features only."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, D_FEAT))
    centres[:, -1] = 0.0
    centres *= distance / np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, K, N)
    scale = np.ones(D_FEAT)
    scale[-1] = 0.05
    x = centres[labels] + rng.normal(size=(N, D_FEAT)) * scale
    return x - x.mean(0), labels


def crude_bound(p):
    """``eps * max_k ||mu_k||^2 lambda_max(P_k)`` of one restart (leading axis
    1): the GEMM path's cancellation if every mean lay along its component's
    narrowest direction (the bound before 2026-12-03)."""
    from jaxmix.numerics import eps
    lam = family(p.covariance_type).component_max_precision(p.precisions_cholesky[0], K)
    return float(eps(jnp.float32) * jnp.max(jnp.sum(p.means[0] ** 2, axis=-1) * lam))


def own_metric_error(p, ref):
    """The covariance error in each component's own metric (see
    :func:`metric_error`); diagonal families: per feature, relative."""
    if ref.covariance_type in ("full", "tied"):
        return metric_error(p, ref)
    fam = family(ref.covariance_type)
    c, c_ref = (np.asarray(fam.covariance(q.precisions_cholesky), np.float64) for q in (p, ref))
    return float(np.max(np.abs(c - c_ref) / c_ref))


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_the_bound_follows_the_means_direction(cov):
    """Means far along wide directions of clusters narrow across them: the
    cancellation is ``eps |mu|^T |P| |mu|``, small here, while ``eps
    ||mu||^2 lambda_max(P)`` (the mean as if along the narrow direction) is
    40 times the budget. The sharper bound takes the GEMM path, whose step
    stays within the budget's error against float64 exact EM."""
    x, labels = across_narrow_blobs(20.0)
    p64 = start_params(x, labels, cov)
    p32 = jax.tree.map(lambda a: a[None].astype(jnp.float32), p64)
    assert crude_bound(p32) > 40 * GEMM_ERROR_BUDGET
    assert bool(gemm_is_accurate(p32))
    ref, exact_obj = single_step(p64, chunk(jnp.asarray(x), 1000), 1e-6, "exact")
    x32 = chunk(jnp.asarray(x, jnp.float32), 1000)
    for path in ("auto", "gemm"):
        new, obj = batched_step(p32, x32, np.float32(1e-6), path)
        new = jax.tree.map(lambda a: a[0], new)
        assert own_metric_error(new, ref) < 5 * GEMM_ERROR_BUDGET, path
        np.testing.assert_allclose(float(obj[0]), float(exact_obj), atol=1e-5)


@pytest.mark.parametrize("distance", [3.0, 100.0])
def test_float32_fit_matches_float64_fit(distance):
    """A whole float32 fit lands where the float64 fit does."""
    x, _, labels = far_blobs(distance, seed=1)
    init = start_params(x, labels, "full")
    kw = dict(init_params=init, max_iter=30, tol=0.0)
    r64 = fit_gmm(0, x, K, **kw)
    init32 = jax.tree.map(lambda a: a.astype(jnp.float32), init)
    r32 = fit_gmm(0, x.astype(np.float32), K, **{**kw, "init_params": init32})
    assert r32.best_params.means.dtype == jnp.float32
    assert not bool(r32.failed[0])
    assert cov_rel_error(r32.best_params, r64.best_params) < 5 * GEMM_ERROR_BUDGET
    np.testing.assert_allclose(r32.objective, r64.objective, rtol=1e-5)


# -- whitened GEMM path: correlated features, mixed scales ---------------------

def correlated_blobs(kind, seed=1):
    """Clusters of width 1 three widths apart, then mixed by a random matrix
    (``"correlated"``, condition ~1e2), or with feature scales 1e-3..1e3
    (``"mixed scales"``), or both."""
    x, _, labels = far_blobs(3.0, seed)
    rng = np.random.default_rng(seed)
    if kind in ("correlated", "both"):
        x = x @ (rng.normal(size=(D_FEAT, D_FEAT)) + 0.5 * np.eye(D_FEAT))
    if kind in ("mixed scales", "both"):
        x = x * np.logspace(-3, 3, D_FEAT)
    return x - x.mean(0), labels


def metric_error(p, ref):
    """``max_k ||L_k^T (C_k - C_ref_k) L_k||_2`` (``L`` the reference's factor):
    the covariance error in the units the log-density feels, whatever the
    features' scales."""
    fam = family(ref.covariance_type)
    c = np.asarray(fam.covariance(p.precisions_cholesky), np.float64).reshape(-1, D_FEAT, D_FEAT)
    c_ref = np.asarray(fam.covariance(ref.precisions_cholesky)).reshape(-1, D_FEAT, D_FEAT)
    pc = np.asarray(ref.precisions_cholesky).reshape(-1, D_FEAT, D_FEAT)
    return max(np.linalg.norm(l.T @ (a - b) @ l, 2) for l, a, b in zip(pc, c, c_ref))


def scaled_start(x, labels, cov):
    """:func:`start_params` with the means' perturbation in each feature's units."""
    p = start_params(x, labels, cov)
    return p.replace(means=p.means + (0.05 * x.std(0) - 0.05))


@pytest.mark.parametrize("cov", ["full", "tied"])
@pytest.mark.parametrize("kind", ["correlated", "mixed scales", "both"])
def test_whitened_gemm_path_fires_and_is_accurate_on_correlated_data(cov, kind):
    """On correlated or mixed-scale features ``||mu||^2 lambda_max(P)``
    would send every iteration to the exact path; the bound in use (the
    means' own reach, :func:`jaxmix.gmm.stats.accurate_restarts`) takes the
    GEMM path there, unwhitened and in whitened coordinates (what fit_gmm
    runs for dense families), and both stay within the budget's error
    against float64 exact EM (measured 6e-6 to 5e-5 unwhitened, 4e-6 to
    2e-5 whitened, 2026-12-03)."""
    from jaxmix.gmm.whitening import whitening
    x, labels = correlated_blobs(kind)
    p64 = scaled_start(x, labels, cov)
    ref, exact_obj = single_step(p64, chunk(jnp.asarray(x), 1000), 1e-6, "exact")
    x32 = jnp.asarray(x, jnp.float32)
    p32 = jax.tree.map(lambda a: a[None].astype(jnp.float32), p64)
    white = whitening(x32, jnp.ones(len(x), jnp.float32))
    assert crude_bound(p32) > GEMM_ERROR_BUDGET
    for w in (None, white):
        assert bool(gemm_is_accurate(p32, w))
        new, obj = batched_step(p32, chunk(x32, 1000), np.float32(1e-6), "auto", white=w)
        new = jax.tree.map(lambda a: a[0], new)
        assert metric_error(new, ref) < 5 * GEMM_ERROR_BUDGET
        scale = np.abs(np.asarray(ref.means)).max(axis=0)
        assert np.all(np.abs(np.asarray(new.means) - np.asarray(ref.means)) <= 1e-4 * scale)
        np.testing.assert_allclose(float(obj[0]), float(exact_obj), atol=1e-4)


def test_whitened_fit_matches_float64_per_sample():
    """The whole fit (default settings, float32) reaches the float64 fit's
    mean log-likelihood to 1e-4 per sample from the same start, on
    correlated features."""
    x, labels = correlated_blobs("both")
    start = scaled_start(x, labels, "full")
    f64 = fit_gmm(0, x, K, init_params=start)
    f32 = fit_gmm(0, x.astype(np.float32), K,
                  init_params=jax.tree.map(lambda a: a.astype(jnp.float32), start))
    assert f32.best_params.means.dtype == jnp.float32
    np.testing.assert_allclose(float(f32.objective[0]), float(f64.objective[0]), atol=1e-4)


def test_exact_pass_runs_per_group_of_restarts():
    """``per_restart_path``: each restart takes its own path's value, and the
    exact function sees groups of at most 2 of 16 restarts (so one restart
    over budget does not send the whole batch down the exact path)."""
    from jaxmix.gmm.stats import exact_groups, per_restart_path
    seen = []

    def exact(a):
        seen.append(a.shape)
        return -a

    arg = jnp.arange(16.0)[:, None] * jnp.ones((16, 3))
    ok = jnp.arange(16) != 5
    got = jax.jit(lambda o, a: per_restart_path(o, a + 0.5, exact, a))(ok, arg)
    np.testing.assert_array_equal(got, np.where(np.asarray(ok)[:, None], arg + 0.5, -arg))
    assert seen == [(2, 3)]
    assert [exact_groups(r) for r in (1, 2, 3, 4, 6, 8, 12, 16, 24)] == [1, 2, 3, 4, 6, 8, 6, 8, 8]


def test_small_passes_take_the_exact_path_alone(monkeypatch):
    """``auto`` is the exact path alone where one restart's pass is small:
    no switch (no cond) in the E-step, the exact path's numbers."""
    data = chunk(jnp.ones((100, 3), jnp.float32), 40)  # 120 padded rows
    monkeypatch.setattr(chunked, "SMALL_PASS", 120 * 3 * 4 * 2)
    assert stats.static_path("auto", data, 4, 2) == "exact"
    assert stats.static_path("auto", chunk(np.ones((100, 3)), 40), 4, 2) == "auto"  # float64
    assert stats.static_path("auto", data, 5, 2) == "auto"
    assert stats.static_path("auto", data, 4, 3) == "auto"
    assert stats.static_path("gemm", data, 4, 2) == "gemm"
    x, _, labels = far_blobs(3.0)
    p64 = start_params(x, labels, "full")
    p32 = jax.tree.map(lambda a: jnp.stack([a, a]).astype(jnp.float32), p64)
    x32 = chunk(jnp.asarray(x, jnp.float32), 1000)

    def conds(small):
        monkeypatch.setattr(chunked, "SMALL_PASS", 2 ** 20 if small else -1)  # 4000 x 6 x 4 x 2
        step = batched_em_step(x32, np.float32(1e-6), "auto")
        return str(jax.make_jaxpr(step)(p32)).count(" cond[")
    assert conds(small=False) > conds(small=True)  # leaves the small-pass rule on
    small, _ = jax.jit(batched_em_step(x32, np.float32(1e-6), "auto"))(p32)
    exact, _ = batched_step(p32, x32, np.float32(1e-6), "exact")
    for a, b in zip(jax.tree.leaves(small), jax.tree.leaves(exact)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)  # float32
