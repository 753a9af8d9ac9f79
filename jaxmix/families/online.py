r"""Online (stepwise) EM for any component family: one pass over a stream.

Cappé & Moulines's (2009) update of :mod:`jaxmix.fit.online`, on the
family's own statistics: the running statistics per unit weight ``s`` move
towards each chunk's, taken under the current mixture,
``s_t = (1 - rho_t) s_{t-1} + rho_t \hat s_t``, and the M-step runs on
``N_t s_t`` (``N_t`` the weight seen so far), so a prior weighs against the
data seen so far (without a prior the M-step does not depend on the scale).
Families whose statistics are taken about their current components
(centred Gaussians, Student-t) re-express the running statistics about the
new components after each M-step (their ``recentre``, see
:mod:`jaxmix.families.protocol`).

The start is the best of ``init_restarts`` batch EM fits on the first chunk
(:func:`~jaxmix.families.fit_mixture` from the same key, prior and
``max_iter=100``): one pass cannot leave the basin it starts in, and the
first chunk's own EM finds a far better one than a seeded start (on 20,000
planted Gaussian rows in chunks of 500, seeded starts ended 0.05-0.3 nats per
sample below batch EM, the first chunk's EM within 7e-4). Every chunk's rows
are checked against the family's support before they update anything.

>>> import numpy as np
>>> from jaxmix.families import Poisson, fit_mixture_online
>>> rng = np.random.default_rng(0)
>>> x = rng.poisson(np.where(np.arange(20000)[:, None] % 2, 2.0, 9.0), (20000, 1)).astype(float)
>>> result = fit_mixture_online(0, x, 2, Poisson(), chunk_size=500)
>>> np.sort(np.asarray(result.best_params.theta[:, 0])).round(0)
array([2., 9.], dtype=float32)
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.compiling import jit
from jaxmix.data.source import Layout, check_chunk
from jaxmix.families.fit import _weights, check_init, chunk_e_step, degenerate, fit_mixture
from jaxmix.families.mixture import MixtureParams
from jaxmix.families.protocol import recentred
from jaxmix.fit.driver import raise_if_all_failed
from jaxmix.fit.online import check_steps, online_result, open_pass, stream_pass
from jaxmix.numerics import all_finite, float_dtype
from jaxmix.validation import check_int, check_nonneg


def fit_mixture_online(key, source, n_components: int, family, *, prior=None,
                       prior_weights: float = 1.0, init_params: MixtureParams | None = None,
                       init_restarts: int = 4, chunk_size: int | None = None, sample_weight=None,
                       step_exponent: float = 0.6, step_offset: float = 2.0):
    """Stepwise EM for a mixture of ``family`` components in one pass over ``source``.

    Args:
      key: ``jax.random`` key or int seed of the start.
      source: as :func:`jaxmix.fit_gmm_online` (an array, a chunk source, or a
        one-shot iterator of chunks ``x`` / ``(x, sample_weight)``).
      n_components: ``k``; family: the component family.
      prior: ``None`` (maximum likelihood), ``"default"`` (the family's prior
        from the first chunk) or the family's prior; prior_weights: the
        Dirichlet's ``alpha`` with a prior.
      init_params: a :class:`~jaxmix.families.MixtureParams` to start from
        (else the best of ``init_restarts`` EM fits on the first chunk).
      chunk_size, sample_weight, step_exponent, step_offset: as
        :func:`jaxmix.fit_gmm_online`.

    Returns:
      :class:`~jaxmix.fit.driver.FitResult` with one restart, as
      :func:`jaxmix.fit_gmm_online`'s (``history``: each chunk's mean
      log-likelihood before its update).
    """
    kappa, t0 = check_steps(step_exponent, step_offset)
    alpha = check_nonneg(prior_weights, "prior_weights", strict=True)
    init_restarts = check_int(init_restarts, "init_restarts", low=1)
    src, size, pieces, x0, w0 = open_pass(source, sample_weight, chunk_size, n_components)
    check_chunk(x0, w0, 0, None, 0, src.name)
    dtype = np.dtype(float_dtype(x0.dtype))
    layout = Layout(size or len(x0), x0.shape[1], dtype.name)
    xs = jnp.asarray(x0, dtype)
    ws = jnp.ones((len(x0),), dtype) if w0 is None else jnp.asarray(w0, dtype)
    if isinstance(prior, str):
        if prior != "default":
            raise ValueError(f"prior must be None, 'default' or the family's prior, got {prior!r}")
        prior = family.default_prior(xs, ws, n_components)
    start = check_init(init_params, family, n_components, x0.shape[1], dtype, 1)
    if start is None:
        start = fit_mixture(key, xs, n_components, family, n_restarts=init_restarts,
                            prior=prior, prior_weights=prior_weights, sample_weight=ws,
                            max_iter=100).best_params
    alpha = jnp.asarray(alpha, dtype)

    def step(state, x, w, rho, total):
        params, running, outside, loglik, ok = _step(*state, x, w, rho, total, prior, alpha,
                                                     family=family)
        if int(outside):
            raise ValueError(f"{src.name}: {int(outside)} row(s) of a chunk lie outside the "
                             f"{family.name} family's support ({family.support}); transform "
                             "them first")
        return (params, running), loglik, ok

    (params, _), history, oks, total = stream_pass(
        step, (start, _zero_stats(family, start, layout)), itertools.chain([(0, (x0, w0))], pieces), layout, src.name,
        kappa, t0)
    batched = jax.tree.map(lambda a: a[None], params)
    result = online_result(batched, history, oks, degenerate(
        family, batched, jnp.asarray(total, dtype), jnp.ones((n_components,), bool)))
    return raise_if_all_failed(result, "check the data and the prior")


@jit(static_argnames=("family",))
def _step(params: MixtureParams, running, x, w, rho, total, prior, alpha, *, family):
    """One stepwise update on a padded chunk: ``(params, running statistics
    about the new components, rows outside the support, the chunk's mean
    log-likelihood under the old params, ok)``; a non-finite update keeps
    the old state (``ok`` False). The first chunk has ``rho = 1`` (its
    statistics replace the zeros it starts from)."""
    outside = jnp.sum((w > 0) & ~family.in_support(x))
    nk, stats, loglik = chunk_e_step(family, params, x, w)
    per_unit = jax.tree.map(lambda a: a / jnp.sum(w), (nk, stats))
    blended = jax.tree.map(lambda s, c: (1 - rho) * s + rho * c, running, per_unit)
    nk, stats = jax.tree.map(lambda a: a * total, blended)
    new = MixtureParams(_weights(nk, alpha, True),
                        family.m_step(params.theta, nk, stats, prior))
    moved = (blended[0], recentred(family, blended[1], blended[0], params.theta, new.theta))
    ok = all_finite((new, moved)) & (outside == 0)
    keep = lambda a, b: jnp.where(ok, a, b)  # noqa: E731
    return (jax.tree.map(keep, new, params), jax.tree.map(keep, moved, running), outside,
            loglik / jnp.sum(w), ok)


def _zero_stats(family, params: MixtureParams, layout: Layout):
    """Zeros shaped as ``(nk, family statistics)`` of one chunk."""
    def shapes():
        x = jnp.zeros((1, layout.n_features), layout.dtype)
        r = jnp.zeros((1, params.weights.shape[0]), layout.dtype)
        return jnp.sum(r, axis=0), family.stats(params.theta, x, r)
    return jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(shapes))
