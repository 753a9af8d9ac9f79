"""Conformance: every covariance family x every GMM fit obeys the same contract.

One parametrised test body runs over the four covariance families and the five
ways of fitting a Gaussian mixture (EM, MAP-EM, an optax optimizer, a stream of
chunks, a data mesh). Every case checks the contract every fit promises
(finite parameters, weights on the simplex, finite history up to ``n_iter``
and NaN after it, a valid ``best``); EM-type fits also never lower their
objective; the streamed and sharded fits equal the in-memory EM fit from the
same key and chunk size; and the objective of every EM-type fit is the mean
log-likelihood (MAP-EM: log-posterior, with the default prior) per sample of
:func:`jaxmix.gmm.mean_log_posterior`, recomputed eagerly from the returned
parameters (an independent code path: ``log_prob`` over the data, not EM's
sufficient statistics). The reported objective belongs to the parameters
before the final M-step, which a fit does not return; EM raises it and the
fits converge (last change < tol), so the recomputed value must lie in
``[objective, objective + 2 tol]`` -- a missing prior term, a wrong
normaliser or a sign error is off by orders of magnitude more.

Shapes are shared across all cases (n = 300, d = 2, k = 3, R = 2,
chunk_size = 100, max_iter = 100, ``init="random_from_data"``, the cheapest
initialiser to compile) so XLA compiles one program per (family, fit). The
default run takes every fit on "full" and every family by EM (8 programs);
``-m slow`` adds the other 12 pairs. float64 (conftest enables x64): the
in-memory, streamed and sharded EM fits differ only in the order of
floating-point additions (~1e-14 relative).

The sharded case uses ``jaxmix.data_mesh()`` over the devices of this process
(one CPU device in the default run): it checks that the mesh entry point gives
the in-memory answer; ``tests/test_distributed.py`` covers 4 devices.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import optax
import pytest
from conftest import TYPES, assert_params_close, blobs, index

import jaxmix as jm

N, D, K, R = 300, 2, 3, 2
CHUNK = 100
MAX_ITER = 100
TOL = 1e-8            # EM-type fits converge well inside MAX_ITER on these blobs
REG = 1e-6
# EM never lowers its objective; allow float64 rounding of a mean over N samples
MONOTONE_RTOL = 1e-10
# streamed / sharded vs in-memory: summation order only
EQUAL_RTOL, EQUAL_ATOL = 1e-9, 1e-11

FITS = ("em", "map_em", "gradient", "stream", "sharded")
EM_TYPE = ("em", "map_em", "stream", "sharded")
# A key whose random_from_data starts converge within MAX_ITER for every
# covariance type (key 0 puts two starts in one blob for some of them, and
# EM then crawls: starts are seed-dependent, not a property of the fit).
KEY = jax.random.PRNGKey(1)
X = blobs(np.random.default_rng(0), N, [[-4.0, 0.0], [0.0, 4.0], [4.0, 0.5]])
ADAM = optax.adam(1e-2)   # one instance: the optimizer is static, reuse avoids recompiles


def fit_stream(key, x, k, **kw):
    """The streamed EM fit (one pass over a chunk source per iteration):
    ``fit_gmm`` of ``jaxmix.open_source(x)``. Change only this function if
    the API moves."""
    return jm.fit_gmm(key, jm.open_source(x), k, **kw)


def gmm_api(name):
    """``jaxmix.gmm.<name>``."""
    return getattr(jm.gmm, name)


COMMON = dict(n_restarts=R, init="random_from_data", tol=TOL, reg_covar=REG, max_iter=MAX_ITER,
              chunk_size=CHUNK)


@functools.lru_cache(maxsize=None)
def run(fit: str, covariance_type: str):
    kw = dict(COMMON, covariance_type=covariance_type)
    if fit == "em":
        return jm.fit_gmm(KEY, X, K, **kw)
    if fit == "map_em":
        return jm.fit_gmm(KEY, X, K, prior="default", **kw)
    if fit == "gradient":
        return jm.fit_gradient(KEY, X, K, ADAM, **kw)
    if fit == "stream":
        return fit_stream(KEY, X, K, **kw)
    if fit == "sharded":
        return jm.fit_gmm(KEY, X, K, mesh=jm.data_mesh(), **kw)
    raise AssertionError(fit)


def assert_same_fit(a, b):
    """Two FitResults agree restart by restart: params, objective, status, history."""
    for r in range(R):
        assert_params_close(index(a.params, r), index(b.params, r), EQUAL_RTOL, EQUAL_ATOL,
                            f"restart {r}")
    np.testing.assert_allclose(np.asarray(a.objective), np.asarray(b.objective),
                               rtol=EQUAL_RTOL)
    np.testing.assert_array_equal(np.asarray(a.n_iter), np.asarray(b.n_iter))
    np.testing.assert_array_equal(np.asarray(a.converged), np.asarray(b.converged))
    np.testing.assert_array_equal(np.asarray(a.failed), np.asarray(b.failed))
    np.testing.assert_allclose(np.asarray(a.history), np.asarray(b.history), rtol=EQUAL_RTOL,
                               equal_nan=True)
    assert int(a.best) == int(b.best)


def cases():
    """Every (family, fit). The default run covers every fit (on "full") and
    every family (by EM): 8 compiled programs; the other 12 cases, ~30 s more
    on two cores, run with -m slow."""
    for ct in TYPES:
        for fit in FITS:
            fast = ct == "full" or fit == "em"
            yield pytest.param(ct, fit, id=f"{ct}-{fit}",
                               marks=() if fast else pytest.mark.slow)


@pytest.mark.parametrize("covariance_type,fit", list(cases()))
def test_fit_conforms(covariance_type, fit):
    res = run(fit, covariance_type)
    p = res.params
    assert p.covariance_type == covariance_type
    assert p.weights.shape == (R, K) and p.means.shape == (R, K, D)
    assert p.weights.dtype == np.float64, "float64 input is computed in float64"

    # --- the contract of every fit
    for name in ("weights", "means", "precisions_cholesky"):
        assert np.all(np.isfinite(np.asarray(getattr(p, name)))), name
    w = np.asarray(p.weights)
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    n_iter = np.asarray(res.n_iter)
    hist = np.asarray(res.history)
    assert hist.shape == (R, MAX_ITER)
    assert not np.any(np.asarray(res.failed)), "nothing here should fail"
    assert np.all(n_iter >= 1)
    for r in range(R):
        assert np.all(np.isfinite(hist[r, :n_iter[r]])), f"restart {r} history"
        assert np.all(np.isnan(hist[r, n_iter[r]:])), f"restart {r} history after the stop"
        # the reported objective is the last recorded one
        np.testing.assert_allclose(float(res.objective[r]), hist[r, n_iter[r] - 1],
                                   rtol=1e-12)
    obj = np.asarray(res.objective)
    assert int(res.best) == int(np.argmax(obj))

    if fit not in EM_TYPE:
        return
    # --- EM and MAP-EM never lower their objective
    for r in range(R):
        h = hist[r, :n_iter[r]]
        drops = h[:-1] - h[1:]
        assert np.all(drops <= MONOTONE_RTOL * np.abs(h[:-1])), \
            f"restart {r}: the objective decreased by up to {drops.max():.3g}"
    assert np.all(np.asarray(res.converged)), "EM-type fits should converge on these blobs"

    # --- other placements equal the in-memory fit
    if fit in ("stream", "sharded"):
        assert_same_fit(res, run("em", covariance_type))

    # --- the objective is the mean log-(likelihood|posterior) per sample of the params
    # it was evaluated at: the params before the final M-step. Those are not returned;
    # the final params' value lies between objective and objective + (last change) since
    # EM increases it and converges (linearly) -- the last change is < TOL.
    prior = gmm_api("default_prior")(X, K, covariance_type) if fit == "map_em" else None
    data = jm.chunk(X)
    mean_log_posterior = gmm_api("mean_log_posterior")
    for r in range(R):
        value = float(mean_log_posterior(index(p, r), data, prior))
        assert -1e-12 <= value - obj[r] <= 2 * TOL, (r, value, obj[r])
    if fit == "map_em":
        # and it is not the likelihood alone: the prior term is far larger than TOL here
        for r in range(R):
            lik = float(mean_log_posterior(index(p, r), data, None))
            assert abs(lik - obj[r]) > 1e3 * TOL


# ---------------------------------------------------------------------------
# Every component family of jaxmix.families, by the generic fits.

def _family_cases():
    """``name -> (family, planted components)``: every built-in family and a
    product of three (drawn from with the family's own sampler)."""
    from jaxmix.families import (Bernoulli, Categorical, DiagGaussian, DiagParams, Exponential,
                                 Gaussian, GaussianComponents, Poisson, Product, StudentParams,
                                 StudentT, VMFParams, VonMisesFisher)
    means = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, 0.5]])
    pc = np.stack([np.eye(2), [[1.0, 0.5], [0.0, 2.0]], 0.7 * np.eye(2)])
    gauss = GaussianComponents(means, pc)
    student = StudentParams(means, np.stack([np.eye(2)] * 3), np.array([4.0, 4.0, 4.0]))
    sphere = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]])
    cat = np.array([[[0.8, 0.1, 0.1, 0.0], [0.1, 0.1, 0.1, 0.7]],
                    [[0.1, 0.8, 0.1, 0.0], [0.7, 0.1, 0.1, 0.1]],
                    [[0.1, 0.1, 0.8, 0.0], [0.1, 0.7, 0.1, 0.1]]])
    return {
        "bernoulli": (Bernoulli(), np.array([[0.9, 0.8, 0.1], [0.1, 0.9, 0.9], [0.2, 0.1, 0.8]])),
        "poisson": (Poisson(), np.array([[1.0, 6.0], [8.0, 2.0], [3.0, 3.0]])),
        "exponential": (Exponential(), np.array([[0.2, 5.0], [5.0, 0.2], [1.0, 1.0]])),
        "categorical": (Categorical((3, 4)), cat),
        "diag-gaussian": (DiagGaussian(), DiagParams(means, np.array([[1.0, 0.5], [0.5, 2.0],
                                                                      [1.0, 1.0]]))),
        "gaussian-full": (Gaussian("full"), gauss),
        "gaussian-spherical": (Gaussian("spherical"), GaussianComponents(means, np.ones(3))),
        "student-t": (StudentT(4.0, fixed_dof=True), student),
        # free degrees of freedom (ECM): weakly identified on 100 points per
        # cluster, they drift for hundreds of iterations, so this case need not converge
        "student-t-ecm": (StudentT(), student),
        "vmf": (VonMisesFisher(), VMFParams(sphere, np.array([20.0, 8.0, 40.0]))),
        "product": (Product(((Gaussian("full"), (0, 1)), (Categorical((3,)), (2,)),
                             (Poisson(), (3,)))),
                    (gauss, cat[:, :1, :3] / cat[:, :1, :3].sum(-1, keepdims=True),
                     np.array([[1.0], [8.0], [3.0]]))),
    }


FAMILY_CASES = _family_cases()
FAMILY_FITS = ("em", "map_em", "stream", "sharded")
FAMILY_TOL = 1e-6
FAMILY_KEY = jax.random.PRNGKey(3)  # key 1 leaves one vMF restart crawling from a poor start


@functools.lru_cache(maxsize=None)
def family_data(name):
    from jaxmix.families import MixtureParams, sample
    family, theta = FAMILY_CASES[name]
    truth = MixtureParams(np.array([0.3, 0.3, 0.4]), jax.tree.map(np.asarray, theta))
    x, _ = sample(family, jax.random.PRNGKey(3), truth, N)
    return np.asarray(x)


@functools.lru_cache(maxsize=None)
def family_run(name, fit):
    """``(result, traces of the compiled fit during the call)``."""
    from jaxmix.families import fit as family_fit
    family, x = FAMILY_CASES[name][0], family_data(name)
    kw = dict(n_restarts=R, tol=FAMILY_TOL, max_iter=MAX_ITER, chunk_size=CHUNK)
    before = family_fit.TRACE_COUNT["mixture"]
    if fit == "map_em":
        kw["prior"] = "default"
    source = jm.open_source(x) if fit == "stream" else x
    mesh = jm.data_mesh() if fit == "sharded" else None
    result = family_fit.fit_mixture(FAMILY_KEY, source, K, family, mesh=mesh, **kw)
    return result, family_fit.TRACE_COUNT["mixture"] - before


def _has_prior(name):
    family = FAMILY_CASES[name][0]
    return family.default_prior(np.ones((2, 1)), np.ones(2), K) is not None if name not in (
        "categorical", "product") else True


def family_cases():
    """Default run: every family by EM in memory, MAP-EM for the Gaussian and
    the product (three families' priors), and the product streamed and
    sharded; the other MAP-EM fits and placements in the slow set."""
    for name in FAMILY_CASES:
        for fit in FAMILY_FITS:
            if fit == "map_em" and name in ("diag-gaussian", "student-t", "student-t-ecm", "vmf"):
                continue  # maximum likelihood only
            # the Gaussian's spherical layout and the fixed-dof Student-t
            # differ from their default-run siblings only in a layout or a flag
            fast = ((fit == "em" and name not in ("gaussian-spherical", "student-t"))
                    or name == "product" or (fit == "map_em" and name == "gaussian-full"))
            yield pytest.param(name, fit, id=f"{name}-{fit}",
                               marks=() if fast else pytest.mark.slow)


@pytest.mark.parametrize("name,fit", list(family_cases()))
def test_family_fit_conforms(name, fit):
    from jaxmix.families import log_prob as mixture_log_prob
    from jaxmix.families.fit import log_prior
    res, traces = family_run(name, fit)
    family = FAMILY_CASES[name][0]
    p = res.params
    assert traces <= 1, "the restarts of one fit run in one compiled program"
    assert p.weights.shape == (R, K) and p.weights.dtype == np.float64
    assert all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree.leaves(p))
    np.testing.assert_allclose(np.asarray(p.weights).sum(axis=1), 1.0, rtol=1e-12)
    assert not np.any(np.asarray(res.failed))
    hist, n_iter, obj = np.asarray(res.history), np.asarray(res.n_iter), np.asarray(res.objective)
    assert int(res.best) == int(np.argmax(obj))
    for r in range(R):
        h = hist[r, :n_iter[r]]
        assert np.all(np.isfinite(h)) and np.all(np.isnan(hist[r, n_iter[r]:]))
        drops = h[:-1] - h[1:]
        assert np.all(drops <= MONOTONE_RTOL * np.abs(h[:-1])), \
            f"restart {r}: the objective decreased by up to {drops.max():.3g}"
    if name != "student-t-ecm":
        assert np.all(np.asarray(res.converged)), "EM should converge on these planted data"
    last = np.array([abs(hist[r, n_iter[r] - 1] - hist[r, n_iter[r] - 2]) for r in range(R)])
    if fit in ("stream", "sharded"):
        ref, _ = family_run(name, "em")
        np.testing.assert_allclose(hist, np.asarray(ref.history), rtol=EQUAL_RTOL, equal_nan=True)
        for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(ref.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-7, atol=1e-9)
    # the objective, recomputed from the returned params by an independent
    # path (the mixture's log-density, the prior's terms), lies in
    # [objective, objective + 2 tol]: the final M-step raised it by less than
    # tol (by less than twice the last change where the fit ran to max_iter)
    x = family_data(name)
    prior = family.default_prior(x, np.ones(N), K) if fit == "map_em" else None
    for r in range(R):
        pr = index(p, r)
        value = float(np.mean(np.asarray(mixture_log_prob(family, pr, x))))
        value += float(log_prior(family, pr, prior, 1.0, np.ones(K, bool))) / N
        assert -1e-10 <= value - obj[r] <= 2 * max(FAMILY_TOL, last[r]), (r, value, obj[r])
