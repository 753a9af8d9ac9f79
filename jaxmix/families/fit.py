"""``fit_mixture``: EM (or MAP-EM) for a mixture of any component family
(:mod:`jaxmix.families.protocol`), all restarts in one compiled call, under
the library's one driver (:func:`jaxmix.fit.driver.iterate`).

>>> import numpy as np
>>> from jaxmix.families import Bernoulli, fit_mixture
>>> rng = np.random.default_rng(0)
>>> probs = np.array([[0.9, 0.9, 0.1], [0.1, 0.2, 0.9]])
>>> x = (rng.random((400, 3)) < probs[np.arange(400) % 2]).astype(np.float32)
>>> result = fit_mixture(0, x, 2, Bernoulli(), n_restarts=4)
>>> np.sort(np.asarray(result.best_params.theta[:, 0])).round(1)
array([0.1, 0.9], dtype=float32)

The objective is the mean log-likelihood per unit weight (the mean
log-posterior with a prior: Dirichlet(``prior_weights``) on the weights and
the family's conjugate prior on the components), the stopping rule and the
per-restart status those of :func:`jaxmix.fit_gmm`. Restart ``r`` starts
from ``k`` samples drawn with ``fold_in(key, r)`` (:func:`seeded_start`).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.compiling import jit
from jaxmix.data.reduce import reduce
from jaxmix.fit.buckets import component_bucket, history_bucket
from jaxmix.fit.continuation import continuation
from jaxmix.fit.driver import FitResult, iterate, raise_if_all_failed
from jaxmix.fit.inputs import placed
from jaxmix.fit.progress import session, token_arg
from jaxmix.fit.rows import cut_rows, fit_work
from jaxmix.gmm.priors import log_dirichlet
from jaxmix.families.mixture import MixtureParams
from jaxmix.validation import (as_key, check_int, check_max_iter, check_n_restarts,
                               check_nonneg, is_traced)

# Traces of the compiled fit (tests read it: restarts run in one program).
TRACE_COUNT = {"mixture": 0}


def _weights(nk, alpha, real):
    """MAP weights under a symmetric Dirichlet(``alpha``) (``alpha = 1``: ML);
    0 outside the ``real`` components."""
    top = jnp.where(real, jnp.maximum(nk + alpha - 1, 10 * jnp.finfo(nk.dtype).eps), 0)
    return top / jnp.sum(top, axis=-1, keepdims=True)


def masked(params: MixtureParams, real) -> MixtureParams:
    """A padded mixture whose components outside ``real (k_max,)`` have weight
    0 and are copies of component 0 (finite, and their prior terms known)."""
    def keep(a):
        m = real.reshape(real.shape + (1,) * (a.ndim - 1))
        return jnp.where(m, a, a[:1])
    w = jnp.where(real, params.weights, 0)
    return MixtureParams(w / jnp.sum(w), jax.tree.map(keep, params.theta))


def batched_em_step(family, data, prior, alpha, real):
    """``params_R -> (new params_R, objective of params_R)``: one pass over
    ``data`` (any placement) for every restart, then each restart's M-step;
    ``real (k_max,)``: the components that are not padding."""
    total = data.total_weight()

    def step(params: MixtureParams):
        def chunk_stats(x, w, _):
            return jax.vmap(lambda p: chunk_e_step(family, p, x, w))(params)

        nk, stats, loglik = reduce(chunk_stats, data)
        new = jax.vmap(lambda p, n, s: masked(MixtureParams(
            _weights(n, alpha, real), family.m_step(p.theta, n, s, prior)), real))(
                params, nk, stats)
        prior_terms = jax.vmap(lambda p: log_prior(family, p, prior, alpha, real))(params)
        return new, (loglik + prior_terms) / total

    return step


def chunk_e_step(family, params: MixtureParams, x, w):
    """One model's E-step on one chunk: ``(nk (k,), the family's statistics,
    sum_n w_n log p(x_n))`` (additive over chunks)."""
    lp = jnp.log(params.weights) + family.log_prob(params.theta, x)
    ll = jax.nn.logsumexp(lp, axis=1)
    r = jnp.exp(lp - ll[:, None]) * w[:, None]
    return jnp.sum(r, axis=0), family.stats(params.theta, x, r), jnp.sum(w * ll)


def log_prior(family, params: MixtureParams, prior, alpha, real):
    """The prior's log-density over the ``real`` components (0 without a
    prior): the normalised Dirichlet(``alpha``) of the weights, as
    :func:`jaxmix.fit_gmm`'s, and the family's. Padding components are copies
    of component 0 and the family's prior a sum of per-component terms, so
    theirs is taken off as that many times component 0's."""
    if prior is None:
        return jnp.zeros((), params.weights.dtype)
    # log of 1 off the real components: no inf in the unselected branch (its gradient)
    dirichlet = log_dirichlet(jnp.log(jnp.where(real, params.weights, 1)), alpha, real)
    first = jax.tree.map(lambda a: a[:1], params.theta)
    padding = jnp.sum(~real).astype(params.weights.dtype)
    return (dirichlet + family.log_prior(params.theta, prior)
            - padding * family.log_prior(first, prior))


def seeded_start(family, key, xs, ws, k: int) -> MixtureParams:
    """Equal weights and ``k`` components, each the maximum-likelihood
    component of one sample drawn (distinct, by weight) and one pseudo-sample
    at the data's mean statistics: seeds from the data that start apart
    (random responsibilities would start every component at the mean, a
    fixed point of EM), for any family, from its own statistics. The first
    ``j`` seeds of ``k`` are those of ``j`` (so padding changes nothing)."""
    p = ws / jnp.sum(ws)
    seeds = jax.random.choice(key, xs.shape[0], (k,), replace=False, p=p)
    onehot = jnp.zeros((xs.shape[0], k), xs.dtype).at[seeds, jnp.arange(k)].set(1.0)
    every = ws[:, None] * jnp.ones((1, k), xs.dtype) / jnp.sum(ws)  # the mean pseudo-sample

    def seeded(theta):
        stats = jax.tree.map(jnp.add, family.stats(theta, xs, onehot),
                             family.stats(theta, xs, every))
        return family.m_step(theta, jnp.full((k,), 2.0, xs.dtype), stats, None)
    theta = seeded(None)
    if getattr(family, "recentre", None) is not None:
        # centred families: statistics about zero cancel in float32 far from
        # the origin; a second pass takes them about the first pass's means
        theta = seeded(theta)
    return MixtureParams(jnp.full((k,), 1.0 / k, xs.dtype), theta)


def check_init(params, family, k: int, d: int, dtype, n_restarts: int | None = None):
    """``params`` as arrays of ``dtype``: weights ``(k,)`` positive and summing
    to one, finite component leaves of the shapes the family's own M-step
    gives for ``k`` components on ``d`` columns; or ``n_restarts`` of them
    along a leading axis."""
    from jaxmix.families.spec import theta_shapes

    if params is None:
        return None
    if not isinstance(params, MixtureParams):
        raise ValueError(f"init_params must be MixtureParams, got {type(params).__name__}")
    w = np.asarray(params.weights, dtype)
    lead = w.shape[:-1]
    if lead not in ((), (n_restarts,)):
        raise ValueError(f"init_params holds {lead[0]} restarts' parameters but n_restarts="
                         f"{n_restarts}; give one model, or one per restart")
    if w.shape[-1:] != (k,) or not np.all(w > 0) or np.any(np.abs(w.sum(-1) - 1) > 1e-4):
        raise ValueError(f"init_params.weights must be {k} positive numbers summing to 1, got {w}")
    expected = jax.tree.map(lambda e: jax.ShapeDtypeStruct(lead + e.shape, e.dtype),
                            theta_shapes(family, k, d, dtype))
    try:
        theta = jax.tree.map(lambda a, e: np.asarray(a, dtype), params.theta, expected)
        same = jax.tree.leaves(jax.tree.map(lambda a, e: a.shape == e.shape, theta, expected))
    except (ValueError, TypeError):
        same = [False]
    if not all(same):
        raise ValueError(f"init_params.theta must be shaped as {expected} for this family, k and "
                         "d")
    if not all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(theta)):
        raise ValueError("init_params.theta must be finite")
    return MixtureParams(jnp.asarray(w), jax.tree.map(jnp.asarray, theta))


class Settings(NamedTuple):
    """A family fit's checked settings (:func:`prepared`)."""
    key: jax.Array
    k: int
    n_restarts: int
    max_iter: int
    tol: float
    alpha: float
    prior: object
    init_params: object


@contextlib.contextmanager
def prepared(key, x, n_components, family, n_restarts, max_iter, tol, prior_weights, prior,
             sample_weight, chunk_size, init_params, mesh):
    """Checks and the one input pipeline (not centred) shared by the family
    fits; yields ``(Settings, data, initialiser's sample)`` after checking
    that every row of every chunk lies in the family's support."""
    key = as_key(key)
    n_restarts, max_iter = check_n_restarts(n_restarts), check_max_iter(max_iter)
    k = check_int(n_components, "n_components")
    tol = check_nonneg(tol, "tol")
    alpha = check_nonneg(prior_weights, "prior_weights", strict=True)
    # per-component rows per sample, of the padded program (a k of the same
    # bucket must give the same chunks, or it compiles again)
    width = lambda d: n_restarts * component_bucket(k) * (d + 1)  # noqa: E731
    with placed(key, x, k, row_elements=width, chunk_size=chunk_size,
                sample_weight=sample_weight, mesh=mesh, centring=False) as inp:
        xs, ws = inp.sample.flat()
        if isinstance(prior, str):
            if prior != "default":
                raise ValueError(f"prior must be None, 'default' or the family's prior, got "
                                 f"{prior!r}")
            prior = family.default_prior(xs, ws, k)
        outside = _outside(inp.data, family=family)
        if not is_traced(outside) and int(outside) > 0:
            raise ValueError(f"X: {int(outside)} row(s) lie outside the {family.name} family's "
                             f"support ({family.support}); transform them first")
        init_params = check_init(init_params, family, k, inp.n_features, xs.dtype, n_restarts)
        yield (Settings(key, k, n_restarts, max_iter, tol, alpha, prior, init_params),
               inp.data, inp.sample)


@jit(static_argnames=("family",))
def _outside(data, *, family):
    """Rows of positive weight outside ``family``'s support, over every chunk."""
    return reduce(lambda x, w, _: jnp.sum((w > 0) & ~family.in_support(x)), data)


def fit_mixture(key, x, n_components: int, family, *, n_restarts: int = 1, prior=None,
                tol: float = 1e-3, max_iter: int = 100, sample_weight=None,
                chunk_size: int | None = None, prior_weights: float = 1.0,
                init_params: MixtureParams | None = None, mesh=None,
                callback=None) -> FitResult:
    """Fit a mixture of ``family`` components by EM from ``n_restarts`` starts.

    Args:
      key: ``jax.random`` key or int seed.
      x: ``(n, d)`` data in the family's support (checked in one pass): an
        array (possibly sharded over ``mesh``) or a chunk source, as in
        :func:`jaxmix.fit_gmm` (the data are not centred).
      n_components: ``k``.
      family: a component family, e.g. :class:`~jaxmix.families.Bernoulli`.
      n_restarts, tol, max_iter, sample_weight, chunk_size, mesh: as in
        :func:`jaxmix.fit_gmm`.
      prior: ``None`` (maximum likelihood), ``"default"`` (the family's weak
        conjugate prior from the initialiser's sample) or the family's prior.
      prior_weights: ``alpha`` of the symmetric Dirichlet prior on the
        weights when ``prior`` is given (1: flat).
      init_params: one :class:`~jaxmix.families.MixtureParams` every restart
        starts from, one per restart (a leading ``R`` axis), or a
        ``FitResult`` whose restarts this fit continues (see
        :mod:`jaxmix.fit.continuation`); else :func:`seeded_start`.
      callback: optional ``callback(Progress)`` after every iteration
        (:mod:`jaxmix.fit.progress`; ``None``: none in the compiled program).

    Returns:
      :class:`~jaxmix.fit.driver.FitResult` whose params are
      :class:`~jaxmix.families.MixtureParams` with a leading restart axis.
    """
    return run_fit(_fit, "check the data and the prior", key, x, n_components, family,
                   n_restarts, max_iter, tol, prior_weights, prior, sample_weight, chunk_size,
                   init_params, mesh, callback)


def run_fit(program, fix: str, key, x, n_components, family, n_restarts, max_iter, tol,
            prior_weights, prior, sample_weight, chunk_size, init_params, mesh, callback,
            **static) -> FitResult:
    """A family fit's one entry: checks and placement (:func:`prepared`), a
    continued ``FitResult`` unpacked, the callback's session, the compiled
    ``program`` (``_fit`` of EM or of the gradient fits, ``static`` its own
    static arguments), the padding cut off; ``fix`` says what to change when
    every restart failed."""
    init_params, n_restarts, objective0 = continuation(init_params, n_restarts, None)
    with prepared(key, x, n_components, family, n_restarts, max_iter, tol, prior_weights,
                  prior, sample_weight, chunk_size, init_params, mesh) as (s, data, sample), \
            session(callback, s.n_restarts, is_traced(key, x)) as token:
        result = jax.block_until_ready(program(
            s.key, data, sample, s.prior, s.tol, s.max_iter, s.alpha, s.init_params,
            np.int32(s.k), token_arg(token), objective0, family=family,
            k_max=component_bucket(s.k), n_restarts=s.n_restarts,
            history=history_bucket(s.max_iter), **static))
    return raise_if_all_failed(cut_real(result, s), fix)


def cut_real(result: FitResult, s: Settings) -> FitResult:
    """A padded fit's result cut to its restarts, iterations and ``k`` components."""
    return cut_rows(result, s.n_restarts, s.max_iter,
                    lambda p: jax.tree.map(lambda a: a[:, :s.k], p))


def family_work(key, data, *_, k_max, n_restarts, **__):
    """A family fit's work per pass (:func:`jaxmix.compiling.jit`), counted
    as for dense statistics (``d`` per sample-component): an upper bound."""
    return fit_work(data, n_restarts, k_max, dense=True)


@jit(static_argnames=("family", "k_max", "n_restarts", "history"), work=family_work)
def _fit(key, data, sample, prior, tol, max_iter, alpha, init_params, k, progress,
         objective0=None, *, family, k_max, n_restarts, history):
    """EM on ``k`` (traced) real components padded to ``k_max``: every k of a
    bucket (:func:`jaxmix.fit.buckets.component_bucket`) shares one program."""
    TRACE_COUNT["mixture"] += 1
    dtype = sample.x.dtype
    alpha = jnp.asarray(alpha, dtype)
    real = jnp.arange(k_max) < k
    params0 = starts(key, sample, init_params, family, k_max, real, n_restarts)
    result = iterate(batched_em_step(family, data, prior, alpha, real), params0,
                     jnp.asarray(tol, dtype), max_iter, history_len=history,
                     progress=progress, objective0=objective0)
    return result._replace(degenerate=degenerate(family, result.params, data.total_weight(),
                                                 real))


def starts(key, sample, init_params, family, k_max: int, real, n_restarts: int):
    """Every restart's start, padded to ``k_max`` components (``real``): the
    padded ``init_params`` broadcast, or :func:`seeded_start` with
    ``fold_in(key, r)`` (the same for EM and gradient fits)."""
    if init_params is not None:
        pad = lambda a: jnp.concatenate(  # noqa: E731
            [a, jnp.repeat(a[:1], k_max - a.shape[0], axis=0)])

        def padded(p):
            return masked(MixtureParams(pad(p.weights), jax.tree.map(pad, p.theta)), real)
        if init_params.weights.ndim == 2:  # one per restart
            return jax.vmap(padded)(init_params)
        return jax.tree.map(lambda a: jnp.broadcast_to(a, (n_restarts,) + a.shape),
                            padded(init_params))
    xs, ws = sample.flat()
    return jax.vmap(lambda r: masked(seeded_start(family, jax.random.fold_in(key, r), xs, ws,
                                                  k_max), real))(jnp.arange(n_restarts))


def degenerate(family, params: MixtureParams, total, real):
    """``(R,)``: a real component with less than one sample's weight, or
    collapsed by the family's own test (``family.degenerate``, where it has one)."""
    low = params.weights * total < 1.0
    own = getattr(family, "degenerate", None)
    if own is not None:
        low = low | jax.vmap(own)(params.theta)
    return jnp.any(low & real, axis=-1)
