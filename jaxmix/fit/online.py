r"""Online (stepwise) EM: one pass over a stream, an M-step after every chunk.

Cappé & Moulines (2009): the running statistics per unit weight ``s`` move
towards those of each new chunk, taken under the current parameters,

.. math::

    s_t = (1 - \rho_t)\, s_{t-1} + \rho_t\, \hat s_t, \qquad
    \theta_t = M(s_t), \qquad
    \rho_t = (t + t_0)^{-\kappa},\ \kappa \in (1/2, 1]

with :math:`\rho_0 = 1` (the first chunk's statistics start the average). The
chunk statistics are :func:`jaxmix.gmm.stats.e_step`'s (exact path) and the update is
:func:`jaxmix.gmm.update.m_step`. Statistics are kept centred: taken about the
current means, and moved to the new means after each M-step
(:func:`jaxmix.gmm.update.shift_stats`), so no raw second moments are ever formed.

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

from jaxmix.compiling import jit
from jaxmix.data.chunked import chunk
from jaxmix.data.source import Layout, check_chunk, open_source, pad
from jaxmix.fit.driver import FitResult, raise_if_all_failed
from jaxmix.fit.rows import restart_rows
from jaxmix.kmeans.init import local_trials
from jaxmix.fit.gmm import DEGENERATE_FIX, check_settings, checked_inputs, starting_params
from jaxmix.fit.inputs import placed, uncentre
from jaxmix.gmm.stats import GMMStats, e_step, row_elements
from jaxmix.gmm.step import degenerate_restarts, stepwise_em_step
from jaxmix.params import GMMParams
from jaxmix.validation import as_key, check_int, check_nonneg

# Default rows per chunk (per update) of array sources.
ONLINE_CHUNK_SIZE = 2048


_step = jit(stepwise_em_step)
_initial = jit(starting_params, static_argnames=("k_max", "covariance_type", "init",
                                                     "max_trials", "per_k"))


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
      source: as :func:`jaxmix.fit_gmm` (a chunk source), or a one-shot iterator
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
    kappa, t0 = check_steps(step_exponent, step_offset)
    src, size, pieces, x0, w0 = open_pass(source, sample_weight, chunk_size, n_components)
    key = as_key(key)
    s = check_settings(n_components, covariance_type, 1, 1, 0.0, reg_covar, "exact", init,
                       init_params)
    width = lambda d: row_elements(1, s.k, d)  # noqa: E731
    with placed(key, x0, s.k, row_elements=width, chunk_size=len(x0),
                sample_weight=w0) as inp:
        init_params, _ = checked_inputs(s, inp, init_params, None)
        params = jax.tree.map(lambda a: a[0], _initial(
            key, restart_rows([s.k], 1, n_rows=1), inp.sample, init_params, inp.offset,
            jnp.asarray(s.reg_covar, inp.sample.dtype), k_max=s.k,
            covariance_type=covariance_type, init=init, max_trials=local_trials(s.k),
            per_k=False))
    layout = Layout(size or len(x0), x0.shape[1], inp.sample.dtype.name)
    result = _run(params, itertools.chain([(0, (x0, w0))], pieces), layout, inp.offset,
                  s.reg_covar, src.name, kappa, t0)
    return raise_if_all_failed(uncentre(result, inp.offset), DEGENERATE_FIX)


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


def _run(params, pieces, layout: Layout, offset, reg_covar, name, kappa, t0) -> FitResult:
    """The Gaussian-mixture pass: :func:`stream_pass` of the stepwise-EM step."""
    reg_covar = jnp.asarray(reg_covar, layout.dtype)

    def step(state, x, w, rho, _):
        params, running, loglik, ok = _step(*state, x - offset, w, rho, reg_covar)
        return (params, running), loglik, ok

    (params, _), history, oks, total = stream_pass(step, (params, _zero_stats(params)), pieces,
                                                   layout, name, kappa, t0)
    batched = jax.tree.map(lambda a: a[None], params)
    return online_result(batched, history, oks, degenerate_restarts(
        batched, jnp.asarray(total, layout.dtype), reg_covar))


def stream_pass(step, state, pieces, layout: Layout, name, kappa, t0):
    """One pass of stepwise EM: validate and pad each chunk, then
    ``step(state, x, w, rho, total weight so far) -> (state, chunk's mean
    log-likelihood, ok)``. Returns ``(state, history, oks, total weight)``."""
    history, oks, first_row, total = [], [], 0, 0.0
    for i, (x, w) in pieces:
        check_chunk(x, w, i, layout.n_features, first_row, name, layout.dtype)
        first_row += x.shape[0]
        if w is not None and not np.any(w > 0):
            continue  # nothing to learn from an all-zero-weight chunk
        total += float(x.shape[0] if w is None else np.sum(w, dtype=np.float64))
        xp, wp = pad(x, w, layout)
        rho = jnp.asarray(step_sizes(len(history), kappa, t0), layout.dtype)
        state, loglik, ok = step(state, xp, wp, rho, jnp.asarray(total, layout.dtype))
        history.append(loglik)
        oks.append(ok)
    return state, history, oks, total


def online_result(batched, history, oks, degenerate) -> FitResult:
    """The one-restart :class:`FitResult` of a pass (see :func:`fit_gmm_online`)."""
    history = jnp.stack(history)[None]
    tail = history[:, -max(1, history.shape[1] // 10):]
    failed = ~jnp.all(jnp.stack(oks))[None]
    return FitResult(batched, jnp.mean(tail, axis=1), jnp.asarray([history.shape[1]], jnp.int32),
                     jnp.zeros((1,), bool), failed, degenerate, history,
                     jnp.asarray(0, jnp.int32), stalled=jnp.zeros((1,), bool),
                     n_evals=jnp.asarray([history.shape[1]], jnp.int32),
                     n_grads=jnp.zeros((1,), jnp.int32))


def check_steps(step_exponent, step_offset):
    """``(kappa, t0)`` checked: ``kappa`` in ``(0.5, 1]``, ``t0 >= 0``."""
    kappa = check_nonneg(step_exponent, "step_exponent")
    if not 0.5 < kappa <= 1.0:
        raise ValueError(f"step_exponent must be in (0.5, 1] for stepwise EM to converge, "
                         f"got {step_exponent}")
    return kappa, check_nonneg(step_offset, "step_offset")


def open_pass(source, sample_weight, chunk_size, k: int):
    """``(source, chunk size or None, enumerated pieces, first x, first w)``
    of a one-pass fit (array sources default to ``ONLINE_CHUNK_SIZE`` rows)."""
    src = open_source(source, sample_weight, single_pass=True)
    size = None if chunk_size is None else check_int(chunk_size, "chunk_size")
    if size is None and not src.sequential:
        size = ONLINE_CHUNK_SIZE
    pieces = enumerate(src.pieces(size))
    x0, w0 = _first_chunk(pieces, src.name, k)
    return src, size, pieces, x0, w0


def _zero_stats(params: GMMParams) -> GMMStats:
    """Zero statistics shaped as an E-step's for ``params``."""
    dtype = params.means.dtype
    probe = chunk(jnp.zeros((1, params.means.shape[-1]), dtype))
    shapes = jax.eval_shape(lambda p: e_step(p, probe, "exact"), params)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes).about(params.means)
