"""scikit-learn-compatible ``BayesianGaussianMixture`` on
:mod:`jaxmix.gmm.variational`: the same parameters, defaults, fitted
attributes and lower bound as scikit-learn's; the ``n_init`` restarts run
in one compiled call and the one with the highest lower bound is kept.

Differences, by design: ``random_state`` seeds a ``jax.random`` key, and
``init_params="kmeans"`` takes its labels from :func:`jaxmix.fit_kmeans`
(one restart per initialisation), so starts are reproducible but not
scikit-learn's draws; from the same starting responsibilities the fit is
scikit-learn's (``tests/sklearn/test_bayesian.py``).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as _SkBayesianGaussianMixture
from sklearn.utils.validation import check_is_fitted

from jaxmix.data import chunk
from jaxmix.fit.buckets import history_bucket
from jaxmix.fit.kmeans import fit_kmeans
from jaxmix.gmm import family
from jaxmix.gmm.variational import VBPrior, VBState, fit_states, weighted_log_prob
from jaxmix.sklearn._common import checked_X, compute_dtype, key_from_random_state, native_dtype
from jaxmix.sklearn.gmm import GaussianMixture


class BayesianGaussianMixture(DensityMixin, BaseEstimator):
    """Variational Bayesian Gaussian mixture (scikit-learn's parameters)."""

    _parameter_constraints = dict(_SkBayesianGaussianMixture._parameter_constraints)

    def __init__(self, *, n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans",
                 weight_concentration_prior_type="dirichlet_process",
                 weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
                 degrees_of_freedom_prior=None, covariance_prior=None, random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    # ---- fitting ---------------------------------------------------------

    def fit(self, X, y=None):
        """Fit the variational posterior (``n_init`` restarts in one call)."""
        self.fit_predict(X, y)
        return self

    @native_dtype
    def fit_predict(self, X, y=None):
        """Fit, then return the most probable component of each sample."""
        self._validate_params()
        X = checked_X(self, X, ensure_min_samples=2)
        n, d = X.shape
        if n < self.n_components:
            raise ValueError("Expected n_samples >= n_components but got n_components = "
                             f"{self.n_components}, n_samples = {n}")
        warm = self.warm_start and hasattr(self, "converged_")
        if not warm:
            self._set_priors(X)
        key = key_from_random_state(self.random_state)
        restarts = 1 if warm else int(self.n_init)
        start = self._state() if warm else self._initial_resp(key, X, restarts)
        result = jax.device_get(fit_states(
            start, chunk(jnp.asarray(X)), self._prior(X.dtype), self.tol, self.reg_covar,
            self.max_iter, self.lower_bound_ if warm else None,
            covariance_type=self.covariance_type,
            process=self.weight_concentration_prior_type == "dirichlet_process",
            history=history_bucket(self.max_iter)))
        best = int(result.best)
        state = jax.tree.map(lambda a: np.asarray(a[best]), result.params)
        self._set_state(state)
        self.converged_ = bool(result.converged[best])
        self.n_iter_ = int(result.n_iter[best])
        history = np.asarray(result.history[best], np.float64)
        self.lower_bounds_ = [float(v) for v in history[~np.isnan(history)]]
        self.lower_bound_ = float(result.objective[best]) if self.max_iter > 0 else -np.inf
        if self.verbose:
            print(f"{restarts} initialization(s) run batched; best: {best}, lower bound "
                  f"{self.lower_bound_:.5f}, {'converged' if self.converged_ else 'did not converge'}"
                  f" after {self.n_iter_} iterations")
        if not self.converged_ and self.max_iter > 0:
            warnings.warn("Best performing initialization did not converge. Try different "
                          "init parameters, or increase max_iter, tol, or check for "
                          "degenerate data.", ConvergenceWarning)
        return self.predict(X)

    def _set_priors(self, X):
        """scikit-learn's ``*_prior_`` attributes from the parameters and ``X``."""
        n, d = X.shape
        k = self.n_components
        self.weight_concentration_prior_ = (1.0 / k if self.weight_concentration_prior is None
                                            else float(self.weight_concentration_prior))
        self.mean_precision_prior_ = (1.0 if self.mean_precision_prior is None
                                      else float(self.mean_precision_prior))
        self.mean_prior_ = (X.mean(axis=0) if self.mean_prior is None
                            else self._array("mean_prior", self.mean_prior, (d,), X.dtype))
        dof = self.degrees_of_freedom_prior
        if dof is not None and not dof > d - 1.0:
            raise ValueError(f"The parameter 'degrees_of_freedom_prior' should be greater than "
                             f"{d - 1}, but got {dof:.3f}.")
        self.degrees_of_freedom_prior_ = float(d) if dof is None else float(dof)
        ct = self.covariance_type
        if self.covariance_prior is None:
            var = np.var(X, axis=0, ddof=1)
            self.covariance_prior_ = {"full": np.atleast_2d(np.cov(X.T)),
                                      "tied": np.atleast_2d(np.cov(X.T)), "diag": var,
                                      "spherical": var.mean()}[ct]
        else:
            shape = {"full": (d, d), "tied": (d, d), "diag": (d,), "spherical": ()}[ct]
            prior = self._array("covariance_prior", self.covariance_prior, shape, X.dtype)
            ok = (np.all(np.linalg.eigvalsh(prior) > 0) and np.allclose(prior, prior.T)
                  if prior.ndim == 2 else np.all(prior > 0))
            if not ok:
                raise ValueError(f"covariance_prior must be {'symmetric positive-definite' if prior.ndim == 2 else 'positive'} for covariance_type={ct!r}")
            self.covariance_prior_ = prior

    @staticmethod
    def _array(name, value, shape, dtype):
        arr = np.asarray(value, dtype)
        if arr.shape != shape:
            raise ValueError(f"The parameter '{name}' should have the shape of {shape}, but got "
                             f"{arr.shape}")
        return arr

    def _prior(self, dtype) -> VBPrior:
        value = lambda v: jnp.asarray(v, dtype)  # noqa: E731
        return VBPrior(value(self.weight_concentration_prior_), value(self.mean_precision_prior_),
                       value(self.mean_prior_), value(self.degrees_of_freedom_prior_),
                       value(self.covariance_prior_))

    def _initial_resp(self, key, X, restarts: int):
        """``(R, n, k)`` starting responsibilities (``init_params``)."""
        n, k = X.shape[0], self.n_components
        dtype = compute_dtype(X)
        if self.init_params in ("kmeans", "k-means++"):
            fit = fit_kmeans(key, X, k, n_restarts=restarts, init="k-means++",
                             max_iter=300 if self.init_params == "kmeans" else 0)
            cents = np.asarray(fit.params.centroids)
            labels = np.argmin(((X[None, :, None, :] - cents[:, None]) ** 2).sum(-1), axis=-1)
            return jax.nn.one_hot(labels, k, dtype=dtype)
        keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(restarts))
        if self.init_params == "random":
            u = jax.vmap(lambda kk: jax.random.uniform(kk, (n, k), dtype))(keys)
            return u / jnp.sum(u, axis=2, keepdims=True)
        rows = jax.vmap(lambda kk: jax.random.choice(kk, n, (k,), replace=False))(keys)
        return jax.vmap(lambda r: jnp.zeros((n, k), dtype).at[r, jnp.arange(k)].set(1.0))(rows)

    # ---- parameters <-> attributes ----------------------------------------

    def _set_state(self, s: VBState):
        process = self.weight_concentration_prior_type == "dirichlet_process"
        a, b = s.concentration_a, s.concentration_b
        if process:
            self.weight_concentration_ = (a, b)
            total = a + b
            w = a / total * np.concatenate([[1.0], np.cumprod(b / total)[:-1]])
        else:
            self.weight_concentration_ = a
            w = a
        self.weights_ = w / np.sum(w)
        self.mean_precision_ = s.mean_precision
        self.means_ = s.means
        self.degrees_of_freedom_ = (s.degrees_of_freedom[0] if self.covariance_type == "tied"
                                    else s.degrees_of_freedom)
        self.covariances_ = s.covariances
        self.precisions_cholesky_ = s.precisions_cholesky
        self.precisions_ = np.asarray(family(self.covariance_type).precisions(
            s.precisions_cholesky))

    def _state(self) -> VBState:
        check_is_fitted(self, "precisions_cholesky_")
        wc = self.weight_concentration_
        a, b = (wc if isinstance(wc, tuple) else (wc, np.zeros_like(wc)))
        k = self.n_components
        dof = np.broadcast_to(self.degrees_of_freedom_, (k,))
        return jax.tree.map(lambda v: jnp.asarray(v)[None], VBState(
            a, b, self.mean_precision_, self.means_, dof, self.covariances_,
            self.precisions_cholesky_))

    # ---- inference -------------------------------------------------------

    @native_dtype
    def _weighted_log_prob(self, X):
        state = jax.tree.map(lambda a: a[0], self._state())
        X = checked_X(self, X, reset=False)
        return np.asarray(weighted_log_prob(
            state, jnp.asarray(X), self.covariance_type,
            self.weight_concentration_prior_type == "dirichlet_process"))

    def predict(self, X):
        """Most probable component of each sample ``(n,)``."""
        return np.argmax(self._weighted_log_prob(X), axis=1).astype(np.int64)

    def predict_proba(self, X):
        """Posterior probability of each component ``(n, k)``."""
        lp = self._weighted_log_prob(X)
        return np.exp(lp - np.logaddexp.reduce(lp, axis=1, keepdims=True))

    def score_samples(self, X):
        """scikit-learn's ``score_samples``: log-sum-exp of the weighted log-probabilities."""
        return np.logaddexp.reduce(self._weighted_log_prob(X), axis=1)

    def score(self, X, y=None):
        """Mean of :meth:`score_samples`."""
        return float(np.mean(self.score_samples(X)))

    # Drawn from the fitted mixture (weights_, means_, precisions_cholesky_), as
    # GaussianMixture draws: the same attributes, the same code.
    sample = GaussianMixture.sample
    _params = GaussianMixture._params
