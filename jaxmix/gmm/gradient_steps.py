"""Optimizer steps of gradient fits for :func:`jaxmix.fit.driver.iterate`,
their cost counts and their stopping rule, for any objective: a Gaussian
mixture's (:class:`jaxmix.gmm.gradient.Objective`) or any component
family's (:class:`jaxmix.families.gradient.FamilyObjective`). An objective
gives ``params(u)``, ``value(u[, data, scale])``, ``loss``, ``exact()`` (itself
on the exact E-step path), ``em_gain(params, value)``, ``data`` and ``path``.

One iteration is one optimizer update on all data (full batch) or one epoch
of shuffled mini-batches; its objective is ``J`` (:mod:`jaxmix.gmm.objective`)
of the parameters it started from, on all data. Each restart's state counts
its work in passes over the data (:class:`GradientState`), and carries what
:func:`stop_rule` needs: ``converged`` only where an EM step would gain less
than ``tol`` too, ``stalled`` where the optimizer stopped moving.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmix.data.chunked import one_chunk
from jaxmix.gmm.gradient import Objective, Unconstrained
from jaxmix.gmm.objective import STALL_ITERATIONS
from jaxmix.gmm.stats import accurate_restarts, auto_path
from jaxmix.numerics import all_finite
from jaxmix.optimizers import resolve


class GradientState(NamedTuple):
    """Per-restart state carried by the driver.

    Attributes:
      params: :class:`~jaxmix.gmm.gradient.Unconstrained` parameters.
      opt_state: the optimizer's state.
      key: raw ``uint32`` key for mini-batch shuffling (unused for full batch).
      last: ``J`` of the previous iteration's parameters (at first the
        lowest finite number: every field stays finite, as the driver needs).
      em_close: an EM step from the previous parameters would gain less than
        ``tol`` in ``J`` (tested only where ``J`` changed by less than ``tol``).
      unchanged: iterations in a row whose update left the parameters equal.
      n_evals: passes over the data that evaluated ``J`` (line-search trials,
        the stopping test's EM step and mini-batch epochs' gradients
        included, a mini-batch epoch counting as one pass).
      n_grads: of those, passes that also gave the gradient.
      evaluated: the parameters ``last`` is the objective of (a fit returns
        these: the final update's parameters were never evaluated, and an
        optimizer's step, unlike EM's, can lower the objective).
    """

    params: Unconstrained
    opt_state: Any
    key: jax.Array
    last: jax.Array
    em_close: jax.Array
    unchanged: jax.Array
    n_evals: jax.Array
    n_grads: jax.Array
    evaluated: Unconstrained


def _with_extra_args(optimizer):
    return optax.with_extra_args_support(resolve(optimizer))


def _stores_value_and_grad(opt_state) -> bool:
    """Line-search optimizers (e.g. ``optax.lbfgs``) keep the value and gradient
    at the accepted point; full-batch steps reuse them (one evaluation saved)."""
    return (optax.tree.get(opt_state, "value") is not None
            and optax.tree.get(opt_state, "grad") is not None)


def init_state(optimizer, u: Unconstrained, key, objective: Objective, last) -> GradientState:
    """Single-restart state (``last``: the objective the first iteration's
    change is measured from); a line-search state is primed with the value
    and gradient at ``u``, so that steps can read them without a branch."""
    opt_state = _with_extra_args(optimizer).init(u)
    primed = _stores_value_and_grad(opt_state)
    if primed:
        value, grad = jax.value_and_grad(objective.exact().loss)(u)
        opt_state = optax.tree.set(opt_state, value=value, grad=grad)
    dtype = jnp.result_type(*jax.tree.leaves(u))
    last = jnp.maximum(jnp.asarray(last, dtype), jnp.finfo(dtype).min)
    zero = jnp.zeros((), jnp.int32)
    return GradientState(u, opt_state, key, last, jnp.zeros((), bool), zero, zero + primed,
                         zero + primed, u)


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


def _line_search_steps(opt_state):
    """Trials of the optimizer's line search in its last update (0 without one)."""
    steps = optax.tree.get(opt_state, "num_linesearch_steps")
    return jnp.zeros((), jnp.int32) if steps is None else jnp.asarray(steps, jnp.int32)


def _update(opt, state: GradientState, value, grad, value_fn, evals, grads,
            hold=lambda updates: updates) -> GradientState:
    updates, opt_state = opt.update(grad, state.opt_state, state.params, value=value,
                                    grad=grad, value_fn=value_fn)
    updates = hold(updates)  # frozen parameters (jaxmix.gmm.frozen) never move
    return state._replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state,
                          n_evals=state.n_evals + evals, n_grads=state.n_grads + grads)


def _hold(objective):
    """The objective's update filter (frozen parameters), or none."""
    return getattr(objective, "hold_updates", lambda updates: updates)


def _reject_overflow(new: GradientState, objective: Objective, value):
    """``value``, or NaN when the new parameters overflow once constrained
    (e.g. ``exp`` of a diverging log-precision): the driver then marks the
    restart failed and keeps the previous, finite parameters."""
    return jnp.where(all_finite(objective.params(new.params)), value, jnp.nan)


def full_batch_step(optimizer, objective: Objective):
    """``state -> (new_state, J of state)``: one optimizer update on all data.
    A line search that keeps the value and gradient (zoom, as in
    ``optax.lbfgs``) evaluates both at each of its trials; any other
    optimizer takes one value and gradient, plus its line search's trials."""
    opt = _with_extra_args(optimizer)

    def step(state: GradientState):
        if _stores_value_and_grad(state.opt_state):
            value = optax.tree.get(state.opt_state, "value")
            grad = optax.tree.get(state.opt_state, "grad")
            new = _update(opt, state, value, grad, objective.loss, 0, 0, _hold(objective))
            trials = _line_search_steps(new.opt_state)
            new = new._replace(n_evals=new.n_evals + trials, n_grads=new.n_grads + trials)
        else:
            value, grad = jax.value_and_grad(objective.loss)(state.params)
            new = _update(opt, state, value, grad, objective.loss, 1, 1, _hold(objective))
            new = new._replace(n_evals=new.n_evals + _line_search_steps(new.opt_state))
        return new, _reject_overflow(new, objective, -value)

    return step


def mini_batch_step(optimizer, objective: Objective):
    """``state -> (new_state, J of state)``: one epoch over shuffled
    mini-batches (one chunk of ``objective.data`` per batch); ``J`` is the full
    data's at the start of the epoch (one pass, plus one for the epoch's
    batch values and gradients)."""
    opt = _with_extra_args(optimizer)
    data = objective.data
    n_batches, size = data.x.shape[:2]
    xf, wf = data.flat()

    def one_batch(state: GradientState, idx):
        # unbiased for the full loss: E[n_batches * sum_batch] = sum_all
        value_fn = lambda u: objective.loss(u, one_chunk(xf[idx], wf[idx]), n_batches)  # noqa: E731
        value, grad = jax.value_and_grad(value_fn)(state.params)
        return _update(opt, state, value, grad, value_fn, 0, 0, _hold(objective)), None

    def step(state: GradientState):
        value = objective.value(state.params)
        key, sub = jax.random.split(state.key)
        batches = jax.random.permutation(sub, xf.shape[0]).reshape(n_batches, size)
        new, _ = jax.lax.scan(one_batch, state, batches)
        new = new._replace(key=key, n_evals=new.n_evals + 2, n_grads=new.n_grads + 1)
        return new, _reject_overflow(new, objective, value)

    return step


def batched_gradient_step(optimizer, objective: Objective, tol, mini_batch: bool = False):
    """Restart-batched step for :func:`jaxmix.fit.driver.iterate`, with
    :func:`stop_rule`'s inputs updated. ``objective.path="auto"`` picks, per
    iteration and per restart, the GEMM loss while
    :func:`jaxmix.gmm.stats.accurate_restarts` holds at the restart's current
    parameters, the exact one otherwise, as EM does
    (:func:`jaxmix.gmm.stats.auto_path`: on a small pass the exact one alone)."""
    make = mini_batch_step if mini_batch else full_batch_step

    def inner(states: GradientState):
        if objective.path != "auto":
            return jax.vmap(make(optimizer, objective))(states)
        gemm, exact = (jax.vmap(make(optimizer, objective._replace(path=p)))
                       for p in ("gemm", "exact"))
        params = jax.vmap(objective.params)(states.params)
        return auto_path(objective.data, params, lambda: accurate_restarts(params),
                         lambda: gemm(states), exact, states)

    def step(states: GradientState):
        new, value = inner(states)
        return _with_stop_inputs(states, new, value, objective, tol), value

    return step


def _with_stop_inputs(states: GradientState, new: GradientState, value, objective: Objective,
                      tol) -> GradientState:
    """``new`` with ``last``, ``unchanged`` and, where ``J`` changed by less
    than ``tol``, whether the EM gain at the parameters ``value`` is of is
    below ``tol`` (two passes, run only when some restart needs them)."""
    small = jnp.abs(value - states.last) < tol

    def gains():
        params = jax.vmap(objective.params)(states.params)
        return jax.vmap(objective.em_gain)(params, value)

    gain = jax.lax.cond(jnp.any(small), gains, lambda: jnp.full_like(value, jnp.inf))
    close = small & (gain < tol)
    same = jax.vmap(lambda a, b: jnp.all(jnp.stack(
        [jnp.all(x == y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))])))(
            states.params, new.params)
    return new._replace(last=jnp.where(jnp.isfinite(value), value, states.last), em_close=close,
                        evaluated=states.params,
                        unchanged=jnp.where(same, states.unchanged + 1, 0),
                        n_evals=new.n_evals + 2 * small.astype(jnp.int32))


def stop_rule(old: GradientState, new: GradientState, prev_objective, objective, tol):
    """``(converged, stalled)`` for :func:`jaxmix.fit.driver.iterate`
    (:mod:`jaxmix.gmm.objective`): converged where ``J`` changed by less
    than ``tol`` and an EM step would gain less than ``tol``; stalled where
    the parameters did not change for ``STALL_ITERATIONS`` iterations and
    the fit has not converged."""
    converged = (jnp.abs(objective - prev_objective) < tol) & new.em_close
    return converged, ~converged & (new.unchanged >= STALL_ITERATIONS)
