"""The four covariance families as small units.

Each family is a stateless class of static methods; every other module asks
``family(covariance_type)`` for one and never branches on the type itself.
Shapes follow scikit-learn (``k`` components, ``d`` features):

=========  ==================  ======================  ==================
family     covariance          precisions_cholesky     second moment sxx
=========  ==================  ======================  ==================
full       ``(k, d, d)``       ``(k, d, d)`` upper     ``(k, d, d)``
tied       ``(d, d)``          ``(d, d)`` upper        ``(k, d, d)``
diag       ``(k, d)``          ``(k, d)``              ``(k, d)``
spherical  ``(k,)``            ``(k,)``                ``(k,)``
=========  ==================  ======================  ==================

Two ways to get squared Mahalanobis distances are offered:

* ``sq_mahalanobis``: the centred, exact form ``||(x - mu_k) L_k||^2``; it
  materialises ``(n, k, d)`` and is used on sample chunks.
* ``quad_features`` / ``quad_coefs``: the quadratic part ``x^T P_k x`` is
  linear in features of ``x`` (``vech(x x^T)`` or ``x * x``), so distances to
  all components are one GEMM (see ``em.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from jaxmix.params import COVARIANCE_TYPES

from jaxmix.numerics import HIGHEST


def _eye_like(a):
    return jnp.eye(a.shape[-1], dtype=a.dtype)


def _triu(d):
    return np.triu_indices(d)


def _cholesky_of_inverse(cov):
    """Upper factor ``L`` with ``L L^T = cov^{-1}`` (sklearn's convention)."""
    chol = jnp.linalg.cholesky(cov)
    eye = jnp.broadcast_to(_eye_like(cov), cov.shape)
    return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)


def _inverse_factor(pc):
    """``M = L^{-1}`` (upper), so ``cov = M^T M`` and ``mu + z @ M`` samples."""
    eye = jnp.broadcast_to(_eye_like(pc), pc.shape)
    return solve_triangular(pc, eye, lower=False)


class Full:
    """One dense covariance per component."""

    name = "full"

    @staticmethod
    def n_params(k: int, d: int) -> int:
        return k * d * (d + 1) // 2

    @staticmethod
    def pc_shape(k: int, d: int) -> tuple:
        return (k, d, d)

    precision_cholesky = staticmethod(_cholesky_of_inverse)

    @staticmethod
    def covariance(pc):
        m = _inverse_factor(pc)
        return jnp.einsum("...ji,...jl->...il", m, m, precision=HIGHEST)

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
    def max_precision(pc):
        """Largest eigenvalue of each precision matrix (``1 / smallest variance``)."""
        p = jnp.einsum("...ij,...kj->...ik", pc, pc, precision=HIGHEST)
        return jnp.linalg.eigvalsh(p)[..., -1]

    @staticmethod
    def quad_features(x):
        # vech(x x^T) in triu_indices order, from slices (XLA gathers are slow on CPU)
        d = x.shape[-1]
        return jnp.concatenate([x[..., i:i + 1] * x[..., i:] for i in range(d)], axis=-1)

    @staticmethod
    def quad_coefs(pc, k):
        i, j = _triu(pc.shape[-1])
        p = jnp.einsum("...ij,...kj->...ik", pc, pc, precision=HIGHEST)
        coefs = p[..., i, j] * jnp.where(i == j, 1.0, 2.0).astype(p.dtype)
        return jnp.broadcast_to(coefs, (k, coefs.shape[-1]))

    @staticmethod
    def moments_from_features(s, d):
        i, j = _triu(d)
        out = jnp.zeros(s.shape[:-1] + (d, d), s.dtype)
        return out.at[..., i, j].set(s).at[..., j, i].set(s)

    @staticmethod
    def scatter(rw, z):
        return jnp.einsum("nk,nkd,nke->kde", rw, z, z, precision=HIGHEST)

    @staticmethod
    def covariance_from_stats(nk, dev, sxx, reg):
        cov = sxx / nk[:, None, None] - dev[:, :, None] * dev[:, None, :]
        return cov + reg * _eye_like(cov)

    @staticmethod
    def sample_noise(z, pc, labels):
        m = _inverse_factor(pc)[labels]
        return jnp.einsum("nd,nde->ne", z, m, precision=HIGHEST)

    @staticmethod
    def precisions(pc):
        """Precision matrices ``L L^T`` (scikit-learn's ``precisions_`` layout)."""
        return jnp.einsum("...ij,...kj->...ik", pc, pc, precision=HIGHEST)

    @classmethod
    def precision_cholesky_from_precisions(cls, precisions, name="precisions"):
        """Cholesky factors from user-given precisions (host side, numpy in and
        out); ``ValueError`` naming ``name`` unless symmetric positive definite."""
        p = np.asarray(precisions, np.float64)
        mats = p.reshape((-1,) + p.shape[-2:])
        if not (np.allclose(mats, np.swapaxes(mats, -1, -2))
                and np.all(np.linalg.eigvalsh(mats) > 0)):
            raise ValueError(f"'{name}' ({cls.name} precision) should be symmetric, "
                             "positive-definite")
        return np.asarray(cls.precision_cholesky(jnp.asarray(np.linalg.inv(p))))

    @staticmethod
    def variances(pc):
        return jnp.diagonal(Full.covariance(pc), axis1=-2, axis2=-1)


class Tied(Full):
    """One dense covariance shared by all components."""

    name = "tied"

    @staticmethod
    def n_params(k: int, d: int) -> int:
        return d * (d + 1) // 2

    @staticmethod
    def pc_shape(k: int, d: int) -> tuple:
        return (d, d)

    @staticmethod
    def log_det(pc, d):
        return jnp.sum(jnp.log(jnp.diagonal(pc)))

    @staticmethod
    def sq_mahalanobis(x, means, pc):
        y = jnp.matmul(x, pc, precision=HIGHEST)[:, None, :]
        y = y - jnp.matmul(means, pc, precision=HIGHEST)[None]
        return jnp.sum(y * y, axis=-1)

    @staticmethod
    def precision_times(pc, v):
        return jnp.matmul(jnp.matmul(v, pc, precision=HIGHEST), pc.T, precision=HIGHEST)

    @staticmethod
    def covariance_from_stats(nk, dev, sxx, reg):
        between = jnp.einsum("k,kd,ke->de", nk, dev, dev, precision=HIGHEST)
        cov = (jnp.sum(sxx, axis=0) - between) / jnp.sum(nk)
        return cov + reg * _eye_like(cov)

    @staticmethod
    def sample_noise(z, pc, labels):
        return jnp.matmul(z, _inverse_factor(pc), precision=HIGHEST)

    @staticmethod
    def variances(pc):
        return jnp.diagonal(Full.covariance(pc))[None, :]


class Diag:
    """One diagonal covariance per component."""

    name = "diag"

    @staticmethod
    def n_params(k: int, d: int) -> int:
        return k * d

    @staticmethod
    def pc_shape(k: int, d: int) -> tuple:
        return (k, d)

    @staticmethod
    def precision_cholesky(cov):
        return jax.lax.rsqrt(cov)

    @staticmethod
    def covariance(pc):
        return 1.0 / (pc * pc)

    @staticmethod
    def log_det(pc, d):
        return jnp.sum(jnp.log(pc), axis=-1)

    @staticmethod
    def _scale(pc):
        return pc

    @classmethod
    def sq_mahalanobis(cls, x, means, pc):
        s = cls._scale(pc)
        y = (x[:, None, :] - means[None]) * s[None]
        return jnp.sum(y * y, axis=-1)

    @classmethod
    def precision_times(cls, pc, v):
        s = cls._scale(pc)
        return s * s * v

    @classmethod
    def max_precision(cls, pc):
        s = cls._scale(pc)
        return jnp.max(s * s, axis=-1)

    @staticmethod
    def quad_features(x):
        return x * x

    @staticmethod
    def quad_coefs(pc, k):
        return pc * pc

    @staticmethod
    def moments_from_features(s, d):
        return s

    @staticmethod
    def scatter(rw, z):
        return jnp.einsum("nk,nkd->kd", rw, z * z, precision=HIGHEST)

    @staticmethod
    def covariance_from_stats(nk, dev, sxx, reg):
        return sxx / nk[:, None] - dev * dev + reg

    @classmethod
    def sample_noise(cls, z, pc, labels):
        return z / cls._scale(pc)[labels]

    @staticmethod
    def precisions(pc):
        """Precisions ``pc^2`` (scikit-learn's ``precisions_`` layout)."""
        return pc * pc

    @classmethod
    def precision_cholesky_from_precisions(cls, precisions, name="precisions"):
        """``sqrt`` of user-given precisions (host side); ``ValueError`` naming
        ``name`` unless all are positive."""
        p = np.asarray(precisions, np.float64)
        if np.any(p <= 0):
            raise ValueError(f"'{name}' ({cls.name} precision) should be positive")
        return np.sqrt(p)

    @classmethod
    def variances(cls, pc):
        s = cls._scale(pc)
        return 1.0 / (s * s)


class Spherical(Diag):
    """One isotropic variance per component."""

    name = "spherical"

    @staticmethod
    def n_params(k: int, d: int) -> int:
        return k

    @staticmethod
    def pc_shape(k: int, d: int) -> tuple:
        return (k,)

    @staticmethod
    def log_det(pc, d):
        return d * jnp.log(pc)

    @staticmethod
    def _scale(pc):
        return pc[..., None]

    @staticmethod
    def quad_features(x):
        return jnp.sum(x * x, axis=-1, keepdims=True)

    @staticmethod
    def quad_coefs(pc, k):
        return (pc * pc)[:, None]

    @staticmethod
    def moments_from_features(s, d):
        return s[..., 0]

    @staticmethod
    def scatter(rw, z):
        return jnp.einsum("nk,nk->k", rw, jnp.sum(z * z, axis=-1), precision=HIGHEST)

    @staticmethod
    def covariance_from_stats(nk, dev, sxx, reg):
        d = dev.shape[-1]
        return (sxx / nk - jnp.sum(dev * dev, axis=-1)) / d + reg


_FAMILIES = {f.name: f for f in (Full, Tied, Diag, Spherical)}
assert tuple(_FAMILIES) == COVARIANCE_TYPES


def family(covariance_type: str):
    """The family class for ``covariance_type``."""
    try:
        return _FAMILIES[covariance_type]
    except KeyError:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}"
        ) from None

