"""What every covariance family shares (the protocol is in :mod:`jaxmix.gmm.covariance`).

Imports nothing from the families, so :mod:`jaxmix.gmm.dense` and
:mod:`jaxmix.gmm.diagonal` can both build on it without a cycle.
"""

from __future__ import annotations

import jax.numpy as jnp


class Family:
    """Base of the stateless family classes: defaults that hold for most of them."""

    name: str = ""
    per_component: bool = True  # the precision factor has a leading component axis
    dense_factor: bool = False  # the factor is a triangular (d, d) matrix (full, tied)

    @classmethod
    def component_max_precision(cls, pc, k: int):
        """Largest precision eigenvalue of each component, ``(..., k)``."""
        return cls._max_precision(pc)

    @classmethod
    def component_abs_quad(cls, pc, a):
        """``|a_k|^T |P_k| |a_k|`` for each component, ``a (k, d)`` with
        entries ``>= 0`` (``|P|``: entrywise). Diagonal precisions are their
        own ``|P|``; the dense families override it."""
        return jnp.sum(a * cls.precision_times(pc, a), axis=-1)

    @classmethod
    def floored_precision_cholesky(cls, cov, reg):
        """Precision factors of ``cov + reg`` (any leading batch axes, e.g.
        restarts): the EM step's factorisation of every restart's covariances
        at once. The dense families override it (the float32 floor)."""
        return cls.precision_cholesky(cls.add_reg(cov, reg))

    @classmethod
    def at_floor(cls, pc, k: int, reg_covar):
        """``(..., k)``: components whose smallest variance (any direction) is
        at the ``reg_covar`` floor (collapsed on a point, a line, a constant
        feature): the degeneracy rule of every fit."""
        return cls.component_max_precision(pc, k) * 2 * reg_covar >= 1

    @staticmethod
    def keep_components(pc, real):
        """Restart-batched factors ``pc (R, k, ...)`` whose components outside
        ``real (R, k)`` are replaced by component 0's (padded mixtures)."""
        m = real.reshape(real.shape + (1,) * (pc.ndim - 2))
        return jnp.where(m, pc, pc[:, :1])

    @staticmethod
    def first_components(pc, k: int):
        """The factors of the first ``k`` components of one model."""
        return pc[:k]

    @staticmethod
    def pad_components(pc, k_max: int):
        """One model's factors with copies of component 0 up to ``k_max``."""
        return jnp.concatenate([pc, jnp.repeat(pc[:1], k_max - pc.shape[0], axis=0)])

    @staticmethod
    def mean_shrinkage(nk, kappa):
        """``r_k = kappa nk / (kappa + nk)``: weight of the mean prior's scatter
        ``delta_k delta_k^T`` in the MAP covariance."""
        return kappa * nk / (kappa + nk)
