r"""Gradient-based (MAP or maximum-likelihood) fitting with any optax optimizer.

The optimiser works on unconstrained parameters (:class:`Unconstrained`)::

    weights              = softmax(logits)
    means                = means
    precisions_cholesky  full/tied: strictly upper part as is, diagonal exp(raw)
                         diag/spherical: exp(raw)

so every point of ``R^p`` is a valid mixture. The log scale of the precision
factor makes the curvature of the loss at the optimum independent of the
data's units (for one variance, ``d^2 loss / d raw^2 = 2`` there), which suits
both Adam and L-BFGS. ``unconstrain`` is its inverse (the strictly lower
triangle of a full/tied ``raw`` is ignored and set to zero).

The loss is the negative mean log-posterior per sample,

.. math::

    \ell(u) = -\frac{1}{N}\Big(\sum_n w_n \log p(x_n \mid \theta(u))
              + \log p(\theta(u))\Big),\qquad N = \sum_n w_n,

the same function MAP-EM increases (``fit_gmm(..., prior=...)`` reports
``-loss`` as its objective), so both methods can be compared on one scale.
The prior is a density over ``theta`` (see :mod:`jaxmix.gmm.priors`), not over
``u``: no Jacobian term is added, so the optimum is the MAP point itself.
With ``prior=None`` it is the negative mean log-likelihood (maximum
likelihood, unbounded near singular covariances).

:func:`jaxmix.fit_gradient` runs under :func:`jaxmix.fit.driver.iterate`, like EM: one
iteration is one optimizer update (full batch) or one epoch of shuffled
mini-batches (``batch_size``), the objective of an iteration is the full-data
mean log-posterior of the parameters it started from, and ``tol`` bounds its
change, as for EM. The log-likelihood's value and gradient come from EM's own
E-step statistics (:func:`stats_log_lik`), on EM's paths: one GEMM over the
features ``phi(x)`` while that is accurate, centred distances otherwise.

>>> import jax.numpy as jnp
>>> from jaxmix import GMMParams
>>> p = GMMParams(jnp.array([0.25, 0.75]), jnp.zeros((2, 1)), jnp.array([1.0, 2.0]), "spherical")
>>> q = constrain(unconstrain(p), "spherical")
>>> [round(float(v), 4) for v in q.weights], [round(float(v), 4) for v in q.precisions_cholesky]
([0.25, 0.75], [1.0, 2.0])
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmix.data.chunked import Chunked, one_chunk
from jaxmix.data.reduce import reduce
from jaxmix.gmm.covariance import family
from jaxmix.gmm.density import log_prob
from jaxmix.gmm.priors import GMMPrior, log_prior_terms
from jaxmix.gmm.stats import (accurate_restarts, e_step, gemm_coefficients,
                              per_restart_path)
from jaxmix.numerics import all_finite
from jaxmix.params import GMMParams


class Unconstrained(NamedTuple):
    """Unconstrained mixture parameters (see the module docstring).

    Attributes:
      logits: ``(k,)`` weight logits.
      means: ``(k, d)`` means.
      chol: ``precisions_cholesky``'s layout with log-diagonal (full, tied) or
        log-scales (diag, spherical).
    """

    logits: jax.Array
    means: jax.Array
    chol: jax.Array


def unconstrain(params: GMMParams) -> Unconstrained:
    """Inverse of :func:`constrain` (for parameters with positive weights)."""
    logw = jnp.log(params.weights)
    return Unconstrained(logw - jnp.mean(logw), params.means,
                         family(params.covariance_type).unconstrain_factor(
                             params.precisions_cholesky))


def constrain(u: Unconstrained, covariance_type: str) -> GMMParams:
    """Valid :class:`~jaxmix.params.GMMParams` for any finite ``u``."""
    return GMMParams(jax.nn.softmax(u.logits), u.means,
                     family(covariance_type).constrain_factor(u.chol), covariance_type)


def stats_log_lik(params: GMMParams, log_weights, data: Chunked, path: str = "exact"):
    r"""``sum_n w_n log p(x_n)`` whose value and gradient come from one E-step.

    Fisher's identity: the gradient of the log-likelihood at ``theta`` is the
    gradient at ``theta' = theta`` of the expected complete-data
    log-likelihood ``Q(theta') = sum_nk r_nk log(w'_k N(x_n | theta'_k))``,
    with ``r`` the responsibilities under ``theta``. ``Q`` is linear in the
    statistics of :mod:`jaxmix.data.chunked` (``[vech(sxx), sx, nk] . C(theta')``,
    ``C`` as in :func:`jaxmix.gmm.stats.gemm_coefficients`, about the E-step's
    shift), so the backward pass costs ``O(k F)`` instead of differentiating
    through ``(n, k, d)`` intermediates, and the E-step is EM's own (either
    path). Value and gradient are exact; higher derivatives are those of
    ``Q``, not of the log-likelihood (do not take Hessians of it).
    """
    fixed = jax.lax.stop_gradient(params.replace(weights=jnp.exp(log_weights)))
    stats = jax.lax.stop_gradient(e_step(fixed, data, path))
    shift = stats.shift
    fam = family(params.covariance_type)
    feats = jnp.concatenate([fam.features_from_moments(stats.sxx), stats.sx,
                             stats.nk[:, None]], -1)
    about_shift = params.replace(means=params.means - jax.lax.stop_gradient(shift),
                                 weights=jnp.ones_like(params.weights))
    q = jnp.sum(feats * gemm_coefficients(about_shift)) + jnp.sum(stats.nk * log_weights)
    return jax.lax.stop_gradient(stats.loglik - q) + q


def log_posterior_u(u: Unconstrained, covariance_type: str, data: Chunked,
                    prior: GMMPrior | None, path: str = "exact"):
    """Mean log-posterior per sample (mean log-likelihood when ``prior`` is None)
    of ``constrain(u)``, with ``log w = log_softmax(logits)`` (no underflow)."""
    params = constrain(u, covariance_type)
    log_w = jax.nn.log_softmax(u.logits)
    n = data.total_weight()
    return (stats_log_lik(params, log_w, data, path)
            + log_prior_terms(params, prior, log_w)) / n


def mean_log_posterior(params: GMMParams, data: Chunked, prior: GMMPrior | None = None):
    """The objective shared by MAP-EM and gradient fits: ``(sum_n w_n log p(x_n)
    + log_prior(params)) / sum_n w_n``; ``data`` from :func:`jaxmix.data.chunked.chunk`."""
    log_w = jnp.log(params.weights)
    n = data.total_weight()
    log_lik = reduce(lambda x, w, _: jnp.sum(w * log_prob(params, x)), data)
    return (log_lik + log_prior_terms(params, prior, log_w)) / n


def loss(u: Unconstrained, covariance_type: str, data: Chunked, prior: GMMPrior | None,
         path: str = "exact"):
    """Negative mean log-posterior per sample (the quantity optimisers minimise)."""
    return -log_posterior_u(u, covariance_type, data, prior, path)


# ---------------------------------------------------------------------------
# Steps for the driver


class GradientState(NamedTuple):
    """Per-restart state carried by the driver.

    Attributes:
      params: :class:`Unconstrained` parameters.
      opt_state: the optimizer's state.
      key: raw ``uint32`` key for mini-batch shuffling (unused for full batch).
    """

    params: Unconstrained
    opt_state: Any
    key: jax.Array


def _with_extra_args(optimizer):
    return optax.with_extra_args_support(optimizer)


def _stores_value_and_grad(opt_state) -> bool:
    """Line-search optimizers (e.g. ``optax.lbfgs``) keep the value and gradient
    at the accepted point; full-batch steps reuse them (one evaluation saved)."""
    return (optax.tree.get(opt_state, "value") is not None
            and optax.tree.get(opt_state, "grad") is not None)


def init_state(optimizer, u: Unconstrained, key, covariance_type: str, data: Chunked,
               prior: GMMPrior | None) -> GradientState:
    """Single-restart state; a line-search state is primed with the value and
    gradient at ``u``, so that steps can read them without a branch."""
    opt = _with_extra_args(optimizer)
    opt_state = opt.init(u)
    if _stores_value_and_grad(opt_state):
        value, grad = jax.value_and_grad(loss)(u, covariance_type, data, prior)
        opt_state = optax.tree.set(opt_state, value=value, grad=grad)
    return GradientState(u, opt_state, key)


def with_hyperparams(opt_state, values: dict):
    """``opt_state`` of an ``optax.inject_hyperparams`` optimizer with the
    hyper-parameters in ``values`` replaced (traced: other values do not
    recompile); ``ValueError`` naming ``hyperparams`` otherwise."""
    current = optax.tree.get(opt_state, "hyperparams")
    if not isinstance(current, dict):
        raise ValueError("hyperparams needs an optimizer built with optax.inject_hyperparams, "
                         "e.g. optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)")
    unknown = sorted(set(values) - set(current))
    if unknown:
        raise ValueError(f"hyperparams: the optimizer has no hyper-parameter {unknown}; it has "
                         f"{sorted(current)}")
    merged = {**current, **{name: jnp.asarray(v, jnp.asarray(current[name]).dtype)
                            for name, v in values.items()}}
    return optax.tree.set(opt_state, hyperparams=merged)


def _update(opt, state: GradientState, value, grad, value_fn):
    updates, opt_state = opt.update(grad, state.opt_state, state.params, value=value,
                                    grad=grad, value_fn=value_fn)
    return GradientState(optax.apply_updates(state.params, updates), opt_state, state.key)


def _reject_overflow(new: GradientState, covariance_type: str, objective):
    """``objective``, or NaN when the new parameters overflow once constrained
    (e.g. ``exp`` of a diverging log-precision): the driver then marks the
    restart failed and keeps the previous, finite parameters."""
    ok = all_finite(constrain(new.params, covariance_type))
    return jnp.where(ok, objective, jnp.nan)


def full_batch_step(optimizer, covariance_type: str, data: Chunked, prior: GMMPrior | None,
                    path: str = "exact"):
    """``state -> (new_state, objective of state)``: one optimizer update on all data."""
    opt = _with_extra_args(optimizer)
    value_fn = functools.partial(loss, covariance_type=covariance_type, data=data, prior=prior,
                                 path=path)

    def step(state: GradientState):
        if _stores_value_and_grad(state.opt_state):
            value = optax.tree.get(state.opt_state, "value")
            grad = optax.tree.get(state.opt_state, "grad")
        else:
            value, grad = jax.value_and_grad(value_fn)(state.params)
        new = _update(opt, state, value, grad, value_fn)
        return new, _reject_overflow(new, covariance_type, -value)

    return step


def mini_batch_step(optimizer, covariance_type: str, data: Chunked, prior: GMMPrior | None,
                    path: str = "exact"):
    """``state -> (new_state, objective of state)``: one epoch over shuffled
    mini-batches (one chunk of ``data`` per batch). The objective is the full
    data's mean log-posterior at the start of the epoch."""
    opt = _with_extra_args(optimizer)
    n_batches, size = data.x.shape[:2]
    xf, wf = data.flat()
    n = data.total_weight()

    def batch_loss(u, x, w):
        # unbiased for the full loss: E[n_batches * sum_batch] = sum_all
        params = constrain(u, covariance_type)
        log_w = jax.nn.log_softmax(u.logits)
        batch = one_chunk(x, w)
        return -(n_batches * stats_log_lik(params, log_w, batch, path)
                 + log_prior_terms(params, prior, log_w)) / n

    def one_batch(state: GradientState, idx):
        x, w = xf[idx], wf[idx]
        value_fn = lambda u: batch_loss(u, x, w)
        value, grad = jax.value_and_grad(value_fn)(state.params)
        return _update(opt, state, value, grad, value_fn), None

    def step(state: GradientState):
        objective = log_posterior_u(state.params, covariance_type, data, prior, path)
        key, sub = jax.random.split(state.key)
        batches = jax.random.permutation(sub, xf.shape[0]).reshape(n_batches, size)
        new, _ = jax.lax.scan(one_batch, state, batches)
        return new._replace(key=key), _reject_overflow(new, covariance_type, objective)

    return step


def batched_gradient_step(optimizer, covariance_type: str, data: Chunked,
                          prior: GMMPrior | None, mini_batch: bool = False, path: str = "auto"):
    """Restart-batched step for :func:`jaxmix.fit.driver.iterate`. ``path="auto"``
    picks, per iteration and per restart, the GEMM loss while
    :func:`jaxmix.gmm.stats.accurate_restarts` holds at the restart's current
    parameters, the exact one otherwise, as EM does
    (:func:`jaxmix.gmm.stats.per_restart_path`)."""
    make = mini_batch_step if mini_batch else full_batch_step
    if path != "auto":
        return jax.vmap(make(optimizer, covariance_type, data, prior, path))
    gemm, exact = (jax.vmap(make(optimizer, covariance_type, data, prior, p))
                   for p in ("gemm", "exact"))

    def step(states: GradientState):
        params = jax.vmap(lambda u: constrain(u, covariance_type))(states.params)
        return per_restart_path(accurate_restarts(params), gemm(states), exact, states)

    return step
