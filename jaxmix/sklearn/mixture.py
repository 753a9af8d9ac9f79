"""``MixtureModel``: a mixture of any component family (:mod:`jaxmix.families`)
with ``GaussianMixture``'s workflow: ``fit``, ``predict``, ``predict_proba``,
``score_samples``, ``score``, ``sample``, ``bic``, ``aic``, ``n_init``
restarts batched in one compiled call, ``save`` / ``load``.

>>> import numpy as np
>>> from jaxmix.families import Poisson
>>> from jaxmix.sklearn import MixtureModel
>>> rng = np.random.default_rng(0)
>>> X = rng.poisson(np.where(np.arange(300)[:, None] % 2, 2.0, 9.0), (300, 2)).astype(float)
>>> model = MixtureModel(Poisson(), n_components=2, n_init=4, random_state=0).fit(X)
>>> np.sort(model.theta_[:, 0]).round(0)  # float64 input: fitted in float64
array([2., 9.])

Fitted attributes: ``weights_`` ``(k,)``, ``theta_`` (the family's component
parameters: an array, or a tuple/named tuple of them for products and
Gaussian blocks), ``converged_``, ``n_iter_``, ``lower_bound_`` (the mean
log-likelihood, or log-posterior with ``prior``, of the last iteration),
``n_features_in_``.
"""

from __future__ import annotations

import jax
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted

from jaxmix.families import fit as families_fit, mixture
from jaxmix.families.mixture import MixtureParams
from jaxmix.io.mixture_file import load_mixture, n_features_of, save_mixture
from jaxmix.sklearn._common import (checked_X, checked_weights, key_from_random_state,
                                    native_dtype)


class MixtureModel(DensityMixin, BaseEstimator):
    """Mixture of ``family`` components fitted by EM (MAP-EM with ``prior``).

    Args:
      family: a component family, e.g. ``jaxmix.families.Bernoulli()``.
      n_components, tol, max_iter, n_init, random_state: as in ``GaussianMixture``.
      prior: ``None``, ``"default"`` or the family's prior.
    """

    def __init__(self, family=None, n_components=1, *, tol=1e-3, max_iter=100, n_init=1,
                 prior=None, random_state=None):
        self.family = family
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.prior = prior
        self.random_state = random_state

    @native_dtype
    def fit(self, X, y=None, sample_weight=None):
        if self.family is None:
            raise ValueError("family must be a component family, e.g. "
                             "jaxmix.families.Bernoulli(); got None")
        X = checked_X(self, X, reset=True)
        result = families_fit.fit_mixture(
            key_from_random_state(self.random_state), X, self.n_components, self.family,
            n_restarts=self.n_init, prior=self.prior, tol=self.tol, max_iter=self.max_iter,
            sample_weight=checked_weights(sample_weight, X))
        best = int(result.best)
        self._set_params(result.best_params)
        self.converged_ = bool(result.converged[best])
        self.n_iter_ = int(result.n_iter[best])
        self.lower_bound_ = float(result.objective[best])
        return self

    def _set_params(self, params: MixtureParams):
        self.weights_ = np.asarray(params.weights)
        self.theta_ = jax.tree.map(np.asarray, params.theta)

    def _params(self) -> MixtureParams:
        check_is_fitted(self, "weights_")
        return MixtureParams(self.weights_, self.theta_)

    def _x(self, X):
        x = checked_X(self, X, reset=False)
        self._params()
        outside = int(np.sum(~np.asarray(self.family.in_support(x))))
        if outside:
            raise ValueError(f"X: {outside} row(s) lie outside the {self.family.name} family's "
                             f"support ({self.family.support})")
        return x

    @native_dtype
    def score_samples(self, X):
        return np.asarray(mixture.log_prob(self.family, self._params(), self._x(X)))

    def score(self, X, y=None):
        return float(np.mean(self.score_samples(X)))

    @native_dtype
    def predict_proba(self, X):
        return np.asarray(mixture.responsibilities(self.family, self._params(), self._x(X)))

    @native_dtype
    def predict(self, X):
        return np.asarray(mixture.predict(self.family, self._params(), self._x(X)))

    def fit_predict(self, X, y=None):
        return self.fit(X).predict(X)

    @native_dtype
    def sample(self, n_samples=1):
        key = key_from_random_state(self.random_state)
        x, labels = mixture.sample(self.family, jax.random.fold_in(key, 1), self._params(),
                                   int(n_samples))
        return np.asarray(x), np.asarray(labels)

    @native_dtype
    def bic(self, X):
        return float(mixture.bic(self.family, self._params(), self._x(X)))

    @native_dtype
    def aic(self, X):
        return float(mixture.aic(self.family, self._params(), self._x(X)))

    def save(self, path):
        """Write the fitted model (:mod:`jaxmix.io.mixture_file`)."""
        save_mixture(path, self.family, self._params())

    @classmethod
    def load(cls, path, families=()):
        """A fitted ``MixtureModel`` from :meth:`save`'s file (or ``jaxmix fit
        --family``'s); ``converged_``/``n_iter_`` are not stored. ``families``:
        the classes of your own the file may name."""
        family, params, _ = load_mixture(path, families)
        if np.ndim(params.weights) != 1:
            raise ValueError(f"{path} holds restart-batched parameters; an estimator holds one")
        est = cls(family, n_components=params.weights.shape[0])
        est._set_params(params)
        est.n_features_in_ = n_features_of(family, jax.tree.leaves(params.theta))
        return est
