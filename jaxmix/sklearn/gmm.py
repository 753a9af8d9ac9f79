"""scikit-learn-compatible ``GaussianMixture`` on top of :func:`jaxmix.fit_gmm`.

Change one import::

    from jaxmix.sklearn import GaussianMixture   # was: from sklearn.mixture import ...

This layer only validates (sklearn's ``validate_data`` and parameter
constraints), calls the functional core, names the fitted attributes and
returns numpy arrays. The ``n_init`` restarts run batched in one compiled
:func:`~jaxmix.fit_gmm` call; the best restart (highest final lower bound)
is kept, as sklearn does.

Differences from sklearn, by design:

* ``random_state`` seeds a ``jax.random`` key (an int ``s`` and
  ``RandomState(s)`` give the same key), so results are reproducible but not
  bit-identical to sklearn's draws.
* When ``weights_init`` / ``means_init`` / ``precisions_init`` are given, a
  single restart is run (the given parts are the same for every restart).
  The missing parts are the M-step on the samples nearest to each of
  ``means_init`` when it is given (sklearn takes them from ``init_params``,
  which pairs them with the given means in an arbitrary order), else from
  ``init_params`` on restart 0's key.
* ``sample`` draws labels and noise with ``jax.random``; the output is sorted
  by component like sklearn's.

Additions (default ``None``: scikit-learn's estimator):

* ``prior``: ``"default"`` or a :class:`~jaxmix.gmm.priors.GMMPrior` fits by
  MAP-EM; ``lower_bound_`` is then the mean log-posterior per sample.
* ``optimizer``: an optax optimizer (``optax.lbfgs()``, ``optax.adam(1e-2)``)
  fits the same objective (likelihood, or posterior with ``prior``) by
  gradient steps (:func:`jaxmix.fit_gradient`), with the same starts, ``tol``
  and ``max_iter`` (optimizer updates). It is not saved by ``save``.
"""

from __future__ import annotations

import numbers
import os
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as _SkGaussianMixture
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from jaxmix.compiling import jit
from jaxmix.criteria import aic as gmm_aic, bic as gmm_bic, n_parameters as gmm_n_parameters
from jaxmix.data import chunk
from jaxmix.fit.driver import AllRestartsFailed
from jaxmix.fit.gmm import DEGENERATE_FIX, fit_gmm
from jaxmix.fit.gradient import fit_gradient
from jaxmix.fit.init import one_start
from jaxmix.gmm import (family, log_prob, predict as gmm_predict, responsibilities,
                        sample as gmm_sample)
from jaxmix.io import check_loaded_gmm
from jaxmix.gmm.priors import GMMPrior
from jaxmix.params import GMMParams
from jaxmix.sklearn._common import (apply_in_blocks, as_jax_params, bucket, checked_X,
                                    compute_dtype, key_from_random_state, native_dtype,
                                    padded_gmm)
from jaxmix.sklearn.from_params import gaussian_mixture_from_model
from jaxmix.sklearn.persist import Persistent, check_scalars, load_as
from jaxmix.validation import check_int


# scikit-learn's message when the fit breaks down (its tests match it).
SKLEARN_FAILED = ("Fitting the mixture model failed because some components have ill-defined "
                  "empirical covariance (for instance caused by singleton or collapsed "
                  "samples). Try to decrease the number of components, increase reg_covar, "
                  "or scale the input data.")


_sample = jit(gmm_sample, static_argnames="n")


@jit(static_argnames="covariance_type")
def _covariances_and_precisions(pc, covariance_type):
    fam = family(covariance_type)
    return fam.covariance(pc), fam.precisions(pc)


def _check_init(name, value, shape, dtype, sklearn_name):
    """A given init array in float64, of ``shape``, finite also in the
    compute ``dtype``; errors in scikit-learn's words (its tests match them,
    ``sklearn_name`` is its name for the array), then ours."""
    if value is None:
        return None
    a = np.asarray(value, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(f"The parameter '{sklearn_name}' should have the shape of {shape}, "
                         f"but got {a.shape} ({name})")
    with np.errstate(over="ignore"):
        if not np.all(np.isfinite(a.astype(dtype))):
            raise ValueError(f"The parameter '{name}' contains NaN or infinity (in "
                             f"{np.dtype(dtype).name}, the dtype of X); rescale it with X")
    return a


def _check_weights_init(weights, given_dtype):
    """scikit-learn's rules for ``weights_init``: in ``[0, 1]`` and summing to
    one (to 1e-6 for float32 weights, 1e-8 otherwise), with its messages."""
    if np.any(weights < 0) or np.any(weights > 1):
        # scikit-learn's message, whose labels are swapped (its tests match them)
        raise ValueError("The parameter 'weights' should be in the range [0, 1], but got "
                         f"max value {np.min(weights):.5f}, min value {np.max(weights):.5f} "
                         "(weights_init)")
    atol = 1e-6 if given_dtype == np.float32 else 1e-8
    if not np.isclose(abs(1.0 - weights.sum()), 0.0, atol=atol):
        raise ValueError("The parameter 'weights' should be normalized, but got "
                         f"sum(weights) = {weights.sum():.5f} (weights_init)")


class GaussianMixture(Persistent, DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM, with scikit-learn's interface.

    Parameters and fitted attributes are those of
    :class:`sklearn.mixture.GaussianMixture`; see its documentation.

    >>> import numpy as np
    >>> from jaxmix.sklearn import GaussianMixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-5, 1, (200, 2)), rng.normal(5, 1, (200, 2))])
    >>> gm = GaussianMixture(n_components=2, n_init=4, random_state=0).fit(X)
    >>> np.sort(gm.means_[:, 0]).round(0).tolist()
    [-5.0, 5.0]
    """

    _parameter_constraints = {**_SkGaussianMixture._parameter_constraints,
                              "prior": [None, StrOptions({"default"}), GMMPrior],
                              "optimizer": "no_validation"}  # fit_gradient checks it
    _saved_arrays = ("weights_", "means_", "covariances_", "precisions_",
                     "precisions_cholesky_")
    _saved_optional_arrays = ("lower_bounds_",)
    _saved_scalars = ("converged_", "n_iter_", "lower_bound_", "n_features_in_")
    _params_kind = "GMMParams"  # GaussianMixture.load reads parameters files too
    _from_model = classmethod(gaussian_mixture_from_model)

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, warm_start=False,
                 verbose=0, verbose_interval=10, prior=None, optimizer=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.prior = prior
        self.optimizer = optimizer

    # ---- fitting ---------------------------------------------------------

    @native_dtype
    def fit(self, X, y=None):
        """Estimate the parameters with EM (``n_init`` restarts in one batched call)."""
        self._fit(X)
        return self

    @native_dtype
    def fit_predict(self, X, y=None):
        """Fit, then return the most probable component of each sample."""
        return self.predict(self._fit(X))

    def _fit(self, X):
        """Fit to ``X``; returns ``X`` validated (``fit`` does not predict:
        that would be one more program and pass)."""
        self._validate_params()
        check_int(self.n_init, "n_init")  # scikit-learn's Interval takes a bool
        X = checked_X(self, X, ensure_min_samples=2)
        n, d = X.shape
        if n < self.n_components:
            raise ValueError("Expected n_samples >= n_components but got n_components = "
                             f"{self.n_components}, n_samples = {n}")
        warm = self.warm_start and hasattr(self, "converged_")
        key = key_from_random_state(self.random_state)
        init_params = self._params() if warm else self._user_init(key, X)
        n_restarts = 1 if (warm or init_params is not None) else self.n_init
        t0 = time.perf_counter()
        try:
            result = jax.device_get(self._run(key, X, init_params, n_restarts, warm))
        except AllRestartsFailed as err:  # scikit-learn's error, with what jaxmix saw
            raise ValueError(SKLEARN_FAILED + f" ({err})") from err
        best = int(result.best)
        if result.failed[best]:  # every restart broke down (scikit-learn raises at the first)
            reason = AllRestartsFailed(
                "every initialization produced non-finite parameters at some iteration (the "
                f"best kept its last finite ones, of iteration {int(result.n_iter[best])}); "
                + DEGENERATE_FIX)
            raise ValueError(f"{SKLEARN_FAILED} ({reason})") from reason
        if self.verbose:
            self._print_progress(result, time.perf_counter() - t0)
        converged = bool(result.converged[best])
        if not converged and self.max_iter > 0:
            warnings.warn("Best performing initialization did not converge. Try different "
                          "init parameters, or increase max_iter, tol, or check for "
                          "degenerate data.", ConvergenceWarning)
        self._set_params_attrs(jax.tree.map(lambda a: np.asarray(a[best]), result.params))
        self.converged_ = converged
        self.n_iter_ = int(result.n_iter[best])
        history = np.asarray(result.history[best], np.float64)
        self.lower_bounds_ = [float(v) for v in history[~np.isnan(history)]]
        self.lower_bound_ = (float(result.objective[best]) if self.max_iter > 0
                             else -np.inf)
        return X

    def _run(self, key, X, init_params, n_restarts: int, warm: bool):
        """The functional fit: EM (MAP-EM with ``prior``), or ``optimizer``'s
        gradient fit of the same objective (:func:`jaxmix.fit_gradient`)."""
        kw = dict(covariance_type=self.covariance_type, n_restarts=n_restarts,
                  init=self.init_params, init_params=init_params, tol=self.tol,
                  reg_covar=self.reg_covar, max_iter=self.max_iter, prior=self.prior,
                  callback=self._live_lines() if self.verbose >= 2 else None)
        if self.optimizer is not None:
            return fit_gradient(key, X, self.n_components, self.optimizer, **kw)
        return fit_gmm(key, X, self.n_components, **kw,
                       init_objective=self.lower_bound_ if warm else None)

    def _user_init(self, key, X) -> GMMParams | None:
        """``GMMParams`` from ``weights_init`` / ``means_init`` / ``precisions_init``
        (missing parts from the samples nearest to ``means_init`` if it is
        given, else from ``init_params``), or ``None`` when none is given."""
        given = (self.weights_init, self.means_init, self.precisions_init)
        if all(g is None for g in given):
            return None
        k, d = self.n_components, X.shape[1]
        ct = self.covariance_type
        fam = family(ct)
        dtype = compute_dtype(X)
        weights = _check_init("weights_init", self.weights_init, (k,), dtype, "weights")
        means = _check_init("means_init", self.means_init, (k, d), dtype, "means")
        precisions = _check_init("precisions_init", self.precisions_init, fam.pc_shape(k, d),
                                 dtype, f"{ct} precision")
        base = None
        if any(g is None for g in given):  # the missing parts: an M-step on ...
            # ... the samples nearest to each given mean, or the init_params
            # initialiser's responsibilities
            base = jax.tree.map(np.asarray, one_start(
                key, chunk(jnp.asarray(X, dtype), None),
                None if means is None else jnp.asarray(means, dtype),
                jnp.asarray(self.reg_covar, dtype), k=k, covariance_type=ct,
                method=self.init_params))
            if not all(np.all(np.isfinite(a)) for a in jax.tree.leaves(base)):
                given_name = "means_init" if means is not None else "init_params"
                reason = AllRestartsFailed(
                    f"the starting parameters that {given_name} leaves to the data are not "
                    f"finite: the samples it assigns to some component are degenerate at "
                    f"reg_covar={self.reg_covar}; increase reg_covar or give weights_init and "
                    "precisions_init too")
                raise ValueError(f"{SKLEARN_FAILED} ({reason})") from reason
        if weights is not None:
            _check_weights_init(weights, np.asarray(self.weights_init).dtype)
        pc = (None if precisions is None else
              fam.precision_cholesky_from_precisions(precisions, name="precisions_init"))
        return GMMParams(
            jnp.asarray(base.weights if weights is None else weights, dtype),
            jnp.asarray(base.means if means is None else means, dtype),
            jnp.asarray(base.precisions_cholesky if pc is None else pc, dtype), ct)

    def _live_lines(self):
        """verbose >= 2: a line every ``verbose_interval`` iterations while the
        restarts run (together: the time lapse is the batch's, the change the
        largest of the restarts that stepped)."""
        last = {"objective": None, "seconds": 0.0}

        def line(p):
            before, last["objective"] = last["objective"], p.objective.copy()
            it = int(p.iteration.max())
            if it % max(1, int(self.verbose_interval)):
                return
            change = np.inf if before is None else np.max(np.abs(p.objective - before)[p.active])
            print(f"  Iteration {it}\t time lapse {p.seconds - last['seconds']:.5f}s\t "
                  f"ll change {change:.5f}")
            last["seconds"] = p.seconds
        return line

    def _print_progress(self, result, seconds):
        hist = np.asarray(result.history)
        for r in range(hist.shape[0]):
            print(f"Initialization {r}")
            state = "converged" if result.converged[r] else "did not converge"
            print(f"Initialization {state}. lower bound {float(result.objective[r]):.5f}.")
        print(f"{hist.shape[0]} initialization(s) run batched in {seconds:.3f}s; "
              f"best: {int(result.best)}")

    # ---- parameters <-> attributes ---------------------------------------

    def _set_params_attrs(self, p: GMMParams):
        ct = p.covariance_type
        pc = np.asarray(p.precisions_cholesky)
        self.weights_ = np.asarray(p.weights)
        self.means_ = np.asarray(p.means)
        self.precisions_cholesky_ = pc
        k = pc.shape[0] if family(ct).per_component else None
        cov, prec = _covariances_and_precisions(padded_gmm(p, pc.dtype).precisions_cholesky, ct)
        self.covariances_, self.precisions_ = (np.asarray(a)[:k] for a in (cov, prec))

    def _params(self) -> GMMParams:
        check_is_fitted(self, "precisions_cholesky_")
        return GMMParams(self.weights_, self.means_, self.precisions_cholesky_,
                         self.covariance_type)

    def _eval(self, fn, X):
        params = self._params()
        X = checked_X(self, X, reset=False)
        padded = padded_gmm(params, compute_dtype(X))
        width = padded.n_components * params.n_features
        return apply_in_blocks(fn, padded, X, width)

    # ---- inference -------------------------------------------------------

    @native_dtype
    def predict(self, X):
        """Most probable component of each sample ``(n,)``."""
        return self._eval(gmm_predict, X).astype(np.int64)

    @native_dtype
    def predict_proba(self, X):
        """Posterior probability of each component ``(n, k)``."""
        return self._eval(responsibilities, X)[:, :self.n_components]

    @native_dtype
    def score_samples(self, X):
        """Log-density of each sample ``(n,)``."""
        return self._eval(log_prob, X)

    def score(self, X, y=None):
        """Mean log-likelihood per sample (averaged in the dtype of ``X``, as
        scikit-learn's ``score_samples(X).mean()``)."""
        return float(np.mean(self.score_samples(X)))

    @native_dtype
    def sample(self, n_samples=1):
        """Draw ``n_samples`` points; returns ``(X, y)`` sorted by component like sklearn."""
        params = self._params()
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples} . The sampling "
                             "requires at least one sample.")
        key = key_from_random_state(self.random_state)
        n = int(n_samples)  # drawn in a bucket of sizes, with padded params: few programs
        x, y = _sample(key, padded_gmm(params, compute_dtype(self.means_)), bucket(n))
        x, y = np.asarray(x)[:n], np.asarray(y)[:n].astype(np.int64)
        order = np.argsort(y, kind="stable")
        return x[order], y[order]

    def _n_parameters(self):
        """Free parameters of the fitted model (scikit-learn's private method,
        which its tests and some user code call)."""
        check_is_fitted(self, "means_")
        k, d = self.means_.shape
        return gmm_n_parameters(k, d, self.covariance_type)

    def bic(self, X):
        """Bayesian information criterion on ``X`` (lower is better)."""
        return self._criterion(gmm_bic, X)

    def aic(self, X):
        """Akaike information criterion on ``X`` (lower is better)."""
        return self._criterion(gmm_aic, X)

    @native_dtype
    def _criterion(self, fn, X):
        params = self._params()
        X = checked_X(self, X, reset=False)
        return fn(as_jax_params(params, compute_dtype(X)), X)

    # ---- persistence -----------------------------------------------------

    @classmethod
    def load(cls, path, covariance_type=None):
        """Read a model written by :meth:`save`; ``covariance_type`` (optional)
        makes a file of another covariance type a ``ValueError``."""
        return load_as(path, (cls,), covariance_type)

    def _check_loaded(self, path):
        """After loading: typed scalars; float factors checked by the one params
        checker under ``covariance_type`` (the file's one type) against
        ``n_components`` and ``n_features_in_``, weights summing to one;
        ``lower_bounds_`` a list of floats; covariances and precisions
        recomputed from the factors (the file's copies are not a second source)."""
        where = os.fspath(path)
        check_scalars(path, self, dict(converged_=bool, n_iter_=int, lower_bound_=float,
                                       n_features_in_=int))
        p = self._params()
        if any(np.asarray(a).dtype.kind != "f" for a in (p.weights, p.means,
                                                          p.precisions_cholesky)):
            raise ValueError(f"{where}: weights_, means_ and precisions_cholesky_ must be float")
        check_loaded_gmm(path, p, k=self.n_components, d=self.n_features_in_)
        if abs(float(np.sum(p.weights, dtype=np.float64)) - 1.0) > 1e-3:
            raise ValueError(f"{where}: weights_ must sum to 1, got {np.sum(p.weights):.6g}")
        bounds = np.asarray(getattr(self, "lower_bounds_", []), dtype=float)
        if bounds.ndim != 1:
            raise ValueError(f"{where}: lower_bounds_ must be 1-D, got shape {bounds.shape}")
        if hasattr(self, "lower_bounds_"):
            self.lower_bounds_ = bounds.tolist()
        self._set_params_attrs(p)
