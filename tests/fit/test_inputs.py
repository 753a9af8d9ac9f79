"""The input pipeline checks values in the dtype the fit computes in
(issue 16, class 1), and centres the data where float32 keeps its resolution.

Each case passes the per-value checks in float64 or one value at a time, yet
overflows float32 in the sums the fits form (weights, weighted sums of
squares). Every entry point either returns finite results or raises a
``ValueError`` that names the argument; never NaN parameters or an infinite
inertia.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import jaxmix as jm
from jaxmix.fit.inputs import centre
from jaxmix.sklearn import GaussianMixture, KMeans

RNG = np.random.default_rng(0)
X = RNG.normal(size=(200, 3)).astype(np.float32)


def with_row(x, row):
    return np.r_[x[:-1], [row]].astype(np.float32)


# (data, sample_weight, the argument the error must name)
CASES = {
    "one weight beyond float32": (X, np.r_[np.ones(199), 1e39], "sample_weight"),
    "weights summing beyond float32": (X, np.full(200, 1e37), "sample_weight"),
    "weighted squares beyond float32": (X, np.full(200, 1e36), "sample_weight"),
    "one row at 1e20": (with_row(X, [1e20, 0, 0]), None, "X"),
    "every value near 1e18": (X * np.float32(1e18), None, "X"),
}

ENTRIES = {
    "fit_gmm": lambda x, w: jm.fit_gmm(0, x, 3, sample_weight=w).best_params,
    "fit_kmeans": lambda x, w: jm.fit_kmeans(0, x, 3, sample_weight=w).best_params,
    "fit_gradient": lambda x, w: jm.fit_gradient(0, x, 3, optax.adam(0.05), max_iter=5,
                                                 sample_weight=w).best_params,
    "select_k": lambda x, w: jm.select_k(0, x, [2, 3], sample_weight=w).best_params,
    "streamed fit_gmm": lambda x, w: jm.fit_gmm(0, jm.open_source(x, w), 3,
                                                chunk_size=64).best_params,
    "GaussianMixture": lambda x, w: GaussianMixture(3, random_state=0).fit(x).means_,
    "KMeans": lambda x, w: KMeans(3, n_init=2, random_state=0).fit(
        x, sample_weight=w).inertia_,
}


def finite(tree) -> bool:
    return all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree.leaves(tree)
               if np.asarray(leaf).dtype.kind == "f")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("entry", ENTRIES)
def test_overflow_in_the_compute_dtype_is_refused_naming_the_argument(entry, case):
    x, w, name = CASES[case]
    if w is None or entry not in ("GaussianMixture",):
        with pytest.raises(ValueError, match=name):
            ENTRIES[entry](x, w)
    else:  # GaussianMixture takes no sample_weight: the same data unweighted fit
        assert finite(ENTRIES[entry](x, None))


def test_large_but_safe_weights_fit_as_unit_weights():
    """The check is not a blanket refusal: weights of 1e30 (finite sums of
    squares in float32) give the fit of unit weights, up to rounding."""
    a = jm.fit_gmm(0, X, 3, sample_weight=np.full(200, 1e30))
    b = jm.fit_gmm(0, X, 3)
    np.testing.assert_allclose(a.best_params.means, b.best_params.means, atol=1e-4)


def test_centre_is_the_median_of_the_positively_weighted_rows():
    x = RNG.normal(size=(101, 2))
    np.testing.assert_array_equal(centre(x, None), np.median(x, axis=0))
    w = np.r_[np.zeros(50), np.ones(51)]
    np.testing.assert_array_equal(centre(x, w), np.median(x[50:], axis=0))
    import jax.numpy as jnp
    np.testing.assert_allclose(centre(jnp.asarray(x), jnp.asarray(w)),
                               np.median(x[50:], axis=0), rtol=1e-12)


def test_one_far_row_keeps_the_bulk_resolved_in_float32():
    """One row at 1e12 among 200 unit-normal rows: centred on the mean
    (5e9, float32 spacing 512) every restart failed; centred on the median
    the float32 fit matches the float64 fit from the same start."""
    x64 = np.r_[RNG.normal(size=(199, 3)), [[1e12, 0, 0]]]
    ref = jm.fit_gmm(0, x64, 3, init="k-means++", n_restarts=4)
    start = jax.tree.map(np.float32, ref.best_params)
    got = jm.fit_gmm(0, x64.astype(np.float32), 3, init_params=start, max_iter=3)
    again = jm.fit_gmm(0, x64, 3, init_params=ref.best_params, max_iter=3)
    assert not bool(np.asarray(got.failed).any()) and finite(got.best_params)
    np.testing.assert_allclose(float(got.objective[0]), float(again.objective[0]), atol=1e-3)
    assert finite(GaussianMixture(3, random_state=0).fit(x64.astype(np.float32)).means_)
