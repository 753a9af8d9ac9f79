"""Precision factors of dense covariances: ``L`` with ``L L^T = cov^-1``
(scikit-learn's upper factor), and, in float32, the ``reg_covar`` floor kept
exact where a component has collapsed (:func:`floored_precision_cholesky`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from jaxmix.numerics import HIGHEST


def _eye_like(a):
    return jnp.eye(a.shape[-1], dtype=a.dtype)


def _outer(a):
    return a[..., :, None] * a[..., None, :]


def _cholesky_of_inverse(cov):
    """Upper factor ``L`` with ``L L^T = cov^{-1}`` (sklearn's convention)."""
    chol = jnp.linalg.cholesky(cov)
    eye = jnp.broadcast_to(_eye_like(cov), cov.shape)
    return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)


def _jacobi(a):
    """``sqrt(diag(a))`` of each matrix (1 where a diagonal entry is 0): the
    scaling in which float32's error in ``a`` is about ``eps`` per entry,
    whatever the features' units."""
    root = jnp.sqrt(jnp.diagonal(a, axis1=-2, axis2=-1))
    return jnp.where(root > 0, root, 1.0)


def _exact_floor_factor(cov, reg):
    """Precision factor of ``cov + reg I`` whose floor is exact in float32.

    ``cov`` is a scatter whose null space (a component collapsed on fewer
    than ``d + 1`` points) float32 fills with rounding noise of about ``d
    eps`` in Jacobi-scaled coordinates ``T = D^-1 cov D^-1``, 10% of
    ``reg_covar = 1e-6`` on standardised data. ``T``'s eigenvalues below ``d
    eps lambda_max(T)`` are set to 0, so those directions get exactly ``reg``
    as in float64, and the factor comes from the QR of ``[diag(mu)^(1/2) W^T D;
    sqrt(reg) I]`` (``T = W diag(mu) W^T``), whose ``R`` has ``R^T R = cov + reg
    I`` without that sum being formed and rounded again. The scaling keeps
    the small variances of features in small units (eigenvalues of an
    unscaled ``cov`` are only accurate to ``eps lambda_max``)."""
    d = cov.shape[-1]
    scale = _jacobi(cov)
    mu, w = jnp.linalg.eigh(cov / (scale[..., :, None] * scale[..., None, :]))
    noise = d * jnp.finfo(cov.dtype).eps * jnp.maximum(mu[..., -1:], 0.0)
    mu = jnp.where(mu > noise, mu, 0.0)
    root = jnp.sqrt(mu)[..., :, None] * jnp.swapaxes(w, -1, -2) * scale[..., None, :]
    floor = jnp.broadcast_to(jnp.sqrt(reg) * _eye_like(cov), cov.shape)
    r = jnp.linalg.qr(jnp.concatenate([root, floor], axis=-2), mode="r")
    r = r * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[..., :, None]
    return solve_triangular(r, jnp.broadcast_to(_eye_like(cov), cov.shape), lower=False)


def _floor_is_rounded(cov, reg, pc):
    """Whether the Cholesky factor ``pc`` of ``cov + reg I`` may have rounded
    its floor (any matrix of the batch), judged in Jacobi-scaled coordinates
    ``A = D^-1 (cov + reg I) D^-1`` so that features' units do not matter:
    the smallest eigenvalue of ``A`` within the floor's largest share ``reg /
    D_i^2`` plus four times float32's noise ``d eps ||A||``, while that noise
    is above ``1e-4`` of the floor's smallest share; or a factor that is not
    finite though ``cov`` is. Features constant within a component (their
    row of ``cov`` exactly 0) are left out: the Cholesky keeps their floor
    exactly. Conservative: ``lambda_min(A)`` is bounded below by ``1 /
    ||A^-1||_F``."""
    d = cov.shape[-1]
    frob = lambda a: jnp.sqrt(jnp.sum(a * a, axis=(-2, -1)))  # noqa: E731
    floored = cov + reg * _eye_like(cov)
    scale = _jacobi(floored)
    a = floored / (scale[..., :, None] * scale[..., None, :])
    # A feature without scatter (constant within the component: its row of
    # cov is exactly 0) keeps its floor exactly in the Cholesky: left out
    constant = jnp.diagonal(cov, axis1=-2, axis2=-1) == 0
    share = jnp.where(constant, 0.0, reg / (scale * scale))
    a = jnp.where(constant[..., :, None] | constant[..., None, :], 0.0, a)
    noise = d * jnp.finfo(cov.dtype).eps * frob(a)
    pc_scaled = jnp.where(constant[..., :, None], 0.0, scale[..., :, None] * pc)  # A^-1's factor
    inverse_norm = frob(jnp.matmul(jnp.swapaxes(pc_scaled, -1, -2), pc_scaled,
                                   precision=HIGHEST))
    near = inverse_norm * (jnp.max(share, axis=-1) + 4.0 * noise) >= 1.0
    audible = noise > 1e-4 * jnp.min(jnp.where(constant, jnp.inf, share), axis=-1)
    lost = ~jnp.all(jnp.isfinite(pc), axis=(-2, -1)) & jnp.all(jnp.isfinite(cov), axis=(-2, -1))
    return jnp.any((near & audible) | lost)


def _within_scatter_bounds(cov):
    """``cov`` with the bounds every scatter meets exactly restored: no
    negative variance, ``|c_ij| <= sqrt(c_ii c_jj)``. A PSD matrix is left as
    it is (up to a clip at the bound's own rounding); the GEMM path's
    statistics meet the bounds only up to its cancellation error (``eps *
    kappa`` of the narrowest variance, within budget 5e-4 of it), which for
    a component collapsed on repeated points is all of its scatter, and
    whose negative part would otherwise come off the ``reg_covar`` floor
    (seen on CI: eigenvalue 0.99953 reg). Clipped, such a scatter's noise
    keeps no negative variance and no 2x2 block below 0 (so for ``d = 2``
    the floor is exact), and what remains is far below the budget."""
    diag = jnp.maximum(jnp.diagonal(cov, axis1=-2, axis2=-1), 0.0)
    bound = _outer(jnp.sqrt(diag))  # no square of cov: no overflow
    off = jnp.clip(cov, -bound, bound)
    return jnp.where(jnp.eye(cov.shape[-1], dtype=bool), diag[..., None, :], off)


def _plain_factor(cov, reg):
    """The Cholesky-based factor of ``cov + reg I``, floor as rounded."""
    return _cholesky_of_inverse(cov + reg * _eye_like(cov))


def floored_precision_cholesky(cov, reg):
    """:meth:`~jaxmix.gmm.family_base.Family.floored_precision_cholesky` of
    the dense families: the Cholesky factors, or, when one of them may have rounded its floor
    (:func:`_floor_is_rounded`; a float32 component collapsed at
    ``reg_covar``), every factor of the batch from :func:`_exact_floor_factor`
    (one ``lax.cond``, so the eigendecompositions run only then). float64
    keeps the Cholesky factors without tracing the rest (the floor's noise
    is ``d`` times 2e-16 there)."""
    if jnp.finfo(cov.dtype).bits >= 64:  # noise ~ d 2e-16: far below any floor; not traced
        return _plain_factor(cov, reg)
    return _batch_level_floor(cov, jnp.asarray(reg, cov.dtype))


def _float32_floor(cov, reg):
    """The float32 body of :func:`floored_precision_cholesky`."""
    cov = _within_scatter_bounds(cov)
    fast = _plain_factor(cov, reg)
    return jax.lax.cond(_floor_is_rounded(cov, reg, fast),
                        lambda: _exact_floor_factor(cov, reg), lambda: fast)


@jax.custom_jvp
def _batch_level_floor(cov, reg):
    """:func:`_float32_floor` whose ``lax.cond`` stays a branch under ``vmap``.

    vmapped (a per-restart M-step), a cond on a batched predicate becomes a
    select that runs both branches every time: the eigendecompositions of the
    exact floor at every iteration, and, on XLA:CPU with two cores, two
    batched LAPACK calls at once, which deadlocked jaxlib 0.10 (both intra-op
    threads waiting in ``ParallelBatchMap`` for work queued behind the
    other; the families' float32 fit of wine at k=11 hung on its second
    key). The batching rule (:func:`_floor_vmap`) runs the function on the
    whole batch instead: one branch for all restarts, as in the batched EM
    step. ``custom_vmap`` has no reverse mode of its own: derivatives come
    from :func:`_batch_level_floor_jvp`."""
    return _floor_over_batch(cov, reg)


@_batch_level_floor.defjvp
def _batch_level_floor_jvp(primals, tangents):
    """The floored factor, and the tangent of :func:`_plain_factor`: the
    floored factor's own where neither the clip nor the exact branch acts;
    where they do (a collapsed float32 component), it differs only in the
    directions whose variance is rounding noise."""
    return _batch_level_floor(*primals), jax.jvp(_plain_factor, primals, tangents)[1]


@jax.custom_batching.custom_vmap
def _floor_over_batch(cov, reg):
    return _float32_floor(cov, reg)


@_floor_over_batch.def_vmap
def _floor_vmap(axis_size, in_batched, cov, reg):
    cov_batched, reg_batched = in_batched
    if reg_batched:  # one floor per member: the plain (select) batching
        return jax.vmap(_float32_floor, in_axes=(0 if cov_batched else None, 0))(cov, reg), True
    return _floor_over_batch(cov, reg), cov_batched
