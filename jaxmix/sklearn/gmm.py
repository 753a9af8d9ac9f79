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
  single restart is run (the given parts are the same for every restart; the
  missing parts come from ``init_params`` on restart 0's key).
* ``sample`` draws labels and noise with ``jax.random``; the output is sorted
  by component like sklearn's.
"""

from __future__ import annotations

import numbers
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as _SkGaussianMixture
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from jaxmix.gmm.covariance import family
from jaxmix.gmm.density import log_prob, predict as gmm_predict, responsibilities, sample as gmm_sample
from jaxmix.fit.gmm import fit_gmm
from jaxmix.gmm.init import initialize
from jaxmix.params import GMMParams
from jaxmix.criteria import aic as gmm_aic, bic as gmm_bic
from jaxmix.data.chunked import chunk

# Rows per evaluation block: one block's (rows, k, d) intermediate stays near
# this many elements. Blocks are padded to a power of two rows (at least 16) so
# that calls on many different n reuse a handful of compiled shapes.
EVAL_BUDGET = 2 ** 22


# --------------------------------------------------------------------------
# Helpers shared with the K-Means estimators
# --------------------------------------------------------------------------

def key_from_random_state(random_state):
    """A ``jax.random`` key from sklearn's ``random_state`` (None, int, RandomState).

    An int ``s`` gives ``PRNGKey(s)`` directly; a ``RandomState`` (or ``None``,
    numpy's global state) is advanced by one draw, as sklearn consumes it.
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return jax.random.PRNGKey(int(random_state) % (2 ** 32))
    rng = check_random_state(random_state)
    return jax.random.PRNGKey(int(rng.randint(np.iinfo(np.int32).max)))


def _bucket(n: int) -> int:
    return max(16, 1 << (int(n) - 1).bit_length())


_JITTED = {}


def _jit(fn):
    if fn not in _JITTED:
        _JITTED[fn] = jax.jit(fn)
    return _JITTED[fn]


def apply_in_blocks(fn, params, x: np.ndarray, width: int) -> np.ndarray:
    """``fn(params, x)`` evaluated on row blocks of ``x`` (host loop, jitted
    per padded block shape); results concatenated as numpy."""
    n = x.shape[0]
    block = _bucket(min(n, max(16, EVAL_BUDGET // max(1, width))))
    f = _jit(fn)
    out = []
    for start in range(0, n, block):
        part = x[start:start + block]
        m = part.shape[0]
        size = _bucket(m) if start == 0 else block
        if m < size:
            part = np.concatenate([part, np.repeat(part[:1], size - m, axis=0)])
        out.append(np.asarray(f(params, jnp.asarray(part)))[:m])
    return np.concatenate(out)


def as_jax_params(params, dtype):
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), params)


def compute_dtype(x: np.ndarray):
    return jnp.asarray(np.zeros((), x.dtype)).dtype


# --------------------------------------------------------------------------
# GaussianMixture
# --------------------------------------------------------------------------

def _precisions(pc: np.ndarray, covariance_type: str) -> np.ndarray:
    """Precision matrices from their Cholesky factors (sklearn's ``precisions_``)."""
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", pc, pc)
    if covariance_type == "tied":
        return pc @ pc.T
    return pc ** 2


class GaussianMixture(DensityMixin, BaseEstimator):
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

    _parameter_constraints = dict(_SkGaussianMixture._parameter_constraints)

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, warm_start=False,
                 verbose=0, verbose_interval=10):
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

    # ---- fitting ---------------------------------------------------------

    def fit(self, X, y=None):
        """Estimate the parameters with EM (``n_init`` restarts in one batched call)."""
        self.fit_predict(X, y)
        return self

    def fit_predict(self, X, y=None):
        """Fit, then return the most probable component of each sample."""
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        n, d = X.shape
        if n < self.n_components:
            raise ValueError("Expected n_samples >= n_components but got n_components = "
                             f"{self.n_components}, n_samples = {n}")
        warm = self.warm_start and hasattr(self, "converged_")
        key = key_from_random_state(self.random_state)
        init_params = self._params() if warm else self._user_init(key, X)
        n_restarts = 1 if (warm or init_params is not None) else self.n_init
        t0 = time.perf_counter()
        result = fit_gmm(key, X, self.n_components, covariance_type=self.covariance_type,
                         n_restarts=n_restarts, init=self.init_params, init_params=init_params,
                         tol=self.tol, reg_covar=self.reg_covar, max_iter=self.max_iter)
        result = jax.device_get(result)
        best = int(result.best)
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
        return self.predict(X)

    def _user_init(self, key, X) -> GMMParams | None:
        """``GMMParams`` from ``weights_init`` / ``means_init`` / ``precisions_init``
        (missing parts from ``init_params``), or ``None`` when none is given."""
        given = (self.weights_init, self.means_init, self.precisions_init)
        if all(g is None for g in given):
            return None
        k, d = self.n_components, X.shape[1]
        ct = self.covariance_type
        fam = family(ct)
        dtype = compute_dtype(X)
        if any(g is None for g in given):
            base = initialize(key, chunk(jnp.asarray(X, dtype), None), k, ct, 1,
                              self.init_params, jnp.asarray(self.reg_covar, dtype))
            base = jax.tree.map(lambda a: np.asarray(a[0]), base)
        else:
            base = None
        weights = self._check_init("weights_init", self.weights_init, (k,))
        means = self._check_init("means_init", self.means_init, (k, d))
        precisions = self._check_init("precisions_init", self.precisions_init,
                                      fam.pc_shape(k, d))
        if weights is not None:
            if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-6):
                raise ValueError("The parameter 'weights_init' should be non-negative and "
                                 f"normalized, but got sum(weights_init) = {weights.sum():.5f}")
        if precisions is not None:
            if ct in ("full", "tied"):
                mats = precisions.reshape((-1, d, d))
                if not (np.allclose(mats, np.swapaxes(mats, -1, -2))
                        and np.all(np.linalg.eigvalsh(mats) > 0)):
                    raise ValueError(f"'{ct} precision' should be symmetric, positive-definite")
                cov = np.linalg.inv(precisions)
            else:
                if np.any(precisions <= 0):
                    raise ValueError(f"'{ct} precision' should be positive")
                cov = 1.0 / precisions
            pc = np.asarray(fam.precision_cholesky(jnp.asarray(cov, dtype)))
        else:
            pc = None
        return GMMParams(
            jnp.asarray(base.weights if weights is None else weights, dtype),
            jnp.asarray(base.means if means is None else means, dtype),
            jnp.asarray(base.precisions_cholesky if pc is None else pc, dtype), ct)

    @staticmethod
    def _check_init(name, value, shape):
        if value is None:
            return None
        a = np.asarray(value, dtype=np.float64)
        if a.shape != shape:
            raise ValueError(f"The parameter '{name}' should have the shape of {shape}, "
                             f"but got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"The parameter '{name}' contains NaN or infinity")
        return a

    def _print_progress(self, result, seconds):
        hist = np.asarray(result.history)
        for r in range(hist.shape[0]):
            print(f"Initialization {r}")
            h = hist[r][~np.isnan(hist[r])]
            if self.verbose >= 2:
                for it in range(self.verbose_interval, h.size + 1, self.verbose_interval):
                    change = h[it - 1] - (h[it - 2] if it >= 2 else -np.inf)
                    print(f"  Iteration {it}\t ll change {change:.5f}")
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
        self.covariances_ = np.asarray(family(ct).covariance(jnp.asarray(pc)))
        self.precisions_ = _precisions(pc, ct)

    def _params(self) -> GMMParams:
        check_is_fitted(self, "precisions_cholesky_")
        return GMMParams(self.weights_, self.means_, self.precisions_cholesky_,
                         self.covariance_type)

    def _eval(self, fn, X):
        params = self._params()
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        width = params.n_components * params.n_features
        return apply_in_blocks(fn, as_jax_params(params, compute_dtype(X)), X, width)

    # ---- inference -------------------------------------------------------

    def predict(self, X):
        """Most probable component of each sample ``(n,)``."""
        return self._eval(gmm_predict, X).astype(np.int64)

    def predict_proba(self, X):
        """Posterior probability of each component ``(n, k)``."""
        return self._eval(responsibilities, X)

    def score_samples(self, X):
        """Log-density of each sample ``(n,)``."""
        return self._eval(log_prob, X)

    def score(self, X, y=None):
        """Mean log-likelihood per sample."""
        return float(np.mean(self.score_samples(X), dtype=np.float64))

    def sample(self, n_samples=1):
        """Draw ``n_samples`` points; returns ``(X, y)`` sorted by component like sklearn."""
        params = self._params()
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples} . The sampling "
                             "requires at least one sample.")
        key = key_from_random_state(self.random_state)
        x, y = gmm_sample(key, as_jax_params(params, compute_dtype(self.means_)),
                          int(n_samples))
        x, y = np.asarray(x), np.asarray(y).astype(np.int64)
        order = np.argsort(y, kind="stable")
        return x[order], y[order]

    def bic(self, X):
        """Bayesian information criterion on ``X`` (lower is better)."""
        return self._criterion(gmm_bic, X)

    def aic(self, X):
        """Akaike information criterion on ``X`` (lower is better)."""
        return self._criterion(gmm_aic, X)

    def _criterion(self, fn, X):
        params = self._params()
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return fn(as_jax_params(params, compute_dtype(X)), X)

    # ---- persistence -----------------------------------------------------

    def save(self, path):
        """Write the fitted model to ``path`` (see :mod:`jaxmix.io`)."""
        from jaxmix.io import save_estimator
        save_estimator(path, self)

    @classmethod
    def load(cls, path, covariance_type=None):
        """Read a model written by :meth:`save`; ``covariance_type`` (optional)
        makes a file of another covariance type a ``ValueError``."""
        from jaxmix.io import load_estimator
        return load_estimator(path, cls, covariance_type=covariance_type)

