r"""Online (stepwise) EM: one pass over a stream, an M-step after every chunk.

Cappé & Moulines (2009): the running statistics per unit weight ``s`` move
towards those of each new chunk, taken under the current parameters,

.. math::

    s_t = (1 - \rho_t)\, s_{t-1} + \rho_t\, \hat s_t, \qquad
    \theta_t = M(s_t), \qquad
    \rho_t = (t + t_0)^{-\kappa},\ \kappa \in (1/2, 1]

with :math:`\rho_0 = 1` (the first chunk's statistics start the average). The
chunk statistics are :func:`jaxmix.gmm.em.e_step`'s (exact path) and the update is
:func:`jaxmix.gmm.em.m_step`. Statistics are kept centred: taken about the
current means, and moved to the new means after each M-step
(:func:`shift_stats`), so no raw second moments are ever formed.

The source is read once, so it may also be a one-shot iterator; its first
chunk centres the data and initialises the parameters (``init`` on it).

>>> import numpy as np
>>> from jaxmix.fit.online import fit_gmm_online
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(20000, 2)) + np.where(rng.random((20000, 1)) < 0.5, -5, 5)
>>> result = fit_gmm_online(0, x, 2, chunk_size=500)
>>> np.sort(np.asarray(result.best_params.means[:, 0])).round(0).tolist()
[-5.0, 5.0]
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.gmm.covariance import family
from jaxmix.gmm.em import e_step, m_step
from jaxmix.fit.driver import FitResult
from jaxmix.fit.gmm import degenerate_restarts, prepare_fit, uncentre
from jaxmix.params import GMMParams
from jaxmix.data.chunked import Chunked, GMMStats
from jaxmix.numerics import eps
from jaxmix.data.stream import _initial_params
from jaxmix.data.source import Layout, check_chunk, open_source, pad
from jaxmix.validation import as_key, check_int, check_nonneg, float_dtype

# Default rows per chunk (per update) of array sources.
ONLINE_CHUNK_SIZE = 2048


def shift_stats(stats: GMMStats, old, new, covariance_type: str) -> GMMStats:
    """Statistics about ``old`` ``(k, d)`` re-expressed about ``new``.

    With ``u = old - new``: ``sx' = sx + nk u`` and ``sxx' = sxx + sx u^T +
    u sx^T + nk u u^T``, written as ``scatter(1/nk, sx + nk u) - scatter(1/nk,
    sx)`` so that every covariance family's own ``scatter`` gives its layout.
    """
    fam = family(covariance_type)
    u = old - new
    nk = stats.nk + 10 * eps(stats.nk.dtype)
    inv = (1.0 / nk)[None]
    moved = stats.sx + nk[:, None] * u
    sxx = stats.sxx + fam.scatter(inv, moved[None]) - fam.scatter(inv, stats.sx[None])
    return GMMStats(stats.nk, moved, sxx, stats.loglik)


@jax.jit
def online_step(params: GMMParams, running: GMMStats, x, w, rho, offset, reg_covar):
    """One stepwise-EM update on chunk ``x (m, d)``, ``w (m,)`` (uncentred).

    Returns ``(params, running statistics about their means, the chunk's mean
    log-likelihood under the old params, ok)``; when the update is not
    finite the old state is kept and ``ok`` is False.
    """
    chunk_stats, shift = e_step(params, Chunked((x - offset)[None], w[None]), "exact")
    per_unit = jax.tree.map(lambda a: a / jnp.sum(w), chunk_stats)
    blended = jax.tree.map(lambda s, c: (1 - rho) * s + rho * c, running, per_unit)
    new = m_step(blended, shift, reg_covar, params.covariance_type)
    moved = shift_stats(blended, shift, new.means, params.covariance_type)
    ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves((new, moved))]))
    keep = lambda a, b: jnp.where(ok, a, b)
    return (jax.tree.map(keep, new, params), jax.tree.map(keep, moved, running),
            per_unit.loglik, ok)


def step_sizes(t: int, exponent: float, offset: float) -> float:
    """``rho_t``: 1 for the first chunk, then ``(t + offset)^(-exponent)``.

    >>> [round(step_sizes(t, 0.6, 2.0), 3) for t in range(4)]
    [1.0, 0.517, 0.435, 0.381]
    """
    return 1.0 if t == 0 else float((t + offset) ** -exponent)


def fit_gmm_online(key, source, n_components: int, *, covariance_type: str = "full",
                   init: str = "kmeans", init_params: GMMParams | None = None,
                   reg_covar: float = 1e-6, chunk_size: int | None = None, sample_weight=None,
                   step_exponent: float = 0.6, step_offset: float = 2.0) -> FitResult:
    """Online EM in one pass over ``source`` (maximum likelihood).

    Args:
      key: ``jax.random`` key (or int seed) of the initialiser.
      source: as :func:`jaxmix.data.stream.fit_gmm_stream`, or a one-shot iterator
        of chunks ``x`` / ``(x, sample_weight)``.
      n_components, covariance_type, init, init_params, reg_covar: as
        :func:`jaxmix.fit_gmm` (``init`` runs on the first chunk).
      chunk_size: rows per update (array sources: default
        ``ONLINE_CHUNK_SIZE``; iterables: default their first chunk's length,
        longer chunks are cut).
      sample_weight: ``(n,)`` weights of an array source.
      step_exponent: ``kappa`` in ``(0.5, 1]``; step_offset: ``t0 >= 0``.

    Returns:
      :class:`~jaxmix.fit.driver.FitResult` with one restart: ``history`` holds each
      chunk's mean log-likelihood under the parameters before its update
      (progressive validation), ``objective`` the mean of the last tenth of
      them, ``n_iter`` the number of updates; ``converged`` is False (one
      pass has no convergence test) and ``failed`` flags a non-finite update
      (the previous parameters were kept).
    """
    kappa = check_nonneg(step_exponent, "step_exponent")
    if not 0.5 < kappa <= 1.0:
        raise ValueError(f"step_exponent must be in (0.5, 1] for stepwise EM to converge, "
                         f"got {step_exponent}")
    t0 = check_nonneg(step_offset, "step_offset")
    src = open_source(source, sample_weight, single_pass=True)
    size = None if chunk_size is None else check_int(chunk_size, "chunk_size")
    if size is None and not src.sequential:
        size = ONLINE_CHUNK_SIZE
    pieces = enumerate(src.pieces(size))
    x0, w0 = _first_chunk(pieces, src.name, n_components)
    fit_in = prepare_fit(x0, n_components, covariance_type, 1, 1, "exact", init, init_params,
                         w0, None, 0.0, reg_covar, chunk_size=len(x0))
    layout = Layout(size or len(x0), x0.shape[1], float_dtype(x0.dtype).name)
    params = jax.tree.map(lambda a: a[0], _initial_params(
        as_key(key), fit_in.data, fit_in.init_params, fit_in.reg_covar, k=fit_in.k,
        covariance_type=covariance_type, n_restarts=1, init=init))
    result = _run(params, itertools.chain([(0, (x0, w0))], pieces), layout, fit_in, src.name,
                  kappa, t0)
    return uncentre(result, fit_in.offset)


def _first_chunk(pieces, name, k):
    try:
        _, (x, w) = next(pieces)
    except StopIteration:
        raise ValueError(f"{name} yielded no chunks") from None
    check_chunk(x, w, 0, None, 0, name)
    if x.shape[0] < k:
        raise ValueError(f"the first chunk of {name} has {x.shape[0]} rows; it initialises the "
                         f"fit and needs at least n_components={k}")
    return x, w


def _run(params, pieces, layout: Layout, fit_in, name, kappa, t0) -> FitResult:
    """The pass: validate, pad and apply each chunk; collect the history."""
    dtype = layout.dtype
    running = _zero_stats(params)
    reg_covar = jnp.asarray(fit_in.reg_covar, dtype)
    history, oks, first_row, total = [], [], 0, 0.0
    for i, (x, w) in pieces:
        check_chunk(x, w, i, layout.n_features, first_row, name)
        first_row += x.shape[0]
        if w is not None and not np.any(w > 0):
            continue  # nothing to learn from an all-zero-weight chunk
        total += float(x.shape[0] if w is None else np.sum(w, dtype=np.float64))
        xp, wp = pad(x, w, layout)
        params, running, loglik, ok = online_step(params, running, xp, wp,
                                                  jnp.asarray(step_sizes(len(history), kappa, t0),
                                                              dtype), fit_in.offset, reg_covar)
        history.append(loglik)
        oks.append(ok)
    history = jnp.stack(history)[None]
    tail = history[:, -max(1, history.shape[1] // 10):]
    failed = ~jnp.all(jnp.stack(oks))[None]
    batched = jax.tree.map(lambda a: a[None], params)
    return FitResult(batched, jnp.mean(tail, axis=1), jnp.asarray([history.shape[1]], jnp.int32),
                     jnp.zeros((1,), bool), failed,
                     degenerate_restarts(batched, jnp.asarray(total, dtype), reg_covar),
                     history, jnp.asarray(0, jnp.int32))


def _zero_stats(params: GMMParams) -> GMMStats:
    """Zero statistics shaped as an E-step's for ``params``."""
    dtype = params.means.dtype
    probe = Chunked(jnp.zeros((1, 1, params.means.shape[-1]), dtype), jnp.zeros((1, 1), dtype))
    shapes = jax.eval_shape(lambda p: e_step(p, probe, "exact")[0], params)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
