"""Wall time of a fit, measured outside its compiled loop, with the time JAX
spent tracing and compiling during the call set apart.

Restarts run together in one loop, so a fit has one time per iteration: the
run time divided by the loop's iterations (the most any restart ran). With
``n_evals`` and ``n_grads`` of :class:`~jaxmix.fit.driver.FitResult` it puts
traces on a scale of work and of seconds.

>>> import numpy as np
>>> from jaxmix import fit_gmm
>>> x = np.random.default_rng(0).normal(size=(200, 2))
>>> result, t = timed(fit_gmm, 0, x, 2, n_restarts=2)
>>> t.seconds > 0 and t.per_iteration > 0
True
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

import jax
import numpy as np
from jax import monitoring

# Duration events JAX records while it traces, lowers, compiles or reads the
# persistent compilation cache.
_COMPILE_EVENTS = ("/jax/core/compile/", "/jax/compilation_cache/")
_local = threading.local()
_registered = False


class Timing(NamedTuple):
    """A fit's run time per iteration, compilation set apart.

    Attributes:
      seconds: wall time of the call less ``compile_seconds`` (validation,
        initialisation and the loop: the user's wait once compiled).
      compile_seconds: time JAX spent tracing and compiling in the call.
      iterations: loop iterations (the most ``n_iter`` of any restart).
      per_iteration: ``seconds / iterations`` (``nan`` without iterations).
    """

    seconds: float
    compile_seconds: float
    iterations: int
    per_iteration: float


def _record(event: str, duration: float, **_) -> None:
    totals = getattr(_local, "totals", None)
    if totals and event.startswith(_COMPILE_EVENTS):
        totals[-1] += duration


def _listen() -> None:
    global _registered
    if not _registered:
        monitoring.register_event_duration_secs_listener(_record)
        _registered = True


def timed(fit, *args, **kwargs):
    """``(fit(*args, **kwargs), Timing)`` for any jaxmix fit returning a
    :class:`~jaxmix.fit.driver.FitResult` (its result is waited for)."""
    _listen()
    stack = _local.__dict__.setdefault("totals", [])
    stack.append(0.0)
    start = time.perf_counter()
    try:
        result = jax.block_until_ready(fit(*args, **kwargs))
    finally:
        wall, compiled = time.perf_counter() - start, stack.pop()
    if stack:  # a timed fit inside another: its compile time is the outer's too
        stack[-1] += compiled
    compiled = min(compiled, wall)
    iterations = int(np.max(np.asarray(result.n_iter))) if np.size(result.n_iter) else 0
    seconds = wall - compiled
    return result, Timing(seconds, compiled, iterations,
                          seconds / iterations if iterations else float("nan"))
