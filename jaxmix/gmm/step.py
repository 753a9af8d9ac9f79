"""The EM step for Gaussian mixtures (maximum likelihood or MAP), for any
data placement and any number of restarts, and the degeneracy test of its
result.

:func:`batched_em_step` is the only EM step of the library: the in-memory,
device-sharded and streamed fits, ``select_k``'s padded grid and the
single-model :func:`em_step` all run it. :func:`stepwise_em_step` is online
EM's step (Cappé & Moulines 2009), on one chunk at a time. One pass over the data computes
every restart's statistics (:func:`jaxmix.gmm.stats.batched_e_step`), then
each restart's M-step (:mod:`jaxmix.gmm.update`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmix.data.chunked import one_chunk
from jaxmix.gmm.covariance import family
from jaxmix.gmm.frozen import hold_params, hold_stats
from jaxmix.gmm.missing import batched_e_step as missing_e_step
from jaxmix.gmm.objective import mean_log_posterior, per_sample
from jaxmix.gmm.stats import (GMMStats, accurate_restarts, auto_path, batched_e_step,
                              e_step)
from jaxmix.gmm.update import enforce_mask, m_step, m_step_moments, shift_stats
from jaxmix.numerics import all_finite
from jaxmix.params import GMMParams


def batched_em_step(data, reg_covar, path: str = "auto", prior=None, mask=None, white=None,
                    frozen=None):
    """``params_R -> (new_params_R, objective_R)`` for :func:`jaxmix.fit.driver.iterate`.

    The objective of the params it is given is the mean log-likelihood per
    unit weight, or with a ``prior`` (shared by all restarts, MAP-EM) the mean
    log-posterior ``(loglik + log_prior) / sum(w)``. ``path="auto"`` picks
    the GEMM or exact E-step per iteration and per restart (the exact pass
    runs, per group of restarts, only for groups where some restart needs it; see
    :mod:`jaxmix.gmm.stats`), so a restart's path does not depend on the
    restarts batched with it (:func:`~jaxmix.gmm.stats.per_restart_path`); ``mask`` ``(R, k)`` keeps the
    components of padded mixtures outside it empty (the step's own second
    argument, when given, replaces it: the driver hands each batch of slots
    its rows' masks). ``white`` (:func:`jaxmix.gmm.whitening.whitening` of the
    data, dense families): the GEMM E-step runs in whitened coordinates,
    where its error bound holds on correlated features. ``frozen``
    (:class:`jaxmix.gmm.frozen.Masks`): the constrained M-step that keeps
    those parameters (:mod:`jaxmix.gmm.frozen`).
    """
    total = data.total_weight()

    def stats_of(params: GMMParams):
        if path == "missing":  # NaN entries marginalised (jaxmix.gmm.missing)
            return missing_e_step(params, data)
        if path != "auto":
            return batched_e_step(params, data, path, white)
        # Each restart takes its own path, so its result does not depend on
        # the restarts beside it: the GEMM statistics of every restart, and
        # the exact pass per group of restarts, run only for groups where some
        # restart needs it (on a small pass, the exact path for the batch).
        # Only the E-step is branched: the M-step below is compiled once.
        return auto_path(data, params, lambda: accurate_restarts(params, white),
                         lambda: batched_e_step(params, data, "gemm", white),
                         lambda q: batched_e_step(q, data, "exact"), params)

    def step(params: GMMParams, row_mask=None):
        row_mask = mask if row_mask is None else row_mask
        stats = stats_of(params)
        ct = params.covariance_type
        if frozen is not None:
            stats = jax.vmap(lambda s, p: hold_stats(s, p, frozen, ct))(stats, params)
        real = jnp.ones(params.weights.shape, bool) if row_mask is None else row_mask
        held = None if frozen is None else frozen.means
        weights, means, cov = jax.vmap(
            lambda s, m: m_step_moments(s, ct, prior, jnp.sum(m), held))(stats, real)
        pc = family(ct).floored_precision_cholesky(cov, reg_covar)
        new = GMMParams(weights, means, pc, ct)
        objective = jax.vmap(lambda ll, p, m: per_sample(ll, p, prior, total, real=m))(
            stats.loglik, params, real)
        new = enforce_mask(new, row_mask)
        if frozen is not None:
            new = jax.vmap(lambda n, p, m: hold_params(n, p, frozen, m))(new, params, real)
        return new, objective

    return step


def em_step(params: GMMParams, data, reg_covar, path: str = "exact", prior=None, frozen=None,
            real=None):
    """One EM iteration of a single model: ``(new_params, objective of params)``
    (mean log-likelihood, or mean log-posterior under ``prior``); ``real
    (k,)``: the real components of a padded mixture (the others stay empty)."""
    mask = None if real is None else real[None]
    new, objective = batched_em_step(data, reg_covar, path, prior, mask=mask, frozen=frozen)(
        jax.tree.map(lambda a: a[None], params))
    return jax.tree.map(lambda a: a[0], new), objective[0]


def em_gain(params: GMMParams, objective, data, reg_covar, prior=None, frozen=None, real=None):
    """What one EM (MAP-EM) step from ``params`` would gain in the objective
    ``J`` (:mod:`jaxmix.gmm.objective`), given ``objective = J(params)``: two
    exact passes (the step's E-step, then ``J`` of its result). The test that
    makes a gradient fit's ``converged`` mean what EM's does. ``real``: as in
    :func:`em_step`."""
    new = em_step(params, data, reg_covar, "exact", prior, frozen, real)[0]
    return mean_log_posterior(new, data, prior, real) - objective


def degenerate_restarts(params: GMMParams, total, reg_covar, mask=None):
    """Per restart: a real component holds less than one sample's weight, or
    its smallest variance (in any direction) is at the ``reg_covar`` floor:
    collapsed on a point, a line or a constant feature. ``mask`` ``(R, k)``
    restricts the test to the real components of padded mixtures."""
    fam = family(params.covariance_type)
    k = params.means.shape[-2]
    low = jax.vmap(lambda pc: fam.at_floor(pc, k, reg_covar))(params.precisions_cholesky)
    real = jnp.ones(low.shape, bool) if mask is None else mask
    floor = jnp.any(real & low, axis=1)
    return jnp.any(real & (params.weights * total < 1.0), axis=1) | floor


def stepwise_em_step(params: GMMParams, running, x, w, rho, reg_covar):
    """One stepwise-EM update on a centred chunk ``x (m, d)``, ``w (m,)``:
    the running statistics per unit weight move by ``rho`` towards the
    chunk's (taken under ``params``), then the M-step, then the statistics
    are re-centred on the new means (:func:`jaxmix.gmm.update.shift_stats`).

    Returns ``(params, running statistics about their means, the chunk's mean
    log-likelihood under the old params, ok)``; when the update is not
    finite the old state is kept and ``ok`` is False.
    """
    per_unit = e_step(params, one_chunk(x, w), "exact").scaled(1.0 / jnp.sum(w))
    blended = GMMStats(*((1 - rho) * s + rho * c for s, c in zip(running[:4], per_unit[:4])),
                       per_unit.shift)  # running is about params.means too
    new = m_step(blended, reg_covar, params.covariance_type)
    moved = shift_stats(blended, new.means, params.covariance_type)
    ok = all_finite((new, moved))
    keep = lambda a, b: jnp.where(ok, a, b)  # noqa: E731
    return (jax.tree.map(keep, new, params), jax.tree.map(keep, moved, running),
            per_unit.loglik, ok)
