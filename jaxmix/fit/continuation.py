"""Fits that continue earlier ones: ``init_params`` may be a
:class:`~jaxmix.fit.driver.FitResult`, whose every restart goes on from its
parameters (``n_restarts`` becomes the result's), and its objectives carry
into the first convergence test (``init_objective``), so a fit continued in
several calls stops at the iteration and parameters of one longer fit.
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
    objective = np.asarray(init_params.objective)
    count = objective.shape[0]
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
