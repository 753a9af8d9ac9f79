r"""Variational Bayesian Gaussian mixtures on EM's sufficient statistics.

The model and the updates are scikit-learn's ``BayesianGaussianMixture``
(Bishop 2006, ch. 10; Blei & Jordan 2006 for the Dirichlet process): a
Dirichlet (``"dirichlet_distribution"``) or truncated stick-breaking
Dirichlet-process (``"dirichlet_process"``) prior on the weights and a
Normal-Wishart prior on each component. Each iteration is one pass over the
data (the responsibilities under the variational expectations
``E[log w_k]``, ``E[log |Lambda_k|]`` and ``E[(x - mu_k)^T Lambda_k (x -
mu_k)]``, accumulated into the same centred statistics as EM's, plus the
responsibilities' entropy), then the closed-form updates of the variational
posterior, then scikit-learn's lower bound (constants dropped, as there).
The driver stops a restart when the bound changes by less than ``tol``;
every restart runs in one compiled call.

The covariance layout and the precision factors are the covariance
family's (:mod:`jaxmix.gmm.covariance`); the Wishart scale updates, which
differ per layout, are in :data:`_WISHART` (one place).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import betaln, digamma, gammaln

from jaxmix.compiling import jit
from jaxmix.data.reduce import reduce
from jaxmix.fit.driver import FitResult, iterate
from jaxmix.gmm.covariance import family
from jaxmix.gmm.density import component_log_prob
from jaxmix.gmm.stats import GMMStats, centred_stats, floored
from jaxmix.params import GMMParams

WEIGHT_PRIORS = ("dirichlet_process", "dirichlet_distribution")


class VBPrior(NamedTuple):
    """scikit-learn's ``*_prior_`` values (traced)."""
    weight_concentration: jax.Array   # ()
    mean_precision: jax.Array         # ()
    mean: jax.Array                   # (d,)
    degrees_of_freedom: jax.Array     # ()
    covariance: jax.Array             # the covariance family's layout


class VBState(NamedTuple):
    """The variational posterior (scikit-learn's fitted attributes)."""
    concentration_a: jax.Array   # (k,) Dirichlet, or the sticks' Beta a
    concentration_b: jax.Array   # (k,) the sticks' Beta b (zeros for a Dirichlet)
    mean_precision: jax.Array    # (k,)
    means: jax.Array             # (k, d)
    degrees_of_freedom: jax.Array  # (k,) (tied: k equal values)
    covariances: jax.Array       # layout
    precisions_cholesky: jax.Array  # layout


def _wishart_full(nk, xk, sk, prior, ratio):
    diff = xk - prior.mean
    scale = prior.covariance + nk[:, None, None] * (
        sk + ratio[:, None, None] * diff[:, :, None] * diff[:, None, :])
    return prior.degrees_of_freedom + nk, scale


def _wishart_tied(nk, xk, sk, prior, ratio):
    k = nk.shape[0]
    diff = xk - prior.mean
    dof = prior.degrees_of_freedom + jnp.sum(nk) / k
    scale = (prior.covariance + sk * jnp.sum(nk) / k
             + prior.mean_precision / k * jnp.einsum("k,kd,ke->de", nk / (
                 prior.mean_precision + nk), diff, diff))
    return jnp.full((k,), dof), scale


def _wishart_diag(nk, xk, sk, prior, ratio):
    diff = xk - prior.mean
    return prior.degrees_of_freedom + nk, prior.covariance + nk[:, None] * (
        sk + ratio[:, None] * diff * diff)


def _wishart_spherical(nk, xk, sk, prior, ratio):
    diff = xk - prior.mean
    return prior.degrees_of_freedom + nk, prior.covariance + nk * (
        sk + ratio * jnp.mean(diff * diff, axis=1))


# ``(dof (k,), unnormalised scale)`` of the Wishart posterior, per layout;
# ``ratio = kappa_0 / kappa_k``.
_WISHART = {"full": _wishart_full, "tied": _wishart_tied, "diag": _wishart_diag,
            "spherical": _wishart_spherical}


def update(nk, xk, sk, prior: VBPrior, covariance_type: str, process: bool) -> VBState:
    """The variational posterior from weighted counts ``nk``, means ``xk``
    and covariances ``sk`` (scikit-learn's ``_estimate_weights``,
    ``_estimate_means``, ``_estimate_precisions``)."""
    if process:
        tail = jnp.concatenate([jnp.cumsum(nk[::-1])[-2::-1], jnp.zeros((1,), nk.dtype)])
        a, b = 1.0 + nk, prior.weight_concentration + tail
    else:
        a, b = prior.weight_concentration + nk, jnp.zeros_like(nk)
    kappa = prior.mean_precision + nk
    means = (prior.mean_precision * prior.mean + nk[:, None] * xk) / kappa[:, None]
    dof, scale = _WISHART[covariance_type](nk, xk, sk, prior, prior.mean_precision / kappa)
    fam = family(covariance_type)
    cov = scale / (dof[0] if covariance_type == "tied" else
                   dof.reshape(dof.shape + (1,) * (scale.ndim - 1)))
    return VBState(a, b, kappa, means, dof, cov, fam.precision_cholesky(cov))


def log_weights(state: VBState, process: bool):
    """``E[log w_k]`` under the weights' posterior."""
    if process:
        total = digamma(state.concentration_a + state.concentration_b)
        da, db = digamma(state.concentration_a), digamma(state.concentration_b)
        return da - total + jnp.concatenate([jnp.zeros((1,), da.dtype),
                                             jnp.cumsum(db - total)[:-1]])
    return digamma(state.concentration_a) - digamma(jnp.sum(state.concentration_a))


def weighted_log_prob(state: VBState, x, covariance_type: str, process: bool):
    """``(n, k)``: scikit-learn's ``_estimate_weighted_log_prob``."""
    d = x.shape[-1]
    params = GMMParams(jnp.ones_like(state.mean_precision), state.means,
                       state.precisions_cholesky, covariance_type)
    log_gauss = component_log_prob(params, x) - 0.5 * d * jnp.log(state.degrees_of_freedom)
    log_lambda = d * jnp.log(2.0) + jnp.sum(
        digamma(0.5 * (state.degrees_of_freedom - jnp.arange(d)[:, None])), axis=0)
    return (log_gauss + 0.5 * (log_lambda - d / state.mean_precision)
            + log_weights(state, process))


def moments(stats: GMMStats, reg_covar, covariance_type: str):
    """``(nk, xk, sk)`` from statistics about their shift (scikit-learn's
    ``_estimate_gaussian_parameters``: ``nk + 10 eps``, ``reg_covar`` added)."""
    nk = floored(stats.nk)
    dev = stats.sx / nk[:, None]
    return nk, stats.shift + dev, family(covariance_type).covariance_from_stats(
        nk, dev, stats.sxx, reg_covar)


def lower_bound(state: VBState, entropy_term, d: int, covariance_type: str, process: bool):
    """scikit-learn's ``_compute_lower_bound`` (``entropy_term = sum r log r``)."""
    fam = family(covariance_type)
    dof = state.degrees_of_freedom
    log_det = fam.log_det(state.precisions_cholesky, d) - 0.5 * d * jnp.log(dof)
    norm = -(dof * log_det + dof * d * 0.5 * jnp.log(2.0)
             + jnp.sum(gammaln(0.5 * (dof - jnp.arange(d)[:, None])), axis=0))
    log_wishart = jnp.sum(norm)  # tied: k equal terms, as scikit-learn's k * norm
    if process:
        log_norm_weight = -jnp.sum(betaln(state.concentration_a, state.concentration_b))
    else:
        a = state.concentration_a
        log_norm_weight = gammaln(jnp.sum(a)) - jnp.sum(gammaln(a))
    return (-entropy_term - log_wishart - log_norm_weight
            - 0.5 * d * jnp.sum(jnp.log(state.mean_precision)))


def vb_step(data, prior: VBPrior, reg_covar, covariance_type: str, process: bool):
    """Restart-batched ``states -> (new states, lower bound after the update)``."""
    fam = family(covariance_type)

    def one(state: VBState):
        def chunk_fn(x, w, _):
            lp = weighted_log_prob(state, x, covariance_type, process)
            log_resp = lp - jax.nn.logsumexp(lp, axis=1, keepdims=True)
            r = jnp.exp(log_resp) * w[:, None]
            s = centred_stats(fam, x, r, state.means)
            return s.nk, s.sx, s.sxx, jnp.sum(r * log_resp)
        nk, sx, sxx, ent = reduce(chunk_fn, data)
        stats = GMMStats(nk, sx, sxx, jnp.zeros((), sx.dtype), state.means)
        new = update(*moments(stats, reg_covar, covariance_type), prior, covariance_type,
                     process)
        return new, lower_bound(new, ent, data.n_features, covariance_type, process)

    return jax.vmap(one)


def initial_states(resp, data, prior: VBPrior, reg_covar, covariance_type: str,
                   process: bool) -> VBState:
    """Every restart's first posterior from its responsibilities ``resp (R, n, k)``
    over the rows of ``data`` (in memory, one chunk per ``resp`` row block)."""
    fam = family(covariance_type)
    x, w = data.flat()
    n = resp.shape[1]

    def one(r):
        rw = r * w[:n, None]
        nk = jnp.sum(rw, axis=0)
        means = rw.T @ x[:n] / floored(nk)[:, None]
        s = centred_stats(fam, x[:n], rw, means)
        return update(*moments(s.about(means), reg_covar, covariance_type), prior,
                      covariance_type, process)
    return jax.vmap(one)(resp)


@jit(static_argnames=("covariance_type", "process", "history"))
def fit_states(start, data, prior: VBPrior, tol, reg_covar, max_iter, objective0=None, *,
               covariance_type: str, process: bool, history: int) -> FitResult:
    """Variational fits from ``start``: responsibilities ``(R, n, k)``, or
    restart-batched :class:`VBState` to continue (with ``objective0``, their
    last lower bounds, in the first convergence test); all restarts in one
    call, ``objective`` / ``history`` the lower bounds."""
    dtype = data.x.dtype
    reg_covar = jnp.asarray(reg_covar, dtype)
    states = start if isinstance(start, VBState) else initial_states(
        start, data, prior, reg_covar, covariance_type, process)
    return iterate(vb_step(data, prior, reg_covar, covariance_type, process), states,
                   jnp.asarray(tol, dtype), max_iter, history_len=history,
                   objective0=objective0)
