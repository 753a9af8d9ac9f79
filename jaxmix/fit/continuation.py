"""Fits that continue earlier ones: ``init_params`` may be a
:class:`~jaxmix.fit.driver.FitResult`, whose every restart goes on from its
parameters (``n_restarts`` becomes the result's), and its objectives carry
into the first convergence test (``init_objective``), so a fit cut by
``max_iter`` and continued stops at the iteration and parameters of one
longer fit. A restart that had already converged takes one more step (its
first change is measured against the carried objective, which it need not
meet again), as scikit-learn's ``warm_start`` does.
Restart-batched parameters (a leading ``R`` axis) start restart ``r`` from
their ``r``-th set; single parameters start every restart there."""

from __future__ import annotations

import numpy as np

from jaxmix.fit.driver import FitResult
from jaxmix.validation import check_n_restarts


def continuation(init_params, n_restarts, init_objective):
    """``(init_params, n_restarts, init_objective)`` with a ``FitResult``
    unpacked; ``n_restarts`` must be 1 (the default) or the result's."""
    if not isinstance(init_params, FitResult):
        return init_params, n_restarts, init_objective
    objective = init_params.objective  # may be traced (a fit continued under jit)
    count = int(np.shape(objective)[0])
    if check_n_restarts(n_restarts) not in (1, count):
        raise ValueError(f"init_params is a FitResult of {count} restarts, which the fit "
                         f"continues; n_restarts={n_restarts} does not match: drop it")
    return init_params.params, count, objective if init_objective is None else init_objective


def restart_axis(params, leaf) -> int | None:
    """The leading restart count of ``params`` (its ``leaf``'s rank above
    one model's), or ``None`` for one model."""
    if params is None or leaf is None or np.ndim(leaf) != 3:
        return None  # one model (or not parameters at all: the checker says so)
    return int(np.shape(leaf)[0])
