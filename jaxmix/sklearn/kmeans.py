"""scikit-learn-compatible ``KMeans`` and ``MiniBatchKMeans`` on top of
:func:`jaxmix.fit_kmeans` and :func:`jaxmix.fit_minibatch_kmeans`.

Change one import::

    from jaxmix.sklearn import KMeans, MiniBatchKMeans

Validation, attribute naming and numpy outputs only; the ``n_init`` restarts
run batched in one compiled call. Differences from sklearn, by design:

* ``random_state`` seeds a ``jax.random`` key (results reproducible, not
  bit-identical to sklearn's draws).
* ``algorithm="elkan"`` is accepted and runs Lloyd (same fixed point).
* ``MiniBatchKMeans(n_init=R)`` runs ``R`` complete mini-batch fits and keeps
  the one with the lowest inertia on all of ``X`` (sklearn picks among ``R``
  seedings by their inertia on a subsample and runs one fit).
* Sparse input is not supported.
"""

from __future__ import annotations

import os
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy import sparse
from sklearn.base import (BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin,
                          TransformerMixin)
from sklearn.cluster import KMeans as _SkKMeans, MiniBatchKMeans as _SkMiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from jaxmix.compiling import jit
from jaxmix.data import chunk
from jaxmix.host_random import fold_in_key
from jaxmix.fit.buckets import component_bucket
from jaxmix.fit.kmeans import fit_kmeans
from jaxmix.fit.minibatch import fit_minibatch_kmeans
from jaxmix.kmeans import (init_centroids as seed_centroids, minibatch_init, minibatch_step,
                           predict as km_predict, transform as km_transform)
from jaxmix.kmeans.init import seed_key
from jaxmix.kmeans.assign import nearest_sq_distance
from jaxmix.kmeans.minibatch import make_config
from jaxmix.params import KMeansParams
from jaxmix.sklearn._common import (apply_in_blocks, as_jax_params, checked_weights, checked_X,
                                    compute_dtype, key_from_random_state, native_dtype,
                                    with_copies)
from jaxmix.io import check_loaded_centroids
from jaxmix.sklearn.persist import Persistent, check_scalars


class _BaseKMeans(Persistent, ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin,
                  BaseEstimator):
    """Shared inference, validation and persistence of the K-Means estimators."""

    _default_n_init = 10
    _saved_arrays = ("cluster_centers_",)
    _saved_optional_arrays = ("labels_",)
    _saved_scalars = ("inertia_", "n_iter_", "n_features_in_", "_n_features_out")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]  # see native_dtype
        tags.input_tags.sparse = True
        return tags

    def _check_fit_data(self, X, sample_weight):
        X = checked_X(self, X, accept_sparse="csr", order="C")
        if X.shape[0] < self.n_clusters:
            raise ValueError(f"n_samples={X.shape[0]} should be >= "
                             f"n_clusters={self.n_clusters}.")
        sw = checked_weights(sample_weight, X)
        return X, sw

    def _resolve_init(self, X):
        """``(init name, (n_restarts, k, d) init_centroids or None, n_restarts)``
        as sklearn resolves them."""
        init = self.init
        if self.n_init == "auto":
            n_init = 1 if (isinstance(init, str) and init == "k-means++") else (
                self._default_n_init if (isinstance(init, str) or callable(init)) else 1)
        else:
            n_init = self.n_init
        self._n_init = n_init if isinstance(init, str) or callable(init) else 1  # as sklearn's
        if isinstance(init, str):
            return init, None, n_init
        if callable(init):
            rng = check_random_state(self.random_state)
            cents = np.stack([self._check_centers(init(X, self.n_clusters, random_state=rng),
                                                  X) for _ in range(n_init)])
            return "k-means++", cents, n_init
        cents = self._check_centers(init, X)[None]
        if n_init != 1:
            warnings.warn("Explicit initial center position passed: performing only one "
                          f"init in {type(self).__name__} instead of n_init={n_init}.",
                          RuntimeWarning, stacklevel=3)
        return "k-means++", cents, 1

    @native_dtype
    def _init_centroids(self, X, x_squared_norms, init, random_state, sample_weight,
                        init_size=None, n_centroids=None):
        """scikit-learn's private seeding method (its tests call it): ``init``
        (``"k-means++"``, ``"random"``, an array or a callable) on ``X``
        weighted by ``sample_weight`` (on ``init_size`` random rows when
        given); ``x_squared_norms`` is not needed."""
        k = self.n_clusters if n_centroids is None else n_centroids
        if not isinstance(init, str):
            c = init(X, k, random_state=random_state) if callable(init) else init
            return np.asarray(c.toarray() if sparse.issparse(c) else c, X.dtype)
        if init_size is not None and init_size < X.shape[0]:
            rows = check_random_state(random_state).randint(0, X.shape[0], init_size)
            X = X[rows]
            sample_weight = None if sample_weight is None else np.asarray(sample_weight)[rows]
        X = X.toarray() if sparse.issparse(X) else X
        dtype = compute_dtype(X)
        w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight)
        data = chunk(jnp.asarray(X, dtype), None, jnp.asarray(w, dtype))
        key = key_from_random_state(random_state)
        return np.asarray(seed_centroids(seed_key(key, 1, k, init), data, k, 1, init)[0])

    def _check_centers(self, centers, X):
        """Given initial centres as an array of ``X``'s dtype, with
        scikit-learn's shape checks and messages."""
        c = np.asarray(centers.toarray() if sparse.issparse(centers) else centers, X.dtype)
        if c.ndim != 2 or c.shape[0] != self.n_clusters:
            raise ValueError(f"The shape of the initial centers {c.shape} does not match the "
                             f"number of clusters {self.n_clusters}.")
        if c.shape[1] != X.shape[1]:
            raise ValueError(f"The shape of the initial centers {c.shape} does not match the "
                             f"number of features of the data {X.shape[1]}.")
        return c

    def _set_fit_attrs(self, result, X, sw):
        result = jax.device_get(result)
        best = int(result.best)
        self.cluster_centers_ = np.asarray(result.params.centroids[best])
        self._n_features_out = self.cluster_centers_.shape[0]
        self.labels_ = self.predict(X)
        self.inertia_ = float(-np.asarray(result.objective[best]))
        distinct = len(np.unique(self.labels_))
        if distinct < self.n_clusters:
            warnings.warn(f"Number of distinct clusters ({distinct}) found smaller than "
                          f"n_clusters ({self.n_clusters}). Possibly due to duplicate points "
                          "in X.", ConvergenceWarning, stacklevel=3)
        return result, best

    def _check_loaded(self, path):
        """After loading: typed scalars; finite centres of shape
        ``(n_clusters, n_features_in_)``; labels that are cluster indices."""
        check_scalars(path, self, dict(inertia_=float, n_iter_=int, n_steps_=int,
                                       n_features_in_=int, _n_features_out=int))
        k = self.n_clusters
        check_loaded_centroids(path, self.cluster_centers_, "cluster_centers_",
                               shape=(k, self.n_features_in_))
        if getattr(self, "_n_features_out", k) != k:
            raise ValueError(f"{os.fspath(path)}: _n_features_out must be n_clusters={k}, got "
                             f"{self._n_features_out}")
        labels = getattr(self, "labels_", np.zeros(0, np.int64))
        if labels.ndim != 1 or labels.dtype.kind not in "iu" or np.any(labels < 0) or \
                np.any(labels >= k):
            raise ValueError(f"{os.fspath(path)}: labels_ must be a 1-D integer array of "
                             f"cluster indices in [0, {k}), got dtype {labels.dtype} shape "
                             f"{labels.shape}")

    def _params(self):
        check_is_fitted(self, "cluster_centers_")
        return KMeansParams(self.cluster_centers_)

    def _eval(self, fn, X, checked: bool = False):
        """``fn((params, mask), block)`` over blocks of ``X``, the centres
        padded to their bucket (copies of the first, ``mask`` False): models
        of different ``k`` share programs. ``checked``: ``X`` has been through
        ``checked_X`` already, which must not run twice."""
        c = np.asarray(self._params().centroids)
        k = c.shape[0]
        extra = component_bucket(k) - k
        padded = KMeansParams(with_copies(c, extra))
        if not checked:
            X = checked_X(self, X, reset=False, accept_sparse="csr", order="C")
        mask = jax.device_put(np.arange(k + extra) < k)
        return apply_in_blocks(fn, (as_jax_params(padded, compute_dtype(X)), mask), X,
                               k + extra)

    @native_dtype
    def predict(self, X):
        """Index of the nearest centre of each sample ``(n,)``."""
        return self._eval(_masked_predict, X).astype(np.int32)

    @native_dtype
    def transform(self, X):
        """Euclidean distance of each sample to every centre ``(n, k)``."""
        return self._eval(_padded_transform, X)[:, :len(self.cluster_centers_)]

    @native_dtype
    def fit_predict(self, X, y=None, sample_weight=None):
        return self.fit(X, sample_weight=sample_weight).labels_

    @native_dtype
    def fit_transform(self, X, y=None, sample_weight=None):
        return self.fit(X, sample_weight=sample_weight).transform(X)

    @native_dtype
    def score(self, X, y=None, sample_weight=None):
        """Opposite of the (weighted) inertia of ``X``."""
        X = checked_X(self, X, reset=False, accept_sparse="csr", order="C")
        sw = checked_weights(sample_weight, X)
        # exact distances of blocks (the programs of predict's shapes), summed in float64
        d2 = self._eval(_masked_sq_distance, X, checked=True)
        return -float(np.sum(d2 if sw is None else sw * d2, dtype=np.float64))


def _masked_predict(padded, x):
    return km_predict(padded[0], x, padded[1])


def _masked_sq_distance(padded, x):
    return nearest_sq_distance(padded[0], x, padded[1])


def _padded_transform(padded, x):
    return km_transform(padded[0], x)


class KMeans(_BaseKMeans):
    """K-Means (Lloyd) with scikit-learn's interface; ``n_init`` restarts batched.

    Parameters and fitted attributes are those of :class:`sklearn.cluster.KMeans`.

    >>> import numpy as np
    >>> from jaxmix.sklearn import KMeans
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-5, 1, (200, 2)), rng.normal(5, 1, (200, 2))])
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> np.sort(km.cluster_centers_[:, 0]).round(0).tolist()
    [-5.0, 5.0]
    """

    _parameter_constraints = dict(_SkKMeans._parameter_constraints)

    def __init__(self, n_clusters=8, *, init="k-means++", n_init="auto", max_iter=300,
                 tol=1e-4, verbose=0, random_state=None, copy_x=True, algorithm="lloyd"):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm

    @native_dtype
    def fit(self, X, y=None, sample_weight=None):
        """Compute the clustering (``n_init`` restarts in one batched call)."""
        self._validate_params()
        X, sw = self._check_fit_data(X, sample_weight)
        init, cents, n_init = self._resolve_init(X)
        if self.algorithm == "elkan" and self.n_clusters == 1:
            warnings.warn("algorithm='elkan' doesn't make sense for a single cluster. Using "
                          "'full' instead.", RuntimeWarning, stacklevel=3)
        t0 = time.perf_counter()
        result = fit_kmeans(key_from_random_state(self.random_state), X, self.n_clusters,
                            n_restarts=n_init, init=init, init_centroids=cents, tol=self.tol,
                            max_iter=self.max_iter, sample_weight=sw)
        result, best = self._set_fit_attrs(result, X, sw)
        if self.verbose:
            self._print_lloyd(result, time.perf_counter() - t0)
        self.n_iter_ = int(result.n_iter[best])
        return self

    def _print_lloyd(self, result, seconds):
        """Progress in scikit-learn's words, restart by restart (they ran batched)."""
        hist = np.asarray(result.history)
        for r in range(hist.shape[0]):
            print("Initialization complete")
            h = hist[r][~np.isnan(hist[r])]
            for i, v in enumerate(h):
                print(f"Iteration {i}, inertia {-v}.")
            if result.converged[r]:
                end = len(h) - 1
                print(f"Converged at iteration {end}: strict convergence." if self.tol == 0
                      else f"Converged at iteration {end}: center shift at most the scaled "
                      f"tol, within tolerance {self.tol}.")
        print(f"{hist.shape[0]} initialization(s) run batched in {seconds:.3f}s; "
              f"best: {int(result.best)}")


class MiniBatchKMeans(_BaseKMeans):
    """Mini-batch K-Means with scikit-learn's interface (``fit`` and ``partial_fit``).

    Parameters and fitted attributes are those of
    :class:`sklearn.cluster.MiniBatchKMeans`.
    """

    _parameter_constraints = dict(_SkMiniBatchKMeans._parameter_constraints)
    _default_n_init = 3
    _saved_scalars = ("inertia_", "n_iter_", "n_steps_", "n_features_in_", "_n_features_out")

    def __init__(self, n_clusters=8, *, init="k-means++", max_iter=100, batch_size=1024,
                 verbose=0, compute_labels=True, random_state=None, tol=0.0,
                 max_no_improvement=10, init_size=None, n_init="auto",
                 reassignment_ratio=0.01):
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio

    def _resolve_init_size(self, n, batch_size):
        """scikit-learn's ``_init_size``: rows the seeding sees."""
        size = self.init_size
        if size is None:
            size = 3 * batch_size if 3 * batch_size >= self.n_clusters else 3 * self.n_clusters
        elif size < self.n_clusters:
            warnings.warn(f"init_size={size} should be larger than n_clusters="
                          f"{self.n_clusters}. Setting it to min(3*n_clusters, n_samples)",
                          RuntimeWarning, stacklevel=3)
            size = 3 * self.n_clusters
        return min(size, n)

    @native_dtype
    def fit(self, X, y=None, sample_weight=None):
        """Compute the clustering by mini-batch steps (``n_init`` runs batched)."""
        self._validate_params()
        X, sw = self._check_fit_data(X, sample_weight)
        init, cents, n_init = self._resolve_init(X)
        n = X.shape[0]
        batch_size = min(self.batch_size, n)
        self._batch_size, self._init_size = batch_size, self._resolve_init_size(n, batch_size)
        t0 = time.perf_counter()
        result = fit_minibatch_kmeans(
            key_from_random_state(self.random_state), X, self.n_clusters, n_restarts=n_init,
            batch_size=batch_size, max_iter=self.max_iter, init=init, init_centroids=cents,
            init_size=self._init_size, tol=self.tol,
            max_no_improvement=self.max_no_improvement,
            reassignment_ratio=self.reassignment_ratio, sample_weight=sw)
        result, best = self._set_fit_attrs(result, X, sw)
        n_steps = self.max_iter * n // batch_size
        if self.verbose:
            self._print_steps(result, n_steps, time.perf_counter() - t0)
        self.n_steps_ = int(result.n_iter[best])
        self.n_iter_ = int(np.ceil(self.n_steps_ * batch_size / n))  # epochs started
        self._state = None  # a later partial_fit starts from cluster_centers_ with zero counts
        return self

    def _print_steps(self, result, n_steps, seconds):
        """Progress in scikit-learn's words, restart by restart (they ran batched)."""
        hist = np.asarray(result.history)
        for r in range(hist.shape[0]):
            h = hist[r][~np.isnan(hist[r])]
            for i, v in enumerate(h):
                print(f"Minibatch step {i + 1}/{n_steps}: mean batch inertia: {-v}")
            if result.converged[r]:
                rule = ("small centers change" if self.max_no_improvement is None else
                        "lack of improvement in inertia" if self.tol == 0 else
                        "small centers change or lack of improvement in inertia")
                print(f"Converged ({rule}) at step {h.size}/{n_steps}")
        print(f"{hist.shape[0]} initialization(s) run batched in {seconds:.3f}s; "
              f"best: {int(result.best)}")

    @native_dtype
    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the centres with one mini-batch step on ``X``."""
        first = not hasattr(self, "cluster_centers_")
        if first:
            self._validate_params()
        X = checked_X(self, X, accept_sparse="csr", order="C", reset=first)
        X = X.toarray() if sparse.issparse(X) else X  # one batch, dense
        sw = checked_weights(sample_weight, X)
        sw = np.ones(X.shape[0], X.dtype) if sw is None else sw
        dtype = compute_dtype(X)
        x, w = jnp.asarray(X, dtype), jnp.asarray(sw, dtype)
        state = getattr(self, "_state", None)
        if first or state is None:
            key = key_from_random_state(self.random_state)
            if first:
                if X.shape[0] < self.n_clusters:
                    raise ValueError(f"n_samples={X.shape[0]} should be >= "
                                     f"n_clusters={self.n_clusters}.")
                init, cents, _ = self._resolve_init(X)
                k = self.n_clusters
                c0 = (seed_centroids(seed_key(key, 1, k, init), chunk(x, None, w), k, 1, init)[0]
                      if cents is None else jnp.asarray(cents[0], dtype))
                self.n_steps_ = 0
            else:
                c0 = jnp.asarray(self.cluster_centers_, dtype)
            state = minibatch_init(fold_in_key(key, 1), c0)
        config = make_config(0.0, 1.0, None, self.reassignment_ratio, dtype)
        state = jax.tree.map(lambda a: jnp.asarray(a, dtype)
                             if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating)
                             else jnp.asarray(a), state)
        state, _ = _jitted_step(state, x, w, config)
        self._state = jax.device_get(state)
        self.cluster_centers_ = np.asarray(state.centroids)
        self._n_features_out = self.n_clusters
        self.n_steps_ += 1
        self.n_iter_ = getattr(self, "n_iter_", 0)
        if self.compute_labels:
            self.labels_ = self.predict(X)
            self.inertia_ = -self.score(X, sample_weight=sample_weight)
        return self


_jitted_step = jit(minibatch_step)

