"""``fit_gmm``: EM (or MAP-EM) for a Gaussian mixture with batched restarts,
on data in memory, sharded over devices, or streamed from a source.

>>> import jax, numpy as np
>>> from jaxmix import fit_gmm
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(-5, 1, (200, 2)), rng.normal(5, 1, (200, 2))])
>>> result = fit_gmm(jax.random.PRNGKey(0), x, 2, n_restarts=4)
>>> best = result.best_params
>>> np.sort(np.asarray(best.means[:, 0])).round(0)
array([-5.,  5.], dtype=float32)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.compiling import jit
from jaxmix.data.chunked import pass_elements
from jaxmix.data.reduce import reduce
from jaxmix.fit.buckets import component_bucket, history_bucket, restart_slots
from jaxmix.fit.continuation import continuation, restart_axis
from jaxmix.fit.driver import FitResult, iterate, raise_if_all_failed
from jaxmix.fit.init import INIT_METHODS, broadcast_params, initialize_masked
from jaxmix.fit.progress import session, token_arg
from jaxmix.data.source import is_source
from jaxmix.fit.inputs import Placement, placed, uncentre, with_missing
from jaxmix.fit.rows import (TRACE_COUNT, Rows, cut_rows, fit_work, pad_rows, restart_rows,
                             plusplus_shape, row_keys, row_mask, with_draws)
from jaxmix.gmm.density import log_prob
from jaxmix.gmm.frozen import check_frozen
from jaxmix.gmm.missing import MISSING, mean_filled, observed
from jaxmix.gmm.priors import GMMPrior, in_program, requested_prior
from jaxmix.gmm.stats import PATHS, row_elements
from jaxmix.gmm.step import batched_em_step, degenerate_restarts
from jaxmix.gmm.whitening import applies, whitening
from jaxmix.gmm.update import enforce_mask, first_components, pad_components
from jaxmix.kmeans.init import local_trials
from jaxmix.numerics import all_finite
from jaxmix.params import COVARIANCE_TYPES, GMMParams
from jaxmix.validation import (as_key, check_choice, check_gmm_params, check_int,
                               check_max_iter, check_n_restarts, check_nonneg, check_number,
                               is_traced)


# What to change when every restart of a Gaussian-mixture fit failed.
DEGENERATE_FIX = ("the data may be degenerate (duplicated points, constant features) for this "
                  "reg_covar: increase reg_covar, or use prior='default'")


class GMMSettings(NamedTuple):
    """Validated settings shared by the EM and gradient fits."""
    k: int
    covariance_type: str
    n_restarts: int
    max_iter: int
    tol: float
    reg_covar: float


def check_settings(n_components, covariance_type, n_restarts, max_iter, tol, reg_covar,
                   path, init, init_params) -> GMMSettings:
    """Host-side checks of a Gaussian-mixture fit's arguments (errors name them)."""
    covariance_type = check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    check_choice(path, "path", PATHS)
    if init_params is None:
        check_choice(init, "init", INIT_METHODS)
    return GMMSettings(check_int(n_components, "n_components"), covariance_type,
                       check_n_restarts(n_restarts),
                       check_max_iter(max_iter), check_nonneg(tol, "tol"),
                       check_nonneg(reg_covar, "reg_covar"))


def checked_inputs(s: GMMSettings, inp: Placement, init_params, prior):
    """``init_params`` checked (still in the data's frame: the compiled fit
    centres them; one model, or ``n_restarts`` of them along a leading axis)
    and ``prior`` resolved in the centred frame of ``inp`` (a ``"default"``
    prior becomes a request that the compiled fit builds from the centred
    sample: no program of its own)."""
    for value, name in ((s.tol, "tol"), (s.reg_covar, "reg_covar")):
        check_nonneg(value, name, dtype=inp.sample.dtype)
    if init_params is not None:
        batch = restart_axis(init_params, getattr(init_params, "means", None))
        if batch not in (None, s.n_restarts):
            raise ValueError(f"init_params holds {batch} restarts' parameters but n_restarts="
                             f"{s.n_restarts}; give one model, or one per restart")
        init_params = check_gmm_params(init_params, "init_params", k=s.k, d=inp.n_features,
                                       covariance_type=s.covariance_type,
                                       dtype=inp.sample.dtype, batched=batch is not None)
    prior = requested_prior(prior, s.k, inp.n_features, s.covariance_type, inp.sample.dtype)
    if isinstance(prior, GMMPrior):  # given in the data's frame
        prior = prior._replace(mean_prior=prior.mean_prior - inp.offset)
    return init_params, prior


def fit_gmm(key, x, n_components: int, *, covariance_type: str = "full", n_restarts: int = 1,
            init: str = "kmeans", init_params=None, tol: float = 1e-3,
            reg_covar: float = 1e-6, max_iter: int = 100, chunk_size: int | None = None,
            path: str = "auto", sample_weight=None, prior=None, mesh=None,
            init_size: int | None = None, init_objective=None, callback=None,
            frozen=None, missing: str = "error") -> FitResult:
    """Fit a Gaussian mixture by EM from ``n_restarts`` starts in one compiled call.

    Args:
      key: ``jax.random`` key (or int seed); restart ``r`` starts from
        ``fold_in(key, r)`` (so the first restarts do not depend on ``R``).
      x: ``(n, d)`` data: an array (possibly sharded over a mesh), or a chunk
        source read once per iteration (a ``.npy`` path, an ``np.memmap``, a
        callable returning a fresh iterable of chunks, or
        :func:`jaxmix.data.source.open_source` of an array or list of chunks).
      n_components: ``k``.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      n_restarts: ``R``, restarts run together.
      init: ``"kmeans"``, ``"k-means++"``, ``"random"`` or ``"random_from_data"``;
        ignored when ``init_params`` is given.
      init_params: ``GMMParams`` every restart starts from, or one set per
        restart (a leading ``R`` axis), or a :class:`FitResult` whose every
        restart this fit continues (``n_restarts`` and ``init_objective``
        from it; see :mod:`jaxmix.fit.continuation`).
      tol: stop a restart when its objective changes by less.
      reg_covar: added to the covariance diagonals.
      max_iter: iteration cap per restart.
      chunk_size: samples per chunk (bounds memory); ``None`` picks one.
      path: ``"auto"``, ``"gemm"`` or ``"exact"`` E-step (see :mod:`jaxmix.gmm.stats`).
      sample_weight: optional ``(n,)`` non-negative weights (array data; a
        source carries its own).
      prior: ``None`` (maximum likelihood), ``"default"`` or a
        :class:`~jaxmix.gmm.priors.GMMPrior`: MAP-EM, whose objective (``tol``,
        ``history``, best restart) is the mean log-posterior per sample.
      mesh: a :class:`jax.sharding.Mesh` with a ``"data"`` axis to split the
        samples over (``None``: the mesh of ``x`` if it is placed on one, see
        :mod:`jaxmix.data.sharding`); the result equals the single-device fit.
      init_size: streamed sources: rows the initialiser (and ``prior="default"``)
        sees (see :mod:`jaxmix.fit.inputs`).
      init_objective: with ``init_params`` from an earlier fit, that fit's
        final ``objective`` (a number, or one per restart): the first
        iteration's ``tol`` test compares with it (default ``-inf``), so
        repeated short fits continue one fit (scikit-learn's ``warm_start``)
        and stop where it would have.
      callback: optional ``callback(Progress)`` after every iteration
        (:mod:`jaxmix.fit.progress`; ``None``: none in the compiled program).
      frozen: a :class:`jaxmix.Frozen` naming weights, means or covariances
        (all, or per component) kept at ``init_params``'s values while the
        rest is fitted (:mod:`jaxmix.gmm.frozen`).
      missing: ``"error"`` (NaN in ``x`` is refused) or ``"marginalize"``:
        NaN entries are missing values, marginalised exactly in the E-step
        (:mod:`jaxmix.gmm.missing`; in-memory, unsharded ``x``); the objective
        is then the observed data's mean log-likelihood.

    Returns:
      :class:`~jaxmix.fit.driver.FitResult` with all restarts; ``best_params``
      is the restart with the highest final objective among those not failed.

    Under ``jax.jit`` / ``jax.vmap`` (traced ``x``) only shapes are checked;
    non-finite data shows as ``failed`` restarts.
    """
    key = as_key(key)
    init_params, n_restarts, init_objective = continuation(init_params, n_restarts,
                                                           init_objective)
    s = check_settings(n_components, covariance_type, n_restarts, max_iter, tol, reg_covar,
                       path, init, init_params)
    k_max, rows = component_bucket(s.k), restart_rows([s.k], s.n_restarts)
    width = lambda d: em_row_elements(len(rows.k), k_max, d)  # noqa: E731
    x_nan = None
    if check_choice(missing, "missing", MISSING) == "marginalize":
        x_nan, path = marginalized_input(x, mesh), "missing"
        x = mean_filled(x_nan)
        width = lambda d: len(rows.k) * k_max * d * d  # noqa: E731 - (m, R, k, d, d)
    with placed(key, x, s.k, row_elements=width, chunk_size=chunk_size,
                sample_weight=sample_weight, mesh=mesh, init_size=init_size) as inp, \
            session(callback, s.n_restarts, is_traced(key, x)) as token:
        inp = inp if x_nan is None else with_missing(inp, x_nan)
        init_params, prior = checked_inputs(s, inp, init_params, prior)
        trials = local_trials(k_max)
        result, _ = jax.block_until_ready(fit_rows(
            key, with_draws(key, rows, plusplus=plusplus_shape(init, init_params, k_max, trials)),
            inp.data, inp.sample, inp.offset, init_params, s.tol, s.reg_covar,
            s.max_iter, prior, check_init_objective(init_objective, init_params, len(rows.k),
                                                    s.n_restarts),
            k_max=k_max,
            covariance_type=s.covariance_type, init=init,
            history=history_bucket(s.max_iter), path=path, max_trials=trials,
            progress=token_arg(token),
            frozen=check_frozen(frozen, s.k, s.covariance_type, init_params, k_max)))
    result = cut_rows(result, s.n_restarts, s.max_iter, lambda p: first_components(p, s.k))
    return raise_if_all_failed(result, DEGENERATE_FIX)


def marginalized_input(x, mesh):
    """``x`` for ``missing="marginalize"``: in memory, unsharded, checked."""
    if mesh is not None or is_source(x) or is_traced(x):
        raise ValueError('missing="marginalize" takes X as an in-memory array (no mesh, '
                         "no chunk source, not traced)")
    return observed(x)


def check_init_objective(value, init_params, n_rows: int | None = None,
                         n_restarts: int | None = None):
    """``init_objective`` as a float, or per restart as ``(R,)`` padded with
    ``-inf`` to ``n_rows`` (``None`` stays ``None``): numbers, not NaN, and
    only together with ``init_params``."""
    if value is None:
        return None
    if init_params is None:
        raise ValueError("init_objective continues a fit from its parameters: give "
                         "init_params too (the earlier fit's best_params, or the FitResult)")
    if np.ndim(value) == 1:
        if n_restarts is not None and np.shape(value)[0] != n_restarts:
            raise ValueError(f"init_objective holds {np.shape(value)[0]} values but "
                             f"n_restarts={n_restarts}; give one number or one per restart")
        pad = max(0, (n_rows or 0) - np.shape(value)[0])
        if is_traced(value):
            return jnp.concatenate([value, jnp.full((pad,), -jnp.inf, value.dtype)])
        values = np.asarray(value, np.float64)
        if np.isnan(values).any() or (values == np.inf).any():
            raise ValueError(f"init_objective must be numbers or -inf, got {values}")
        return np.concatenate([values, np.full(pad, -np.inf)])
    value = check_number(value, "init_objective")
    if not is_traced(value) and (np.isnan(value) or value == np.inf):
        raise ValueError(f"init_objective must be a number or -inf, got {value}")
    return value


def starting_params(key, rows, sample, init_params, offset, reg_covar, *, k_max,
                    covariance_type, init, max_trials, per_k):
    """Every row's starting parameters (centred, ``k_max`` components, the
    padding masked): ``init_params`` moved and broadcast, or ``init``."""
    mask = row_mask(rows, k_max)
    if init_params is not None and init_params.means.ndim == 3:  # one per restart
        start = jax.vmap(lambda p: pad_components(p, k_max))(init_params.shifted(-offset))
        return enforce_mask(jax.tree.map(lambda a: pad_rows(a, mask.shape[0]), start), mask)
    if init_params is not None:
        start = pad_components(init_params.shifted(-offset), k_max)
        return enforce_mask(broadcast_params(start, mask.shape[0]), mask)
    return initialize_masked(row_keys(key, rows, per_k), sample, k_max, covariance_type, init,
                             reg_covar, mask, rows.trials, max_trials)


def _em_work(key, rows, data, *_, k_max, covariance_type, **__):
    return fit_work(data, rows.k.size, k_max, covariance_type)


@jit(static_argnames=(
    "k_max", "covariance_type", "init", "history", "path", "max_trials", "per_k"),
    work=_em_work)
def fit_rows(key, rows: Rows, data, sample, offset, init_params, tol, reg_covar, max_iter,
             prior, init_objective=None, *, k_max, covariance_type, init, history, path, max_trials,
             per_k=False, progress=None, frozen=None):
    """EM on every row of ``rows`` (:mod:`jaxmix.fit.rows`) in one compiled
    call: ``(FitResult of all rows in the data's frame, mean log-likelihood
    of each row's final params)``. ``per_k``: a model-selection grid."""
    TRACE_COUNT["gmm"] += 1
    dtype = sample.dtype
    tol, reg_covar = jnp.asarray(tol, dtype), jnp.asarray(reg_covar, dtype)
    params0 = starting_params(key, rows, sample, init_params, offset, reg_covar, k_max=k_max,
                              covariance_type=covariance_type, init=init,
                              max_trials=max_trials, per_k=per_k)
    mask = row_mask(rows, k_max)
    usable = all_finite(params0, batch_dims=1) & rows.active
    prior = in_program(prior, sample.x, sample.w, covariance_type)
    white = (whitening(*sample.flat()) if applies(covariance_type) and path != "missing"
             else None)
    slots = restart_slots(mask.shape[0], pass_elements=pass_elements(data, mask.size))
    result = iterate(batched_em_step(data, reg_covar, path, prior, white=white, frozen=frozen),
                     params0, tol,
                     max_iter, usable=usable, history_len=history, rows=mask,
                     slots=slots, objective0=init_objective, progress=progress)
    degenerate = degenerate_restarts(result.params, data.total_weight(), reg_covar, mask)
    score = mean_log_likelihoods(result.params, data) if per_k else None
    return uncentre(result._replace(degenerate=degenerate), offset), score


def em_row_elements(n_rows: int, k: int, d: int) -> int:
    """Elements per sample row of the largest per-chunk intermediate of an EM
    fit of ``n_rows`` restart rows (for :func:`jaxmix.data.chunked.chunk_rows`):
    the driver steps :func:`~jaxmix.fit.buckets.restart_slots` rows at a time
    and the passes over all rows go in groups of that size, so more rows do
    not shrink the chunks (200 restarts on 2e4 x 16 samples, k=16, ran in
    256-row chunks, where the per-chunk overhead dominated). On a small pass
    the driver gives every row a slot, but there all rows' intermediates fit
    in one chunk's budget anyway (``ONE_SLOT_EACH < CHUNK_ELEMENTS``)."""
    return row_elements(restart_slots(n_rows), k, d)


def mean_log_likelihoods(params: GMMParams, data):
    """Mean log-likelihood per unit weight of every restart of ``params`` (one
    pass; restarts in groups of :func:`~jaxmix.fit.buckets.restart_slots`)."""
    n_rows = jax.tree.leaves(params)[0].shape[0]

    def chunk_sums(x, w, c):
        return jax.lax.map(lambda p: jnp.sum(w * log_prob(p, x)), params,
                           batch_size=restart_slots(n_rows))
    return reduce(chunk_sums, data) / data.total_weight()
