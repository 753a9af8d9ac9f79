"""von Mises-Fisher mixtures: log I_v against scipy.special.ive, the density
against scipy.stats.vonmises_fisher, the concentration's M-step against its
defining equation, planted directions recovered, a sampler whose mean
resultant length is A_d(kappa)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats as st

from jaxmix.families import MixtureParams, VMFParams, VonMisesFisher, fit_mixture, log_prob, sample
from jaxmix.families.vmf import _ratio, log_bessel_i

MEANS = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]])
KAPPA = np.array([20.0, 8.0, 40.0])
WEIGHTS = np.array([0.3, 0.3, 0.4])


@pytest.mark.parametrize("v", [0.0, 0.5, 1.0, 4.5, 49.0, 383.0])
def test_log_bessel_i_is_scipys(v):
    x = np.array([1e-2, 0.1, 1.0, 10.0, 100.0, 1e4])
    with np.errstate(divide="ignore"):
        ref = np.log(special.ive(v, x)) + x
    finite = np.isfinite(ref)  # scipy underflows for large v at small x
    np.testing.assert_allclose(np.asarray(log_bessel_i(v, jnp.asarray(x)))[finite], ref[finite],
                               rtol=1e-10, atol=1e-10)


def params():
    return MixtureParams(jnp.asarray(WEIGHTS), VMFParams(jnp.asarray(MEANS), jnp.asarray(KAPPA)))


def test_density_is_scipys():
    x, _ = sample(VonMisesFisher(), jax.random.PRNGKey(0), params(), 40)
    x = np.asarray(x)
    per = np.stack([np.log(WEIGHTS[j]) + st.vonmises_fisher(MEANS[j], KAPPA[j]).logpdf(x)
                    for j in range(3)], axis=1)
    np.testing.assert_allclose(log_prob(VonMisesFisher(), params(), x),
                               np.logaddexp.reduce(per, axis=1), rtol=1e-10, atol=1e-9)


def test_sampler_and_m_step_agree_with_the_mean_resultant_length():
    """Draws of one component: their mean resultant length is A_d(kappa), and
    the M-step on them solves A_d(kappa_hat) = that length."""
    one = MixtureParams(jnp.ones(1), VMFParams(jnp.asarray(MEANS[:1]), jnp.asarray([10.0])))
    x, _ = sample(VonMisesFisher(), jax.random.PRNGKey(1), one, 8000)
    x = np.asarray(x)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
    rbar = np.linalg.norm(x.mean(axis=0))
    # the mean resultant length's standard error at n = 8000 is about 1e-3
    np.testing.assert_allclose(rbar, float(_ratio(3, jnp.asarray(10.0))), atol=4e-3)
    family = VonMisesFisher()
    theta = family.m_step(None, jnp.asarray([float(len(x))]),
                          family.stats(None, jnp.asarray(x), jnp.ones((len(x), 1))), None)
    np.testing.assert_allclose(float(_ratio(3, theta.kappa[0])), rbar, rtol=1e-9)
    np.testing.assert_allclose(theta.kappa[0], 10.0, rtol=0.08)


@pytest.mark.slow
def test_em_recovers_planted_directions():
    x, _ = sample(VonMisesFisher(), jax.random.PRNGKey(2), params(), 1500)
    result = fit_mixture(0, np.asarray(x), 3, VonMisesFisher(), n_restarts=4, tol=1e-9,
                         max_iter=200)
    for h in np.asarray(result.history):
        h = h[~np.isnan(h)]
        assert np.all(np.diff(h) >= -1e-10 * np.abs(h).max())
    theta = result.best_params.theta
    order = [int(np.argmax(np.asarray(theta.means) @ m)) for m in MEANS]
    np.testing.assert_allclose(np.asarray(theta.means)[order], MEANS, atol=0.05)
    np.testing.assert_allclose(np.asarray(theta.kappa)[order], KAPPA, rtol=0.2)
    with pytest.raises(ValueError, match="unit vectors"):
        fit_mixture(0, np.asarray(x) * 2, 3, VonMisesFisher())
