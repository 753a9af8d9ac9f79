"""Gradient fits of the families: every family's bijector inverts, and a
gradient fit starts where EM starts (same key), optimises the same
objective, and reaches EM's optimum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_more_families import CASES, planted

from jaxmix.families import (Bernoulli, MixtureParams, Poisson, StudentParams, StudentT,
                             VMFParams, VonMisesFisher, fit_mixture, fit_mixture_gradient)

LBFGS = optax.lbfgs()
THETAS = {**{name: case for name, case in CASES.items()},
          "bernoulli": (Bernoulli(), np.array([[0.2, 0.9], [0.6, 0.1], [0.5, 0.5]])),
          "poisson": (Poisson(), np.array([[1.0, 8.0], [6.0, 0.5], [3.0, 3.0]])),
          "student": (StudentT(reg_covar=1e-3), StudentParams(
              np.zeros((3, 2)), np.array([np.eye(2), [[2.0, 0.5], [0.5, 1.0]], np.eye(2) * 3]),
              np.array([3.0, 10.0, 40.0]))),
          "vmf": (VonMisesFisher(), VMFParams(np.eye(3), np.array([2.0, 10.0, 50.0])))}


@pytest.mark.parametrize("name", THETAS)
def test_bijector_inverts(name):
    family, theta = THETAS[name]
    theta = jax.tree.map(jnp.asarray, theta)
    back = family.constrain(family.unconstrain(theta))
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(theta)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["poisson"] + [pytest.param(n, marks=pytest.mark.slow)
                                               for n in ("mixed", "exponential", "categorical")])
def test_gradient_fit_starts_with_em_and_reaches_its_optimum(name):
    """Default run: Poisson; the product and two more families: slow set."""
    if name == "poisson":
        from test_families import planted as planted_simple
        family, x = Poisson(), planted_simple("poisson", 600)
    else:
        family, x = CASES[name][0], planted(name, 600)[0]
    kw = dict(n_restarts=2, tol=1e-9, max_iter=300)
    em = fit_mixture(0, x, 3, family, **kw)
    gd = fit_mixture_gradient(0, x, 3, family, LBFGS, **kw)
    np.testing.assert_allclose(gd.history[:, 0], em.history[:, 0], rtol=1e-10)
    assert float(gd.objective[gd.best]) > float(em.objective[em.best]) - 1e-4
    # from EM's optimum the gradient fit does not move the objective
    start = jax.tree.map(lambda a: a[em.best], em.params)
    stay = fit_mixture_gradient(0, x, 3, family, LBFGS, init_params=start, n_restarts=1,
                                tol=1e-9, max_iter=20)
    h = np.asarray(stay.history[0])
    h = h[~np.isnan(h)]
    assert np.all(np.abs(h - h[0]) < 1e-6) and bool(stay.converged[0])
    assert isinstance(stay.best_params, MixtureParams)
