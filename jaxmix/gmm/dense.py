"""Dense covariance families: ``full`` (one ``(d, d)`` per component) and ``tied``.

The precision factor is scikit-learn's upper ``L`` with ``L L^T = Sigma^{-1}``;
the covariance prior is inverse-Wishart; the gradient bijector keeps the
strictly upper triangle and exponentiates the diagonal. The methods are those
of the protocol in :mod:`jaxmix.gmm.covariance`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import multigammaln

from jaxmix.gmm.dense_factor import (_cholesky_of_inverse, _eye_like, _outer,
                                     floored_precision_cholesky)
from jaxmix.gmm.family_base import Family
from jaxmix.numerics import HIGHEST


def _triu(d):
    return np.triu_indices(d)


def _inverse_factor(pc):
    """``M = L^{-1}`` (upper), so ``cov = M^T M`` and ``mu + z @ M`` samples."""
    eye = jnp.broadcast_to(_eye_like(pc), pc.shape)
    return solve_triangular(pc, eye, lower=False)


def _with_diagonal(a, f):
    """Strictly upper triangle of ``a`` kept, ``f`` applied to its diagonal."""
    diag = jnp.diagonal(a, axis1=-2, axis2=-1)
    return jnp.triu(a, 1) + f(diag)[..., None, :] * _eye_like(a)


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
        return floored_precision_cholesky(cov, reg)

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

    @classmethod
    def component_abs_quad(cls, pc, a):
        """``|a_k|^T |P_k| |a_k|`` (``|P|`` entrywise) for ``a (k, d) >= 0``
        (tied: its one precision for every component)."""
        p = jnp.abs(cls.precisions(pc))
        p = jnp.broadcast_to(p, a.shape[:-1] + p.shape[-2:])
        return jnp.einsum("kd,kde,ke->k", a, p, a, precision=HIGHEST)

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
