"""Dense covariance families: ``full`` (one ``(d, d)`` per component) and ``tied``.

The precision factor is scikit-learn's upper ``L`` with ``L L^T = Sigma^{-1}``;
the covariance prior is inverse-Wishart; the gradient bijector keeps the
strictly upper triangle and exponentiates the diagonal. The methods are those
of the protocol in :mod:`jaxmix.gmm.covariance`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import multigammaln

from jaxmix.gmm.family_base import Family
from jaxmix.numerics import HIGHEST


def _eye_like(a):
    return jnp.eye(a.shape[-1], dtype=a.dtype)


def _triu(d):
    return np.triu_indices(d)


def _outer(a):
    return a[..., :, None] * a[..., None, :]


def _cholesky_of_inverse(cov):
    """Upper factor ``L`` with ``L L^T = cov^{-1}`` (sklearn's convention)."""
    chol = jnp.linalg.cholesky(cov)
    eye = jnp.broadcast_to(_eye_like(cov), cov.shape)
    return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)


def _inverse_factor(pc):
    """``M = L^{-1}`` (upper), so ``cov = M^T M`` and ``mu + z @ M`` samples."""
    eye = jnp.broadcast_to(_eye_like(pc), pc.shape)
    return solve_triangular(pc, eye, lower=False)


def _with_diagonal(a, f):
    """Strictly upper triangle of ``a`` kept, ``f`` applied to its diagonal."""
    diag = jnp.diagonal(a, axis1=-2, axis2=-1)
    return jnp.triu(a, 1) + f(diag)[..., None, :] * _eye_like(a)


def _jacobi(a):
    """``sqrt(diag(a))`` of each matrix (1 where a diagonal entry is 0): the
    scaling in which float32's error in ``a`` is about ``eps`` per entry,
    whatever the features' units."""
    root = jnp.sqrt(jnp.diagonal(a, axis1=-2, axis2=-1))
    return jnp.where(root > 0, root, 1.0)


def _exact_floor_factor(cov, reg):
    """Precision factor of ``cov + reg I`` whose floor is exact in float32.

    ``cov`` is a scatter whose null space (a component collapsed on fewer
    than ``d + 1`` points) float32 fills with rounding noise of about ``d
    eps`` in Jacobi-scaled coordinates ``T = D^-1 cov D^-1``, 10% of
    ``reg_covar = 1e-6`` on standardised data. ``T``'s eigenvalues below ``d
    eps lambda_max(T)`` are set to 0, so those directions get exactly ``reg``
    as in float64, and the factor comes from the QR of ``[diag(mu)^(1/2) W^T D;
    sqrt(reg) I]`` (``T = W diag(mu) W^T``), whose ``R`` has ``R^T R = cov + reg
    I`` without that sum being formed and rounded again. The scaling keeps
    the small variances of features in small units (eigenvalues of an
    unscaled ``cov`` are only accurate to ``eps lambda_max``)."""
    d = cov.shape[-1]
    scale = _jacobi(cov)
    mu, w = jnp.linalg.eigh(cov / (scale[..., :, None] * scale[..., None, :]))
    noise = d * jnp.finfo(cov.dtype).eps * jnp.maximum(mu[..., -1:], 0.0)
    mu = jnp.where(mu > noise, mu, 0.0)
    root = jnp.sqrt(mu)[..., :, None] * jnp.swapaxes(w, -1, -2) * scale[..., None, :]
    floor = jnp.broadcast_to(jnp.sqrt(reg) * _eye_like(cov), cov.shape)
    r = jnp.linalg.qr(jnp.concatenate([root, floor], axis=-2), mode="r")
    r = r * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[..., :, None]
    return solve_triangular(r, jnp.broadcast_to(_eye_like(cov), cov.shape), lower=False)


def _floor_is_rounded(cov, reg, pc):
    """Whether the Cholesky factor ``pc`` of ``cov + reg I`` may have rounded
    its floor (any matrix of the batch), judged in Jacobi-scaled coordinates
    ``A = D^-1 (cov + reg I) D^-1`` so that features' units do not matter:
    the smallest eigenvalue of ``A`` within the floor's largest share ``reg /
    D_i^2`` plus four times float32's noise ``d eps ||A||``, while that noise
    is above ``1e-4`` of the floor's smallest share; or a factor that is not
    finite though ``cov`` is. Features constant within a component (their
    row of ``cov`` exactly 0) are left out: the Cholesky keeps their floor
    exactly. Conservative: ``lambda_min(A)`` is bounded below by ``1 /
    ||A^-1||_F``."""
    d = cov.shape[-1]
    frob = lambda a: jnp.sqrt(jnp.sum(a * a, axis=(-2, -1)))  # noqa: E731
    floored = cov + reg * _eye_like(cov)
    scale = _jacobi(floored)
    a = floored / (scale[..., :, None] * scale[..., None, :])
    # A feature without scatter (constant within the component: its row of
    # cov is exactly 0) keeps its floor exactly in the Cholesky: left out
    constant = jnp.diagonal(cov, axis1=-2, axis2=-1) == 0
    share = jnp.where(constant, 0.0, reg / (scale * scale))
    a = jnp.where(constant[..., :, None] | constant[..., None, :], 0.0, a)
    noise = d * jnp.finfo(cov.dtype).eps * frob(a)
    pc_scaled = jnp.where(constant[..., :, None], 0.0, scale[..., :, None] * pc)  # A^-1's factor
    inverse_norm = frob(jnp.matmul(jnp.swapaxes(pc_scaled, -1, -2), pc_scaled,
                                   precision=HIGHEST))
    near = inverse_norm * (jnp.max(share, axis=-1) + 4.0 * noise) >= 1.0
    audible = noise > 1e-4 * jnp.min(jnp.where(constant, jnp.inf, share), axis=-1)
    lost = ~jnp.all(jnp.isfinite(pc), axis=(-2, -1)) & jnp.all(jnp.isfinite(cov), axis=(-2, -1))
    return jnp.any((near & audible) | lost)


def _within_scatter_bounds(cov):
    """``cov`` with the bounds every scatter meets exactly restored: no
    negative variance, ``|c_ij| <= sqrt(c_ii c_jj)``. A PSD matrix is left as
    it is (up to a clip at the bound's own rounding); the GEMM path's
    statistics meet the bounds only up to its cancellation error (``eps *
    kappa`` of the narrowest variance, within budget 5e-4 of it), which for
    a component collapsed on repeated points is all of its scatter, and
    whose negative part would otherwise come off the ``reg_covar`` floor
    (seen on CI: eigenvalue 0.99953 reg). Clipped, such a scatter's noise
    keeps no negative variance and no 2x2 block below 0 (so for ``d = 2``
    the floor is exact), and what remains is far below the budget."""
    diag = jnp.maximum(jnp.diagonal(cov, axis1=-2, axis2=-1), 0.0)
    bound = _outer(jnp.sqrt(diag))  # no square of cov: no overflow
    off = jnp.clip(cov, -bound, bound)
    return jnp.where(jnp.eye(cov.shape[-1], dtype=bool), diag[..., None, :], off)


def _floored_precision_cholesky(cov, reg):
    """:meth:`Family.floored_precision_cholesky` of the dense families: the
    Cholesky factors, or, when one of them may have rounded its floor
    (:func:`_floor_is_rounded`; a float32 component collapsed at
    ``reg_covar``), every factor of the batch from :func:`_exact_floor_factor`
    (one ``lax.cond``, so the eigendecompositions run only then). float64
    keeps the Cholesky factors without tracing the rest (the floor's noise
    is ``d`` times 2e-16 there)."""
    if jnp.finfo(cov.dtype).bits >= 64:  # noise ~ d 2e-16: far below any floor; not traced
        return _cholesky_of_inverse(cov + reg * _eye_like(cov))
    return _batch_level_floor(cov, jnp.asarray(reg, cov.dtype))


def _float32_floor(cov, reg):
    """The float32 body of :func:`_floored_precision_cholesky`."""
    cov = _within_scatter_bounds(cov)
    fast = _cholesky_of_inverse(cov + reg * _eye_like(cov))
    return jax.lax.cond(_floor_is_rounded(cov, reg, fast),
                        lambda: _exact_floor_factor(cov, reg), lambda: fast)


@jax.custom_jvp
def _batch_level_floor(cov, reg):
    """:func:`_float32_floor` whose ``lax.cond`` stays a branch under ``vmap``.

    vmapped (a per-restart M-step), a cond on a batched predicate becomes a
    select that runs both branches every time: the eigendecompositions of the
    exact floor at every iteration, and, on XLA:CPU with two cores, two
    batched LAPACK calls at once, which deadlocked jaxlib 0.10 (both intra-op
    threads waiting in ``ParallelBatchMap`` for work queued behind the
    other; the families' float32 fit of wine at k=11 hung on its second
    key). The batching rule (:func:`_floor_vmap`) runs the function on the
    whole batch instead: one branch for all restarts, as in the batched EM
    step. ``custom_vmap`` has no reverse mode of its own: derivatives come
    from :func:`_batch_level_floor_jvp`."""
    return _floor_over_batch(cov, reg)


@_batch_level_floor.defjvp
def _batch_level_floor_jvp(primals, tangents):
    """The floored factor, and the tangent of ``chol((cov + reg I)^-1)``:
    the factor's own wherever the floor's clips and zeroed eigenvalues are
    inactive (everywhere but a set of measure zero)."""
    smooth = lambda c, r: _cholesky_of_inverse(c + r * _eye_like(c))  # noqa: E731
    return _batch_level_floor(*primals), jax.jvp(smooth, primals, tangents)[1]


@jax.custom_batching.custom_vmap
def _floor_over_batch(cov, reg):
    return _float32_floor(cov, reg)


@_floor_over_batch.def_vmap
def _floor_vmap(axis_size, in_batched, cov, reg):
    cov_batched, reg_batched = in_batched
    if reg_batched:  # one floor per member: the plain (select) batching
        return jax.vmap(_float32_floor, in_axes=(0 if cov_batched else None, 0))(cov, reg), True
    return _floor_over_batch(cov, reg), cov_batched


def _is_spd(mats) -> bool:
    return bool(np.allclose(mats, np.swapaxes(mats, -1, -2))
                and np.all(np.linalg.eigvalsh(mats) > 0))


class Full(Family):
    """One dense covariance per component."""

    dense_factor = True
    name = "full"

    @staticmethod
    def n_params(k: int, d: int) -> int:
        return k * d * (d + 1) // 2

    @staticmethod
    def pc_shape(k: int, d: int) -> tuple:
        return (k, d, d)

    precision_cholesky = staticmethod(_cholesky_of_inverse)

    @staticmethod
    def floored_precision_cholesky(cov, reg):
        return _floored_precision_cholesky(cov, reg)

    @staticmethod
    def covariance(pc):
        m = _inverse_factor(pc)
        return jnp.einsum("...ji,...jl->...il", m, m, precision=HIGHEST)

    @classmethod
    def dense_covariance(cls, pc, k: int, d: int):
        """Every component's covariance as a ``(k, d, d)`` matrix."""
        return jnp.broadcast_to(cls.covariance(pc), (k, d, d))

    @staticmethod
    def moments_from_dense(sxx):
        """Second moments ``(k, d, d)`` in this family's layout."""
        return sxx

    @staticmethod
    def precisions(pc):
        """Precision matrices ``L L^T`` (scikit-learn's ``precisions_`` layout)."""
        return jnp.einsum("...ij,...kj->...ik", pc, pc, precision=HIGHEST)

    @classmethod
    def precision_cholesky_from_precisions(cls, precisions, name="precisions"):
        """Cholesky factors from user-given precisions (host side, numpy in and
        out); ``ValueError`` naming ``name`` unless symmetric positive definite."""
        p = np.asarray(precisions, np.float64)
        if not _is_spd(p.reshape((-1,) + p.shape[-2:])):
            raise ValueError(f"'{cls.name} precision' should be symmetric, positive-definite "
                             f"({name})")
        return np.asarray(cls.precision_cholesky(jnp.asarray(np.linalg.inv(p))))

    @classmethod
    def variances(cls, pc):
        return jnp.diagonal(cls.covariance(pc), axis1=-2, axis2=-1)

    @staticmethod
    def log_det(pc, d):
        """``log det L_k`` = ``-0.5 log det Sigma_k``, shape ``(k,)``."""
        return jnp.sum(jnp.log(jnp.diagonal(pc, axis1=-2, axis2=-1)), axis=-1)

    @staticmethod
    def sq_mahalanobis(x, means, pc):
        y = jnp.einsum("nd,kde->nke", x, pc, precision=HIGHEST)
        y = y - jnp.einsum("kd,kde->ke", means, pc, precision=HIGHEST)
        return jnp.sum(y * y, axis=-1)

    @staticmethod
    def precision_times(pc, v):
        """``P_k v_k`` for ``v`` of shape ``(k, d)``."""
        t = jnp.einsum("kde,kd->ke", pc, v, precision=HIGHEST)
        return jnp.einsum("kde,ke->kd", pc, t, precision=HIGHEST)

    @staticmethod
    def quad_features(x):
        # vech(x x^T) in triu_indices order, from slices (XLA gathers are slow on CPU)
        d = x.shape[-1]
        return jnp.concatenate([x[..., i:i + 1] * x[..., i:] for i in range(d)], axis=-1)

    @classmethod
    def quad_coefs(cls, pc, k):
        i, j = _triu(pc.shape[-1])
        p = cls.precisions(pc)
        coefs = p[..., i, j] * jnp.where(i == j, 1.0, 2.0).astype(p.dtype)
        return jnp.broadcast_to(coefs, (k, coefs.shape[-1]))

    @staticmethod
    def sample_noise(z, pc, labels):
        m = _inverse_factor(pc)[labels]
        return jnp.einsum("nd,nde->ne", z, m, precision=HIGHEST)

    # -- statistics and M-step ---------------------------------------------

    @staticmethod
    def scatter(rw, z):
        return jnp.einsum("nk,nkd,nke->kde", rw, z, z, precision=HIGHEST)

    @staticmethod
    def moments_from_features(s, d):
        i, j = _triu(d)
        out = jnp.zeros(s.shape[:-1] + (d, d), s.dtype)
        return out.at[..., i, j].set(s).at[..., j, i].set(s)

    @staticmethod
    def features_from_moments(sxx):
        i, j = _triu(sxx.shape[-1])
        return sxx[..., i, j]

    @staticmethod
    def add_reg(cov, reg):
        return cov + reg * _eye_like(cov)

    @classmethod
    def covariance_from_stats(cls, nk, dev, sxx, reg):
        return cls.add_reg(sxx / nk[:, None, None] - _outer(dev), reg)

    # -- degeneracy ---------------------------------------------------------

    @classmethod
    def _max_precision(cls, pc):
        """Largest eigenvalue of each precision matrix (``1 / smallest variance``)."""
        return jnp.linalg.eigvalsh(cls.precisions(pc))[..., -1]

    # -- gradient bijector --------------------------------------------------

    @staticmethod
    def constrain_factor(raw, reg=0.0):
        """The factor ``U'`` of ``S + reg I``, where ``raw`` (log-diagonal)
        gives ``U`` with ``U U^T = S^{-1}``: ``U' = U L^{-T}`` with ``L L^T =
        I + reg U^T U`` (eigenvalues at least 1, so the Cholesky is stable;
        ``reg = 0`` gives ``U`` exactly)."""
        u = _with_diagonal(raw, jnp.exp)
        ut = jnp.swapaxes(u, -1, -2)
        chol = jnp.linalg.cholesky(_eye_like(u) + reg * jnp.matmul(ut, u, precision=HIGHEST))
        return jnp.swapaxes(solve_triangular(chol, ut, lower=True), -1, -2)

    @staticmethod
    def unconstrain_factor(pc, reg=0.0):
        """Inverse of :meth:`constrain_factor`: the factor of ``cov - reg I``,
        from ``N = I - reg U'^T U'``; eigenvalues of ``N`` below ``100 eps``
        (a covariance at or under the floor) are raised to it."""
        pct = jnp.swapaxes(pc, -1, -2)
        n = _eye_like(pc) - reg * jnp.matmul(pct, pc, precision=HIGHEST)
        vals, vecs = jnp.linalg.eigh(n)
        low = 100 * jnp.finfo(pc.dtype).eps
        clipped = jnp.matmul(vecs * jnp.maximum(vals, low)[..., None, :],
                             jnp.swapaxes(vecs, -1, -2), precision=HIGHEST)
        n = jnp.where(jnp.all(vals >= low, axis=-1)[..., None, None], n, clipped)
        u = solve_triangular(jnp.linalg.cholesky(n), pct, lower=True)
        return _with_diagonal(jnp.swapaxes(u, -1, -2), jnp.log)

    # -- prior unit: inverse-Wishart ----------------------------------------

    @staticmethod
    def prior_scale_shape(d: int) -> tuple:
        return (d, d)

    @staticmethod
    def prior_min_dof(d: int) -> float:
        return d - 1.0

    @staticmethod
    def default_prior_scale(cov):
        return cov

    @staticmethod
    def check_prior_scale(psi) -> None:
        if not np.allclose(psi, psi.T, rtol=1e-5, atol=1e-8 * np.abs(psi).max()):
            raise ValueError("prior.covariance_prior must be symmetric")
        if np.linalg.eigvalsh(psi).min() <= 0:
            raise ValueError("prior.covariance_prior must be positive definite; add a "
                             "small multiple of the identity")

    @staticmethod
    def log_covariance_prior(pc, prior, d: int):
        """``sum log IW(Sigma; nu, Psi)`` over the factors in ``pc`` (``(..., d, d)``)."""
        nu, psi = prior.degrees_of_freedom, prior.covariance_prior
        log_det_l = jnp.sum(jnp.log(jnp.diagonal(pc, axis1=-2, axis2=-1)), axis=-1)
        # tr(Psi Sigma^-1) = tr(Psi L L^T) = sum(L * (Psi L))
        trace = jnp.sum(pc * jnp.matmul(psi, pc, precision=HIGHEST), axis=(-2, -1))
        _, log_det_psi = jnp.linalg.slogdet(psi)
        norm = 0.5 * nu * log_det_psi - 0.5 * nu * d * jnp.log(2.0) - multigammaln(0.5 * nu, d)
        return jnp.sum(norm + (nu + d + 1.0) * log_det_l - 0.5 * trace)

    @classmethod
    def _prior_scatter(cls, nk, dev, sxx, delta, kappa):
        """``S_k + r_k delta_k delta_k^T``, ``(k, d, d)``."""
        shrink = cls.mean_shrinkage(nk, kappa)
        return sxx - nk[:, None, None] * _outer(dev) + shrink[:, None, None] * _outer(delta)

    @classmethod
    def map_covariance(cls, nk, dev, sxx, delta, prior, n_real=None):
        d = dev.shape[-1]
        b = prior.covariance_prior + cls._prior_scatter(nk, dev, sxx, delta,
                                                        prior.mean_precision)
        return b / (prior.degrees_of_freedom + nk + d + 2.0)[:, None, None]


class Tied(Full):
    """One dense covariance shared by all components."""

    name = "tied"
    per_component = False

    @staticmethod
    def keep_components(pc, real):
        """One shared factor: nothing to replace."""
        return pc

    @staticmethod
    def first_components(pc, k: int):
        return pc

    @staticmethod
    def pad_components(pc, k_max: int):
        return pc

    @staticmethod
    def n_params(k: int, d: int) -> int:
        return d * (d + 1) // 2

    @staticmethod
    def pc_shape(k: int, d: int) -> tuple:
        return (d, d)

    @staticmethod
    def variances(pc):
        return Full.variances(pc)[..., None, :]

    @staticmethod
    def sq_mahalanobis(x, means, pc):
        y = jnp.matmul(x, pc, precision=HIGHEST)[:, None, :]
        y = y - jnp.matmul(means, pc, precision=HIGHEST)[None]
        return jnp.sum(y * y, axis=-1)

    @staticmethod
    def precision_times(pc, v):
        return jnp.matmul(jnp.matmul(v, pc, precision=HIGHEST), pc.T, precision=HIGHEST)

    @staticmethod
    def sample_noise(z, pc, labels):
        return jnp.matmul(z, _inverse_factor(pc), precision=HIGHEST)

    @classmethod
    def covariance_from_stats(cls, nk, dev, sxx, reg):
        between = jnp.einsum("k,kd,ke->de", nk, dev, dev, precision=HIGHEST)
        return cls.add_reg((jnp.sum(sxx, axis=0) - between) / jnp.sum(nk), reg)

    @classmethod
    def component_max_precision(cls, pc, k: int):
        lam = cls._max_precision(pc)
        return jnp.broadcast_to(lam[..., None], lam.shape + (k,))

    @classmethod
    def map_covariance(cls, nk, dev, sxx, delta, prior, n_real=None):
        """``n_real``: the real components of a padded mixture (default all):
        each real mean's prior adds one degree of freedom."""
        k, d = dev.shape
        k = k if n_real is None else n_real
        b = prior.covariance_prior + jnp.sum(
            cls._prior_scatter(nk, dev, sxx, delta, prior.mean_precision), axis=0)
        return b / (prior.degrees_of_freedom + jnp.sum(nk) + d + 1.0 + k)
