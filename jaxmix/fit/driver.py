"""The fit driver: one ``lax.while_loop`` for every iterative algorithm.

A *batched step* maps restart-batched parameters (leading axis ``R`` on every
leaf) to ``(new_params, objective)``, where ``objective (R,)`` is the value
(higher is better: log-likelihood, log-posterior, -inertia) of the params it
was given. The driver runs it until every restart has converged, failed or
hit ``max_iter``; finished restarts are frozen (their new values discarded),
so each restart's result equals a run of that restart alone.

A step whose objective or new parameters are not finite marks the restart
``failed`` and keeps its last finite parameters; a failed restart never wins.
A restart whose *starting* parameters are not finite is failed before its
first step (``n_iter`` 0). When every restart failed there is nothing finite
to return: eager entry points raise (:func:`raise_if_all_failed`), traced ones
report it in ``failed``. A restart that failed after finite steps keeps
finite parameters, so those are handed back, flagged.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.fit.progress import emit
from jaxmix.numerics import all_finite, inexact_leaves


class FitResult(NamedTuple):
    """All restarts of a fit.

    Attributes:
      params: restart-batched parameters (leading axis ``R``).
      objective: ``(R,)`` objective of the last accepted iteration (for EM,
        sklearn's ``lower_bound_``: the mean log-likelihood evaluated before
        the final M-step).
      n_iter: ``(R,)`` iterations run.
      converged: ``(R,)`` reached ``tol`` before ``max_iter``.
      failed: ``(R,)`` a step produced non-finite values; ``params`` are the
        last finite ones and the restart is never chosen as best.
      degenerate: ``(R,)`` model-specific warning flag (e.g. a component with
        less than one sample's weight or with variance at the ``reg_covar``
        floor); the parameters are still finite.
      history: ``(R, max_iter)`` objective per iteration, NaN after the stop.
      best: index of the best restart (highest objective among non-failed).
      stalled: ``(R,)`` stopped because it made no progress without meeting
        the convergence test (gradient fits: the parameters stopped changing,
        see :mod:`jaxmix.gmm.objective`); never together with ``converged``.
      n_evals: ``(R,)`` passes over the data that evaluated the objective
        (EM and K-Means: one per iteration; gradient fits: line-search
        trials and stopping tests included; mini-batch K-Means and online
        EM: mini-batches and chunks, each a part of the data).
      n_grads: ``(R,)`` of those, passes that also gave its gradient (0 for
        EM and K-Means, whose steps need none). For wall time per iteration
        see :func:`jaxmix.fit.timing.timed`.
    """

    params: Any
    objective: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    failed: jax.Array
    degenerate: jax.Array
    history: jax.Array
    best: jax.Array
    stalled: jax.Array
    n_evals: jax.Array
    n_grads: jax.Array

    @property
    def best_params(self):
        return jax.tree.map(lambda leaf: leaf[self.best], self.params)

    def falling_iterations(self, rtol: float = 1e-6) -> np.ndarray:
        """``(R,)`` iterations whose objective fell by more than ``rtol`` of
        its size (host side). EM and MAP-EM never lower their objective in
        exact arithmetic, so a count above 0 says rounding dominated those
        steps; gradient fits may fall on purpose (a line search's trial)."""
        history, n_iter = np.asarray(self.history), np.asarray(self.n_iter)
        counts = []
        for row, n in zip(history, n_iter):
            v = row[:n][np.isfinite(row[:n])]
            counts.append(int(np.sum(np.diff(v) < -rtol * np.abs(v[1:]))))
        return np.asarray(counts)


def change_below_tol(old_params, new_params, prev_objective, objective, tol, rows=None):
    """sklearn's EM rule: ``|objective - previous objective| < tol`` (``rows``:
    the restarts' constants, unused)."""
    return jnp.abs(objective - prev_objective) < tol


def _select(mask, new, old):
    def pick(a, b):
        m = mask.reshape(mask.shape + (1,) * (a.ndim - 1))
        return jnp.where(m, a, b)
    return jax.tree.map(pick, new, old)


class _State(NamedTuple):
    slot_params: Any      # (B, ...) the restarts now in the batch's slots
    slot: jax.Array       # (B,) the restart each slot runs; R when empty
    order: jax.Array      # (R,) the queue: usable restarts first, in index order
    queued: jax.Array     # () entries of the queue handed to slots so far
    n_usable: jax.Array   # () usable restarts (the queue's useful length)
    params: Any           # (R, ...) every restart's latest parameters
    objective: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    failed: jax.Array
    history: jax.Array
    stalled: jax.Array


def iterate(step: Callable, params0, tol, max_iter,
            converged_fn: Callable = change_below_tol, usable=None,
            history_len: int | None = None, *, rows=None, slots: int | None = None,
            objective0=None, progress=None) -> FitResult:
    """Run ``step`` on all restarts of ``params0`` until each stops.

    The ``R`` restarts run in a batch of ``slots`` (default ``R``): a slot
    whose restart stopped takes the next restart waiting, so with fewer slots
    than restarts a restart that stopped early costs nothing more, and the
    batch waits for its slowest member only at the end. Every restart's
    result is that of the restart run alone, whatever the number of slots.

    Args:
      step: batched step, ``params_B -> (new_params_B, objective_B)``, or
        ``(params_B, rows_B) -> ...`` when ``rows`` is given.
      params0: restart-batched initial state.
      tol: convergence tolerance (traced: changing it does not recompile).
      max_iter: iteration cap (an int, or traced when ``history_len`` is given).
      converged_fn: ``(old, new, prev_objective, objective, tol[, rows_B]) ->
        (B,) bool`` (converged), or a pair of them ``(converged, stalled)``:
        either stops the restart.
      usable: ``(R,)`` whether each restart's starting point is valid
        (default: all of ``params0`` finite; a state with optimizer entries
        that start non-finite passes the test of its model parameters;
        padded rows are not usable: they never step and are never best).
      history_len: static length of ``history`` (at least ``max_iter``;
        default ``max_iter``).
      rows: optional pytree of per-restart constants (leading axis ``R``,
        e.g. a component mask), handed to ``step`` and ``converged_fn`` for
        the restarts in the slots.
      slots: static batch size (at least 1; at most ``R`` are used).
      objective0: ``(R,)`` (or scalar) objective the first step's convergence
        test compares with (default ``-inf``): a fit that continues an earlier
        one passes that fit's final objective, so it stops exactly where the
        earlier run would have stopped had it gone on.
      progress: a token of :func:`jaxmix.fit.progress.session` (traced), or
        ``None``: after each iteration the restarts that stepped are handed
        to its callback (``None``: no callback in the program).
    """
    n_restarts = jax.tree.leaves(params0)[0].shape[0]
    history_len = max_iter if history_len is None else history_len
    width = n_restarts if slots is None else max(1, min(int(slots), n_restarts))
    init = _initial_state(params0, usable, n_restarts, width, history_len, objective0)
    if history_len == 0:
        return _result(init._replace(params=params0), usable)
    extra = () if rows is None else (rows,)

    def active(s):
        return ~s.converged & ~s.stalled & ~s.failed & (s.n_iter < max_iter)

    def body(s):
        # every restart in its own slot (the usual case): no gathers, no refill
        index = jnp.arange(width) if width == n_restarts else jnp.minimum(s.slot, n_restarts - 1)
        live = (s.slot < n_restarts) & active(s)[index]
        mine = tuple(r if width == n_restarts else _gather(r, index) for r in extra)
        new, obj = step(s.slot_params, *mine)
        ok = jnp.isfinite(obj) & all_finite(new, batch_dims=1)
        accept = live & ok
        prev = s.objective if width == n_restarts else s.objective[index]
        conv, stall = _stop(converged_fn(s.slot_params, new, prev, obj, tol, *mine))
        kept = _select(accept, new, s.slot_params)
        n_iter = (s.n_iter if width == n_restarts else s.n_iter[index]) + live.astype(jnp.int32)
        emit(progress, jnp.where(s.slot < n_restarts, s.slot, n_restarts), n_iter,
             jnp.where(accept, obj, prev), live)
        if width == n_restarts:
            return s._replace(
                slot_params=kept, objective=jnp.where(accept, obj, s.objective),
                n_iter=s.n_iter + live.astype(jnp.int32),
                converged=s.converged | (accept & conv), failed=s.failed | (live & ~ok),
                stalled=s.stalled | (accept & stall),
                history=s.history.at[jnp.arange(width), jnp.where(live, s.n_iter, history_len)].set(
                    obj, mode="drop"))
        at = jnp.where(live, s.slot, n_restarts)  # only live slots write back

        def put(a, b):
            return a.at[at].set(b, mode="drop")
        s = s._replace(
            slot_params=kept, params=jax.tree.map(put, s.params, kept),
            objective=put(s.objective, jnp.where(accept, obj, prev)),
            n_iter=s.n_iter.at[at].add(1, mode="drop"),
            converged=put(s.converged, s.converged[index] | (accept & conv)),
            stalled=put(s.stalled, s.stalled[index] | (accept & stall)),
            failed=put(s.failed, s.failed[index] | ~ok),
            history=s.history.at[at, s.n_iter[index]].set(obj, mode="drop"))
        return _refill(s, active(s), n_restarts)

    final = jax.lax.while_loop(lambda s: jnp.any(active(s)), body, init)
    if width == n_restarts:  # the slots held the restarts themselves
        final = final._replace(params=final.slot_params)
    return _result(final, usable)


def _stop(test):
    """``(converged, stalled)`` from a ``converged_fn``'s answer."""
    if isinstance(test, tuple):
        return test
    return test, jnp.zeros_like(test)


def _gather(tree, index):
    return jax.tree.map(lambda a: a[index], tree)


def _initial_state(params0, usable, n_restarts, width, history_len, objective0) -> _State:
    dtype = jnp.result_type(*inexact_leaves(params0))
    failed = ~(all_finite(params0, batch_dims=1) if usable is None else usable)
    start = -jnp.inf if objective0 is None else jnp.asarray(objective0, dtype)
    common = dict(objective=jnp.broadcast_to(start, (n_restarts,)).astype(dtype),
                  n_iter=jnp.zeros((n_restarts,), jnp.int32),
                  converged=jnp.zeros((n_restarts,), bool), failed=failed,
                  stalled=jnp.zeros((n_restarts,), bool),
                  history=jnp.full((n_restarts, history_len), jnp.nan, dtype))
    if width == n_restarts:  # each restart its own slot: no queue, no second copy
        return _State(slot_params=params0, slot=jnp.arange(width, dtype=jnp.int32),
                      order=None, queued=None, n_usable=None, params=None, **common)
    order = jnp.argsort(failed, stable=True).astype(jnp.int32)
    n_usable = jnp.sum(~failed).astype(jnp.int32)
    first = order[:width]
    return _State(
        slot_params=_gather(params0, first),
        slot=jnp.where(jnp.arange(width) < n_usable, first, n_restarts),
        order=order, queued=jnp.minimum(n_usable, width), n_usable=n_usable,
        params=params0, **common)


def _refill(s: _State, active, n_restarts: int) -> _State:
    """Slots whose restart stopped (or that are empty) take the next restarts
    of the queue, in slot order; restarts still in the queue never stepped,
    so they are active."""
    index = jnp.minimum(s.slot, n_restarts - 1)
    free = (s.slot >= n_restarts) | ~active[index]
    position = s.queued + jnp.cumsum(free) - 1
    take = free & (position < s.n_usable)
    nxt = s.order[jnp.minimum(position, n_restarts - 1)]
    slot = jnp.where(take, nxt, jnp.where(free, n_restarts, s.slot))
    loaded = _gather(s.params, jnp.minimum(nxt, n_restarts - 1))
    return s._replace(slot=slot, slot_params=_select(take, loaded, s.slot_params),
                      queued=s.queued + jnp.sum(take).astype(jnp.int32))


def _result(s: _State, usable) -> FitResult:
    return FitResult(s.params, s.objective, s.n_iter, s.converged, s.failed,
                     jnp.zeros_like(s.failed), s.history,
                     best_restart(s.objective, s.failed, s.params, usable), s.stalled,
                     s.n_iter, jnp.zeros_like(s.n_iter))


def best_restart(objective, failed, params, usable=None):
    """The index of the highest ``objective`` among restarts not ``failed``;
    when every restart failed, the first ``usable`` one (default: all) whose
    ``params`` are finite (they are its last finite ones), else 0."""
    # a restart that did not fail beats every failed one, also when no
    # iteration ran and every objective is still -inf (max_iter=0)
    low = jnp.finfo(objective.dtype).min
    score = jnp.where(failed, -jnp.inf, jnp.maximum(objective, low))
    ok = all_finite(params, batch_dims=1)
    usable = jnp.where(ok if usable is None else ok & usable, 0.0, -1.0)
    return jnp.where(jnp.all(failed), jnp.argmax(usable), jnp.argmax(score))


class AllRestartsFailed(ValueError):
    """Every restart of a fit failed and none has finite parameters to hand
    back; the message says what to change."""


def raise_if_all_failed(result: FitResult, fix: str) -> FitResult:
    """``result``, or a ``ValueError`` saying ``fix`` when every restart failed
    and none has finite parameters to hand back (concrete results only: under
    a trace the ``failed`` flags say it). A fit whose restarts all failed after
    finite steps returns their last finite parameters, all flagged ``failed``."""
    if isinstance(result.failed, jax.core.Tracer) or not np.asarray(result.failed).all():
        return result
    finite = np.ones(np.shape(result.failed), bool)
    for leaf in jax.tree.leaves(result.params):
        finite &= np.isfinite(np.asarray(leaf)).reshape(finite.size, -1).all(axis=1)
    if finite.any():
        return result
    raise AllRestartsFailed("every restart failed and none has finite parameters (the "
                            f"starting parameters were not finite); {fix}")
