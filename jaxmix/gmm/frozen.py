r"""Frozen (fixed) parameters: a fit that keeps some weights, means or
covariances at their starting values (``init_params``) and fits the rest,
by EM and by gradient fits alike, so both still maximise one objective: the
mean log-likelihood (log-posterior) over the mixtures that agree with the
start on the frozen parameters.

EM's M-step is then the constrained maximiser of the expected complete-data
log-likelihood (an ECM step, so EM still never lowers the objective):

* frozen weights keep their values ``w_f``; the free ones share the rest in
  proportion to their M-step values (``nk``, or ``nk + alpha - 1`` under a
  prior): ``w_j = (1 - sum_f w_f) * w'_j / sum_free w'``;
* a frozen mean ``mu`` with a free covariance: the covariance is the scatter
  about ``mu`` itself, ``sum_n r_nj (x_n - mu)(x_n - mu)^T / n_j`` (+
  ``reg_covar``), done by re-centring the statistics on ``mu`` and dropping
  their first moment, for every covariance family (tied: summed over the
  components);
* a frozen covariance with a free mean: the mean's update does not depend
  on the covariance, so it is the usual one.

Gradient fits see the frozen parameters through ``stop_gradient`` (no
gradient flows to them) and never apply an update to them (so optimizers
with weight decay do not move them either); frozen weights are held at
their values and the free ones are a softmax over the remaining mass.

Under a prior (MAP-EM) the same holds for the log-posterior: free weights
share the remaining mass in proportion to ``nk + alpha - 1``, and a frozen
mean's covariance is its conditional MAP given that mean,
``(Psi + S_mu + kappa (mu - m_0)(mu - m_0)^T) / (nu + n_j + d + 2)`` for full
covariances (:func:`jaxmix.gmm.update.map_m_step`).

>>> import numpy as np, jax
>>> from jaxmix import GMMParams, fit_gmm
>>> from jaxmix.gmm.frozen import Frozen
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(-2, 1, (200, 1)), rng.normal(3, 1, (200, 1))])
>>> start = GMMParams(np.array([0.5, 0.5]), np.array([[-1.0], [1.0]]), np.ones((2, 1, 1)))
>>> fit = fit_gmm(0, x, 2, init_params=start, frozen=Frozen(means=True))
>>> np.asarray(fit.best_params.means).ravel().tolist()
[-1.0, 1.0]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.gmm.covariance import family
from jaxmix.gmm.stats import GMMStats
from jaxmix.gmm.update import shift_stats
from jaxmix.params import GMMParams


class Frozen(NamedTuple):
    """What a fit keeps at ``init_params``'s values: for each of the weights,
    means and covariances, ``False`` (fitted), ``True`` (every component) or
    ``k`` booleans (per component; tied covariances: all or none)."""

    weights: Any = False
    means: Any = False
    covariances: Any = False


class Masks(NamedTuple):
    """:class:`Frozen` as ``(k,)`` boolean arrays (traced in the fits)."""

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array


def check_frozen(frozen, k: int, covariance_type: str, init_params,
                 k_max: int | None = None) -> Masks | None:
    """``frozen`` as :class:`Masks` of ``k_max`` (default ``k``) entries, the
    padding unfrozen; ``None`` when nothing is frozen. Errors name the
    argument and the fix."""
    if frozen is None:
        return None
    if not isinstance(frozen, Frozen):
        raise ValueError(f"frozen must be a jaxmix.Frozen(weights=, means=, covariances=), got "
                         f"{type(frozen).__name__}")
    masks = Masks(*(_mask(getattr(frozen, name), k, name) for name in Masks._fields))
    if not any(m.any() for m in masks):
        return None
    if init_params is None:
        raise ValueError("frozen parameters keep their starting values: give init_params (the "
                         "values to keep)")
    if (covariance_type == "tied" and masks.covariances.any()
            and not masks.covariances.all()):
        raise ValueError("frozen.covariances: a tied covariance is shared by the components; "
                         "freeze it for all of them (True) or none")
    size = k if k_max is None else k_max
    return Masks(*(jnp.asarray(np.pad(m, (0, size - k))) for m in masks))


def _mask(value, k: int, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype != bool or arr.shape not in ((), (k,)):
        raise ValueError(f"frozen.{name} must be True, False or {k} booleans (one per "
                         f"component), got {value!r}")
    return np.broadcast_to(arr, (k,)).copy()


def hold_stats(stats: GMMStats, old: GMMParams, masks: Masks, covariance_type: str) -> GMMStats:
    """One model's statistics for the constrained M-step: about the frozen
    means, with their first moment dropped (so the M-step keeps those means
    and takes their covariances about them)."""
    fm = masks.means
    moved = shift_stats(stats, jnp.where(fm[:, None], old.means, stats.shift), covariance_type)
    return moved._replace(sx=jnp.where(fm[:, None], 0.0, moved.sx))


def hold_params(new: GMMParams, old: GMMParams, masks: Masks, real) -> GMMParams:
    """One model's M-step result ``new`` with the frozen parameters of
    ``old`` put back and the free weights scaled to the mass the frozen ones
    leave (``real (k,)``: the components that are not padding)."""
    fw = masks.weights & real
    free = ~masks.weights & real
    left = 1.0 - jnp.sum(jnp.where(fw, old.weights, 0.0))
    share = jnp.sum(jnp.where(free, new.weights, 0.0))
    weights = jnp.where(fw, old.weights,
                        jnp.where(free, new.weights * left / jnp.where(share > 0, share, 1.0),
                                  new.weights))
    return new.replace(weights=weights,
                       means=jnp.where(masks.means[:, None], old.means, new.means),
                       precisions_cholesky=_keep_factor(new, old, masks.covariances))


def _keep_factor(new: GMMParams, old: GMMParams, frozen):
    fam = family(new.covariance_type)
    if not fam.per_component:  # tied: all or none (checked)
        return jnp.where(jnp.any(frozen), old.precisions_cholesky, new.precisions_cholesky)
    m = frozen.reshape(frozen.shape + (1,) * (new.precisions_cholesky.ndim - 1))
    return jnp.where(m, old.precisions_cholesky, new.precisions_cholesky)


def held_log_weights(logits, start_log_weights, masks: Masks):
    """Gradient fits: ``log w`` with the frozen weights at their start values
    (no gradient) and the free ones ``log(1 - W_f) + log_softmax`` of their
    logits."""
    fw = masks.weights
    fixed = jax.lax.stop_gradient(start_log_weights)
    left = jnp.log1p(-jnp.sum(jnp.where(fw, jnp.exp(fixed), 0.0)))
    # every weight frozen: the softmax runs on the plain logits (finite, its
    # gradient unused) and every entry takes ``fixed``
    free = jax.nn.log_softmax(jnp.where(fw & ~jnp.all(fw), -jnp.inf, logits))
    return jnp.where(fw, fixed, left + free)


def _select(u, masks: Masks, covariance_type: str, frozen_fn):
    """``u`` (an ``Unconstrained``) with ``frozen_fn`` applied to its frozen entries."""
    fc = masks.covariances
    if family(covariance_type).per_component:
        cov = fc.reshape(fc.shape + (1,) * (u.chol.ndim - 1))
    else:
        cov = jnp.any(fc)
    return type(u)(jnp.where(masks.weights, frozen_fn(u.logits), u.logits),
                   jnp.where(masks.means[:, None], frozen_fn(u.means), u.means),
                   jnp.where(cov, frozen_fn(u.chol), u.chol))


def held_view(u, masks: Masks, covariance_type: str):
    """Gradient fits: ``u`` with no gradient through its frozen entries."""
    return _select(u, masks, covariance_type, jax.lax.stop_gradient)


def hold_updates(updates, masks: Masks, covariance_type: str):
    """Optimizer ``updates`` (an ``Unconstrained``) with the frozen entries zeroed."""
    return _select(updates, masks, covariance_type, jnp.zeros_like)


def frozen_start(u, params: GMMParams, masks: Masks):
    """A gradient fit's first ``u``: frozen logits are the start's log-weights."""
    return u._replace(logits=jnp.where(masks.weights, jnp.log(params.weights), u.logits))
