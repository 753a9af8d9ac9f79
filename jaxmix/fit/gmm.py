"""``fit_gmm``: EM for a Gaussian mixture with batched restarts.

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

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.gmm.covariance import family
from jaxmix.data.sharding import (check_global_data, n_shards, place, resolve_mesh,
                                shard_chunk_size)
from jaxmix.gmm.em import PATHS, batched_em_step
from jaxmix.fit.driver import FitResult, iterate
from jaxmix.gmm.init import INIT_METHODS, broadcast_params, initialize
from jaxmix.params import COVARIANCE_TYPES, GMMParams
from jaxmix.gmm.priors import resolve_prior
from jaxmix.data.chunked import Chunked, chunk
from jaxmix.validation import (as_key, check_choice, check_int, check_n_components,
                               check_nonneg, check_sample_weight)

# Chunks are sized so that one chunk's largest intermediate, ``chunk * R * k *
# d`` elements on the exact path, stays near this many (16 MiB in float32).
CHUNK_BUDGET = 2 ** 22


def default_chunk_size(n: int, d: int, k: int, n_restarts: int) -> int:
    per_row = max(1, n_restarts * k * d)
    return int(min(n, max(256, CHUNK_BUDGET // per_row)))


def fit_gmm(key, x, n_components: int, *, covariance_type: str = "full", n_restarts: int = 1,
            init: str = "kmeans", init_params: GMMParams | None = None, tol: float = 1e-3,
            reg_covar: float = 1e-6, max_iter: int = 100, chunk_size: int | None = None,
            path: str = "auto", sample_weight=None, prior=None, mesh=None) -> FitResult:
    """Fit a Gaussian mixture by EM from ``n_restarts`` starts in one compiled call.

    Args:
      key: ``jax.random`` key (or int seed); restart ``r`` uses ``split(key, R)[r]``.
      x: ``(n, d)`` data.
      n_components: ``k``.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      n_restarts: ``R``, restarts run together.
      init: ``"kmeans"``, ``"k-means++"``, ``"random"`` or ``"random_from_data"``;
        ignored when ``init_params`` is given (then every restart starts there).
      tol: stop a restart when its mean log-likelihood changes by less.
      reg_covar: added to the covariance diagonals.
      max_iter: iteration cap per restart.
      chunk_size: samples per chunk (bounds memory); ``None`` picks one.
      path: ``"auto"``, ``"gemm"`` or ``"exact"`` E-step (see ``jaxmix.gmm.em``).
      sample_weight: optional ``(n,)`` non-negative weights.
      prior: ``None`` (maximum likelihood), ``"default"`` or a
        :class:`~jaxmix.gmm.priors.GMMPrior`: MAP-EM, whose objective (``tol``,
        ``history``, best restart) is the mean log-posterior per sample.
      mesh: a :class:`jax.sharding.Mesh` with a ``"data"`` axis to split the
        samples over (``None``: the mesh of ``x`` if it is placed on one, see
        :mod:`jaxmix.data.sharding`); the result equals the single-device fit.

    Returns:
      :class:`~jaxmix.fit.driver.FitResult` with all restarts; ``best_params`` is the
      restart with the highest final mean log-likelihood.
    """
    mesh = resolve_mesh(mesh, x)
    fit_in = prepare_fit(x, n_components, covariance_type, n_restarts, max_iter, path, init,
                         init_params, sample_weight, prior, tol, reg_covar,
                         chunk_size=chunk_size, shards=n_shards(mesh))
    result = _fit(as_key(key), place(fit_in.data, mesh), fit_in.init_params, fit_in.tol,
                  fit_in.reg_covar, k=fit_in.k, covariance_type=covariance_type,
                  n_restarts=fit_in.n_restarts, init=init, max_iter=fit_in.max_iter, path=path,
                  prior=fit_in.prior)
    return uncentre(result, fit_in.offset)


class FitInputs(NamedTuple):
    """Validated, globally centred inputs shared by the EM and gradient fits."""
    data: Chunked            # (x - offset) in chunks, with sample weights
    offset: jax.Array        # (d,) weighted data mean
    k: int
    n_restarts: int
    max_iter: int
    init_params: GMMParams | None   # centred
    prior: object            # GMMPrior (centred) or None
    tol: float
    reg_covar: float


def prepare_fit(x, n_components, covariance_type, n_restarts, max_iter, path, init, init_params,
                sample_weight, prior, tol, reg_covar, *, chunk_size=None,
                chunk_restarts=None, shards=1) -> FitInputs:
    """Validate a fit's arguments (errors name the argument) and centre the data.

    ``chunk_size=None`` picks :func:`default_chunk_size` for ``chunk_restarts``
    restarts (default: ``n_restarts``), adjusted to split evenly over
    ``shards`` devices.
    """
    x = check_global_data(x)
    n, d = x.shape
    k = check_n_components(n_components, n)
    check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    n_restarts = check_int(n_restarts, "n_restarts")
    max_iter = check_int(max_iter, "max_iter", low=0)
    check_choice(path, "path", PATHS)
    if init_params is None:
        check_choice(init, "init", INIT_METHODS)
    else:
        init_params = _check_init_params(init_params, k, d, covariance_type, x.dtype)
    weights = check_sample_weight(sample_weight, n, x.dtype)
    prior = resolve_prior(prior, x, k, covariance_type, weights)
    if chunk_size is None:
        restarts = n_restarts if chunk_restarts is None else chunk_restarts
        size = shard_chunk_size(n, default_chunk_size(n, d, k, restarts), shards)
    else:
        size = check_int(chunk_size, "chunk_size")
    offset = jnp.average(x, axis=0, weights=weights)
    if init_params is not None:
        init_params = init_params.replace(means=init_params.means - offset)
    if prior is not None:
        prior = prior._replace(mean_prior=prior.mean_prior - offset)
    return FitInputs(chunk(x - offset, size, weights), offset, k, n_restarts, max_iter,
                     init_params, prior, check_nonneg(tol, "tol"),
                     check_nonneg(reg_covar, "reg_covar"))


def uncentre(result: FitResult, offset) -> FitResult:
    """Move a centred fit's means back to the data's frame."""
    params = result.params
    return result._replace(params=params.replace(means=params.means + offset))


@functools.partial(jax.jit, static_argnames=(
    "k", "covariance_type", "n_restarts", "init", "max_iter", "path"))
def _fit(key, data, init_params, tol, reg_covar, *, k, covariance_type, n_restarts, init,
         max_iter, path, prior=None) -> FitResult:
    dtype = data.x.dtype
    tol, reg_covar = jnp.asarray(tol, dtype), jnp.asarray(reg_covar, dtype)
    if init_params is None:
        params0 = initialize(key, data, k, covariance_type, n_restarts, init, reg_covar)
    else:
        params0 = broadcast_params(init_params, n_restarts)
    result = iterate(batched_em_step(data, reg_covar, path, prior), params0, tol, max_iter)
    return result._replace(degenerate=degenerate_restarts(result.params, jnp.sum(data.w),
                                                          reg_covar))


def degenerate_restarts(params: GMMParams, n, reg_covar):
    """Per restart: a component holds < 1 sample's weight, or its smallest
    variance (in any direction) is at the ``reg_covar`` floor: collapsed on a
    point, a line or a constant feature."""
    lam = family(params.covariance_type).max_precision(params.precisions_cholesky)
    tiny = jnp.max(lam.reshape(lam.shape[0], -1), axis=1) * 2 * reg_covar >= 1
    return jnp.any(params.weights * n < 1.0, axis=1) | tiny


def _check_init_params(p: GMMParams, k: int, d: int, covariance_type: str, dtype) -> GMMParams:
    if not isinstance(p, GMMParams):
        raise ValueError(f"init_params must be a GMMParams, got {type(p).__name__}")
    if p.covariance_type != covariance_type:
        raise ValueError(f"init_params has covariance_type={p.covariance_type!r} but the fit "
                         f"uses {covariance_type!r}; make them agree")
    expected = {"weights": (k,), "means": (k, d),
                "precisions_cholesky": family(covariance_type).pc_shape(k, d)}
    out = {}
    for name, shape in expected.items():
        try:
            a = jnp.asarray(np.asarray(getattr(p, name), dtype=np.float64), dtype)
        except (TypeError, ValueError):
            raise ValueError(f"init_params.{name} must be numeric") from None
        if a.shape != shape:
            raise ValueError(f"init_params.{name} must have shape {shape}, got {a.shape}")
        if not bool(jnp.all(jnp.isfinite(a))):
            raise ValueError(f"init_params.{name} contains NaN or infinity")
        out[name] = a
    if bool(jnp.any(out["weights"] <= 0)):
        raise ValueError("init_params.weights must be positive")
    log_det = family(covariance_type).log_det(out["precisions_cholesky"], d)
    if not bool(jnp.all(jnp.isfinite(log_det))):
        raise ValueError("init_params.precisions_cholesky must have a positive diagonal "
                         "(Cholesky factors of positive-definite precisions)")
    return GMMParams(out["weights"] / jnp.sum(out["weights"]), out["means"],
                     out["precisions_cholesky"], covariance_type)
