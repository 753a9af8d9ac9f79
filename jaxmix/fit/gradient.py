"""``fit_gradient``: a Gaussian mixture fitted by any optax optimizer on the
objective MAP-EM increases (the mean log-posterior per sample), with the
inputs, initialisation and driver of :func:`jaxmix.fit_gmm`; the loss and
steps are in :mod:`jaxmix.gmm.gradient`.

>>> import jax, numpy as np, optax
>>> from jaxmix import fit_gradient
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(-5, 1, (200, 2)), rng.normal(5, 1, (200, 2))])
>>> result = fit_gradient(jax.random.PRNGKey(0), x, 2, optax.lbfgs(), prior="default")
>>> np.sort(np.asarray(result.best_params.means[:, 0])).round(0)
array([-5.,  5.], dtype=float32)
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmix.compiling import jit
from jaxmix.data.source import is_source
from jaxmix.host_random import fold_in_key
from jaxmix.fit.continuation import continuation
from jaxmix.gmm.frozen import check_frozen, frozen_start
from jaxmix.fit.progress import session, token_arg
from jaxmix.fit.driver import FitResult, best_restart, iterate, raise_if_all_failed
from jaxmix.fit.buckets import component_bucket, history_bucket
from jaxmix.fit.gmm import (DEGENERATE_FIX, check_init_objective, check_settings, checked_inputs,
                            starting_params)
from jaxmix.fit.inputs import placed, uncentre
from jaxmix.fit.rows import (TRACE_COUNT, cut_rows, fit_work, plusplus_shape, restart_rows,
                             row_mask, with_draws)
from jaxmix.kmeans.init import local_trials
from jaxmix.gmm.gradient import Objective, unconstrain
from jaxmix.gmm.gradient_steps import (batched_gradient_step, init_state, stop_rule,
                                       with_hyperparams)
from jaxmix.gmm.priors import GMMPrior, in_program
from jaxmix.gmm.stats import row_elements
from jaxmix.gmm.step import degenerate_restarts, em_step
from jaxmix.gmm.update import first_components
from jaxmix.numerics import all_finite
from jaxmix.params import GMMParams
from jaxmix.validation import as_key, check_int, is_traced


def fit_gradient(key, x, n_components: int, optimizer: optax.GradientTransformation, *,
                 covariance_type: str = "full", prior=None, n_restarts: int = 1,
                 init: str = "kmeans", init_params: GMMParams | None = None, tol: float = 1e-3,
                 max_iter: int = 100, batch_size: int | None = None,
                 chunk_size: int | None = None, sample_weight=None,
                 reg_covar: float = 1e-6, path: str = "auto", mesh=None,
                 hyperparams: dict | None = None, callback=None, frozen=None) -> FitResult:
    """Fit a Gaussian mixture by gradient descent on the negative mean log-posterior.

    Args:
      key: ``jax.random`` key (or int seed). Initial parameters are those of
        ``fit_gmm`` with the same key and ``init`` (see ``init`` for priors);
        mini-batch shuffling uses keys derived from it.
      x: ``(n, d)`` data.
      n_components: ``k``.
      optimizer: any ``optax.GradientTransformation``. Line-search methods
        (``optax.lbfgs``) receive ``value``, ``grad`` and ``value_fn``. It is a
        static argument: a new optax object compiles a new program, so reuse
        one instance, or name it (``jaxmix.named_optimizer("adam",
        learning_rate=1e-2)``: equal names and arguments share one program,
        across processes too with :func:`jaxmix.enable_compilation_cache`),
        or vary a learning rate through ``hyperparams``.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      prior: ``None`` (maximum likelihood), ``"default"`` or a
        :class:`~jaxmix.gmm.priors.GMMPrior`.
      n_restarts: ``R``, restarts run together (``vmap``).
      init: initialiser as in ``fit_gmm``; ignored when ``init_params`` is given.
      init_params: as in ``fit_gmm``: one model, one per restart, or a
        ``FitResult`` whose restarts this fit continues (their objectives
        carried into the first stopping test; the optimizer's state starts
        afresh).
        With a prior, its parameters are refitted by one MAP-EM step
        (:func:`map_refit`), counted as iteration 1: ``history[0]`` is the
        objective of the start, equal to MAP-EM's from the same key.
      tol: stop as converged when the objective changes by less in one
        iteration and an EM step from the parameters would gain less too
        (:mod:`jaxmix.gmm.objective`; ``fit_gmm``'s default, with the same
        meaning). A fit whose parameters stop changing stops as ``stalled``.
      max_iter: iteration cap (optimizer updates, or epochs with ``batch_size``;
        the default is ``fit_gmm``'s).
      batch_size: ``None`` for full-batch steps, else mini-batch size (the
        data are padded to a multiple of it with zero-weight rows).
      chunk_size: full batch only: samples per chunk of the loss (bounds memory).
      sample_weight: optional ``(n,)`` non-negative weights.
      reg_covar: covariance floor, as in ``fit_gmm``: the fit optimises over
        covariances ``S + reg_covar I`` (:mod:`jaxmix.gmm.gradient`), the set
        EM's M-step keeps them in.
      path: ``"auto"``, ``"gemm"`` or ``"exact"`` log-density in the loss (see
        :func:`batched_gradient_step` and :mod:`jaxmix.gmm.stats`).
      mesh: a :class:`jax.sharding.Mesh` with a ``"data"`` axis to split the
        samples over (``None``: the mesh of ``x`` if it is placed on one, see
        :mod:`jaxmix.data.sharding`); the full-batch loss and its gradient are
        reduced across devices. Not with ``batch_size``.
      hyperparams: for an optimizer built with ``optax.inject_hyperparams``
        (``optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)``), values
        of its hyper-parameters, by name: numbers, or ``(n_restarts,)``
        arrays giving each restart its own. They are traced: a sweep over
        learning rates with one optimizer instance compiles once, and
        ``(n_restarts,)`` values run the whole sweep in one call.
      callback: optional ``callback(Progress)`` after every iteration
        (:mod:`jaxmix.fit.progress`; ``None``: none in the compiled program).
      frozen: as in ``fit_gmm``: parameters held at ``init_params``'s values
        (no gradient flows to them, no update moves them).

    Returns:
      :class:`~jaxmix.fit.driver.FitResult`: ``params`` are ``GMMParams``,
      ``objective``/``history`` the mean log-posterior per sample (mean
      log-likelihood without a prior), ``best`` the restart with the highest;
      ``n_evals``/``n_grads`` count passes over the data (line-search trials
      and stopping tests included).
    """

    if not (callable(getattr(optimizer, "init", None))
            and callable(getattr(optimizer, "update", None))):
        raise ValueError("optimizer must be an optax.GradientTransformation (e.g. "
                         f"optax.adam(1e-2) or optax.lbfgs()), got {type(optimizer).__name__}")
    key = as_key(key)
    init_params, n_restarts, init_objective = continuation(init_params, n_restarts, None)
    s = check_settings(n_components, covariance_type, n_restarts, max_iter, tol, reg_covar,
                       path, init, init_params)
    if batch_size is not None:
        chunk_size = check_int(batch_size, "batch_size")
        if mesh is not None or is_source(x):
            raise ValueError("batch_size (mini-batches) needs unsharded in-memory data: drop "
                             "batch_size for full-batch steps, or pass an unsharded array")
    rows = restart_rows([s.k], s.n_restarts)
    # k padded to its bucket (a component mask): fits of k in one bucket share
    # a program; frozen fits keep their k (their masks are per component)
    k_max = s.k if frozen is not None else component_bucket(s.k)
    width = lambda d: row_elements(len(rows.k), k_max, d)  # noqa: E731
    with placed(key, x, s.k, row_elements=width, chunk_size=chunk_size,
                sample_weight=sample_weight, mesh=mesh) as inp, \
            session(callback, s.n_restarts, is_traced(key, x)) as token:
        init_params, prior = checked_inputs(s, inp, init_params, prior)
        starts = with_draws(key, rows, plusplus=plusplus_shape(init, init_params, k_max,
                                                               local_trials(k_max)))
        result = jax.block_until_ready(_fit(
            _raw_key(key), starts, _shuffle_keys(_raw_key(key), rows.restart), inp.data,
            inp.sample, inp.offset, init_params, prior, s.tol,
            s.reg_covar, s.max_iter, per_row(hyperparams, rows, s.n_restarts), k_max=k_max,
            covariance_type=s.covariance_type, init=init,
            history=history_bucket(s.max_iter), optimizer=optimizer,
            mini_batch=batch_size is not None, path=path, progress=token_arg(token),
            objective0=check_init_objective(init_objective, init_params, len(rows.k),
                                            s.n_restarts),
            frozen=check_frozen(frozen, s.k, s.covariance_type, init_params)))
    result = cut_rows(result, s.n_restarts, s.max_iter, lambda p: first_components(p, s.k))
    return raise_if_all_failed(result,
                               DEGENERATE_FIX + ", or lower the learning rate")


def per_row(hyperparams, rows, n_restarts: int):
    """``hyperparams`` checked (names to finite numbers or ``(n_restarts,)``
    arrays) and expanded to one value per row of ``rows`` (padding rows take
    restart 0's); ``None`` stays ``None``."""
    if hyperparams is None:
        return None
    if not isinstance(hyperparams, dict) or not all(isinstance(k, str) for k in hyperparams):
        raise ValueError("hyperparams must be a dict from hyper-parameter names to values, "
                         f"got {type(hyperparams).__name__}")
    out = {}
    for name, value in hyperparams.items():
        a = np.asarray(value)
        if a.dtype.kind not in "biuf" or a.ndim > 1 or (a.ndim == 1 and a.shape != (n_restarts,)):
            raise ValueError(f"hyperparams[{name!r}] must be a number or an array of shape "
                             f"({n_restarts},) (one value per restart), got {value!r}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"hyperparams[{name!r}] must be finite, got {value!r}")
        a = np.broadcast_to(a.astype(np.float64), (n_restarts,))
        out[name] = a[np.where(rows.active, rows.restart, 0)]
    return out


def map_refit(params: GMMParams, data, reg_covar, prior: GMMPrior, real=None):
    """One MAP-EM iteration from ``params``: ``(the MAP parameters of their
    responsibilities, the objective of params)``. Gradient fits with a prior
    start from the initialiser's parameters refitted this way, so that the
    prior's covariance floor holds from the first step (a k-means start on
    duplicated points has covariances at ``reg_covar``, where the prior's
    gradient is ~``1 / reg_covar``). ``real``: a padded mixture's real components."""
    return em_step(params, data, reg_covar, "exact", prior, real=real)


def _with_refit_counted(result: FitResult, head, ran, usable) -> FitResult:
    """The MAP refit as iteration 1 of every restart that ``ran`` it:
    ``history[0]`` is the objective of the start (``head``), as for MAP-EM
    from the same start, and the gradient iterations follow (the loop
    started from ``objective0=head``, so a restart with no gradient iteration
    reports ``head``, the objective before its last step, as MAP-EM does)."""
    shifted = jnp.concatenate([head[:, None], result.history[:, :-1]], axis=1)
    objective = jnp.where(ran, result.objective, -jnp.inf)  # max_iter=0: as fit_gmm
    one = ran.astype(result.n_iter.dtype)
    return result._replace(
        history=jnp.where(ran[:, None], shifted, result.history), objective=objective,
        n_iter=result.n_iter + one, n_evals=result.n_evals + one,
        best=best_restart(objective, result.failed, result.params, usable))


def _shuffle_keys(key, restart):
    """Each row's mini-batch key, ``fold_in(fold_in(key, 1), restart)``
    (:func:`jaxmix.host_random.fold_in_key`: on the host where it can be)."""
    return fold_in_key(fold_in_key(key, 1), restart)


def _raw_key(key):
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def _gradient_work(key, rows, data, *_, k_max, covariance_type, **__):
    return fit_work(data, rows.k.size, k_max, covariance_type)


@jit(static_argnames=(
    "k_max", "covariance_type", "init", "history", "optimizer", "mini_batch", "path"),
    work=_gradient_work)
def _fit(key, rows, shuffle_keys, data, sample, offset, init_params, prior, tol, reg_covar,
         max_iter, hyperparams, *, k_max, covariance_type, init, history, optimizer,
         mini_batch, path, progress=None, objective0=None, frozen=None) -> FitResult:
    """The rows' fits, ``k_max`` components of which the first ``rows.k`` (the
    same for every row) are real (the loss's component mask)."""
    TRACE_COUNT["gradient"] += 1
    dtype = sample.dtype
    prior = in_program(prior, sample.x, sample.w, covariance_type)
    tol, reg_covar = jnp.asarray(tol, dtype), jnp.asarray(reg_covar, dtype)
    params0 = starting_params(key, rows, sample, init_params, offset, reg_covar, k_max=k_max,
                              covariance_type=covariance_type, init=init,
                              max_trials=local_trials(k_max), per_k=False)
    # the loss's component mask; frozen fits run unpadded (their masks hold the weights)
    real = None if frozen is not None else row_mask(rows, k_max)[0]
    refit = init_params is None and prior is not None
    loop_iter, head = max_iter, None
    if refit:  # one MAP-EM step first, counted as iteration 1 (see map_refit)
        stepped, head = jax.vmap(lambda p: map_refit(p, data, reg_covar, prior, real))(params0)
        params0 = jax.tree.map(lambda a, b: jnp.where(max_iter > 0, a, b), stepped, params0)
        loop_iter = jnp.maximum(max_iter - 1, 0)
    objective = Objective(covariance_type, data, prior, reg_covar, path, frozen, real)
    if objective0 is not None:  # a continued fit: its first test compares with these
        head = jnp.broadcast_to(jnp.asarray(objective0, dtype), (rows.restart.shape[0],))
    last = jnp.full((rows.restart.shape[0],), -jnp.inf, dtype) if head is None else head
    def start(p):
        u = unconstrain(p, reg_covar, real)
        return u if frozen is None else frozen_start(u, p, frozen)
    state0 = jax.vmap(lambda p, kk, v: init_state(optimizer, start(p), kk, objective, v))(
        params0, shuffle_keys, last)
    if hyperparams is not None:
        state0 = jax.vmap(lambda st, h: st._replace(opt_state=with_hyperparams(st.opt_state, h)))(
            state0, hyperparams)
    step = batched_gradient_step(optimizer, objective, tol, mini_batch)
    usable = all_finite(params0, batch_dims=1) & rows.active
    result = iterate(step, state0, tol, loop_iter, stop_rule, history_len=history,
                     usable=usable, objective0=head, progress=progress)
    final = result.params
    params = jax.vmap(objective.params)(final.evaluated)  # whose objective is reported
    result = result._replace(params=params, n_evals=final.n_evals, n_grads=final.n_grads,
                             degenerate=degenerate_restarts(params, data.total_weight(),
                                                            reg_covar, row_mask(rows, k_max)))
    if refit:
        result = _with_refit_counted(result, head, usable & (max_iter > 0), usable)
    return uncentre(result, offset)
