"""Gradient fits of any component family with any optax optimizer, on the
objective EM increases, through the library's one gradient step
(:mod:`jaxmix.gmm.gradient_steps`: the same cost counts and stopping rule:
``converged`` only where an EM step would gain less than ``tol`` too).

The optimiser works on ``Unconstrained(logits, raw)``: weights
``softmax(logits)`` and components ``family.constrain(raw)`` (each family's
bijector), so every point is a valid mixture.

>>> import numpy as np, optax
>>> from jaxmix.families import Poisson, fit_mixture_gradient
>>> rng = np.random.default_rng(0)
>>> x = rng.poisson(np.where(np.arange(400)[:, None] % 2, 2.0, 9.0), (400, 1)).astype(float)
>>> result = fit_mixture_gradient(0, x, 2, Poisson(), optax.lbfgs(), n_restarts=4)
>>> np.sort(np.asarray(result.best_params.theta[:, 0])).round(0)
array([2., 9.], dtype=float32)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxmix.compiling import jit
from jaxmix.data.reduce import reduce
from jaxmix.families.fit import (batched_em_step, degenerate, family_work, log_prior, masked,
                                 run_fit, starts)
from jaxmix.families.mixture import MixtureParams
from jaxmix.fit.driver import FitResult, iterate
from jaxmix.gmm.gradient_steps import batched_gradient_step, init_state, stop_rule
from jaxmix.numerics import all_finite


class Unconstrained(NamedTuple):
    logits: jax.Array  # (k,)
    raw: Any           # the family's unconstrained components


class FamilyObjective(NamedTuple):
    """``J``: the mean log-likelihood (log-posterior with ``prior``) per unit
    weight of ``constrain(u)`` on ``data``, as :func:`jaxmix.families.fit_mixture`
    reports it."""

    family: Any
    data: Any
    real: Any          # (k_max,) the components that are not padding
    prior: Any = None
    alpha: Any = 1.0
    path: str = "exact"

    def _logits(self, u: Unconstrained):
        return jnp.where(self.real, u.logits, -jnp.inf)

    def params(self, u: Unconstrained) -> MixtureParams:
        return masked(MixtureParams(jax.nn.softmax(self._logits(u)),
                                    self.family.constrain(u.raw)), self.real)

    def value(self, u: Unconstrained, data=None, scale=1.0):
        p = self.params(u)
        log_w = jax.nn.log_softmax(self._logits(u))

        def chunk_log_lik(x, w, _):
            lp = log_w + self.family.log_prob(p.theta, x)
            return jnp.sum(w * jax.nn.logsumexp(lp, axis=1))
        log_lik = reduce(chunk_log_lik, self.data if data is None else data)
        return (scale * log_lik + log_prior(self.family, p, self.prior, self.alpha, self.real)) \
            / self.data.total_weight()

    def loss(self, u: Unconstrained, data=None, scale=1.0):
        return -self.value(u, data, scale)

    def exact(self) -> "FamilyObjective":
        return self

    def em_gain(self, params: MixtureParams, value):
        """What an EM step from ``params`` (``J = value``) would gain (two passes)."""
        step = batched_em_step(self.family, self.data, self.prior, self.alpha, self.real)
        one = jax.tree.map(lambda a: a[None], params)
        new, _ = step(one)
        _, after = step(new)
        return after[0] - value


def unconstrain(family, params: MixtureParams, real) -> Unconstrained:
    logw = jnp.where(real, jnp.log(jnp.where(real, params.weights, 1)), 0)
    centre = jnp.sum(logw) / jnp.sum(real)
    return Unconstrained(jnp.where(real, logw - centre, 0), family.unconstrain(params.theta))


def fit_mixture_gradient(key, x, n_components: int, family, optimizer, *, n_restarts: int = 1,
                         prior=None, tol: float = 1e-3, max_iter: int = 100, sample_weight=None,
                         chunk_size: int | None = None, prior_weights: float = 1.0,
                         init_params: MixtureParams | None = None, mesh=None,
                         callback=None) -> FitResult:
    """Fit a mixture of ``family`` components by ``optimizer`` (full batch);
    arguments, starts (the same as :func:`~jaxmix.families.fit_mixture`'s from
    the same key) and result as there."""
    return run_fit(_fit, "lower the learning rate, or check the data and the prior", key, x,
                   n_components, family, n_restarts, max_iter, tol, prior_weights, prior,
                   sample_weight, chunk_size, init_params, mesh, callback, optimizer=optimizer)


@jit(static_argnames=("family", "k_max", "n_restarts", "history", "optimizer"),
     work=family_work)
def _fit(key, data, sample, prior, tol, max_iter, alpha, init_params, k, progress,
         objective0=None, *, family, k_max, n_restarts, history, optimizer):
    dtype = sample.x.dtype
    real = jnp.arange(k_max) < k
    params0 = starts(key, sample, init_params, family, k_max, real, n_restarts)
    objective = FamilyObjective(family, data, real, prior, jnp.asarray(alpha, dtype))
    tol = jnp.asarray(tol, dtype)
    last = jnp.full((n_restarts,), -jnp.inf, dtype) if objective0 is None else jnp.asarray(
        objective0, dtype)
    state0 = jax.vmap(lambda p, v: init_state(optimizer, unconstrain(family, p, real),
                                              jnp.zeros(2, jnp.uint32), objective, v))(
        params0, last)
    result = iterate(batched_gradient_step(optimizer, objective, tol), state0, tol, max_iter,
                     stop_rule, usable=all_finite(params0, batch_dims=1), history_len=history,
                     progress=progress, objective0=objective0)
    final = result.params
    params = jax.vmap(objective.params)(final.evaluated)  # whose objective is reported
    return result._replace(params=params, n_evals=final.n_evals, n_grads=final.n_grads,
                           degenerate=degenerate(family, params, data.total_weight(), real))



