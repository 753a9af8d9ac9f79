r"""The objective every Gaussian-mixture fit maximises, stated once.

With weights ``w_n`` (``N = sum_n w_n``) and an optional prior (see
:mod:`jaxmix.gmm.priors`; ``prior=None`` is maximum likelihood),

.. math::

    J(\theta) = \frac{1}{N}\Big(\sum_n w_n \log p(x_n \mid \theta) + \log p(\theta)\Big),
    \qquad \theta \in \Theta_r = \{\theta : \Sigma_k \succeq r I \ \text{for every } k\},

the mean log-posterior (mean log-likelihood) per unit weight, over mixtures
whose covariances are at least ``r = reg_covar`` in every direction. Every
fit reports ``J`` of the parameters an iteration starts from as its
``objective`` and ``history``, and the best restart is the one with the
highest ``J``.

How each method stays in ``Theta_r``:

- EM and MAP-EM (:func:`jaxmix.fit_gmm`) add ``r I`` to the M-step's
  covariance, as scikit-learn does (so their fixed points are those of
  scikit-learn's ``GaussianMixture``; they lie within ``O(r)`` of the
  maximisers of ``J`` over ``Theta_r``).
- Gradient fits (:func:`jaxmix.fit_gradient`) optimise over ``Theta_r``
  itself: their bijector (:func:`jaxmix.gmm.gradient.constrain`) maps every
  unconstrained point to covariances ``S_k + r I`` with ``S_k`` positive
  definite. Without the floor, maximum likelihood is unbounded (a component
  on one point), so the default ``reg_covar=1e-6`` is the same for both.

Stopping, the same for every method (``tol`` is in units of ``J``: nats per
sample):

- EM stops when ``J`` changed by less than ``tol`` in one iteration
  (scikit-learn's rule; EM does not decrease ``J``, up to rounding).
- A gradient fit stops as ``converged`` only when its own ``J`` changed by
  less than ``tol`` in one iteration *and* an EM step from its parameters
  would gain less than ``tol`` (:func:`jaxmix.gmm.step.em_gain`): the test
  EM's own stopping rule applies, so a tiny step (an L-BFGS start, a
  schedule warming up from zero) is not taken for convergence. A gradient
  fit whose parameters did not change for ``STALL_ITERATIONS`` iterations
  in a row without converging stops as ``stalled``.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxmix.data.reduce import reduce
from jaxmix.gmm.density import log_prob
from jaxmix.gmm.priors import GMMPrior, log_prior_terms
from jaxmix.params import GMMParams

# Iterations in a row without any change of the parameters after which a
# gradient fit that has not converged stops as ``stalled``.
STALL_ITERATIONS = 3


def per_sample(log_lik, params: GMMParams, prior: GMMPrior | None, total, log_weights=None,
               real=None):
    """``J`` from the summed weighted log-likelihood ``log_lik`` of ``params``
    (``log_weights``/``real`` as in :func:`jaxmix.gmm.priors.log_prior_terms`)."""
    return (log_lik + log_prior_terms(params, prior, log_weights, real)) / total


def mean_log_posterior(params: GMMParams, data, prior: GMMPrior | None = None, real=None):
    """``J(params)`` on ``data`` (from :func:`jaxmix.data.chunked.chunk`), one
    pass; ``real (k,)``: the real components of a padded mixture."""
    log_lik = reduce(lambda x, w, _: jnp.sum(w * log_prob(params, x)), data)
    return per_sample(log_lik, params, prior, data.total_weight(), jnp.log(params.weights),
                      real)

