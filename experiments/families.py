"""Mixtures of non-Gaussian component families (``jaxmix.families``) against
the model a user would otherwise reach for (scikit-learn's; for unit vectors
a spherical K-Means, written here, and scikit-learn's KMeans).

    python experiments/families.py        # about 3 minutes on 2 busy cores, compile mostly
    python experiments/families.py --parts 3   # part 3 only (the report then holds only it)

Part 1, Bernoulli mixture on binarised digits: ``sklearn.datasets.load_digits``
(n=1797, 64 pixels), pixel > 7 -> 1 else 0, float32. ``fit_mixture(seed, x, k,
Bernoulli(), n_restarts=R)`` (maximum likelihood, ``tol=1e-3``,
``max_iter=100``) for every k of ``--k-min .. --k-max``; BIC
(``jaxmix.families.bic`` of the best restart) picks k; reported with it, the
k whose BIC is within one component's penalty (65 ln n) of the lowest. The
chosen model's component means are drawn as 8x8 images, titled with their
weight and the digit most of their images are. At the chosen k and at k=10 (the
number of digit classes) it is compared with ``sklearn.cluster.KMeans(k,
n_init=R, random_state=seed)`` on the same binary matrix: adjusted Rand index
(ARI) of each one's labels (jaxmix: ``predict``, the most probable component)
against the digit labels, and wall time.

Part 2, mixed-type mixture on generated data: ``--n-mixed`` rows drawn (numpy,
not the library's sampler) from a known 4-component mixture whose columns are
2 Gaussian (diagonal), 2 categorical (3 and 4 codes) and 2 Poisson counts;
two components share their Gaussian means and deviations, so only the other
blocks separate them. ``Product`` of ``DiagGaussian``, ``Categorical((3, 4))`` and
``Poisson`` is fitted for k = 1 .. ``--k-max-mixed`` (R restarts, maximum
likelihood); BIC picks k. The alternative: ``sklearn.mixture.GaussianMixture``
(``covariance_type`` "diag" and "full", ``n_init=R``, ``random_state=seed``)
on the same rows with the categorical columns one-hot encoded (7 columns) and
the counts used as real numbers, unscaled (11 columns), its own BIC picking
k. Measured: the k each BIC picks; ARI against the true labels at the chosen
and at the true k (the true model's own ``predict`` gives the ceiling);
parameter recovery at the true k: components matched to the truth by the
assignment maximising label agreement (Hungarian on the contingency table),
then the largest absolute error of the weights, Gaussian means and standard
deviations, category probabilities and Poisson rates (for GaussianMixture
the same quantities read off its means and variances: one-hot means are
category probabilities, count means are rates); for each GaussianMixture at
its chosen k, the share of its one-hot columns' variances below 1e-4
(components collapsed onto single codes); wall time.

Part 3, von Mises-Fisher mixture against spherical K-Means, on unit vectors
in two cases. (a) Generated: ``--n-vmf`` rows in d=16 drawn with
``scipy.stats.vonmises_fisher`` from a known 4-component mixture of unequal
concentrations, weights (0.40, 0.15, 0.25, 0.20) and kappa (10, 150, 30, 60):
components 0 and 1 (the most diffuse and the tightest) have means 45 degrees
apart, components 2 and 3 means 50 degrees apart, the two pairs orthogonal
(a random orthonormal frame from the seed); rows normalised in float64.
(b) Real: ``sklearn.datasets.load_digits`` (n=1797, 64 pixels, bundled, no
download), each column's mean subtracted, then each row divided by its L2
norm (float64); labels: the 10 digits. Each case is given as float32 to
three methods: ``fit_mixture(seed, x, k, VonMisesFisher(), n_restarts=R)``
(maximum likelihood, ``tol=1e-3``, ``max_iter=100``); spherical K-Means
(``SphericalKMeans`` in this file: numpy Lloyd iterations on cosine
similarity with re-normalised centroids, k-means++ seeding on ``1 - cos``,
best of R by total similarity, at most 100 iterations, stopping when no label
changes); and ``sklearn.cluster.KMeans(k, n_init=R, random_state=seed)`` on
the unit rows (Euclidean, centroids not re-normalised: what a user without
a spherical K-Means would pick). Every method is swept over k = 1 ..
``--k-max-vmf`` (generated) and k = 2 .. ``--k-max-vmf-digits`` (digits), the
true k (4, 10) added if outside; jaxmix's BIC picks k (K-Means has no
likelihood of its own, so no BIC). Measured, per method and k: ARI
against the true labels / the digit labels (jaxmix: ``predict``); at
jaxmix's chosen k and at the true k, the mean log-likelihood of a vMF
mixture evaluated by scipy in float64 (jaxmix: its fitted mixture, also
compared with its own float32 objective; a K-Means: each cluster's
maximum-likelihood vMF, ``scipy.stats.vonmises_fisher.fit``, weighted by its
share, an evaluation outside its timing) and the wall time (first call with
its compile, median of ``--repeats`` reruns). Generated data only: the true
mixture's BIC, mean log-likelihood and ARI of its own ``predict`` (the
ceiling); at k=4, components matched to the truth by label agreement
(Hungarian), each one's weight, kappa and angle to the true mean, for jaxmix,
both K-Means (cluster shares and scipy's per-cluster fit) and scipy's fit of
each true component's own rows (the precision the sample allows).

Timing. jaxmix: ``jaxmix.timed``, whose ``seconds`` exclude the time JAX
spent tracing and compiling in the call (reported apart as compile); the
first call in each bucket of k (8, 12, 16, 24: k is padded with masked
components) compiles (no persistent compilation cache is enabled here), and the compared fits are then rerun ``--repeats`` times, compiled,
and the median run time reported. scikit-learn (and part 3's numpy
spherical K-Means): ``time.perf_counter`` around
``fit`` of a fresh estimator, median of ``--repeats``, its OpenMP and BLAS
threads limited to ``--sklearn-threads`` (default 1, via threadpoolctl: on a
loaded 2-core machine two spinning OpenMP threads made KMeans 20-50x slower
and erratic; JAX keeps its own thread pool). All in one process on the CPU,
with whatever else the machine runs (load averages are recorded).

Writes ``experiments/results/families.md``, ``families_digits.png``,
``families_mixed.png`` and ``families_vmf.png`` (each atomically; under
``--results`` when given). ``--parts 3`` (any of 1, 2, 3) runs only those
parts, and the report written then holds only their sections.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import pathlib
import statistics
import sys
import time
from typing import Any, Callable, NamedTuple

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402
from scipy.special import logsumexp  # noqa: E402
from scipy.stats import vonmises_fisher  # noqa: E402
from sklearn.base import BaseEstimator, ClusterMixin, clone  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import jaxmix  # noqa: E402
from provenance import library_commit  # noqa: E402 (experiments/provenance.py)
import jaxmix.families  # noqa: E402
from jaxmix import timed  # noqa: E402
from jaxmix.atomic import atomic_write, write_text  # noqa: E402
from jaxmix.families import (Bernoulli, Categorical, DiagGaussian, MixtureParams,  # noqa: E402
                             Poisson, Product, VMFParams, VonMisesFisher, bic, fit_mixture,
                             predict)
from jaxmix.families.gaussian import DiagParams  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
N_CATEGORIES = (3, 4)
# Mixed-type columns: 0-1 Gaussian, 2-3 categorical codes, 4-5 counts.
MIXED = Product(((DiagGaussian(), (0, 1)), (Categorical(N_CATEGORIES), (2, 3)),
                 (Poisson(), (4, 5))))
TRUTH = {
    "weights": np.array([0.35, 0.25, 0.22, 0.18]),
    "means": np.array([[-2.0, 0.0], [2.0, 0.5], [0.0, 3.0], [0.0, 3.0]]),
    "sds": np.array([[1.0, 1.0], [0.8, 1.5], [1.2, 0.7], [1.2, 0.7]]),
    "probs": [np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3], [0.3, 0.4, 0.3]]),
              np.array([[0.25, 0.25, 0.25, 0.25], [0.6, 0.2, 0.1, 0.1],
                        [0.1, 0.1, 0.1, 0.7], [0.6, 0.3, 0.05, 0.05]])],
    "rates": np.array([[2.0, 8.0], [5.0, 5.0], [1.0, 3.0], [9.0, 1.5]]),
}
GROUPS = ("weights", "means", "sds", "probs", "rates")


class Fit(NamedTuple):
    """One fit at one k, of either library."""
    k: int
    labels: np.ndarray
    bic: float
    seconds: float            # run time, compile set apart
    compile_seconds: float    # jaxmix only (nan for scikit-learn)
    model: Any                # FitResult or the fitted estimator


def fit_jaxmix(seed: int, x, k: int, family, restarts: int) -> Fit:
    result, t = timed(fit_mixture, seed, x, k, family, n_restarts=restarts)
    labels = np.asarray(predict(family, result.best_params, x))
    return Fit(k, labels, bic(family, result.best_params, x), t.seconds, t.compile_seconds,
               result)


def fit_sklearn(estimator, x) -> Fit:
    model = clone(estimator)
    start = time.perf_counter()
    model.fit(x)
    seconds = time.perf_counter() - start
    score = model.bic(x) if hasattr(model, "bic") else float("nan")
    k = getattr(model, "n_components", None) or model.n_clusters
    return Fit(k, model.predict(x), score, seconds, float("nan"), model)


def median_seconds(fit: Callable[[], Fit], repeats: int) -> float:
    """Median run time of ``repeats`` calls of ``fit``."""
    return statistics.median(fit().seconds for _ in range(repeats))


def compare(name: str, first: Fit, rerun: Callable[[], Fit], truth, repeats: int) -> dict:
    """A table row: ``first`` (the fit a sweep already ran) and the median of
    ``repeats`` reruns."""
    return {"method": name, "k": first.k, "ari": adjusted_rand_score(truth, first.labels),
            "first": first.seconds, "compile": first.compile_seconds,
            "median": median_seconds(rerun, repeats)}


def sweep(ks, fit_k: Callable[[int], Fit]) -> dict[int, Fit]:
    return {k: fit_k(k) for k in ks}


def chosen(fits: dict[int, Fit]) -> Fit:
    return min(fits.values(), key=lambda f: f.bic)


def near_chosen(fits: dict[int, Fit], margin: float) -> list[int]:
    """The k whose BIC is within ``margin`` of the lowest."""
    low = chosen(fits).bic
    return [k for k, f in fits.items() if f.bic - low <= margin]


# ---------------------------------------------------------------- part 1: digits

def binary_digits():
    digits = load_digits()
    return (digits.data > 7).astype(np.float32), digits.target


def digits_experiment(args) -> dict:
    x, y = binary_digits()
    jx_fit = lambda k: fit_jaxmix(args.seed, x, k, Bernoulli(), args.restarts)  # noqa: E731
    fits = sweep(range(args.k_min, args.k_max + 1), jx_fit)
    rows = []
    for k in sorted({chosen(fits).k, 10}):
        first = fits[k] if k in fits else jx_fit(k)
        km = KMeans(k, n_init=args.restarts, random_state=args.seed)
        rows.append(compare("jaxmix Bernoulli mixture", first, lambda: jx_fit(k), y,
                            args.repeats))
        rows.append(compare("scikit-learn KMeans", fit_sklearn(km, x),
                            lambda: fit_sklearn(km, x), y, args.repeats))
    penalty = (1 + Bernoulli().n_free(x.shape[1])) * np.log(len(x))  # one more component
    return {"y": y, "fits": fits, "rows": rows, "penalty": penalty,
            "near": near_chosen(fits, penalty)}


def plot_digits(result, path) -> None:
    fits, best = result["fits"], chosen(result["fits"])
    params = best.model.best_params
    order = np.argsort(-np.asarray(params.weights))
    fig = plt.figure(figsize=(15, 5.2), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1, 1.8])
    ax = left.subplots()
    ax.plot(list(fits), [f.bic for f in fits.values()], "o-")
    ax.axvline(best.k, color="grey", ls=":", lw=1)
    ax.set(xlabel="k", ylabel="BIC (lower is better)", xticks=list(fits)[::2],
           title=f"Bernoulli mixture BIC picks k = {best.k}")
    cols = int(np.ceil(best.k / 3))
    axes = right.subplots(3, cols, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, j in zip(axes, order):
        digit = np.bincount(result["y"][best.labels == j], minlength=10).argmax()
        ax.imshow(np.asarray(params.theta[j]).reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"w={float(params.weights[j]):.3f}, mostly {digit}", fontsize=8)
    right.suptitle("component means P(pixel on), by weight; the digit most of its images are")
    save_figure(fig, path)


# ---------------------------------------------------------------- part 2: mixed types

def mixed_data(seed: int, n: int):
    """``(x (n, 6) float32, labels)`` drawn from ``TRUTH`` with numpy."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(TRUTH["weights"]), size=n, p=TRUTH["weights"])
    gauss = TRUTH["means"][labels] + TRUTH["sds"][labels] * rng.standard_normal((n, 2))
    codes = [np.minimum((rng.random((n, 1)) > np.cumsum(p[labels], axis=1)).sum(axis=1),
                        p.shape[1] - 1) for p in TRUTH["probs"]]
    counts = rng.poisson(TRUTH["rates"][labels])
    return np.column_stack([gauss, *codes, counts]).astype(np.float32), labels


def truth_params() -> MixtureParams:
    probs = np.zeros((len(TRUTH["weights"]), 2, max(N_CATEGORIES)))
    for i, p in enumerate(TRUTH["probs"]):
        probs[:, i, :p.shape[1]] = p
    theta = (DiagParams(TRUTH["means"], TRUTH["sds"] ** 2), probs, TRUTH["rates"])
    return jax.tree.map(lambda a: np.asarray(a, np.float32), MixtureParams(TRUTH["weights"], theta))


def one_hot(x) -> np.ndarray:
    """The columns a GaussianMixture gets: Gaussian, one-hot codes, counts."""
    hot = [np.eye(c)[x[:, 2 + i].astype(int)] for i, c in enumerate(N_CATEGORIES)]
    return np.column_stack([x[:, :2], *hot, x[:, 4:]])


def groups_jaxmix(params: MixtureParams) -> dict:
    gauss, probs, rates = (jax.tree.map(np.asarray, t) for t in params.theta)
    real = [probs[:, i, :c] for i, c in enumerate(N_CATEGORIES)]
    return {"weights": np.asarray(params.weights), "means": gauss.means,
            "sds": np.sqrt(gauss.variances), "probs": np.concatenate(real, axis=1),
            "rates": rates}


def gmm_variances(model: GaussianMixture) -> np.ndarray:
    """``(k, d)`` per-feature variances of a diag or full GaussianMixture."""
    if model.covariance_type == "diag":
        return model.covariances_
    return np.stack([np.diag(c) for c in model.covariances_])


def groups_gmm(model: GaussianMixture) -> dict:
    var = gmm_variances(model)
    return {"weights": model.weights_, "means": model.means_[:, :2],
            "sds": np.sqrt(var[:, :2]), "probs": model.means_[:, 2:-2],
            "rates": model.means_[:, -2:]}


def groups_truth() -> dict:
    return {**{g: TRUTH[g] for g in ("weights", "means", "sds", "rates")},
            "probs": np.concatenate(TRUTH["probs"], axis=1)}


def collapsed_share(model: GaussianMixture, floor: float = 1e-4) -> float:
    """Share of a GaussianMixture's one-hot variances below ``floor``: a
    component sitting on one code (variance ``reg_covar``)."""
    return float(np.mean(gmm_variances(model)[:, 2:-2] < floor))


def matching(true_labels, labels, k: int) -> np.ndarray:
    """``perm[j]``: the fitted component matched to true component ``j``."""
    table = np.zeros((k, k))
    np.add.at(table, (true_labels, labels), 1)
    return linear_sum_assignment(-table)[1]


def recovery(fit: Fit, groups: dict, true_labels) -> dict:
    """Largest absolute error per parameter group after matching."""
    perm, truth = matching(true_labels, fit.labels, fit.k), groups_truth()
    return {g: float(np.max(np.abs(groups[g][perm] - truth[g]))) for g in GROUPS}


def mixed_methods(args, x) -> dict:
    """``name -> (fit at k, parameter groups of a fit)`` for part 2."""
    xg = one_hot(x)

    def gmm(cov):
        return lambda k: fit_sklearn(GaussianMixture(k, covariance_type=cov, n_init=args.restarts,
                                                     random_state=args.seed), xg)

    methods = {"jaxmix Product mixture": (
        lambda k: fit_jaxmix(args.seed, x, k, MIXED, args.restarts),
        lambda f: groups_jaxmix(f.model.best_params))}
    for cov in ("diag", "full"):
        methods[f"scikit-learn GaussianMixture ({cov}, one-hot)"] = (
            gmm(cov), lambda f: groups_gmm(f.model))
    return methods


def mixed_experiment(args) -> dict:
    x, y = mixed_data(args.seed, args.n_mixed)
    k_true, ks = len(TRUTH["weights"]), range(1, args.k_max_mixed + 1)
    methods = mixed_methods(args, x)
    fits = {name: sweep(ks, fit_k) for name, (fit_k, _) in methods.items()}
    rows = [compare(name, fits[name][k], lambda: fit_k(k), y, args.repeats)
            for name, (fit_k, _) in methods.items()
            for k in sorted({chosen(fits[name]).k, k_true})]
    recovered = {name: recovery(fits[name][k_true], groups(fits[name][k_true]), y)
                 for name, (_, groups) in methods.items()}
    truth = truth_params()
    collapsed = {name: (chosen(f).k, collapsed_share(chosen(f).model)) for name, f in fits.items()
                 if not name.startswith("jaxmix")}
    return {"collapsed": collapsed, "y": y, "fits": fits, "rows": rows, "recovered": recovered,
            "groups": {name: groups(fits[name][k_true]) for name, (_, groups) in methods.items()},
            "truth_bic": bic(MIXED, truth, x),
            "truth_ari": adjusted_rand_score(y, np.asarray(predict(MIXED, truth, x)))}


def plot_mixed(result, path) -> None:
    fits, y, k_true = result["fits"], result["y"], len(TRUTH["weights"])
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.6), layout="constrained")
    ax = axes[0]
    for name, f in fits.items():
        low = chosen(f).bic
        ax.plot(list(f), [g.bic - low + 1 for g in f.values()], "o-", label=name)
    ax.axvline(k_true, color="grey", ls=":", lw=1)
    ax.set(yscale="log", xlabel="k", ylabel="BIC - its minimum + 1 (log)",
           title=f"BIC over k (true k = {k_true}, dotted)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    truth = groups_truth()
    for ax, name in zip(axes[1:], ["jaxmix Product mixture",
                                   "scikit-learn GaussianMixture (diag, one-hot)"]):
        groups = result["groups"][name]
        perm = matching(y, fits[name][k_true].labels, k_true)
        for g in GROUPS:
            ax.scatter(truth[g].ravel(), groups[g][perm].ravel(), s=18, label=g)
        top = max(np.max(truth["rates"]), np.max(groups["rates"])) * 1.05
        ax.plot([-3, top], [-3, top], color="grey", lw=0.8)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_yscale("symlog", linthresh=1)
        ax.set(xlabel="true (symlog: linear within +-1)", ylabel="fitted",
               title=f"{name}, k={k_true}:\nparameters of matched components")
        ax.legend(fontsize=8)
    save_figure(fig, path)


# ---------------------------------------------------------------- part 3: von Mises-Fisher

VMF_D = 16
VMF_TRUTH = {"weights": np.array([0.40, 0.15, 0.25, 0.20]),
             "kappa": np.array([10.0, 150.0, 30.0, 60.0])}
# Component 1's mean lies 45 degrees from component 0's, component 3's 50 from
# component 2's; the two pairs are orthogonal.
VMF_ANGLES = (45.0, 50.0)
JX_VMF = "jaxmix vMF mixture"
SPHERICAL = "spherical K-Means (numpy, this file)"
SK_UNIT = "scikit-learn KMeans on the unit rows"


class SphericalKMeans(ClusterMixin, BaseEstimator):
    """Lloyd's algorithm on unit vectors with cosine similarity: each row to
    the centroid of highest ``x . c``, each centroid the re-normalised sum of
    its rows (an empty cluster keeps its centroid); k-means++ seeding on
    ``1 - cos``; the best of ``n_init`` by total similarity."""

    def __init__(self, n_clusters: int = 8, n_init: int = 1, max_iter: int = 100,
                 random_state: int = 0):
        self.n_clusters, self.n_init = n_clusters, n_init
        self.max_iter, self.random_state = max_iter, random_state

    def fit(self, x):
        rng, n, k = np.random.default_rng(self.random_state), len(x), self.n_clusters
        best = -np.inf
        for _ in range(self.n_init):
            c = x[[rng.integers(n)]]
            for _ in range(1, k):
                gap = np.maximum(1 - (x @ c.T).max(axis=1), 0).astype(np.float64)
                c = np.vstack([c, x[rng.choice(n, p=gap / gap.sum())]])
            labels = np.full(n, -1)
            for iterations in range(1, self.max_iter + 1):
                new = (x @ c.T).argmax(axis=1)
                if np.array_equal(new, labels):
                    break
                labels = new
                s = np.eye(k, dtype=x.dtype)[labels].T @ x
                norm = np.linalg.norm(s, axis=1, keepdims=True)
                c = np.where(norm > 0, s / np.maximum(norm, 1e-30), c)
            score = float((x @ c.T).max(axis=1).sum())
            if score > best:
                best, self.cluster_centers_, self.n_iter_ = score, c, iterations
        self.labels_, self.similarity_ = self.predict(x), best
        return self

    def predict(self, x):
        return (x @ self.cluster_centers_.T).argmax(axis=1)


def unit_rows(z) -> np.ndarray:
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def vmf_truth(seed: int) -> dict:
    """``VMF_TRUTH`` with its mean directions (seeded: a random orthonormal
    frame, the pairs of ``VMF_ANGLES`` in its planes)."""
    q = np.linalg.qr(np.random.default_rng(seed + 1).standard_normal((VMF_D, 4)))[0].T
    a, b = np.radians(VMF_ANGLES)
    means = np.stack([q[0], np.cos(a) * q[0] + np.sin(a) * q[1],
                      q[2], np.cos(b) * q[2] + np.sin(b) * q[3]])
    return {**VMF_TRUTH, "means": means}


def vmf_data(seed: int, n: int, truth: dict):
    """``(x (n, d) float64 unit rows, labels)``: labels by the weights, each
    component's rows from ``scipy.stats.vonmises_fisher``."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(truth["weights"]), size=n, p=truth["weights"])
    x = np.zeros((n, VMF_D))
    for j, (mu, kappa) in enumerate(zip(truth["means"], truth["kappa"])):
        rows = labels == j
        x[rows] = vonmises_fisher(mu, kappa).rvs(int(rows.sum()), random_state=rng)
    return unit_rows(x), labels


def digits_unit():
    """``load_digits`` rows centred (column means off) and L2-normalised."""
    digits = load_digits()
    return unit_rows(digits.data - digits.data.mean(axis=0)), digits.target


def vmf_of(fit: Fit, x64) -> tuple:
    """``(weights, means, kappa)`` as float64 numpy: jaxmix's fitted mixture,
    or for a K-Means the maximum-likelihood vMF of each cluster
    (``scipy.stats.vonmises_fisher.fit`` on its rows, weight its share; a
    cluster of fewer than 2 rows gets weight 0 and kappa nan)."""
    if hasattr(fit.model, "best_params"):  # a jaxmix FitResult
        p = fit.model.best_params
        return (np.asarray(p.weights, np.float64), unit_rows(np.asarray(p.theta.means, np.float64)),
                np.asarray(p.theta.kappa, np.float64))
    w, means, kappa = np.zeros(fit.k), np.zeros((fit.k, x64.shape[1])), np.full(fit.k, np.nan)
    for j in range(fit.k):
        rows = x64[fit.labels == j]
        if len(rows) >= 2:
            w[j] = len(rows) / len(x64)
            means[j], kappa[j] = vonmises_fisher.fit(rows)
    return w, means, kappa


def vmf_mean_loglik(x64, w, means, kappa) -> float:
    """Mean log-density of the vMF mixture, by scipy in float64."""
    lp = [np.log(w[j]) + vonmises_fisher(means[j], kappa[j]).logpdf(x64)
          for j in range(len(w)) if w[j] > 0]
    return float(np.mean(logsumexp(np.column_stack(lp), axis=1)))


def vmf_methods(args, x) -> dict[str, Callable[[int], Fit]]:
    r = args.restarts
    return {JX_VMF: lambda k: fit_jaxmix(args.seed, x, k, VonMisesFisher(), r),
            SPHERICAL: lambda k: fit_sklearn(SphericalKMeans(k, n_init=r, random_state=args.seed),
                                             x),
            SK_UNIT: lambda k: fit_sklearn(KMeans(k, n_init=r, random_state=args.seed), x)}


def vmf_case(args, x64, y, k_true: int, ks) -> dict:
    """Every method swept over ``ks`` on the unit rows ``x64`` (float32 for
    the fits; ``k_true`` added to them); table rows at jaxmix's BIC choice and
    at ``k_true``."""
    x = x64.astype(np.float32)
    methods, ks = vmf_methods(args, x), sorted(set(ks) | {k_true})
    fits = {name: sweep(ks, fit_k) for name, fit_k in methods.items()}
    rows = []
    for k in sorted({chosen(fits[JX_VMF]).k, k_true}):
        for name, fit_k in methods.items():
            row = compare(name, fits[name][k], lambda: fit_k(k), y, args.repeats)
            row["loglik"] = vmf_mean_loglik(x64, *vmf_of(fits[name][k], x64))
            rows.append(row)
    jx_true = fits[JX_VMF][k_true].model
    penalty = (1 + VonMisesFisher().n_free(x.shape[1])) * np.log(len(x))
    return {"x64": x64, "y": y, "k_true": k_true, "fits": fits, "rows": rows,
            "penalty": penalty, "near": near_chosen(fits[JX_VMF], penalty),
            "objective_gap": abs(float(jx_true.objective[jx_true.best])
                                 - vmf_mean_loglik(x64, *vmf_of(fits[JX_VMF][k_true], x64))),
            "ari": {name: {k: adjusted_rand_score(y, f.labels) for k, f in fs.items()}
                    for name, fs in fits.items()}}


def vmf_recovery(case: dict, truth: dict) -> dict:
    """At the true k, per method, matched to the truth by label agreement:
    ``(weights, kappa, angle to the true mean in degrees)`` per true
    component; ``"true labels"``: each true component's own maximum-likelihood
    vMF (scipy), the precision the sample allows."""
    x64, y, k = case["x64"], case["y"], case["k_true"]
    out = {"true labels": vmf_of(Fit(k, y, np.nan, np.nan, np.nan, None), x64)}
    for name, fs in case["fits"].items():
        perm = matching(y, fs[k].labels, k)
        out[name] = tuple(a[perm] for a in vmf_of(fs[k], x64))
    return {name: (w, kappa, np.degrees(np.arccos(np.clip(np.sum(m * truth["means"], axis=1),
                                                            -1, 1))))
            for name, (w, m, kappa) in out.items()}


def vmf_experiment(args) -> dict:
    truth = vmf_truth(args.seed)
    x64, y = vmf_data(args.seed, args.n_vmf, truth)
    generated = vmf_case(args, x64, y, len(truth["weights"]), range(1, args.k_max_vmf + 1))
    true_params = MixtureParams(np.asarray(truth["weights"], np.float32),
                                VMFParams(np.asarray(truth["means"], np.float32),
                                          np.asarray(truth["kappa"], np.float32)))
    x = x64.astype(np.float32)
    generated.update(
        truth=truth, recovered=vmf_recovery(generated, truth),
        truth_bic=bic(VonMisesFisher(), true_params, x),
        truth_ari=adjusted_rand_score(y, np.asarray(predict(VonMisesFisher(), true_params, x))),
        truth_loglik=vmf_mean_loglik(x64, truth["weights"], truth["means"], truth["kappa"]))
    xd, yd = digits_unit()
    digits = vmf_case(args, xd, yd, 10, range(2, args.k_max_vmf_digits + 1))
    return {"generated": generated, "digits": digits}


def plot_vmf(result, path) -> None:
    gen, dig = result["generated"], result["digits"]
    fig, axes = plt.subplots(1, 4, figsize=(21, 5.4), layout="constrained")
    ax = axes[0]
    for label, case, ls in (("generated", gen, "-"), ("digits", dig, "--")):
        f = case["fits"][JX_VMF]
        low = chosen(f).bic
        ax.plot(list(f), [g.bic - low + 1 for g in f.values()], "o" + ls, label=label)
        ax.axvline(case["k_true"], color="grey", ls=ls, lw=0.8)
    ax.set(yscale="log", xlabel="k", ylabel="BIC - its minimum + 1 (log)",
           title="jaxmix vMF mixture: BIC over k\n(grey: true k, 4 generated, 10 digit classes)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    ax = axes[1]
    for label, case, ls in (("generated", gen, "-"), ("digits", dig, "--")):
        for i, (name, ari) in enumerate(case["ari"].items()):
            ax.plot(list(ari), list(ari.values()), ls, marker="o", ms=3, color=f"C{i}",
                    label=f"{name}, {label}")
    ax.set(xlabel="k", ylabel="ARI against the true / digit labels",
           title="ARI over k (solid: generated, dashed: digits)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)
    ax = axes[2]
    kappa = gen["truth"]["kappa"]
    for i, (name, (_, fitted, _)) in enumerate(gen["recovered"].items()):
        ax.scatter(kappa * (1 + 0.03 * (i - 1.5)), fitted, s=30, label=name,
                   marker="os^v"[i])
    ax.plot([kappa.min() / 1.5, kappa.max() * 1.5], [kappa.min() / 1.5, kappa.max() * 1.5],
            color="grey", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="true kappa", ylabel="fitted kappa",
           title=f"generated, k={gen['k_true']}: concentrations\n(K-Means: scipy's vMF fit "
                 "per cluster)")
    ax.legend(fontsize=7)
    ax = axes[3]
    names = list(gen["fits"])
    for j, (label, case) in enumerate((("generated", gen), ("digits", dig))):
        med = {r["method"]: r["median"] for r in case["rows"] if r["k"] == case["k_true"]}
        ax.bar(np.arange(len(names)) + 0.4 * j, [med[n] for n in names], 0.4,
               label=f"{label}, k={case['k_true']}")
    ax.set_xticks(np.arange(len(names)) + 0.2, [n.replace(" (", "\n(").replace(" on ", "\non ")
                                                 for n in names], fontsize=7)
    ax.set(ylabel="median run s (compile excluded)",
           title=f"run time at the true k, {len(names)} methods")
    ax.legend(fontsize=8)
    save_figure(fig, path)


# ---------------------------------------------------------------- output

def save_figure(fig, path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    with atomic_write(path, "wb") as f:
        f.write(buffer.getvalue())


def fmt(v, spec=".3f") -> str:
    return "-" if isinstance(v, float) and np.isnan(v) else format(v, spec)


def table(header, rows) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def comparison_table(rows) -> list[str]:
    return table(["method", "k", "ARI", "run s (first call)", "compile s (first call)",
                  "median run s"],
                 [[r["method"], str(r["k"]), fmt(r["ari"]), fmt(r["first"]), fmt(r["compile"]),
                   fmt(r["median"])] for r in rows])


def jaxmix_sweep_table(fits: dict[int, Fit]) -> list[str]:
    best = chosen(fits).k
    body = []
    for k, f in fits.items():
        r = f.model
        body.append([str(k), f"{f.bic:.1f}" + (" *" if k == best else ""),
                     f"{float(r.objective[r.best]):.4f}",
                     f"{int(np.sum(r.converged))}/{len(r.converged)}",
                     str(int(np.sum(r.degenerate))), str(int(np.max(r.n_iter))),
                     fmt(f.seconds), fmt(f.compile_seconds)])
    return table(["k", "BIC", "mean log-lik (best)", "converged", "degenerate",
                  "loop iterations", "run s", "compile s"], body)


def mixed_sweep_table(fits: dict) -> list[str]:
    names = list(fits)
    ks = list(fits[names[0]])
    body = [[str(k)] + [f"{fits[n][k].bic:.1f}" + (" *" if chosen(fits[n]).k == k else "")
                        + f" ({fits[n][k].seconds:.2f} s)" for n in names] for k in ks]
    return table(["k"] + [f"BIC {n} (run s)" for n in names], body)


def total(fits: dict[int, Fit], field: str) -> float:
    return sum(getattr(f, field) for f in fits.values())


def compile_note(fits: dict[int, Fit]) -> str:
    """Which k of a jaxmix sweep compiled (any compile over 0.1 s)."""
    ks = [k for k, f in fits.items() if f.compile_seconds > 0.1]
    return (f"{len(ks)} of the {len(fits)} k compiled a program: k = "
            f"{', '.join(map(str, ks))}; k is padded to buckets of 8, 12, 16, 24, 32, but a "
            "k inside a bucket compiles again where the rows per chunk, chosen from the real "
            "k, change")


def edge_note(fits: dict[int, Fit]) -> str:
    if chosen(fits).k != max(fits):
        return ""
    return (f" The lowest BIC is at the sweep's largest k ({max(fits)}): BIC still falls "
            "there, so this sweep picks no k; the pick only marks the edge.")


def family_classes() -> list[str]:
    """The component families ``jaxmix.families`` exports (classes with an M-step)."""
    return sorted(n for n in jaxmix.families.__all__
                  if isinstance(getattr(jaxmix.families, n), type)
                  and hasattr(getattr(jaxmix.families, n), "m_step")
                  and not getattr(getattr(jaxmix.families, n), "_is_protocol", False))


def unmeasured_families() -> list[str]:
    used = {type(f).__name__ for f, _ in MIXED.blocks} | {"Bernoulli", "Product",
                                                          "VonMisesFisher"}
    return [n for n in family_classes() if n not in used]


def header(args, env) -> list[str]:
    parts = "" if args.parts == "123" else (
        f" (this run: part(s) {', '.join(args.parts)} only)")
    return [
        "# Mixtures of non-Gaussian families: Bernoulli digits, mixed-type data, "
        "von Mises-Fisher" + parts, "",
        f"Command: `{env['command']}`  ", f"Date: {env['date']}  ",
        f"Library: commit {env['commit']}  ",
        f"JAX {jax.__version__} on {jax.devices()[0].platform.upper()} "
        f"({len(os.sched_getaffinity(0))} cores available), scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}; scikit-learn limited to {args.sklearn_threads} OpenMP/BLAS "
        "thread(s) (threadpoolctl), JAX on its default thread pool  ",
        f"Load average (/proc/loadavg) at start: `{env['load_start']}`, at end: "
        f"`{env['load_end']}`; experiments' wall time {env['wall']:.1f} s (figures and "
        "report excluded).", "",
        "What is measured is described in the module docstring of "
        "`experiments/families.py`. Covered: Bernoulli mixtures on binary data, "
        "products of diagonal-Gaussian, categorical and Poisson blocks on mixed-type data, "
        "and von Mises-Fisher mixtures on unit vectors (generated in d=16, centred and "
        "normalised digits in d=64), maximum likelihood (no prior), on the CPU. Not "
        "covered: GPUs or meshes, chunked "
        "or streamed input, MAP fits (`prior=`), the library's other families at this "
        f"commit ({', '.join(unmeasured_families()) or 'none'}), vMF in high dimensions "
        "(hundreds of columns, as text embeddings) or with very large kappa, Gaussian "
        "columns far from 0 (the generated ones lie within a few units of 0; far from it "
        "the diagonal-Gaussian family's float32 statistics lose precision, reported "
        "separately).", ""]


def digits_section(args, digits) -> list[str]:
    fits = digits["fits"]
    return [
        "## 1. Bernoulli mixture on binarised digits", "",
        f"`load_digits`, pixel > 7 -> 1 (n={len(digits['y'])}, 64 binary features); "
        f"{args.restarts} restarts per k. BIC picks **k = {chosen(fits).k}** (*). Sweep "
        f"total: run {total(fits, 'seconds'):.2f} s, compile "
        f"{total(fits, 'compile_seconds'):.1f} s ({compile_note(fits)}).", "",
        *jaxmix_sweep_table(fits), "",
        f"BIC is flat near its minimum: the k within one component's penalty "
        f"({digits['penalty']:.0f}) of it are {digits['near']}, so the pick among them is "
        "weak (the log-likelihood gained per added component varies, and the best of "
        f"{args.restarts} restarts need not be a k's best optimum).", "",
        f"Against scikit-learn's KMeans on the same binary matrix (n_init={args.restarts}); "
        f"ARI against the 10 digit labels; median of {args.repeats} reruns. jaxmix's first "
        "call of each k is the sweep's; its run time excludes compile, which is shown apart; "
        "scikit-learn has no compile step.", "",
        *comparison_table(digits["rows"]), "",
        "![Bernoulli BIC and component means](families_digits.png)", ""]


def mixed_section(args, mixed) -> list[str]:
    jx = mixed["fits"]["jaxmix Product mixture"]
    return [
        "## 2. Mixed-type mixture on generated data", "",
        f"n={args.n_mixed}, true k={len(TRUTH['weights'])}: columns 0-1 Gaussian, 2-3 "
        "categorical (3 and 4 codes), 4-5 Poisson counts; components 3 and 4 share "
        "Gaussian means and deviations. "
        "The alternative is scikit-learn's GaussianMixture on the same rows with the "
        "categorical columns **one-hot encoded** and the counts as real numbers (11 columns, "
        "unscaled); its BIC is on those columns, so BIC values compare across k within a "
        "column only.", "",
        f"BIC of the true parameters on the jaxmix columns: {mixed['truth_bic']:.1f}; ARI "
        f"of the true model's own labels (the ceiling): {mixed['truth_ari']:.3f}.", "",
        *mixed_sweep_table(mixed["fits"]), "",
        f"jaxmix sweep total: run {total(jx, 'seconds'):.2f} s, compile "
        f"{total(jx, 'compile_seconds'):.1f} s.", "",
        *comparison_table(mixed["rows"]), "",
        *(f"- {n} at its BIC's k={k}: {share:.0%} of the one-hot columns' variances are below "
          "1e-4 (components sitting on single codes, whose near-zero variances inflate the "
          "likelihood)." for n, (k, share) in mixed["collapsed"].items()), "",
        "Recovery at the true k (largest absolute error over components and features, after "
        "matching components to the truth by label agreement):", "",
        *table(["method"] + list(GROUPS),
               [[n] + [fmt(r[g]) for g in GROUPS] for n, r in mixed["recovered"].items()]), "",
        "![BIC over k and recovered parameters](families_mixed.png)", ""]


def vmf_comparison_table(rows) -> list[str]:
    return table(["method", "k", "ARI", "mean log-lik (vMF mixture)", "run s (first call)",
                  "compile s (first call)", "median run s"],
                 [[r["method"], str(r["k"]), fmt(r["ari"]), fmt(r["loglik"]), fmt(r["first"]),
                   fmt(r["compile"]), fmt(r["median"])] for r in rows])


def vmf_ari_table(case) -> list[str]:
    names, best = list(case["ari"]), chosen(case["fits"][JX_VMF]).k
    ks = list(case["ari"][names[0]])
    return table(["k"] + [f"ARI {n}" for n in names],
                 [[str(k) + (" *" if k == best else "")]
                  + [fmt(case["ari"][n][k]) for n in names] for k in ks])


def vmf_recovery_table(gen) -> list[str]:
    truth, rec = gen["truth"], gen["recovered"]
    body = []
    for j in range(len(truth["weights"])):
        cells = [str(j), f"{truth['weights'][j]:.2f}", f"{truth['kappa'][j]:.0f}"]
        for w, kappa, angle in rec.values():
            cells.append(f"{w[j]:.3f} / {kappa[j]:.1f} / {angle[j]:.2f}")
        body.append(cells)
    return table(["component", "true weight", "true kappa"]
                 + [f"{n}: weight / kappa / angle (deg)" for n in rec], body)


def vmf_case_lines(args, case, what: str) -> list[str]:
    jx = case["fits"][JX_VMF]
    return [
        f"BIC of the jaxmix vMF mixture picks **k = {chosen(jx).k}** (*) of k = "
        f"{min(jx)}..{max(jx)} (true: {case['k_true']}); the k within one component's penalty "
        f"({case['penalty']:.0f}) of the lowest BIC: {case['near']}. Sweep total: run "
        f"{total(jx, 'seconds'):.2f} s, compile {total(jx, 'compile_seconds'):.1f} s "
        f"({compile_note(jx)}).{edge_note(jx)}", "",
        *jaxmix_sweep_table(jx), "",
        f"ARI against the {what} of every method's fit at each k ({args.restarts} restarts or "
        "inits each):", "", *vmf_ari_table(case), "",
        f"At jaxmix's BIC choice and at k = {case['k_true']}; median of {args.repeats} reruns. "
        "Mean log-lik: of the jaxmix fit's own mixture, and for a K-Means of the vMF mixture "
        "its clusters give (each cluster's maximum-likelihood vMF by scipy, weight its share; "
        "this evaluation is not in its time), all evaluated by scipy in float64. jaxmix's "
        f"reported objective at k = {case['k_true']} differs from scipy's evaluation of its "
        f"parameters by {case['objective_gap']:.2e}.", "",
        *vmf_comparison_table(case["rows"]), ""]


def vmf_section(args, vmf) -> list[str]:
    gen, dig = vmf["generated"], vmf["digits"]
    t = gen["truth"]
    return [
        "## 3. von Mises-Fisher mixture against spherical K-Means", "",
        "Methods, each on the same float32 unit rows: jaxmix's `fit_mixture(seed, x, k, "
        f"VonMisesFisher(), n_restarts={args.restarts})` (maximum likelihood, `tol=1e-3`, "
        f"`max_iter=100`); spherical K-Means (this file's numpy Lloyd on cosine similarity, "
        f"centroids re-normalised, k-means++ seeding, best of {args.restarts}); scikit-learn's "
        f"`KMeans(k, n_init={args.restarts})` on the unit rows (Euclidean, centroids not "
        "re-normalised).", "",
        f"### 3a. Generated: n={args.n_vmf}, d={VMF_D}, k=4", "",
        f"Weights {', '.join(f'{w:.2f}' for w in t['weights'])}, concentrations kappa "
        f"{', '.join(f'{c:.0f}' for c in t['kappa'])}; component "
        f"1's mean {VMF_ANGLES[0]:.0f} degrees from component 0's, component 3's "
        f"{VMF_ANGLES[1]:.0f} from component 2's, the two pairs orthogonal (drawn with "
        "`scipy.stats.vonmises_fisher`). The true mixture: BIC "
        f"{gen['truth_bic']:.1f}, mean log-lik {gen['truth_loglik']:.4f}, ARI of its own "
        f"labels (the ceiling) {gen['truth_ari']:.3f}.", "",
        *vmf_case_lines(args, gen, "true labels"),
        "Recovery at k = 4, components matched to the truth by label agreement: fitted "
        "weight / kappa / angle between fitted and true mean (for a K-Means, its cluster "
        "shares and scipy's vMF fit of each cluster; \"true labels\": scipy's fit of each "
        "true component's own rows, what the sample allows):", "",
        *vmf_recovery_table(gen), "",
        f"### 3b. Digits: `load_digits` centred and L2-normalised (n={len(dig['y'])}, d=64)",
        "", *vmf_case_lines(args, dig, "10 digit labels"),
        "![vMF: BIC, ARI over k, concentrations, run time](families_vmf.png)", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--restarts", type=int, default=8)
    parser.add_argument("--k-min", type=int, default=4)
    parser.add_argument("--k-max", type=int, default=24)
    parser.add_argument("--n-mixed", type=int, default=4000)
    parser.add_argument("--k-max-mixed", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-vmf", type=int, default=4000,
                        help="rows of part 3's generated unit vectors")
    parser.add_argument("--k-max-vmf", type=int, default=8,
                        help="part 3 generated data: k = 1 .. this")
    parser.add_argument("--k-max-vmf-digits", type=int, default=32,
                        help="part 3 digits: k = 2 .. this")
    parser.add_argument("--sklearn-threads", type=int, default=1,
                        help="OpenMP/BLAS threads for scikit-learn and numpy (threadpoolctl)")
    parser.add_argument("--parts", default="123",
                        help="which parts to run, e.g. 3 (the report then has only those)")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS,
                        help="folder of the report and figures")
    args = parser.parse_args()
    if not args.parts or set(args.parts) - set("123"):
        parser.error("--parts takes digits among 1, 2, 3")
    args.parts = "".join(sorted(set(args.parts)))
    env = {"command": " ".join(["python experiments/families.py", *sys.argv[1:]]),
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "load_start": pathlib.Path("/proc/loadavg").read_text().strip(),
           "commit": library_commit()}
    start = time.perf_counter()
    parts = {"1": (digits_experiment, plot_digits, "families_digits.png", digits_section),
             "2": (mixed_experiment, plot_mixed, "families_mixed.png", mixed_section),
             "3": (vmf_experiment, plot_vmf, "families_vmf.png", vmf_section)}
    with threadpool_limits(limits=args.sklearn_threads):
        results = {p: parts[p][0](args) for p in args.parts}
    env.update(wall=time.perf_counter() - start,
               load_end=pathlib.Path("/proc/loadavg").read_text().strip())
    args.results.mkdir(parents=True, exist_ok=True)
    lines = header(args, env)
    for p, result in results.items():
        _, plot, figure, section = parts[p]
        plot(result, args.results / figure)
        lines += section(args, result)
    text = "\n".join(lines)
    write_text(args.results / "families.md", text)
    print(text)


if __name__ == "__main__":
    main()
