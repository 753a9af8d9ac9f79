r"""Student-t components with full covariances: heavy-tailed clusters.

.. math::

    p(x \mid \mu, \Sigma, \nu) = \frac{\Gamma(\frac{\nu+d}{2})}{\Gamma(\frac{\nu}{2})
    (\nu\pi)^{d/2} |\Sigma|^{1/2}} \Big(1 + \frac{\delta^2}{\nu}\Big)^{-\frac{\nu+d}{2}},
    \qquad \delta^2 = (x-\mu)^T \Sigma^{-1} (x-\mu).

EM with the latent scale (Peel & McLachlan 2000): under the current
components a sample's expected scale is ``u = (nu + d) / (nu + delta^2)``;
the statistics (centred about the current means) are ``sum r``, ``sum r u``,
``sum r u (x - c)``, ``sum r u (x - c)(x - c)^T`` and ``sum r (log u - u)``;
the M-step ``mu = c + s_ux / s_u``, ``Sigma = (s_uxx - s_u (mu - c)(mu - c)^T) / n
+ reg_covar I``, and the degrees of freedom by ECM: the root in ``nu`` of

    1 + log(nu/2) - psi(nu/2) + mean_r(log u - u) + psi((nu_old + d)/2) - log((nu_old + d)/2) = 0

found by bisection on ``log nu`` in ``[log 0.5, log 1000]`` (``nu`` fixed at
``dof`` when ``fixed_dof``). Maximum likelihood only (no prior).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import digamma, gammaln

from jaxmix.families.protocol import shifted_moments
from jaxmix.numerics import HIGHEST

NU_RANGE = (0.5, 1000.0)


class StudentParams(NamedTuple):
    means: jax.Array        # (k, d)
    covariances: jax.Array  # (k, d, d) scale matrices
    dof: jax.Array          # (k,) degrees of freedom


def _delta2(theta, x):
    """``(m, k)`` squared Mahalanobis distances."""
    chol = jnp.linalg.cholesky(theta.covariances)                      # (k, d, d)
    diff = x[None, :, :] - theta.means[:, None, :]                     # (k, m, d)
    z = solve_triangular(chol, jnp.swapaxes(diff, 1, 2), lower=True)   # (k, d, m)
    return jnp.sum(z * z, axis=1).T, chol


@dataclasses.dataclass(frozen=True)
class StudentT:
    """Heavy-tailed components; ``dof`` starts (or, ``fixed_dof``, fixes) nu."""

    dof: float = 10.0
    fixed_dof: bool = False
    reg_covar: float = 1e-6
    name: str = "student-t"
    support: str = "finite values"

    def log_prob(self, theta, x):
        d = x.shape[1]
        delta2, chol = _delta2(theta, x)
        nu = theta.dof
        log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        norm = (gammaln((nu + d) / 2) - gammaln(nu / 2) - d / 2 * jnp.log(nu * jnp.pi)
                - log_det / 2)
        return norm - (nu + d) / 2 * jnp.log1p(delta2 / nu)

    def stats(self, theta, x, r):
        k, d = r.shape[1], x.shape[1]
        if theta is None:  # seeding: u = 1 (Gaussian statistics about the origin)
            u, shift = jnp.ones_like(r), jnp.zeros((k, d), x.dtype)
        else:
            delta2, _ = _delta2(theta, x)
            u, shift = (theta.dof + d) / (theta.dof + delta2), theta.means
            u = jnp.where(jnp.isfinite(u), u, 1.0)  # a seeding pass's rough scale matrix
        ru = r * u
        diff = x[None, :, :] - shift[:, None, :]                       # (k, m, d)
        s_ux = jnp.einsum("mk,kmd->kd", ru, diff, precision=HIGHEST)
        s_uxx = jnp.einsum("mk,kmd,kme->kde", ru, diff, diff, precision=HIGHEST)
        log_term = jnp.sum(r * (jnp.log(u) - u), axis=0)
        return jnp.sum(ru, axis=0), s_ux, s_uxx, log_term

    def m_step(self, theta, nk, stats, prior):
        s_u, s_ux, s_uxx, log_term = stats
        d = s_ux.shape[1]
        tiny = jnp.finfo(s_ux.dtype).tiny
        shift = jnp.zeros_like(s_ux) if theta is None else theta.means
        delta = s_ux / jnp.maximum(s_u, tiny)[:, None]
        n = jnp.maximum(nk, tiny)[:, None, None]
        cov = (s_uxx - s_u[:, None, None] * delta[:, :, None] * delta[:, None, :]) / n
        cov = cov + self.reg_covar * jnp.eye(d, dtype=cov.dtype)
        old = jnp.full(nk.shape, self.dof, s_ux.dtype) if theta is None else theta.dof
        nu = old if (self.fixed_dof or theta is None) else _dof(old, log_term / jnp.maximum(
            nk, tiny), d)
        return StudentParams(shift + delta, cov, nu)

    def recentre(self, stats, nk, old, new):
        """Statistics about ``old``'s means re-expressed about ``new``'s
        (the scale-weighted moments move with weight ``sum r u``)."""
        s_u, s_ux, s_uxx, log_term = stats
        s_ux, s_uxx = shifted_moments(s_u, s_ux, s_uxx, old.means - new.means, outer=True)
        return s_u, s_ux, s_uxx, log_term

    def degenerate(self, theta):
        """Components whose smallest scale eigenvalue is at the ``reg_covar`` floor."""
        return jnp.linalg.eigvalsh(theta.covariances)[..., 0] <= 2 * self.reg_covar

    def constrain(self, raw):
        """The gradient fits' bijector: scales ``L L^T + reg_covar I`` (``L``
        lower triangular, log-diagonal), degrees of freedom ``exp(raw)``
        within ``NU_RANGE`` (fixed ones stay)."""
        d = raw.means.shape[-1]
        low = jnp.tril(raw.covariances, -1)
        chol = low + jnp.exp(jnp.diagonal(raw.covariances, axis1=-2, axis2=-1))[..., None, :] \
            * jnp.eye(d, dtype=low.dtype)
        cov = chol @ jnp.swapaxes(chol, -1, -2) + self.reg_covar * jnp.eye(d, dtype=low.dtype)
        nu = jnp.full_like(raw.dof, self.dof) if self.fixed_dof else jnp.clip(
            jnp.exp(raw.dof), *NU_RANGE)
        return StudentParams(raw.means, cov, nu)

    def unconstrain(self, theta):
        d = theta.means.shape[-1]
        eye = jnp.eye(d, dtype=theta.means.dtype)
        floor = 100 * jnp.finfo(theta.means.dtype).eps * self.reg_covar
        chol = jnp.linalg.cholesky(theta.covariances - (self.reg_covar - floor) * eye)
        raw = jnp.tril(chol, -1) + jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1))[..., None, :] \
            * eye
        return StudentParams(theta.means, raw, jnp.log(theta.dof))

    def log_prior(self, theta, prior):
        return jnp.zeros((), theta.means.dtype)

    def default_prior(self, x, w, k: int):
        return None

    def n_free(self, d: int) -> int:
        return d + d * (d + 1) // 2 + (0 if self.fixed_dof else 1)

    def in_support(self, x):
        return jnp.all(jnp.isfinite(x), axis=1)

    def sample(self, key, theta, labels):
        k_z, k_g = jax.random.split(key)
        m, d = labels.shape[0], theta.means.shape[1]
        z = jax.random.normal(k_z, (m, d), theta.means.dtype)
        nu = theta.dof[labels]
        g = 2 * jax.random.gamma(k_g, nu / 2, dtype=theta.means.dtype) / nu  # chi2(nu)/nu
        chol = jnp.linalg.cholesky(theta.covariances)[labels]
        return theta.means[labels] + jnp.einsum("mde,me->md", chol, z) / jnp.sqrt(g)[:, None]


def _dof(old, mean_log_term, d: int, steps: int = 60):
    """ECM's degrees of freedom: bisection on ``log nu`` (the left side falls in nu)."""
    const = 1 + mean_log_term + digamma((old + d) / 2) - jnp.log((old + d) / 2)

    def f(log_nu):
        nu = jnp.exp(log_nu)
        return jnp.log(nu / 2) - digamma(nu / 2) + const

    lo = jnp.full_like(old, jnp.log(NU_RANGE[0]))
    hi = jnp.full_like(old, jnp.log(NU_RANGE[1]))

    def body(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) / 2
        up = f(mid) > 0  # still above the root: it lies to the right
        return jnp.where(up, mid, lo), jnp.where(up, hi, mid)
    lo, hi = jax.lax.fori_loop(0, steps, body, (lo, hi))
    return jnp.exp((lo + hi) / 2)
