"""Gaussian components of :mod:`jaxmix.gmm` on the component-family protocol.

``Gaussian(covariance_type)`` is the full, diagonal or spherical covariance
family of :func:`jaxmix.fit_gmm` written against
:mod:`jaxmix.families.protocol`, built from the same functions: the
covariance family's layout and rules (:mod:`jaxmix.gmm.covariance`), the
exact E-step's statistics (:func:`jaxmix.gmm.stats.about_new_means`), the ML
and MAP M-steps (:mod:`jaxmix.gmm.update`, scikit-learn's ``reg_covar``
added, the float32 floor kept exact), the
Normal-inverse-Wishart (-Gamma) prior (:mod:`jaxmix.gmm.priors`), the
reg_covar-floored gradient bijector and the degeneracy rule
(:func:`jaxmix.gmm.step.degenerate_restarts`). So a Gaussian block can sit in
a :class:`~jaxmix.families.Product` beside categorical or count columns, and
every generic fit runs on it; ``fit_mixture(key, x, k, Gaussian(ct),
init_params=p)`` follows ``fit_gmm(..., init_params=p)`` step for step
(tested). ``fit_gmm`` stays the fast path for whole-data Gaussian mixtures:
its E-step is one GEMM, its data centred, its starts k-means++.

``tied`` is not offered: its one covariance is shared by the components,
and the protocol's components are independent of each other (every leaf
leads with the component axis); fit it with ``fit_gmm``.

``theta = GaussianComponents(means (k, d), precisions_cholesky)`` in the
covariance family's layout (scikit-learn's); the prior is a
:class:`~jaxmix.gmm.priors.GMMPrior` whose ``weight_concentration`` is not
used (the generic fit's ``prior_weights`` is the Dirichlet's).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmix.gmm import priors
from jaxmix.gmm.covariance import family as covariance_family
from jaxmix.gmm.density import component_log_prob
from jaxmix.gmm.stats import GMMStats, about_new_means, centred_stats
from jaxmix.gmm.update import m_step
from jaxmix.numerics import HIGHEST
from jaxmix.params import GMMParams

TYPES = ("full", "diag", "spherical")


class GaussianComponents(NamedTuple):
    means: jax.Array                # (k, d)
    precisions_cholesky: jax.Array  # the covariance family's layout


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """Gaussian components with ``covariance_type`` "full", "diag" or "spherical"."""

    covariance_type: str = "full"
    reg_covar: float = 1e-6
    name: str = "Gaussian"
    support: str = "finite values"

    def __post_init__(self):
        if self.covariance_type not in TYPES:
            raise ValueError(f"covariance_type must be one of {TYPES} for Gaussian components, "
                             f"got {self.covariance_type!r} (tied covariances: fit_gmm)")

    @property
    def _fam(self):
        return covariance_family(self.covariance_type)

    def _params(self, theta) -> GMMParams:
        k = theta.means.shape[0]
        return GMMParams(jnp.full((k,), 1.0 / k, theta.means.dtype), theta.means,
                         theta.precisions_cholesky, self.covariance_type)

    def log_prob(self, theta, x):
        return component_log_prob(self._params(theta), x)

    @staticmethod
    def _shift(theta, k: int, x):
        return jnp.zeros((k, x.shape[1]), x.dtype) if theta is None else theta.means

    def stats(self, theta, x, r):
        """``(r^T x, second moments about theta's means)``: ``fit_gmm``'s exact
        E-step statistics (:func:`jaxmix.gmm.stats.about_new_means`)."""
        s = centred_stats(self._fam, x, r, self._shift(theta, r.shape[1], x))
        return jnp.matmul(r.T, x, precision=HIGHEST), s.sxx

    def m_step(self, theta, nk, stats, prior):
        first, sxx = stats
        shift = jnp.zeros_like(first) if theta is None else theta.means
        about_shift = GMMStats(nk, None, sxx, jnp.zeros((), sxx.dtype), shift)  # sx unused
        new = m_step(about_new_means(self._fam, about_shift, first), self.reg_covar,
                     self.covariance_type, prior)
        return GaussianComponents(new.means, new.precisions_cholesky)

    def recentre(self, stats, nk, old, new):
        """Second moments taken about ``old``'s means re-expressed about
        ``new``'s (online EM: :func:`jaxmix.gmm.update.shift_stats`); the
        first moments are about the origin and stay."""
        from jaxmix.gmm.update import shift_stats
        first, sxx = stats
        about_old = first - nk[:, None] * old.means
        moved = shift_stats(GMMStats(nk, about_old, sxx, jnp.zeros((), nk.dtype), old.means),
                            new.means, self.covariance_type)
        return first, moved.sxx

    def degenerate(self, theta):
        """A component whose smallest variance (any direction) is at the floor."""
        return self._fam.at_floor(theta.precisions_cholesky, theta.means.shape[0],
                                  self.reg_covar)

    def constrain(self, raw):
        """The bijector of :mod:`jaxmix.gmm.gradient`: covariances ``S + reg_covar I``."""
        return GaussianComponents(raw.means, self._fam.constrain_factor(
            raw.precisions_cholesky, self.reg_covar))

    def unconstrain(self, theta):
        return GaussianComponents(theta.means, self._fam.unconstrain_factor(
            theta.precisions_cholesky, self.reg_covar))

    def log_prior(self, theta, prior):
        return priors.log_components_prior(self._params(theta), prior)

    def default_prior(self, x, w, k: int):
        return priors.default_prior(x, k, self.covariance_type, sample_weight=w)

    def n_free(self, d: int) -> int:
        return d + self._fam.n_params(1, d)

    def in_support(self, x):
        return jnp.all(jnp.isfinite(x), axis=1)

    def sample(self, key, theta, labels):
        z = jax.random.normal(key, (labels.shape[0], theta.means.shape[1]), theta.means.dtype)
        return theta.means[labels] + self._fam.sample_noise(z, theta.precisions_cholesky, labels)
