"""The fits the ``jaxmix`` command runs: a grid of ``k`` x covariance types by
one method (EM, MAP-EM or an optax optimizer). Orchestration only: every
number comes from the functional API (:func:`~jaxmix.select_k`,
:func:`~jaxmix.fit_gmm`, :func:`~jaxmix.fit_gradient`, :func:`~jaxmix.bic`).
"""

from __future__ import annotations

import inspect
import time
from typing import Callable, NamedTuple

import jax
import numpy as np

from jaxmix.cli.data import UsageError
from jaxmix.criteria import aic, bic, score_samples_chunked
from jaxmix.fit.gmm import fit_gmm
from jaxmix.fit.gradient import fit_gradient
from jaxmix.fit.select import select_k
from jaxmix.optimizers import NamedOptimizer, named_optimizer, optax_factory
from jaxmix.params import GMMParams

DEFAULT_LEARNING_RATE = 0.03
ANOMALY_PERCENTILE = 4.0  # the model file's anomaly threshold: this percentile of log p(x)


class Method(NamedTuple):
    """How to fit: ``optimizer=None`` is EM (MAP-EM with a prior)."""
    name: str
    prior: str | None          # None (maximum likelihood) or "default"
    optimizer: NamedOptimizer | None = None

    @property
    def objective(self) -> str:
        return "mean log-likelihood" if self.prior is None else "mean log-posterior"


class Row(NamedTuple):
    """One fitted grid point: the best of its restarts."""
    covariance_type: str
    k: int
    log_likelihood: float      # mean per sample, of the final parameters
    bic: float
    aic: float
    converged: bool
    n_iter: int
    seconds: float             # wall time of the call that produced the row
    params: GMMParams | None   # None when every restart failed


def parse_ks(text: str) -> list:
    """``"3"``, ``"1-6"``, ``"2,4,8"`` or ``"1-3,6"`` -> sorted distinct ints >= 1."""
    ks = set()
    for part in str(text).split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise UsageError(f"--k {text!r}: expected an integer, a range like 1-6 or a list "
                             "like 2,4,8") from None
        if a < 1 or b < a:
            raise UsageError(f"--k {text!r}: k must be at least 1 and ranges ascending "
                             "(e.g. 1-6)")
        ks.update(range(a, b + 1))
    return sorted(ks)


def make_method(name: str, learning_rate: float | None = None, prior: str | None = None) -> Method:
    """``"em"``, ``"map-em"`` or an optax optimizer's name (``adam``, ``lbfgs``, ...).

    ``prior`` (``"none"`` / ``"default"``) overrides the method's default:
    the default prior for MAP-EM, none (maximum likelihood) for EM and for
    gradient fits, as in :func:`jaxmix.fit_gradient`.
    """
    choice = None if prior is None else (None if prior == "none" else "default")
    if name in ("em", "map-em"):
        if learning_rate is not None:
            raise UsageError(f"--learning-rate applies to optax optimizers, not --method {name}")
        own = None if name == "em" else "default"
        if prior is not None and choice != own:
            raise UsageError(f"--method {name} --prior {prior} contradict each other; use "
                             f"--method {'map-em' if choice else 'em'} instead")
        return Method(name, own)
    return Method(name, choice, _optax_optimizer(name, learning_rate))


def _optax_optimizer(name: str, learning_rate: float | None):
    hint = ("--method: give 'em', 'map-em' or the name of an optax optimizer (adam, sgd, "
            "adamw, rmsprop, lbfgs, ...)")
    try:
        factory = optax_factory(name)
    except ValueError:
        raise UsageError(f"{hint}; {name!r} is none of these") from None
    param = inspect.signature(factory).parameters.get("learning_rate")
    if param is None:
        raise UsageError(f"{hint}; optax.{name} takes no learning_rate, it is not an optimizer")
    if learning_rate is None and param.default is inspect.Parameter.empty:
        learning_rate = DEFAULT_LEARNING_RATE
    options = {} if learning_rate is None else {"learning_rate": float(learning_rate)}
    try:  # named: one compiled program per (name, rate), storable across processes
        return named_optimizer(name, **options)
    except ValueError as err:
        raise UsageError(f"{hint}; {err}") from None


def fit_one(key, x, k: int, covariance_type: str, method: Method, *, n_restarts: int,
            max_iter: int | None = None, tol: float | None = None, callback=None):
    """``(FitResult, seconds)`` of one ``k``: EM / MAP-EM or a gradient fit."""
    options = dict(covariance_type=covariance_type, n_restarts=n_restarts, prior=method.prior,
                   callback=callback)
    options.update({name: v for name, v in (("max_iter", max_iter), ("tol", tol))
                    if v is not None})
    start = time.perf_counter()
    if method.optimizer is None:
        result = fit_gmm(key, x, k, **options)
    else:
        result = fit_gradient(key, x, k, method.optimizer, **options)
    result = jax.device_get(jax.block_until_ready(result))
    return result, time.perf_counter() - start


def result_row(result, x, covariance_type: str, k: int, seconds: float) -> Row:
    """A :class:`Row` from a :class:`~jaxmix.fit.driver.FitResult`: its best
    restart, scored on ``x``."""
    best = int(result.best)
    if bool(np.all(result.failed)):
        return Row(covariance_type, k, -np.inf, np.inf, np.inf, False, int(result.n_iter[best]),
                   seconds, None)
    p = result.best_params
    loglik = float(np.mean(np.asarray(score_samples_chunked(p, x), np.float64)))
    return Row(covariance_type, k, loglik, bic(p, x), aic(p, x), bool(result.converged[best]),
               int(result.n_iter[best]), seconds, p)


def sweep(x, ks, covariance_types, method: Method, *, n_restarts: int, seed: int = 0,
          max_iter: int | None = None, tol: float | None = None,
          progress: Callable[[str], None] = lambda line: None) -> list:
    """A :class:`Row` per (covariance type, k).

    EM runs the whole ``k`` grid of a covariance type as one compiled
    :func:`~jaxmix.select_k` call (its rows share that call's time); MAP-EM
    and gradient fits run one call per ``k``.
    """
    if max(ks) > x.shape[0]:
        raise UsageError(f"--k: k={max(ks)} is more than the {x.shape[0]} samples in DATA; "
                         "use a smaller k")
    if method.optimizer is None and method.prior is None:
        return _sweep_em(x, ks, covariance_types, n_restarts, seed, max_iter, tol, progress)
    rows, total = [], len(ks) * len(covariance_types)
    for ct in covariance_types:
        for k in ks:
            progress(f"[{len(rows) + 1}/{total}] {method.name} {ct} k={k}, "
                     f"{n_restarts} restarts ...")
            result, seconds = fit_one(jax.random.fold_in(jax.random.PRNGKey(seed), k), x, k,
                                      ct, method, n_restarts=n_restarts, max_iter=max_iter,
                                      tol=tol, callback=fit_callback(progress))
            rows.append(result_row(result, x, ct, k, seconds))
            progress(f"    done in {seconds:.1f} s: BIC {rows[-1].bic:.2f}")
    return rows


def fit_callback(progress):
    """The live progress line's fit callback, where it has one (a terminal)."""
    make = getattr(progress, "fit_callback", None)
    return None if make is None else make()


def _sweep_em(x, ks, covariance_types, n_restarts, seed, max_iter, tol, progress) -> list:
    options = {name: v for name, v in (("max_iter", max_iter), ("tol", tol)) if v is not None}
    rows = []
    for i, ct in enumerate(covariance_types, start=1):
        progress(f"[{i}/{len(covariance_types)}] em {ct} k={_span(ks)}, {n_restarts} restarts "
                 "each (one compiled call) ...")
        start = time.perf_counter()
        sel = select_k(seed, x, ks, covariance_type=ct, n_restarts=n_restarts,
                       callback=fit_callback(progress), **options)
        seconds = time.perf_counter() - start
        for r in sel.rows():
            rows.append(Row(ct, r["k"], r["log_likelihood"], r["bic"], r["aic"], r["converged"],
                            r["n_iter"], seconds,
                            None if r["failed"] else sel.best_params(r["k"], ct)))
        progress(f"    done in {seconds:.1f} s")
    return rows


def _span(ks) -> str:
    return f"{ks[0]}..{ks[-1]}" if list(ks) == list(range(ks[0], ks[-1] + 1)) else str(list(ks))


def model_about(inputs, row: Row, x, method: Method, args, extra=None):
    """What ``jaxmix fit`` records in its model file: ``inputs`` (names,
    columns, scaling) and the fit's settings and scores, with the anomaly
    threshold (log-density at the 4th percentile of the training data;
    ``extra`` replaces it for other families)."""
    fit = dict(command="jaxmix fit", method=method.name, objective=method.objective,
               covariance_type=row.covariance_type, k=row.k, criterion=args.criterion,
               n_restarts=args.restarts, seed=args.seed, tol=args.tol, max_iter=args.max_iter,
               n_samples=int(x.shape[0]), log_likelihood=row.log_likelihood, bic=row.bic,
               aic=row.aic, converged=row.converged, n_iter=row.n_iter)
    if extra is None:
        from jaxmix.anomaly import density_threshold
        extra = dict(anomaly_percentile=ANOMALY_PERCENTILE, anomaly_threshold=float(
            density_threshold(row.params, x, ANOMALY_PERCENTILE)))
    return inputs._replace(fit={**fit, **extra})


def best_row(rows, criterion: str = "bic") -> Row:
    """The row minimising ``criterion`` (``"bic"`` or ``"aic"``) among fitted rows."""
    fitted = [r for r in rows if r.params is not None]
    if not fitted:
        raise RuntimeError("every restart of every fit failed (non-finite values); try "
                           "--method em, more --restarts or scaled data")
    return min(fitted, key=lambda r: getattr(r, criterion))
