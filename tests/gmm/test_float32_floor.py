"""float32 EM on data whose components collapse (issue 15, item 4), against
float64 references.

Two losses of precision made float32 EM cycle instead of converging when a
component collapses onto fewer than ``d + 1`` points (its covariance at the
``reg_covar`` floor in some directions):

* the new means were ``previous + sx / nk``, so they depended on the previous
  means through rounding and could alternate between neighbouring floats;
* the floor itself: the scatter's null-space eigenvalues are float32 noise of
  size ``eps * lambda_max`` (10% of ``reg_covar = 1e-6`` on standardised data),
  and the Cholesky of a formed ``S + reg I`` rounds it again.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

from jaxmix import GMMParams, fit_gmm
from jaxmix.data.chunked import chunk
from jaxmix.gmm import family, responsibilities
from jaxmix.gmm.dense_factor import _exact_floor_factor, _floor_is_rounded
from jaxmix.gmm.stats import batched_e_step

REG = 1e-6


@pytest.mark.parametrize("k", [8, 12])
def test_float32_em_on_collapsing_components_is_float64s(k):
    """Standardised wine, full covariance: most restarts have a component on
    fewer than 14 points. Before the fix, k=8 fell in 498 iterations and one
    restart ran to max_iter; float64 converges in at most 9."""
    x = StandardScaler().fit_transform(load_wine().data)
    fits = [fit_gmm(jax.random.key(1), x.astype(dt), k, n_restarts=8, max_iter=200)
            for dt in (np.float32, np.float64)]
    single, double = fits
    assert single.falling_iterations().sum() == 0 == double.falling_iterations().sum()
    assert np.sum(np.asarray(single.n_iter) == np.asarray(double.n_iter)) >= 6
    assert np.all(np.asarray(single.converged))
    best = [float(np.max(np.asarray(f.objective))) for f in fits]
    assert abs(best[0] - best[1]) < 1e-4


def _collapsed_scatter(seed=0, m=5, d=13):
    """The scatter of ``m < d`` points (rank ``m - 1``) in float64."""
    z = np.random.default_rng(seed).normal(size=(m, d))
    z -= z.mean(0)
    return z.T @ z / m


def _implied_covariance(pc):
    u = np.asarray(pc, np.float64)
    return np.linalg.inv(u @ u.T)


def test_floor_factor_gives_the_floor_exactly_in_float32():
    s64 = _collapsed_scatter()
    s32 = jnp.asarray(s64, jnp.float32)
    exact = _exact_floor_factor(s32[None], REG)[0]
    chol = family("full").precision_cholesky(s32[None] + REG * jnp.eye(13))[0]
    ref = np.linalg.eigvalsh(s64 + REG * np.eye(13))
    floor = ref < 2 * REG
    assert floor.sum() == 9  # 13 - (5 - 1) directions at the floor
    got = [np.linalg.eigvalsh(_implied_covariance(p)) for p in (exact, chol)]
    err = [np.max(np.abs(g[floor] / ref[floor] - 1)) for g in got]
    assert err[0] < 1e-3 < 1e-2 < err[1]  # the formed Cholesky rounds the floor
    log_det = float(family("full").log_det(exact[None], 13)[0])
    assert abs(log_det + 0.5 * np.sum(np.log(ref))) < 1e-3


def test_floored_factor_switches_only_where_the_floor_is_rounded():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(13, 40))
    well = jnp.asarray(a @ a.T / 40, jnp.float32)[None]  # condition ~ 50
    collapsed = jnp.asarray(_collapsed_scatter(), jnp.float32)[None]
    fam = family("full")
    for cov, rounded in ((well, False), (collapsed, True)):
        fast = fam.precision_cholesky(cov + REG * jnp.eye(13))
        assert bool(_floor_is_rounded(cov, REG, fast)) is rounded
    both = jnp.concatenate([well, collapsed])
    got = fam.floored_precision_cholesky(both, REG)
    np.testing.assert_allclose(got, _exact_floor_factor(both, REG))
    # in float64 the floor is exact already: the Cholesky factors are kept
    c64 = jnp.asarray(_collapsed_scatter(), jnp.float64)[None]
    fast64 = fam.precision_cholesky(c64 + REG * jnp.eye(13))
    assert not bool(_floor_is_rounded(c64, REG, fast64))


def test_batched_exact_statistics_are_about_the_new_means():
    """Against two-pass statistics from the responsibilities (float64)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 3)) + rng.integers(0, 3, 300)[:, None] * 2.0
    pc = family("full").precision_cholesky(jnp.asarray(np.stack([np.eye(3)] * 3)))
    params = GMMParams(jnp.full((3,), 1 / 3), jnp.asarray(rng.normal(size=(3, 3)) * 2), pc,
                       "full")
    stats = batched_e_step(jax.tree.map(lambda a: a[None], params), chunk(jnp.asarray(x)),
                           "exact")
    r = np.asarray(responsibilities(params, jnp.asarray(x)))
    nk = r.sum(0)
    means = r.T @ x / nk[:, None]
    z = x[:, None, :] - means[None]
    np.testing.assert_allclose(stats.shift[0], means, rtol=1e-10)
    np.testing.assert_array_equal(stats.sx[0], 0.0)
    np.testing.assert_allclose(stats.sxx[0], np.einsum("nk,nkd,nke->kde", r, z, z),
                               rtol=1e-9, atol=1e-10)


def test_a_collapsed_component_keeps_its_floor_whatever_its_scatter_noise():
    """A component on repeated points: its true scatter is 0, but the GEMM
    path returns cancellation noise of up to 5e-4 of the floor (its budget),
    whose negative part the Cholesky of ``S + reg I`` takes off the floor
    (seen on CI: eigenvalue 0.99953 reg). Clipped to the bounds every scatter
    meets (no negative variance, ``|c_ij| <= sqrt(c_ii c_jj)``), the noise
    keeps the floor."""
    reg, d = 1e-3, 5
    e = np.random.default_rng(4).normal(size=(d, d)) * 2e-7
    noise = jnp.asarray((e + e.T) / 2, jnp.float32)[None]
    fam = family("full")
    plain = _implied_covariance(fam.precision_cholesky(noise + reg * jnp.eye(d))[0])
    assert np.linalg.eigvalsh(plain).min() < reg * (1 - 1e-4)
    floored = _implied_covariance(fam.floored_precision_cholesky(noise, reg)[0])
    assert np.linalg.eigvalsh(floored).min() >= reg * (1 - 1e-5)
    # a scatter that is PSD and far from its floor is not sent there
    z = np.random.default_rng(5).normal(size=(50, d))
    well = jnp.asarray(z.T @ z / 50, jnp.float32)[None]
    assert not bool(_floor_is_rounded(well, reg, fam.precision_cholesky(well + reg * jnp.eye(d))))


def test_vmapped_floor_stays_one_branch_for_the_batch():
    """Under ``vmap`` (the families' per-restart M-step) the floor's cond is
    not turned into a select that runs the eigendecompositions every time
    (which also deadlocked jaxlib 0.10's LAPACK kernels on two cores): the
    batching rule takes one branch for the batch, as the batched EM step
    does, and its factors equal the unbatched call's on the stacked batch."""
    fam = family("full")
    rng = np.random.default_rng(1)
    a = rng.normal(size=(13, 40))
    well = (a @ a.T / 40).astype(np.float32)
    covs = jnp.asarray(np.stack([np.stack([well, well]),
                                 np.stack([well, _collapsed_scatter().astype(np.float32)])]))
    batched = jax.vmap(lambda c: fam.floored_precision_cholesky(c, REG))
    text = str(jax.make_jaxpr(batched)(covs))
    assert "cond[" in text  # a vmapped cond on a batched predicate leaves none
    np.testing.assert_array_equal(batched(covs), fam.floored_precision_cholesky(covs, REG))
    np.testing.assert_allclose(batched(covs)[1, 1], _exact_floor_factor(covs[1, 1:], REG)[0],
                               rtol=1e-6)
    # derivatives pass through (reverse mode), e.g. for grad through an EM fit
    # equal, away from the floor, to those of the plain Cholesky factor
    g = jax.grad(lambda c: jnp.sum(batched(c) ** 2))(covs[:, :1])
    plain = jax.grad(lambda c: jnp.sum(fam.precision_cholesky(c + REG * jnp.eye(13)) ** 2))(
        covs[:, :1])
    np.testing.assert_allclose(g, plain, rtol=1e-5, atol=1e-6)
