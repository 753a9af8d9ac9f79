"""Per-iteration callbacks of long fits, under ``jit``: off by default and
then absent from the compiled program.

Every fit of the library's driver (:func:`jaxmix.fit.driver.iterate`: EM,
MAP-EM, gradient fits, K-Means, the families' fits) takes
``callback=fn``. After each iteration the compiled loop hands the host
(``jax.debug.callback``) the iteration count, objective and state of the
restarts that stepped, and ``fn`` gets a :class:`Progress` of every
restart. The program only knows whether a callback is on: which function
runs is looked up on the host by a traced token, so changing the callback
compiles nothing, and ``callback=None`` compiles the program without any.
A fit traced inside the user's ``jit`` keeps its callback registered for
good (one small entry per trace). Under the user's ``vmap`` over data sets
the batch members share one callback and are not told apart. Gradient
fits with a prior count their first MAP-EM step as iteration 1
(:func:`jaxmix.fit_gradient`) without a callback for it.

:class:`TraceLog` records the traces of several fits side by side (EM and
gradient fits of the same data, say) as rows ``(label, restart, iteration,
objective, seconds)``:

>>> import optax
>>> from jaxmix import fit_gmm, fit_gradient
>>> from jaxmix.datasets import seed_blobs
>>> from jaxmix.fit.progress import TraceLog
>>> log = TraceLog()
>>> x = seed_blobs()
>>> em = fit_gmm(0, x, 3, n_restarts=2, callback=log.recorder("em"))
>>> adam = fit_gradient(0, x, 3, optax.adam(0.05), n_restarts=2, callback=log.recorder("adam"))
>>> sorted(set(log.column("label")))
['adam', 'em']
>>> int(sum(1 for row in log.rows if row[0] == "em")) == int(em.n_iter.sum())
True
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Progress(NamedTuple):
    """What a callback gets after each iteration of a fit.

    Attributes:
      iteration: ``(R,)`` iterations each restart has run.
      objective: ``(R,)`` each restart's latest objective (``-inf`` before its
        first iteration).
      active: ``(R,)`` the restarts that stepped in this iteration.
      seconds: wall time since the first iteration ended (0 then; so
        compilation and initialisation are left out, and traces of fits
        compare by their iterations' cost).
    """

    iteration: np.ndarray
    objective: np.ndarray
    active: np.ndarray
    seconds: float


class _Entry:
    def __init__(self, fn, n_restarts: int):
        self.fn, self.n = fn, n_restarts
        self.iteration = np.zeros(n_restarts, np.int64)
        self.objective = np.full(n_restarts, -np.inf)
        self.start = None


_REGISTRY: dict = {}
_LOCK = threading.Lock()
_TOKENS = itertools.count(1)


@contextlib.contextmanager
def session(callback: Callable | None, n_restarts: int, persistent: bool = False):
    """The token a fit passes to its compiled program (``None`` when
    ``callback`` is ``None``); ``callback`` receives the first ``n_restarts``
    restarts (padded ones are left out) until the block ends, or for good
    when ``persistent`` (a fit traced inside the user's ``jit``: its program
    runs after the block, as often as the user calls it)."""
    if callback is None:
        yield None
        return
    if not callable(callback):
        raise ValueError(f"callback must be a function of one Progress, got {callback!r}")
    with _LOCK:
        token = next(_TOKENS) % 2**31
        _REGISTRY[token] = _Entry(callback, int(n_restarts))
    try:
        yield np.int32(token)
    finally:
        if not persistent:
            with _LOCK:
                _REGISTRY.pop(token, None)


def emit(token, restart, n_iter, objective, live) -> None:
    """In a compiled loop: hand the restarts ``restart`` (their iteration
    counts, objectives and whether they stepped) to the token's callback.
    Nothing when ``token`` is ``None``."""
    if token is not None:
        jax.debug.callback(_dispatch, token, restart, n_iter, objective, live)


def _dispatch(token, restart, n_iter, objective, live) -> None:
    entry = _REGISTRY.get(int(token))
    if entry is None:  # a traced fit vmapped over other tokens, or a finished session
        return
    restart, live = np.asarray(restart), np.asarray(live, bool)
    keep = restart < entry.n
    restart, live = restart[keep], live[keep]
    counts = np.asarray(n_iter)[keep]
    if np.any(live & (counts <= entry.iteration[restart])):  # counts went back: a new run
        entry.iteration[:] = 0
        entry.objective[:] = -np.inf
        entry.start = None
    entry.iteration[restart] = np.asarray(n_iter)[keep]
    entry.objective[restart] = np.where(live, np.asarray(objective, np.float64)[keep],
                                        entry.objective[restart])
    if not live.any():
        return
    active = np.zeros(entry.n, bool)
    active[restart[live]] = True
    now = time.perf_counter()
    entry.start = now if entry.start is None else entry.start
    entry.fn(Progress(entry.iteration.copy(), entry.objective.copy(), active, now - entry.start))


def token_arg(token):
    """The token as the compiled program's argument (``None`` stays ``None``)."""
    return None if token is None else jnp.asarray(token, jnp.int32)


class TraceLog:
    """Rows ``(label, restart, iteration, objective, seconds)`` of the fits
    whose ``callback`` is one of this log's :meth:`recorder` s."""

    def __init__(self):
        self.rows: list = []

    def recorder(self, label: str) -> Callable:
        """A callback that appends the stepping restarts' rows under ``label``."""
        def record(p: Progress):
            for r in np.flatnonzero(p.active):
                self.rows.append((label, int(r), int(p.iteration[r]), float(p.objective[r]),
                                  p.seconds))
        return record

    def column(self, name: str) -> list:
        """One column by name (``label``, ``restart``, ``iteration``,
        ``objective`` or ``seconds``)."""
        i = ("label", "restart", "iteration", "objective", "seconds").index(name)
        return [row[i] for row in self.rows]

    def to_csv(self, path) -> None:
        """The rows as CSV with a header, written atomically."""
        import csv
        import io

        from jaxmix.atomic import write_text
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("label", "restart", "iteration", "objective", "seconds"))
        writer.writerows((a, b, c, repr(d), repr(e)) for a, b, c, d, e in self.rows)
        write_text(path, out.getvalue())
