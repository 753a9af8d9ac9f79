"""Validation at the edge, and degenerate data.

Bad input raises ``ValueError`` naming the argument before anything is
traced. Degenerate but valid data (duplicated points, a constant feature,
k equal to the number of distinct points) gives finite parameters and sets
the ``degenerate`` status flag where a component has collapsed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import INITS, TYPES
from scipy.stats import multivariate_normal

import jaxmix as jm
from jaxmix import GMMParams
from jaxmix.gmm.covariance import family
from jaxmix.validation import check_data

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 2))


def good_params(ct, k=2, d=2):
    pc = {"full": np.stack([np.eye(d)] * k), "tied": np.eye(d), "diag": np.ones((k, d)),
          "spherical": np.ones(k)}[ct]
    return GMMParams(np.full(k, 1 / k), np.zeros((k, d)), pc, ct)


def fit(**kw):
    args = dict(key=0, x=X, n_components=2)
    args.update(kw)
    return jm.fit_gmm(args.pop("key"), args.pop("x"), args.pop("n_components"), **args)


X_NAN = X.copy()
X_NAN[3, 1] = np.nan
X_INF = X.copy()
X_INF[5, 0] = -np.inf

BAD_INPUTS = {
    "nan": (dict(x=X_NAN), r"X contains NaN or infinity"),
    "inf": (dict(x=X_INF), r"X contains NaN or infinity"),
    "nan_jax": (dict(x=jnp.asarray(X_NAN)), r"X contains NaN"),
    "rank1": (dict(x=X[:, 0]), r"X must be 2-D.*reshape"),
    "rank3": (dict(x=X[None]), r"X must be 2-D"),
    "rank0": (dict(x=np.float64(1.0)), r"X must be 2-D"),
    "no_samples": (dict(x=np.zeros((0, 2))), r"X is empty"),
    "no_features": (dict(x=np.zeros((5, 0))), r"X is empty"),
    "empty_list": (dict(x=[]), r"X must be 2-D"),
    "strings": (dict(x=[["a", "b"], ["c", "d"]]), r"X must be numeric"),
    "numeric_strings": (dict(x=np.array([["1", "2"], ["3", "4"]])), r"X must be numeric"),
    "object": (dict(x=np.array([[1.0, None], [2.0, 3.0]], dtype=object)), r"X must be numeric"),
    "complex": (dict(x=X.astype(complex)), r"X must be numeric"),
    "ragged": (dict(x=[[1.0, 2.0], [3.0]]), r"X must be a 2-D array"),
    "k0": (dict(n_components=0), r"n_components must be at least 1"),
    "k_negative": (dict(n_components=-2), r"n_components must be at least 1"),
    "k_float": (dict(n_components=2.0), r"n_components must be an integer"),
    "k_bool": (dict(n_components=True), r"n_components must be an integer"),
    "k_too_big": (dict(n_components=41), r"n_components=41 is larger than the number of samples"),
    "covariance_type": (dict(covariance_type="Full"), r"covariance_type must be one of"),
    "covariance_type_none": (dict(covariance_type=None), r"covariance_type must be one of"),
    "init": (dict(init="kmeans++"), r"init must be one of"),
    "path": (dict(path="fast"), r"path must be one of"),
    "n_restarts": (dict(n_restarts=0), r"n_restarts must be at least 1"),
    "max_iter": (dict(max_iter=-1), r"max_iter must be at least 0"),
    "tol": (dict(tol=-1e-3), r"tol must be a finite number"),
    "tol_nan": (dict(tol=float("nan")), r"tol must be a finite number"),
    "reg_covar": (dict(reg_covar="small"), r"reg_covar must be a number"),
    "chunk_size": (dict(chunk_size=0), r"chunk_size must be at least 1"),
    "sample_weight_shape": (dict(sample_weight=np.ones(39)), r"sample_weight must have shape"),
    "sample_weight_negative": (dict(sample_weight=-np.ones(40)), r"sample_weight must be"),
    "sample_weight_zero": (dict(sample_weight=np.zeros(40)), r"sample_weight must be"),
    "sample_weight_nan": (dict(sample_weight=np.full(40, np.nan)), r"sample_weight must be"),
    "key_none": (dict(key=None), r"key must be a jax.random key"),
    "key_float": (dict(key=1.5), r"key must be a jax.random key"),
    "init_params_type": (dict(init_params=(np.ones(2) / 2, np.zeros((2, 2)), np.ones(2))),
                         r"init_params must be a GMMParams"),
    "init_params_cov_type": (dict(init_params=good_params("diag")),
                             r"init_params has covariance_type='diag'"),
    "init_params_weights_shape": (dict(init_params=good_params("full").replace(
        weights=np.ones(3) / 3)), r"init_params.weights must have shape \(2,\)"),
    "init_params_means_shape": (dict(init_params=good_params("full").replace(
        means=np.zeros((2, 3)))), r"init_params.means must have shape \(2, 2\)"),
    "init_params_pc_shape": (dict(init_params=good_params("full").replace(
        precisions_cholesky=np.eye(2))), r"init_params.precisions_cholesky must have shape"),
    "init_params_tied_pc_shape": (dict(covariance_type="tied", init_params=good_params(
        "tied").replace(precisions_cholesky=np.ones((2, 2, 2)))),
        r"init_params.precisions_cholesky must have shape \(2, 2\)"),
    "init_params_nan": (dict(init_params=good_params("full").replace(
        means=np.array([[0.0, np.nan], [1.0, 1.0]]))), r"init_params.means contains NaN"),
    "init_params_weights_negative": (dict(init_params=good_params("full").replace(
        weights=np.array([1.5, -0.5]))), r"init_params.weights must be positive"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_value_error_naming_the_argument(case):
    kwargs, match = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=match):
        fit(**kwargs)


@pytest.mark.parametrize("ct", ["full", "spherical"])
def test_init_params_non_positive_precision_cholesky_raises(ct):
    p = good_params(ct)
    bad = -np.asarray(p.precisions_cholesky)
    with pytest.raises(ValueError, match="init_params.precisions_cholesky"):
        fit(covariance_type=ct, init_params=p.replace(precisions_cholesky=bad))


def test_init_params_non_numeric_raises_naming_it():
    p = good_params("full").replace(means=np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="init_params"):
        fit(init_params=p)


def test_check_data_dtypes():
    # float64 kept under x64; everything else numeric computes in float32.
    assert check_data(X).dtype == jnp.float64
    assert check_data(X.astype(np.float32)).dtype == jnp.float32
    assert check_data(X.astype(np.float16)).dtype == jnp.float32
    assert check_data(jnp.asarray(X, jnp.bfloat16)).dtype == jnp.float32  # TPU users' dtype
    ints = check_data([[1, 2], [3, 4]])
    assert ints.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(ints), [[1, 2], [3, 4]])
    assert check_data(np.array([[True, False]])).dtype == jnp.float32
    assert check_data(((1.0, 2.0), (3.0, 4.0))).shape == (2, 2)
    with pytest.raises(ValueError, match="batch must be 2-D"):
        check_data(np.zeros(3), "batch")


def test_valid_edge_cases_run():
    """k = n, and one feature with a numpy-int k and a key array: accepted,
    finite results."""
    for kwargs in (dict(x=X[:2], n_components=2),
                   dict(x=X[:, :1], n_components=np.int64(2), key=jax.random.PRNGKey(1))):
        result = fit(covariance_type="diag", init="random_from_data", **kwargs)
        for leaf in jax.tree.leaves(result.params):
            assert np.all(np.isfinite(np.asarray(leaf))), kwargs


# ----------------------------------------------------------- degenerate data

REG = 1e-6
POINTS = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]])
DEGENERATE = {
    # k = 3 equals the number of distinct points: every point is 20 duplicates.
    "k_distinct": np.repeat(POINTS, 20, axis=0),
    # A constant second feature.
    "constant_feature": np.c_[RNG.normal(size=60) * 2, np.full(60, 5.0)],
    # Every sample twice (30 distinct points, k = 3 < 30).
    "duplicated": np.repeat(RNG.normal(size=(30, 2)) * 2, 2, axis=0),
    # A well-behaved control: three separated blobs, no duplicates.
    "control": np.repeat(POINTS * 3, 20, axis=0) + RNG.normal(size=(60, 2)),
}

# One combination per type and per init by default (each is one compile);
# the full grid, and float32, run with -m slow.
LATIN = [("full", "kmeans"), ("tied", "k-means++"), ("diag", "random"),
         ("spherical", "random_from_data")]
GRID = [(ct, init) for ct in TYPES for init in INITS]
SLOW_GRID = [pytest.param(ct, init, marks=pytest.mark.slow) for ct, init in GRID
             if (ct, init) not in LATIN]


def degenerate_fit(x, ct, init, dtype=np.float64):
    return jm.fit_gmm(jax.random.PRNGKey(0), x.astype(dtype), 3, covariance_type=ct, init=init,
                      n_restarts=4)


def check_degenerate_fits(ct, init, dtype):
    eps = float(np.finfo(dtype).eps)
    for name, x in DEGENERATE.items():
        result = degenerate_fit(x, ct, init, dtype)
        where = f"{name}/{ct}/{init}/{np.dtype(dtype).name}"
        for leaf in jax.tree.leaves(result.params):
            assert np.all(np.isfinite(np.asarray(leaf))), where
        assert not np.any(np.asarray(result.failed)), where
        assert np.all(np.isfinite(np.asarray(result.objective))), where
        deg = np.asarray(result.degenerate)
        best = int(result.best)
        if name == "k_distinct":
            # The best fit puts one component on each point with variance
            # reg_covar: log(1/3) + log N(0 | 0, reg_covar I), flagged.
            ideal = np.log(1 / 3) + multivariate_normal(np.zeros(2), REG * np.eye(2)).logpdf(
                np.zeros(2))
            if init in ("kmeans", "k-means++"):  # seeds are the 3 distinct points
                np.testing.assert_allclose(np.asarray(result.objective), ideal,
                                           rtol=max(1e-6, 100 * eps), err_msg=where)
                assert np.all(deg), where
            at_ideal = np.isclose(np.asarray(result.objective), ideal, rtol=1e-3)
            assert np.all(deg[at_ideal]), where
        elif name == "constant_feature":
            # Every component's variance of the constant feature is reg_covar:
            # degenerate for the types that model it separately.
            p = result.params
            np.testing.assert_allclose(np.asarray(p.means)[..., 1], 5.0, rtol=10 * eps)
            if ct != "spherical":
                var = np.asarray(jax.vmap(family(ct).variances)(p.precisions_cholesky))
                np.testing.assert_allclose(var[..., 1], REG, rtol=1e-3, err_msg=where)
                assert np.all(deg), where
            else:  # one variance per component, averaged with the varying feature
                assert not np.any(deg), where
        elif name == "control":
            assert not deg[best], where


@pytest.mark.parametrize("ct,init", LATIN + SLOW_GRID)
def test_degenerate_data_finite_and_flagged(ct, init):
    check_degenerate_fits(ct, init, np.float64)


@pytest.mark.slow
@pytest.mark.parametrize("ct,init", GRID)
def test_degenerate_data_finite_and_flagged_float32(ct, init):
    check_degenerate_fits(ct, init, np.float32)


@pytest.mark.parametrize("ct", ["full", pytest.param("tied", marks=pytest.mark.slow)])
def test_collinear_data_flagged(ct):
    """Points on the line y = 2 x + 1 (a rotated constant feature): every
    component's covariance has an eigenvalue at the reg_covar floor."""
    t = RNG.normal(size=60)
    x = np.c_[t, 2 * t + 1]
    result = degenerate_fit(x, ct, "kmeans")
    cov = np.asarray(family(ct).covariance(result.params.precisions_cholesky))
    assert np.all(np.linalg.eigvalsh(cov)[..., 0] < 2 * REG)  # the collapse is real
    assert np.all(np.asarray(result.degenerate))


def test_sample_weight_must_be_finite_in_the_compute_dtype():
    """A weight (or a sum of weights) that overflows float32 is refused where
    it enters, naming the argument, instead of giving NaN parameters."""
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="sample_weight must be finite in float32"):
        jm.fit_gmm(0, x, 2, sample_weight=np.full(50, 1e39))
    with pytest.raises(ValueError, match="sample_weight must be finite in float32"):
        jm.fit_kmeans(0, x, 2, sample_weight=np.full(50, 3e37))


def test_streaming_sources_are_refused_where_unsupported():
    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="draws rows at random"):
        jm.fit_minibatch_kmeans(0, jm.open_source(lambda: iter([x])), 2)
    with pytest.raises(ValueError, match="not a chunk source"):
        jm.select_k(0, jm.open_source(x), [1, 2])


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_a_factor_that_is_not_upper_triangular_is_refused(covariance_type, tmp_path):
    """A dense precision factor with anything below its diagonal is refused
    (it would give a log-density that is not that of P = L L^T) by every
    entry that takes parameters: init_params of a fit, the params checker
    itself and a model file."""
    from jaxmix.io import load_params, save_params
    from jaxmix.validation import check_gmm_params

    rng = np.random.default_rng(0)
    k, d = 2, 3
    upper = np.triu(rng.uniform(0.1, 0.5, (d, d))) + np.eye(d)
    pc = upper if covariance_type == "tied" else np.stack([upper, upper])
    good = jm.GMMParams(np.full(k, 0.5), rng.normal(size=(k, d)), pc, covariance_type)
    check_gmm_params(good, "p")  # the upper factor passes
    bad_pc = pc.copy()
    bad_pc[..., 2, 0] = 0.3
    bad = good.replace(precisions_cholesky=bad_pc)
    with pytest.raises(ValueError, match="p.precisions_cholesky must be upper triangular"):
        check_gmm_params(bad, "p")
    x = rng.normal(size=(30, d)).astype(np.float32)
    with pytest.raises(ValueError, match="init_params.precisions_cholesky must be upper"):
        jm.fit_gmm(0, x, k, covariance_type=covariance_type, init_params=bad)
    path = tmp_path / "m.npz"
    save_params(path, bad)
    with pytest.raises(ValueError, match="upper triangular"):
        load_params(path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_given_weights_far_apart_stay_positive_when_renormalised(dtype):
    """Weights 1e-30 and 1e300 (float64) or 1e-30 and 1e30 (float32) are each
    valid, but their ratio underflows: the renormalised weight is floored at
    the dtype's smallest normal number (the M-step's rule), never 0, so the
    fit returns valid parameters even with ``max_iter=0``."""
    big = 1e300 if dtype == np.float64 else 1e30
    init = GMMParams(np.array([1e-30, big], dtype), np.zeros((2, 1), dtype),
                     np.ones((2, 1), dtype), "diag")
    x = np.zeros((2, 1), dtype) + np.array([[0.0], [1.0]], dtype)
    res = jm.fit_gmm(0, x, 2, covariance_type="diag", init_params=init, max_iter=0)
    w = np.asarray(res.best_params.weights)
    assert w.dtype == dtype and np.all(w > 0), w
    assert w[0] == np.finfo(dtype).tiny and abs(w.sum() - 1) <= 4 * np.finfo(dtype).eps


SEEDS = [0, 1, 7, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 5, -1, -2 ** 31,
         2 ** 63 - 1, -2 ** 63]


@pytest.mark.parametrize("x64", [True, False])
def test_seed_key_is_jaxs_prng_key(x64):
    """``seed_key`` builds on the host the key JAX's ``PRNGKey`` computes
    (with and without x64: JAX keeps only the low 32 bits without it)."""
    from jaxmix.validation import seed_key
    saved = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", x64)
    try:
        for seed in SEEDS:
            mine, jaxs = seed_key(seed), jax.random.PRNGKey(seed)
            assert isinstance(mine, jax.Array) and mine.dtype == jaxs.dtype, seed
            np.testing.assert_array_equal(mine, jaxs, err_msg=str(seed))
    finally:
        jax.config.update("jax_enable_x64", saved)


def test_a_choice_comes_back_as_its_canonical_member():
    """np.str_("random") is "random": one static argument, one program."""
    import jaxmix
    from jaxmix.fit.rows import TRACE_COUNT
    from jaxmix.validation import check_choice
    got = check_choice(np.str_("random"), "init", ("k-means++", "random"))
    assert got == "random" and type(got) is str
    x = np.random.default_rng(0).normal(size=(40, 2))
    jaxmix.fit_kmeans(0, x, 3, init="random", max_iter=3)
    before = TRACE_COUNT["kmeans"]
    jaxmix.fit_kmeans(0, x, 3, init=np.str_("random"), max_iter=3)
    assert TRACE_COUNT["kmeans"] == before
