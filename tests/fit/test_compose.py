"""Public fits compose with JAX transformations (DESIGN.md, "Conventions").

* ``jax.jit`` over a fit with traced data gives the eager answer;
* ``jax.vmap`` over data sets or keys gives a Python loop of eager calls;
* ``jax.grad`` through a fixed number of EM steps, and ``jax.jvp`` through a
  whole fit (forward mode through the driver's ``while_loop``), match central
  finite differences in float64;
* under a trace, value problems (NaN data) show up as status flags, not
  exceptions; eagerly they raise a ``ValueError`` naming ``X``; shape errors
  raise ``ValueError`` under a trace too.

Every reference is computed independently of the transformation under test:
the eager call, a loop of eager calls, or finite differences. Data share one
shape (200 x 2, k = 2) so the programs compiled here are few.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import blobs, index

import jaxmix as jm
from jaxmix import GMMParams

N, D, K = 200, 2, 2
KEY = jax.random.PRNGKey(0)
CENTRES = [[-3.0, 0.0], [2.0, 1.5]]
X = blobs(np.random.default_rng(0), N, CENTRES)
XS = np.stack([blobs(np.random.default_rng(s), N, CENTRES) for s in (1, 2, 3)])
KEYS = jax.random.split(jax.random.PRNGKey(7), 3)
ADAM = optax.adam(1e-2)   # one instance: the optimizer is a static argument
RTOL, ATOL = 1e-10, 1e-12


def em_step(*args, **kw):
    """``jaxmix.gmm.em_step``."""
    return jm.gmm.em_step(*args, **kw)


# Cheap initialisers keep compiles short (the k-means initialiser of a GMM fit
# compiles a whole Lloyd loop); composition does not depend on the initialiser.
GMM = dict(init="random_from_data")
KMEANS = dict(init="random")


# Every call of a fit in this file goes through these three functions with the
# same static arguments, so the eager references of all tests share one
# compiled program per fit (tol is traced).
def gmm_fit(x, key=KEY, **kw):
    return jm.fit_gmm(key, x, K, n_restarts=2, **GMM, **kw)


def kmeans_fit(x, key=KEY):
    return jm.fit_kmeans(key, x, K, n_restarts=2, **KMEANS)


def gradient_fit(x, key=KEY):
    return jm.fit_gradient(key, x, K, ADAM, max_iter=20, **GMM)


# one jitted function per fit, shared by the tests (one compile each)
JITTED = {name: jax.jit(fn) for name, fn in
          [("gmm", gmm_fit), ("kmeans", kmeans_fit), ("gradient", gradient_fit)]}
EAGER = {"gmm": gmm_fit, "kmeans": kmeans_fit, "gradient": gradient_fit}


def assert_trees_close(a, b, rtol=RTOL, atol=ATOL, err=""):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb, err
    for i, (u, v) in enumerate(zip(la, lb)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol,
                                   equal_nan=True, err_msg=f"{err} leaf {i}")


# ------------------------------------------------------------------ a. jit

@pytest.mark.parametrize("name", ["gmm", "kmeans", "gradient"])
def test_jit_over_traced_data_equals_eager(name):
    """``jax.jit(lambda x: fit(key, x, ...))(x)`` equals the eager fit: best
    params, every restart's params, objective, n_iter and status."""
    traced = JITTED[name](X)
    eager = EAGER[name](X)
    assert_trees_close(traced.best_params, eager.best_params, err="best_params")
    assert_trees_close(traced.params, eager.params, err="params")
    np.testing.assert_allclose(np.asarray(traced.objective), np.asarray(eager.objective),
                               rtol=RTOL)
    for field in ("n_iter", "converged", "failed", "best"):
        np.testing.assert_array_equal(np.asarray(getattr(traced, field)),
                                      np.asarray(getattr(eager, field)), err_msg=field)
    assert not np.any(np.asarray(eager.failed))


# ----------------------------------------------------------------- b. vmap

# each fit and the location of its fitted centres
CENTRE_FITS = {"gmm": (lambda *a, **kw: gmm_fit(*a, **kw), lambda r: r.best_params.means),
           "kmeans": (lambda *a, **kw: kmeans_fit(*a, **kw), lambda r: r.best_params.centroids)}


@pytest.mark.parametrize("name", sorted(CENTRE_FITS))
def test_vmap_over_data_sets_equals_loop(name):
    fit, centres = CENTRE_FITS[name]
    got = jax.vmap(lambda x: centres(fit(x)))(XS)
    assert got.shape == (3, K, D)
    for i, x in enumerate(XS):
        np.testing.assert_allclose(np.asarray(got[i]), np.asarray(centres(fit(x))), rtol=RTOL,
                                   atol=ATOL, err_msg=f"{name}, data set {i}")


@pytest.mark.parametrize("name", sorted(CENTRE_FITS))
def test_vmap_over_keys_equals_loop(name):
    fit, _ = CENTRE_FITS[name]
    got = jax.vmap(lambda k: fit(X, key=k).objective)(KEYS)
    assert got.shape == (3, 2)
    loop = np.stack([np.asarray(fit(X, key=k).objective) for k in KEYS])
    np.testing.assert_allclose(np.asarray(got), loop, rtol=RTOL)


# --------------------------------------------------------- c. derivatives

def central_differences(f, x, h=1e-5):
    """``d f / d x`` by central differences, coordinate by coordinate (float64)."""
    x = np.asarray(x, np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        grad[idx] = (float(f(x + e)) - float(f(x - e))) / (2 * h)
    return grad


SMALL_X = blobs(np.random.default_rng(4), 40, CENTRES)
START = GMMParams(np.array([0.4, 0.6]), np.array([[-2.0, 0.5], [1.0, 1.0]]),
                  np.stack([np.eye(D) * 0.8, np.array([[1.1, 0.3], [0.0, 0.9]])]), "full")


def three_em_steps(x):
    """A smooth function of the data: 3 EM iterations from a fixed start,
    summarised by all three parameter kinds of the result."""
    p = START
    for _ in range(3):
        p, _objective = em_step(p, jm.chunk(x), 1e-6)
    return (jnp.sum(p.means) + jnp.sum(p.weights * jnp.arange(1.0, K + 1))
            + jnp.sum(p.precisions_cholesky))


def test_grad_through_em_steps_matches_finite_differences():
    grad = jax.jit(jax.grad(three_em_steps))(SMALL_X)
    assert grad.shape == SMALL_X.shape
    fd = central_differences(jax.jit(three_em_steps), SMALL_X)
    assert np.max(np.abs(fd)) > 1e-3, "the test function should depend on the data"
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-6, atol=1e-8)


def test_jvp_through_a_fit_matches_finite_differences():
    """Forward mode through the whole fit (initialisation and all max_iter = 100
    EM iterations of the driver's while_loop: tol=0 so the iteration count
    cannot change under the perturbation): ``jvp`` equals central differences
    of the fit, both restarts."""
    def means(x):
        return gmm_fit(x, tol=0.0).params.means

    v = np.random.default_rng(9).normal(size=X.shape)
    value, tangent = jax.jvp(means, (X,), (v,))
    np.testing.assert_allclose(np.asarray(value), np.asarray(means(X)), rtol=RTOL, atol=ATOL)
    h = 1e-6
    fd = (np.asarray(means(X + h * v)) - np.asarray(means(X - h * v))) / (2 * h)
    assert np.max(np.abs(fd)) > 1e-3
    np.testing.assert_allclose(np.asarray(tangent), fd, rtol=1e-5, atol=1e-7)


# -------------------------------------------- d. flags under a trace, errors eagerly

X_NAN = X.copy()
X_NAN[17, 1] = np.nan


def test_nan_data_under_jit_reports_instead_of_raising():
    """Under ``jit`` the data's values are unknown to the checks: the fit runs
    and every restart reports the problem (``failed``, or a non-finite
    objective); nothing raises."""
    res = JITTED["gmm"](X_NAN)
    failed = np.asarray(res.failed)
    finite = np.isfinite(np.asarray(res.objective))
    assert failed.shape == (2,)
    assert np.all(failed | ~finite), (failed, np.asarray(res.objective))


def test_nan_data_eagerly_raises_naming_x():
    with pytest.raises(ValueError, match=r"\bX\b"):
        gmm_fit(X_NAN)


@pytest.mark.parametrize("bad", [X[:, 0], X[None]], ids=["1-D", "3-D"])
def test_shape_errors_still_raise_under_jit(bad):
    with pytest.raises(ValueError, match=r"\bX\b.*2-D"):
        JITTED["gmm"](bad)
    with pytest.raises(ValueError, match=r"\bX\b.*2-D"):
        gmm_fit(bad)
