"""Diagonal covariance families: ``diag`` (``d`` variances per component) and ``spherical``.

The precision factor is ``1 / sqrt(variance)``; the covariance prior is an
inverse-Gamma on each variance (spherical: pooled over the ``d`` coordinates
that share one); the gradient bijector is ``exp``. Spherical is diag with
one scale broadcast over the features (``_scale``), pooled ``d`` times
(``_pool``) and summed over them (``_reduce``). The methods are those of the
protocol in :mod:`jaxmix.gmm.covariance`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from jaxmix.gmm.family_base import Family
from jaxmix.numerics import HIGHEST


def _log_inv_gamma(s_inv, log_s, a, b):
    """``log InvGamma(s; a, b)`` from ``1/s`` and ``log s``."""
    return a * jnp.log(b) - gammaln(a) - (a + 1.0) * log_s - b * s_inv


class Diag(Family):
    """One diagonal covariance per component."""

    name = "diag"

    @staticmethod
    def n_params(k: int, d: int) -> int:
        return k * d

    @staticmethod
    def pc_shape(k: int, d: int) -> tuple:
        return (k, d)

    # -- how spherical differs: one scale shared by the d features ----------

    @staticmethod
    def _scale(pc):
        """``pc`` broadcastable against ``(..., k, d)``."""
        return pc

    @staticmethod
    def _reduce(a):
        """Per-feature ``(k, d)`` quantities in the layout of the variances."""
        return a

    @staticmethod
    def _broadcast_k(v):
        """A ``(k,)`` vector broadcastable against the variances."""
        return v[:, None]

    @staticmethod
    def _pool(d: int) -> int:
        """How many coordinates share one variance."""
        return 1

    # -- conversions and density ----------------------------------------------

    @staticmethod
    def precision_cholesky(cov):
        return jax.lax.rsqrt(cov)

    @staticmethod
    def covariance(pc):
        return 1.0 / (pc * pc)

    @classmethod
    def dense_covariance(cls, pc, k: int, d: int):
        """Every component's covariance as a ``(k, d, d)`` (diagonal) matrix."""
        var = jnp.broadcast_to(1.0 / (cls._scale(pc) ** 2), (k, d))
        return var[:, :, None] * jnp.eye(d, dtype=var.dtype)

    @classmethod
    def moments_from_dense(cls, sxx):
        """Second moments ``(k, d, d)`` in this family's layout (their diagonal,
        summed over the features sharing a variance)."""
        return cls._reduce(jnp.diagonal(sxx, axis1=-2, axis2=-1))

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
            raise ValueError(f"'{cls.name} precision' should be positive ({name})")
        return np.sqrt(p)

    @classmethod
    def variances(cls, pc):
        s = cls._scale(pc)
        return 1.0 / (s * s)

    @staticmethod
    def log_det(pc, d):
        return jnp.sum(jnp.log(pc), axis=-1)

    @classmethod
    def sq_mahalanobis(cls, x, means, pc):
        s = cls._scale(pc)
        y = (x[:, None, :] - means[None]) * s[None]
        return jnp.sum(y * y, axis=-1)

    @classmethod
    def precision_times(cls, pc, v):
        s = cls._scale(pc)
        return s * s * v

    @staticmethod
    def quad_features(x):
        return x * x

    @staticmethod
    def quad_coefs(pc, k):
        return pc * pc

    @classmethod
    def sample_noise(cls, z, pc, labels):
        return z / cls._scale(pc)[labels]

    # -- statistics and M-step ---------------------------------------------

    @staticmethod
    def scatter(rw, z):
        return jnp.einsum("nk,nkd->kd", rw, z * z, precision=HIGHEST)

    @staticmethod
    def moments_from_features(s, d):
        return s

    @staticmethod
    def features_from_moments(sxx):
        return sxx

    @staticmethod
    def add_reg(cov, reg):
        return cov + reg

    @classmethod
    def covariance_from_stats(cls, nk, dev, sxx, reg):
        d = dev.shape[-1]
        var = sxx / cls._broadcast_k(nk) - cls._reduce(dev * dev)
        return cls.add_reg(var / cls._pool(d), reg)

    # -- degeneracy ---------------------------------------------------------

    @classmethod
    def _max_precision(cls, pc):
        s = cls._scale(pc)
        return jnp.max(s * s, axis=-1)

    # -- gradient bijector --------------------------------------------------

    @staticmethod
    def constrain_factor(raw, reg=0.0):
        """``1 / sqrt(s + reg)`` for the scales ``s = exp(-2 raw)`` (as
        :meth:`jaxmix.gmm.dense.Full.constrain_factor`, one coordinate)."""
        u = jnp.exp(raw)
        return u * jax.lax.rsqrt(1 + reg * u * u)

    @staticmethod
    def unconstrain_factor(pc, reg=0.0):
        """Inverse of :meth:`constrain_factor`; a variance at or under the
        floor is raised to ``reg (1 + 100 eps)``."""
        low = 100 * jnp.finfo(pc.dtype).eps
        return jnp.log(pc) - 0.5 * jnp.log(jnp.maximum(1 - reg * pc * pc, low))

    # -- prior unit: inverse-Gamma ------------------------------------------

    @staticmethod
    def prior_scale_shape(d: int) -> tuple:
        return (d,)

    @staticmethod
    def prior_min_dof(d: int) -> float:
        return 0.0

    @staticmethod
    def default_prior_scale(cov):
        return jnp.diagonal(cov)

    @staticmethod
    def check_prior_scale(psi) -> None:
        if np.any(psi <= 0):
            raise ValueError("prior.covariance_prior must be positive")

    @classmethod
    def log_covariance_prior(cls, pc, prior, d: int):
        pool = cls._pool(d)
        a, b = 0.5 * pool * prior.degrees_of_freedom, 0.5 * pool * prior.covariance_prior
        return jnp.sum(_log_inv_gamma(pc * pc, -2.0 * jnp.log(pc), a, b))

    @classmethod
    def map_covariance(cls, nk, dev, sxx, delta, prior, n_real=None):
        pool = cls._pool(dev.shape[-1])
        shrink = cls.mean_shrinkage(nk, prior.mean_precision)
        b = (pool * prior.covariance_prior + sxx
             - cls._broadcast_k(nk) * cls._reduce(dev * dev)
             + cls._broadcast_k(shrink) * cls._reduce(delta * delta))
        nu = prior.degrees_of_freedom
        return b / cls._broadcast_k(pool * (nu + nk + 1.0) + 2.0)


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
    def _scale(pc):
        return pc[..., None]

    @staticmethod
    def _reduce(a):
        return jnp.sum(a, axis=-1)

    @staticmethod
    def _broadcast_k(v):
        return v

    @staticmethod
    def _pool(d: int) -> int:
        return d

    @staticmethod
    def log_det(pc, d):
        return d * jnp.log(pc)

    @staticmethod
    def quad_features(x):
        return jnp.sum(x * x, axis=-1, keepdims=True)

    @staticmethod
    def quad_coefs(pc, k):
        return (pc * pc)[:, None]

    @staticmethod
    def scatter(rw, z):
        return jnp.einsum("nk,nk->k", rw, jnp.sum(z * z, axis=-1), precision=HIGHEST)

    @staticmethod
    def moments_from_features(s, d):
        return s[..., 0]

    @staticmethod
    def features_from_moments(sxx):
        return sxx[..., None]

    @staticmethod
    def prior_scale_shape(d: int) -> tuple:
        return ()

    @staticmethod
    def default_prior_scale(cov):
        return jnp.mean(jnp.diagonal(cov))
