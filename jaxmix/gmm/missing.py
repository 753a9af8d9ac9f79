r"""EM with missing features (NaN entries, missing at random), exact.

For a sample with observed coordinates ``o`` and missing ``m``, component
``k`` contributes the marginal density of the observed part and, to the
statistics, the conditional expectations of the complete-data ones:

.. math::

    \log p(x_o \mid k) = \log N(x_o; \mu_o, \Sigma_{oo}), \qquad
    \hat x_m = \mu_m + \Sigma_{mo} \Sigma_{oo}^{-1} (x_o - \mu_o), \qquad
    C_{mm} = \Sigma_{mm} - \Sigma_{mo} \Sigma_{oo}^{-1} \Sigma_{om},

``sx += r (\hat x - c)`` and ``sxx += r ((\hat x - c)(\hat x - c)^T + C)``
(``C`` zero outside the missing block), so the M-step is the usual one and
EM increases the observed-data log-likelihood. Each sample's observed block
is handled with masks, without gathering: ``A = M \Sigma M + (I - M)``
(``M`` the diagonal of observed coordinates) has ``\Sigma_{oo}^{-1}`` as the
observed block of its inverse and the identity elsewhere, so with
``z = M (x - \mu)`` and ``v = A^{-1} z``: the quadratic form is ``z^T v``,
``log det \Sigma_{oo} = log det A``, ``\hat x = \mu + \Sigma v`` and
``C = \Sigma - \Sigma M A^{-1} M \Sigma``. That is one ``d x d`` Cholesky per
sample and component (``O(n k d^3)``, against ``O(n k d^2)`` with complete
data), for every covariance family (their covariances as dense matrices,
their statistics projected back to their layout).

In the fits (``fit_gmm(..., missing="marginalize")``) the data keep NaN at
the missing entries; the initialiser and ``prior="default"`` see the data
with each missing entry replaced by its column's mean (only to start).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.data.chunked import Chunked
from jaxmix.data.reduce import reduce
from jaxmix.gmm.covariance import family
from jaxmix.gmm.stats import GMMStats
from jaxmix.numerics import HIGHEST, LOG_2PI
from jaxmix.params import GMMParams

MISSING = ("error", "marginalize")


def observed_log_prob(params: GMMParams, x):
    """``(m, k)`` log-density of each row's observed coordinates (NaN: missing)
    under each component, without the weights; and the pieces the statistics
    need: ``(v (m, k, d), a_inv (m, k, d, d), cov (k, d, d))``."""
    k, d = params.means.shape
    cov = family(params.covariance_type).dense_covariance(params.precisions_cholesky, k, d)
    obs = ~jnp.isnan(x)
    z = jnp.where(obs[:, None, :], x[:, None, :] - params.means[None], 0.0)    # (m, k, d)
    both = obs[:, :, None] & obs[:, None, :]                                    # (m, d, d)
    eye = jnp.eye(d, dtype=cov.dtype)
    a = jnp.where(both[:, None], cov[None], 0.0) + jnp.where(obs, 0.0, 1.0)[:, None, :, None] * eye
    chol = jnp.linalg.cholesky(a)                                               # (m, k, d, d)
    a_inv = jax.scipy.linalg.cho_solve((chol, True), jnp.broadcast_to(eye, a.shape))
    v = jnp.einsum("mkde,mke->mkd", a_inv, z, precision=HIGHEST)
    quad = jnp.sum(z * v, axis=-1)
    log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    n_obs = jnp.sum(obs, axis=1).astype(cov.dtype)
    log_p = -0.5 * (n_obs[:, None] * LOG_2PI + log_det + quad)
    return log_p, (v, a_inv, cov, obs)


def chunk_stats(params: GMMParams, x, w):
    """One model's statistics of one chunk (about its current means) and
    its observed-data log-likelihood."""
    log_p, (v, a_inv, cov, obs) = observed_log_prob(params, x)
    lp = log_p + jnp.log(params.weights)
    ll = jax.nn.logsumexp(lp, axis=1)
    r = jnp.exp(lp - ll[:, None]) * w[:, None]
    z = jnp.einsum("kde,mke->mkd", cov, v, precision=HIGHEST)  # x_hat - mu
    held = obs.astype(cov.dtype)
    p_obs = a_inv * held[:, None, :, None] * held[:, None, None, :]            # M A^-1 M
    cond = cov[None] - jnp.einsum("kde,mkef,kfg->mkdg", cov, p_obs, cov, precision=HIGHEST)
    sxx = (jnp.einsum("mk,mkd,mke->kde", r, z, z, precision=HIGHEST)
           + jnp.einsum("mk,mkde->kde", r, cond, precision=HIGHEST))
    return (jnp.sum(r, axis=0), jnp.einsum("mk,mkd->kd", r, z, precision=HIGHEST), sxx,
            jnp.sum(jnp.where(w > 0, w * ll, 0.0)))


def batched_e_step(params: GMMParams, data: Chunked) -> GMMStats:
    """Every restart's statistics (about its means, in the family's layout)
    from one pass over ``data`` whose missing entries are NaN."""
    fam = family(params.covariance_type)

    def one_chunk(x, w, _):
        return jax.vmap(lambda p: chunk_stats(p, x, w))(params)
    nk, sx, sxx, loglik = reduce(one_chunk, data)
    return GMMStats(nk, sx, jax.vmap(fam.moments_from_dense)(sxx), loglik, params.means)


def observed(x) -> np.ndarray:
    """``x`` checked for ``missing="marginalize"``: a 2-D float array whose
    entries are finite or NaN, every row with at least one observed value
    (a row with none carries no information: drop it)."""
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.dtype.kind not in "fiu":
        raise ValueError(f"X must be a 2-D numeric array, got shape {arr.shape} and dtype "
                         f"{arr.dtype}")
    arr = arr.astype(np.float64 if arr.dtype == np.float64 else np.float32, copy=False)
    if np.isinf(arr).any():
        raise ValueError("X contains infinity; only NaN marks a missing value")
    empty = np.flatnonzero(np.isnan(arr).all(axis=1))
    if empty.size:
        raise ValueError(f"X has {empty.size} row(s) with every value missing (first: "
                         f"{empty[:5].tolist()}); drop them, they carry no information")
    return arr


def mean_filled(x: np.ndarray) -> np.ndarray:
    """``x`` with each NaN replaced by its column's mean (for starting only)."""
    means = np.nanmean(x, axis=0)
    if np.isnan(means).any():
        col = int(np.flatnonzero(np.isnan(means))[0])
        raise ValueError(f"X column {col} has no observed value; drop it")
    return np.where(np.isnan(x), means, x)


def impute(params: GMMParams, x):
    """``x`` with each NaN replaced by its conditional mean under the mixture,
    ``E[x_m | x_o] = sum_k p(k | x_o) (mu_m + Sigma_mo Sigma_oo^-1 (x_o - mu_o))``
    (one model; observed entries are returned unchanged)."""
    x = jnp.asarray(x, params.means.dtype)
    log_p, (v, _, cov, obs) = observed_log_prob(params, x)
    post = jax.nn.softmax(log_p + jnp.log(params.weights), axis=1)
    completed = params.means[None] + jnp.einsum("kde,mke->mkd", cov, v, precision=HIGHEST)
    return jnp.where(obs, x, jnp.einsum("mk,mkd->md", post, completed, precision=HIGHEST))
