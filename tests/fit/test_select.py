"""Model selection: parameter counts, BIC / AIC against sklearn, select_k over
a padded grid, the K-Means inertia curve."""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)  # as tests/conftest.py; idempotent

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky  # noqa: E402

from jaxmix import (GMMParams, aic, bic, fit_gmm, inertia_curve, n_parameters,  # noqa: E402
                    select_k)
from jaxmix.gmm import family  # noqa: E402
from jaxmix.fit import select as sel_mod  # noqa: E402
from jaxmix.gmm.step import degenerate_restarts  # noqa: E402

TYPES = ("full", "tied", "diag", "spherical")
INITS = ("kmeans", "k-means++", "random", "random_from_data")


def sk_model(p: GMMParams) -> GaussianMixture:
    """An sklearn GaussianMixture carrying exactly the parameters ``p``."""
    k, d = np.shape(p.means)
    gm = GaussianMixture(n_components=k, covariance_type=p.covariance_type)
    gm.weights_ = np.asarray(p.weights, np.float64)
    gm.means_ = np.asarray(p.means, np.float64)
    gm.precisions_cholesky_ = np.asarray(p.precisions_cholesky, np.float64)
    gm.covariances_ = np.asarray(family(p.covariance_type).covariance(p.precisions_cholesky))
    gm.n_features_in_ = d
    return gm


def random_params(rng, covariance_type, k, d):
    w = rng.uniform(0.5, 1.5, k)
    means = 4.0 * rng.normal(size=(k, d))
    if covariance_type in ("full", "tied"):
        def spd():
            q, _ = np.linalg.qr(rng.normal(size=(d, d)))
            return (q * rng.uniform(0.3, 2.0, d)) @ q.T
        cov = np.stack([spd() for _ in range(k)]) if covariance_type == "full" else spd()
    else:
        cov = rng.uniform(0.3, 2.0, (k, d) if covariance_type == "diag" else (k,))
    pc = _compute_precision_cholesky(cov, covariance_type)
    return GMMParams(w / w.sum(), means, pc, covariance_type)


def blobs(seed, true_k, n=600, d=2):
    """Well separated anisotropic blobs with ``true_k`` components."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(true_k, d))
    centres *= 12.0 / np.sqrt(d)  # typical distance >> widths
    labels = np.arange(n) % true_k
    scale = rng.uniform(0.5, 1.2, (true_k, d))
    return centres[labels] + rng.normal(size=(n, d)) * scale[labels]


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("k,d", [(1, 1), (1, 5), (3, 2), (4, 7), (7, 3)])
def test_n_parameters_match_sklearn(covariance_type, k, d):
    gm = sk_model(random_params(np.random.default_rng(k * 10 + d), covariance_type, k, d))
    assert n_parameters(k, d, covariance_type) == gm._n_parameters()


def test_n_parameters_known_values():
    # full, k=3, d=2: 3 * 3 cov + 6 means + 2 weights
    assert n_parameters(3, 2, "full") == 17
    assert n_parameters(3, 2, "tied") == 3 + 6 + 2
    assert n_parameters(3, 2, "diag") == 6 + 6 + 2
    assert n_parameters(3, 2, "spherical") == 3 + 6 + 2


@pytest.mark.parametrize("covariance_type", TYPES)
def test_bic_aic_match_sklearn(covariance_type):
    rng = np.random.default_rng(1)
    p = random_params(rng, covariance_type, 3, 4)
    x = rng.normal(size=(500, 4)) * 3.0
    gm = sk_model(p)
    np.testing.assert_allclose(bic(p, x), gm.bic(x), rtol=1e-6)
    np.testing.assert_allclose(aic(p, x), gm.aic(x), rtol=1e-6)
    # chunking does not change them
    np.testing.assert_allclose(bic(p, x, chunk_size=77), gm.bic(x), rtol=1e-6)


def test_bic_validates():
    p = random_params(np.random.default_rng(0), "full", 2, 3)
    with pytest.raises(ValueError, match="features"):
        bic(p, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="NaN"):
        aic(p, np.full((10, 3), np.nan))


@pytest.fixture(scope="module")
def table():
    """One padded sweep over two covariance types, and how many traces it cost."""
    x = blobs(0, 3, n=400, d=3)
    before = sel_mod.TRACE_COUNT["gmm"]
    sel = select_k(0, x, [1, 2, 3, 4], covariance_type=("full", "diag"), n_restarts=2)
    return x, sel, sel_mod.TRACE_COUNT["gmm"] - before


def test_select_k_table_matches_sklearn_on_its_params(table):
    """Every row's BIC / AIC / log-lik equals sklearn's for that row's params."""
    x, sel, _ = table
    assert sel.bic.shape == sel.aic.shape == (2, 4)
    for t, ct in enumerate(sel.covariance_types):
        for g, k in enumerate(sel.ks):
            p = sel.best_params(int(k), ct)
            assert p.n_components == k and p.covariance_type == ct
            gm = sk_model(p)
            assert sel.n_parameters[t, g] == gm._n_parameters()
            np.testing.assert_allclose(sel.log_likelihood[t, g], gm.score(x), rtol=1e-9)
            np.testing.assert_allclose(sel.bic[t, g], gm.bic(x), rtol=1e-6)
            np.testing.assert_allclose(sel.aic[t, g], gm.aic(x), rtol=1e-6)


def test_selection_table_and_choices(table):
    x, sel, _ = table
    assert sel.chosen_k("bic", "full") == sel.chosen_k("bic", "diag") == 3
    ct, k = sel.chosen("bic")
    t = sel.covariance_types.index(ct)
    assert sel.bic[t, list(sel.ks).index(k)] == sel.bic.min()
    rows = sel.rows()
    assert len(rows) == 8 and sum(r["chosen_bic"] for r in rows) == 2
    assert [r["k"] for r in rows if r["chosen_aic"]] == [
        sel.chosen_k("aic", "full"), sel.chosen_k("aic", "diag")]
    md = sel.to_markdown()
    assert md.count("\n| full |") == 4 and "Chosen by BIC" in md
    assert not sel.failed.any() and sel.converged.all()
    with pytest.raises(ValueError, match="not in the grid"):
        sel.best_params(5)
    with pytest.raises(ValueError, match="criterion"):
        sel.chosen_k("mdl")
    with pytest.raises(ValueError, match="covariance_type"):
        sel.chosen_k("bic", "tied")


def test_grid_compiles_once_per_type(table):
    x, _, traces = table
    assert traces == 2  # one per covariance type for the whole k grid
    before = sel_mod.TRACE_COUNT["gmm"]
    # other key, other tol (traced), same grid: no new trace
    again = select_k(1, x, [4, 3, 2, 1], covariance_type=("full", "diag"), n_restarts=2,
                     tol=1e-4)
    assert sel_mod.TRACE_COUNT["gmm"] == before
    assert again.chosen_k("bic") == 3


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("true_k", [2, 4])
def test_bic_picks_true_k(seed, true_k):
    x = blobs(seed, true_k)
    sel = select_k(seed, x, range(1, 7), n_restarts=3)
    assert sel.chosen_k("bic") == true_k, sel.to_markdown()
    assert not sel.failed.any()


def test_bic_matches_sklearn_choice():
    """Same grid with sklearn: same chosen k, and the same optimum at the true k."""
    x = blobs(5, 3)
    sel = select_k(3, x, range(1, 7), n_restarts=3)
    sk_bic = [GaussianMixture(k, n_init=3, random_state=0).fit(x).bic(x) for k in sel.ks]
    assert sel.ks[int(np.argmin(sk_bic))] == sel.chosen_k("bic") == 3
    np.testing.assert_allclose(sel.bic[0, 2], sk_bic[2], rtol=1e-5)


def test_padding_does_not_change_the_fit():
    """Row k=2 of the grid padded to k_max=6 equals the unpadded k=2 fit."""
    x = blobs(6, 3)
    kw = dict(n_restarts=3, tol=1e-8, n_local_trials=sel_mod.local_trials(6))
    padded = select_k(7, x, range(1, 7), **kw)  # shapes of test_bic_picks_true_k
    alone = select_k(7, x, [2], **kw)
    np.testing.assert_allclose(padded.log_likelihood[0, 1], alone.log_likelihood[0, 0],
                               rtol=1e-10)
    assert padded.n_iter[0, 1] == alone.n_iter[0, 0]
    a, b = padded.best_params(2), alone.best_params(2)
    for name in ("weights", "means", "precisions_cholesky"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("init", INITS)
def test_grid_row_does_not_depend_on_the_grid(init):
    """Row k=2 is the same fit alone, inside a padded grid, and as ``fit_gmm``
    with key ``fold_in(key, 2)`` (default k-means++ trials: sklearn's per k)."""
    x = blobs(8, 3, n=150)
    kw = dict(n_restarts=2, init=init, tol=0.0, max_iter=4)
    grid = select_k(11, x, [2, 4], **kw)
    alone = select_k(11, x, [2], **kw)
    np.testing.assert_allclose(grid.log_likelihood[0, 0], alone.log_likelihood[0, 0],
                               rtol=1e-10)
    a, b = grid.best_params(2), alone.best_params(2)
    for name in ("weights", "means", "precisions_cholesky"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-8, atol=1e-10)
    if init == "kmeans":  # and the grid's row is fit_gmm's fit
        fit = fit_gmm(jax.random.fold_in(jax.random.PRNGKey(11), 2), x, 2, **kw).best_params
        for name in ("weights", "means", "precisions_cholesky"):
            np.testing.assert_allclose(getattr(fit, name), getattr(a, name), rtol=1e-8,
                                       atol=1e-10)


MASK_CASES = [("full", "kmeans", 0.0), ("spherical", "random_from_data", 1e-6)]
MASK_CASES_SLOW = [(t, i, r) for t in TYPES
                   for i, r in [("kmeans", 0.0), ("k-means++", 1e-6), ("random", 0.0),
                                ("random_from_data", 1e-6)]
                   if (t, i, r) not in MASK_CASES]


def _check_masked(covariance_type, init, reg_covar):
    from jaxmix.data.chunked import chunk
    from jaxmix.fit.gmm import fit_rows
    from jaxmix.fit.rows import restart_rows

    x = blobs(2, 2, n=200)
    ks = np.array([1, 2, 4])
    data = chunk(x, 64)
    rows = restart_rows(ks, 2, 3, n_rows=6)
    fit, score = fit_rows(jax.random.PRNGKey(0), rows, data, data, np.zeros(2, np.float32),
                          None, 1e-3, reg_covar, 30, None, k_max=4,
                          covariance_type=covariance_type, init=init, history=30,
                          path="auto", max_trials=3, per_k=True)
    mask = np.arange(4)[None, :] < np.repeat(ks, 2)[:, None]
    w = np.asarray(fit.params.weights)
    assert np.all(w[~mask] == 0.0), "masked weights must be exactly zero"
    assert np.all(w[mask] > 0.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    for leaf in jax.tree.leaves(fit.params):
        assert np.all(np.isfinite(leaf))
    assert np.all(np.isfinite(np.asarray(score)))
    assert not np.asarray(fit.failed).any()
    # k = 1 and 2 on two clear blobs: nothing collapses, masked comps not counted
    assert not np.asarray(fit.degenerate)[:4].any()


@pytest.mark.parametrize("covariance_type,init,reg_covar", MASK_CASES)
def test_masked_components_stay_empty_and_finite(covariance_type, init, reg_covar):
    _check_masked(covariance_type, init, reg_covar)


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type,init,reg_covar", MASK_CASES_SLOW)
def test_masked_components_all_types_and_inits(covariance_type, init, reg_covar):
    _check_masked(covariance_type, init, reg_covar)


@pytest.mark.parametrize("bad,match", [
    ([], "empty"), ([2, 2], "repeated"), ([0, 1], "at least 1"), ([1, 10_000], "larger"),
    ([1.5], "integer"),
])
def test_select_k_validates_grid(bad, match):
    with pytest.raises(ValueError, match=match):
        select_k(0, np.zeros((50, 2)) + np.arange(50)[:, None], bad)


@pytest.mark.parametrize("kw,match", [
    (dict(covariance_type=("full", "banana")), "covariance_type"),
    (dict(covariance_type=("full", "full")), "repeated"),
    (dict(strategy="loop"), "strategy"), (dict(init="best"), "init"),
    (dict(n_restarts=0), "n_restarts"), (dict(tol=-1.0), "tol"),
])
def test_select_k_validates_options(kw, match):
    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match=match):
        select_k(0, x, [1, 2], **kw)


@pytest.fixture(scope="module")
def curve():
    x = blobs(9, 4, n=400)
    return x, inertia_curve(0, x, range(1, 7), n_restarts=5)


def test_inertia_curve_matches_sklearn_and_is_consistent(curve):
    x, curve = curve
    for g, k in enumerate(curve.ks):
        c = curve.centroids[g]
        assert c.shape == (k, 2)
        d2 = ((x[:, None, :] - c[None]) ** 2).sum(-1).min(1).sum()
        np.testing.assert_allclose(curve.inertia[g], d2, rtol=1e-9)
    sk = np.array([KMeans(k, n_init=5, random_state=0).fit(x).inertia_ for k in curve.ks])
    # up to the true k both reach the same optimum; after it the curve flattens
    np.testing.assert_allclose(curve.inertia[:4], sk[:4], rtol=1e-6)
    assert np.all(curve.inertia <= sk * 1.05)
    assert np.all(np.diff(curve.inertia) < 0)
    assert len(np.unique(np.asarray(curve.labels(x, 4)))) == 4


def test_inertia_curve_masked_centroids_change_nothing(curve):
    """Same seeds without padding give the same k=2 solution."""
    x, curve = curve
    alone = inertia_curve(0, x, [2], n_restarts=5, n_local_trials=sel_mod.local_trials(6))
    np.testing.assert_allclose(alone.inertia[0], curve.inertia[1], rtol=1e-10)
    np.testing.assert_allclose(alone.centroids[0], curve.centroids[1], rtol=1e-10)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_degenerate_flag_ignores_masked_components(covariance_type):
    d = 3
    shape = {"full": (2, 3, d, d), "tied": (2, d, d), "diag": (2, 3, d),
             "spherical": (2, 3)}[covariance_type]
    eye = np.eye(d) if covariance_type in ("full", "tied") else 1.0
    pc = np.broadcast_to(eye, shape).copy()
    w = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    mask = w > 0
    p = GMMParams(w, np.zeros((2, 3, d)), pc, covariance_type)
    np.testing.assert_array_equal(degenerate_restarts(p, 100.0, 1e-6, mask), [0, 0])
    pc[0, 1 if covariance_type != "tied" else slice(None)] *= 1e4  # variance 1e-8: collapsed
    p = GMMParams(w, np.zeros((2, 3, d)), pc, covariance_type)
    np.testing.assert_array_equal(degenerate_restarts(p, 100.0, 1e-6, mask), [1, 0])
    tiny = np.array([[0.995, 0.005, 0.0], [1.0, 0.0, 0.0]])  # 0.5 of a sample
    p = GMMParams(tiny, np.zeros((2, 3, d)), np.broadcast_to(eye, shape), covariance_type)
    np.testing.assert_array_equal(degenerate_restarts(p, 100.0, 1e-6, mask), [1, 0])
