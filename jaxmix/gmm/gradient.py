r"""Gradient-based (MAP or maximum-likelihood) fitting with any optax optimizer.

The optimiser works on unconstrained parameters (:class:`Unconstrained`)::

    weights              = softmax(logits)
    means                = means
    precisions_cholesky  full/tied: strictly upper part as is, diagonal exp(raw)
                         diag/spherical: exp(raw)

so every point of ``R^p`` is a valid mixture. The log scale of the precision
factor makes the curvature of the loss at the optimum independent of the
data's units (for one variance, ``d^2 loss / d raw^2 = 2`` there), which suits
both Adam and L-BFGS. ``unconstrain`` is its inverse (the strictly lower
triangle of a full/tied ``raw`` is ignored and set to zero).

The loss is the negative mean log-posterior per sample,

.. math::

    \ell(u) = -\frac{1}{N}\Big(\sum_n w_n \log p(x_n \mid \theta(u))
              + \log p(\theta(u))\Big),\qquad N = \sum_n w_n,

the same function MAP-EM increases (``fit_gmm(..., prior=...)`` reports
``-loss`` as its objective), so both methods can be compared on one scale.
The prior is a density over ``theta`` (see :mod:`jaxmix.gmm.priors`), not over
``u``: no Jacobian term is added, so the optimum is the MAP point itself.
With ``prior=None`` it is the negative mean log-likelihood (maximum
likelihood, unbounded near singular covariances).

:func:`fit_gradient` runs under :func:`jaxmix.fit.driver.iterate`, like EM: one
iteration is one optimizer update (full batch) or one epoch of shuffled
mini-batches (``batch_size``), the objective of an iteration is the full-data
mean log-posterior of the parameters it started from, and ``tol`` bounds its
change, as for EM. The log-likelihood's value and gradient come from EM's own
E-step statistics (:func:`stats_log_lik`), on EM's paths: one GEMM over the
features ``phi(x)`` while that is accurate, centred distances otherwise.

>>> import jax, numpy as np, optax
>>> from jaxmix.gmm.gradient import fit_gradient
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(-5, 1, (200, 2)), rng.normal(5, 1, (200, 2))])
>>> result = fit_gradient(jax.random.PRNGKey(0), x, 2, optax.lbfgs(), prior="default")
>>> np.sort(np.asarray(result.best_params.means[:, 0])).round(0)
array([-5.,  5.], dtype=float32)
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmix.data.sharding import n_shards, place, resolve_mesh
from jaxmix.gmm.em import e_step, gemm_coefficients, gemm_is_accurate, m_step
from jaxmix.fit.driver import FitResult, iterate
from jaxmix.gmm.density import log_prob
from jaxmix.fit.gmm import prepare_fit, uncentre
from jaxmix.gmm.init import broadcast_params, initialize
from jaxmix.params import COVARIANCE_TYPES, GMMParams
from jaxmix.gmm.priors import GMMPrior, log_prior_terms
from jaxmix.data.chunked import Chunked, scan_sum
from jaxmix.validation import as_key, check_int


class Unconstrained(NamedTuple):
    """Unconstrained mixture parameters (see the module docstring).

    Attributes:
      logits: ``(k,)`` weight logits.
      means: ``(k, d)`` means.
      chol: ``precisions_cholesky``'s layout with log-diagonal (full, tied) or
        log-scales (diag, spherical).
    """

    logits: jax.Array
    means: jax.Array
    chol: jax.Array


class _Triangular:
    """Upper-triangular factor with a positive (exp) diagonal."""

    @staticmethod
    def constrain(raw):
        diag = jnp.diagonal(raw, axis1=-2, axis2=-1)
        eye = jnp.eye(raw.shape[-1], dtype=raw.dtype)
        return jnp.triu(raw, 1) + jnp.exp(diag)[..., None, :] * eye

    @staticmethod
    def unconstrain(pc):
        diag = jnp.diagonal(pc, axis1=-2, axis2=-1)
        eye = jnp.eye(pc.shape[-1], dtype=pc.dtype)
        return jnp.triu(pc, 1) + jnp.log(diag)[..., None, :] * eye


class _Positive:
    """Positive scales: ``exp(raw)``."""

    constrain = staticmethod(jnp.exp)
    unconstrain = staticmethod(jnp.log)


_TRANSFORMS = {"full": _Triangular, "tied": _Triangular, "diag": _Positive,
               "spherical": _Positive}
assert tuple(_TRANSFORMS) == COVARIANCE_TYPES


def unconstrain(params: GMMParams) -> Unconstrained:
    """Inverse of :func:`constrain` (for parameters with positive weights)."""
    t = _TRANSFORMS[params.covariance_type]
    logw = jnp.log(params.weights)
    return Unconstrained(logw - jnp.mean(logw), params.means,
                         t.unconstrain(params.precisions_cholesky))


def constrain(u: Unconstrained, covariance_type: str) -> GMMParams:
    """Valid :class:`~jaxmix.params.GMMParams` for any finite ``u``."""
    t = _TRANSFORMS[covariance_type]
    return GMMParams(jax.nn.softmax(u.logits), u.means, t.constrain(u.chol), covariance_type)


def _moment_features(sxx):
    """Second moments in the layout of ``family.quad_coefs`` (the inverse of
    ``moments_from_features``): the upper triangle of full/tied ``(k, d, d)``,
    diag ``(k, d)`` as is, spherical ``(k,)`` as ``(k, 1)``."""
    if sxx.ndim == 3:
        i, j = np.triu_indices(sxx.shape[-1])
        return sxx[:, i, j]
    return sxx[:, None] if sxx.ndim == 1 else sxx


def stats_log_lik(params: GMMParams, log_weights, data: Chunked, path: str = "exact"):
    r"""``sum_n w_n log p(x_n)`` whose value and gradient come from one E-step.

    Fisher's identity: the gradient of the log-likelihood at ``theta`` is the
    gradient at ``theta' = theta`` of the expected complete-data
    log-likelihood ``Q(theta') = sum_nk r_nk log(w'_k N(x_n | theta'_k))``,
    with ``r`` the responsibilities under ``theta``. ``Q`` is linear in the
    statistics of :mod:`jaxmix.data.chunked` (``[vech(sxx), sx, nk] . C(theta')``,
    ``C`` as in :func:`jaxmix.gmm.em.gemm_coefficients`, about the E-step's
    shift), so the backward pass costs ``O(k F)`` instead of differentiating
    through ``(n, k, d)`` intermediates, and the E-step is EM's own (either
    path). Value and gradient are exact; higher derivatives are those of
    ``Q``, not of the log-likelihood (do not take Hessians of it).
    """
    fixed = jax.lax.stop_gradient(params.replace(weights=jnp.exp(log_weights)))
    stats, shift = e_step(fixed, data, path)
    stats = jax.lax.stop_gradient(stats)
    feats = jnp.concatenate([_moment_features(stats.sxx), stats.sx, stats.nk[:, None]], -1)
    about_shift = params.replace(means=params.means - jax.lax.stop_gradient(shift),
                                 weights=jnp.ones_like(params.weights))
    q = jnp.sum(feats * gemm_coefficients(about_shift)) + jnp.sum(stats.nk * log_weights)
    return jax.lax.stop_gradient(stats.loglik - q) + q


def log_posterior_u(u: Unconstrained, covariance_type: str, data: Chunked,
                    prior: GMMPrior | None, path: str = "exact"):
    """Mean log-posterior per sample (mean log-likelihood when ``prior`` is None)
    of ``constrain(u)``, with ``log w = log_softmax(logits)`` (no underflow)."""
    params = constrain(u, covariance_type)
    log_w = jax.nn.log_softmax(u.logits)
    n = jnp.sum(data.w)
    return (stats_log_lik(params, log_w, data, path)
            + log_prior_terms(params, prior, log_w)) / n


def mean_log_posterior(params: GMMParams, data: Chunked, prior: GMMPrior | None = None):
    """The objective shared by MAP-EM and gradient fits: ``(sum_n w_n log p(x_n)
    + log_prior(params)) / sum_n w_n``; ``data`` from :func:`jaxmix.data.chunked.chunk`."""
    log_w = jnp.log(params.weights)
    n = jnp.sum(data.w)
    log_lik = scan_sum(lambda x, w, _: jnp.sum(w * log_prob(params, x)), data)
    return (log_lik + log_prior_terms(params, prior, log_w)) / n


def loss(u: Unconstrained, covariance_type: str, data: Chunked, prior: GMMPrior | None,
         path: str = "exact"):
    """Negative mean log-posterior per sample (the quantity optimisers minimise)."""
    return -log_posterior_u(u, covariance_type, data, prior, path)


# ---------------------------------------------------------------------------
# Steps for the driver


class GradientState(NamedTuple):
    """Per-restart state carried by the driver.

    Attributes:
      params: :class:`Unconstrained` parameters.
      opt_state: the optimizer's state.
      key: raw ``uint32`` key for mini-batch shuffling (unused for full batch).
    """

    params: Unconstrained
    opt_state: Any
    key: jax.Array


def _with_extra_args(optimizer):
    return optax.with_extra_args_support(optimizer)


def _stores_value_and_grad(opt_state) -> bool:
    """Line-search optimizers (e.g. ``optax.lbfgs``) keep the value and gradient
    at the accepted point; full-batch steps reuse them (one evaluation saved)."""
    return (optax.tree.get(opt_state, "value") is not None
            and optax.tree.get(opt_state, "grad") is not None)


def init_state(optimizer, u: Unconstrained, key, covariance_type: str, data: Chunked,
               prior: GMMPrior | None) -> GradientState:
    """Single-restart state; a line-search state is primed with the value and
    gradient at ``u``, so that steps can read them without a branch."""
    opt = _with_extra_args(optimizer)
    opt_state = opt.init(u)
    if _stores_value_and_grad(opt_state):
        value, grad = jax.value_and_grad(loss)(u, covariance_type, data, prior)
        opt_state = optax.tree.set(opt_state, value=value, grad=grad)
    return GradientState(u, opt_state, key)


def _update(opt, state: GradientState, value, grad, value_fn):
    updates, opt_state = opt.update(grad, state.opt_state, state.params, value=value,
                                    grad=grad, value_fn=value_fn)
    return GradientState(optax.apply_updates(state.params, updates), opt_state, state.key)


def _reject_overflow(new: GradientState, covariance_type: str, objective):
    """``objective``, or NaN when the new parameters overflow once constrained
    (e.g. ``exp`` of a diverging log-precision): the driver then marks the
    restart failed and keeps the previous, finite parameters."""
    ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in
                            jax.tree.leaves(constrain(new.params, covariance_type))]))
    return jnp.where(ok, objective, jnp.nan)


def full_batch_step(optimizer, covariance_type: str, data: Chunked, prior: GMMPrior | None,
                    path: str = "exact"):
    """``state -> (new_state, objective of state)``: one optimizer update on all data."""
    opt = _with_extra_args(optimizer)
    value_fn = functools.partial(loss, covariance_type=covariance_type, data=data, prior=prior,
                                 path=path)

    def step(state: GradientState):
        if _stores_value_and_grad(state.opt_state):
            value = optax.tree.get(state.opt_state, "value")
            grad = optax.tree.get(state.opt_state, "grad")
        else:
            value, grad = jax.value_and_grad(value_fn)(state.params)
        new = _update(opt, state, value, grad, value_fn)
        return new, _reject_overflow(new, covariance_type, -value)

    return step


def mini_batch_step(optimizer, covariance_type: str, data: Chunked, prior: GMMPrior | None,
                    path: str = "exact"):
    """``state -> (new_state, objective of state)``: one epoch over shuffled
    mini-batches (one chunk of ``data`` per batch). The objective is the full
    data's mean log-posterior at the start of the epoch."""
    opt = _with_extra_args(optimizer)
    n_batches, size = data.x.shape[:2]
    xf, wf = data.flat()
    n = jnp.sum(data.w)

    def batch_loss(u, x, w):
        # unbiased for the full loss: E[n_batches * sum_batch] = sum_all
        params = constrain(u, covariance_type)
        log_w = jax.nn.log_softmax(u.logits)
        batch = Chunked(x[None], w[None])
        return -(n_batches * stats_log_lik(params, log_w, batch, path)
                 + log_prior_terms(params, prior, log_w)) / n

    def one_batch(state: GradientState, idx):
        x, w = xf[idx], wf[idx]
        value_fn = lambda u: batch_loss(u, x, w)
        value, grad = jax.value_and_grad(value_fn)(state.params)
        return _update(opt, state, value, grad, value_fn), None

    def step(state: GradientState):
        objective = log_posterior_u(state.params, covariance_type, data, prior, path)
        key, sub = jax.random.split(state.key)
        batches = jax.random.permutation(sub, xf.shape[0]).reshape(n_batches, size)
        new, _ = jax.lax.scan(one_batch, state, batches)
        return new._replace(key=key), _reject_overflow(new, covariance_type, objective)

    return step


def batched_gradient_step(optimizer, covariance_type: str, data: Chunked,
                          prior: GMMPrior | None, mini_batch: bool = False, path: str = "auto"):
    """Restart-batched step for :func:`jaxmix.fit.driver.iterate`. ``path="auto"``
    picks, per iteration and for all restarts at once (one ``lax.cond``), the
    GEMM loss while :func:`jaxmix.gmm.em.gemm_is_accurate` holds at the current
    parameters, the exact one otherwise, as EM does."""
    make = mini_batch_step if mini_batch else full_batch_step
    if path != "auto":
        return jax.vmap(make(optimizer, covariance_type, data, prior, path))
    gemm, exact = (jax.vmap(make(optimizer, covariance_type, data, prior, p))
                   for p in ("gemm", "exact"))

    def step(states: GradientState):
        params = jax.vmap(lambda u: constrain(u, covariance_type))(states.params)
        return jax.lax.cond(gemm_is_accurate(params), gemm, exact, states)

    return step


# ---------------------------------------------------------------------------
# Entry point


def fit_gradient(key, x, n_components: int, optimizer: optax.GradientTransformation, *,
                 covariance_type: str = "full", prior=None, n_restarts: int = 1,
                 init: str = "kmeans", init_params: GMMParams | None = None, tol: float = 1e-6,
                 max_iter: int = 1000, batch_size: int | None = None,
                 chunk_size: int | None = None, sample_weight=None,
                 reg_covar: float = 1e-6, path: str = "auto", mesh=None) -> FitResult:
    """Fit a Gaussian mixture by gradient descent on the negative mean log-posterior.

    Args:
      key: ``jax.random`` key (or int seed). Initial parameters are those of
        ``fit_gmm`` with the same key and ``init`` (see ``init`` for priors);
        mini-batch shuffling uses keys derived from it.
      x: ``(n, d)`` data.
      n_components: ``k``.
      optimizer: any ``optax.GradientTransformation``. Line-search methods
        (``optax.lbfgs``) receive ``value``, ``grad`` and ``value_fn``. It is a
        static argument: reuse one instance to avoid recompiling (vary a
        learning rate with ``optax.inject_hyperparams`` instead).
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      prior: ``None`` (maximum likelihood), ``"default"`` or a
        :class:`~jaxmix.gmm.priors.GMMPrior`.
      n_restarts: ``R``, restarts run together (``vmap``).
      init: initialiser as in ``fit_gmm``; ignored when ``init_params`` is given.
        With a prior, its parameters are refitted by one MAP M-step
        (:func:`map_refit`) before the first gradient step.
      tol: stop when the mean log-posterior changes by less in one iteration.
      max_iter: iteration cap (optimizer updates, or epochs with ``batch_size``).
      batch_size: ``None`` for full-batch steps, else mini-batch size (the
        data are padded to a multiple of it with zero-weight rows).
      chunk_size: full batch only: samples per chunk of the loss (bounds memory).
      sample_weight: optional ``(n,)`` non-negative weights.
      reg_covar: used by the initialiser only (the loss has no ``reg_covar``).
      path: ``"auto"``, ``"gemm"`` or ``"exact"`` log-density in the loss (see
        :func:`batched_gradient_step` and :mod:`jaxmix.gmm.em`).
      mesh: a :class:`jax.sharding.Mesh` with a ``"data"`` axis to split the
        samples over (``None``: the mesh of ``x`` if it is placed on one, see
        :mod:`jaxmix.data.sharding`); the full-batch loss and its gradient are
        reduced across devices. Not with ``batch_size``.

    Returns:
      :class:`~jaxmix.fit.driver.FitResult`: ``params`` are ``GMMParams``,
      ``objective``/``history`` the mean log-posterior per sample (mean
      log-likelihood without a prior), ``best`` the restart with the highest.
    """
    if not (callable(getattr(optimizer, "init", None))
            and callable(getattr(optimizer, "update", None))):
        raise ValueError("optimizer must be an optax.GradientTransformation (e.g. "
                         f"optax.adam(1e-2) or optax.lbfgs()), got {type(optimizer).__name__}")
    size = batch_size if batch_size is not None else chunk_size
    if batch_size is not None:
        check_int(batch_size, "batch_size")
    mesh = resolve_mesh(mesh, x)
    if mesh is not None and batch_size is not None:
        raise ValueError("batch_size (mini-batches) cannot be combined with a mesh or sharded "
                         "x: drop batch_size for full-batch steps, or pass unsharded data")
    fit_in = prepare_fit(x, n_components, covariance_type, n_restarts, max_iter, path, init,
                         init_params, sample_weight, prior, tol, reg_covar, chunk_size=size,
                         chunk_restarts=1, shards=n_shards(mesh))
    result = _fit(_raw_key(as_key(key)), place(fit_in.data, mesh), fit_in.init_params,
                  fit_in.prior, fit_in.tol, fit_in.reg_covar, k=fit_in.k,
                  covariance_type=covariance_type,
                  n_restarts=fit_in.n_restarts, init=init, max_iter=fit_in.max_iter,
                  optimizer=optimizer, mini_batch=batch_size is not None, path=path)
    return uncentre(result, fit_in.offset)


def map_refit(params: GMMParams, data: Chunked, reg_covar, prior: GMMPrior) -> GMMParams:
    """One MAP-EM iteration from ``params``: the MAP parameters of their
    responsibilities. Gradient fits with a prior start from the initialiser's
    parameters refitted this way, so that the prior's covariance floor holds
    from the first step (a k-means start on duplicated points has covariances
    at ``reg_covar``, where the prior's gradient is ~``1 / reg_covar``)."""
    stats, shift = e_step(params, data, "exact")
    return m_step(stats, shift, reg_covar, params.covariance_type, prior)


def _raw_key(key):
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


@functools.partial(jax.jit, static_argnames=(
    "k", "covariance_type", "n_restarts", "init", "max_iter", "optimizer", "mini_batch", "path"))
def _fit(key, data, init_params, prior, tol, reg_covar, *, k, covariance_type, n_restarts,
         init, max_iter, optimizer, mini_batch, path) -> FitResult:
    dtype = data.x.dtype
    tol, reg_covar = jnp.asarray(tol, dtype), jnp.asarray(reg_covar, dtype)
    if init_params is None:
        params0 = initialize(key, data, k, covariance_type, n_restarts, init, reg_covar)
        if prior is not None:
            params0 = jax.vmap(lambda p: map_refit(p, data, reg_covar, prior))(params0)
    else:
        params0 = broadcast_params(init_params, n_restarts)
    shuffle_keys = jax.random.split(jax.random.fold_in(key, 1), n_restarts)
    state0 = jax.vmap(lambda p, kk: init_state(optimizer, unconstrain(p), kk, covariance_type,
                                               data, prior))(params0, shuffle_keys)
    step = batched_gradient_step(optimizer, covariance_type, data, prior, mini_batch, path)
    result = iterate(step, state0, tol, max_iter)
    params = jax.vmap(lambda u: constrain(u, covariance_type))(result.params.params)
    degenerate = jnp.any(params.weights * jnp.sum(data.w) < 1.0, axis=1)
    return result._replace(params=params, degenerate=degenerate)
