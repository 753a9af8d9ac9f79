"""Missing values: EM that marginalises the missing features against mean
imputation, on bundled data sets with entries removed completely at random.

    python experiments/missing_values.py        # about 4 minutes on 2 busy cores
    python experiments/missing_values.py --datasets wine --seeds 2   # a quick look

Precision: float64 throughout (``jax.config.update("jax_enable_x64", True)``
before any array is made; the data are float64, so every fit runs in float64).

Data (bundled with scikit-learn, no download), each split once into 75% train
and 25% test rows (``train_test_split(test_size=0.25, stratify=labels,
random_state=0)``):

* ``wine``: ``load_wine`` (n=178, d=13, 3 cultivars), each column standardised
  with the training rows' mean and standard deviation; k=3.
* ``digits``: ``load_digits`` (n=1797, 64 pixels, 10 digits), PCA to 10
  dimensions fitted on the complete training rows, the scores standardised
  with the training rows' statistics; k=10. (More rows per parameter than
  wine: with k=10 full 10x10 covariances, about 135 training rows per
  component against wine's 44 for 13x13.)

Removal. Only training rows lose entries; the test rows stay complete. Per
seed ``s`` (``--seeds`` for wine, ``--digits-seeds`` for digits, seeds 0..S-1),
one uniform ``u`` per training entry is drawn (``numpy.random.default_rng(s)``);
at rate ``p`` (``--rates``, default 0.1, 0.2, 0.3, 0.4) the entries with ``u <
p`` are removed (NaN): missing completely at random, each entry independently,
the masks nested across rates (the 40% mask contains the 20% one). A row whose
every ``u`` is below the largest rate is drawn again, so no row ever loses all
its entries. The realised share of removed entries is reported.

Methods, each with the same k, ``n_restarts=--restarts`` (8), the libraries'
defaults ``tol=1e-3``, ``max_iter=100``, k-means initialisation, maximum
likelihood (no prior), one ``reg_covar`` per setting (below), covariance types
"full" and "diag", fit key / ``random_state`` = the seed:

* ``marginalize``: ``jaxmix.fit_gmm(seed, x_nan, k, missing="marginalize")``
  on the training rows with NaN at the removed entries (EM on the observed
  data's likelihood, missing entries integrated out exactly in the E-step).
* ``mean-impute + jaxmix``: every NaN replaced by its column's mean over the
  observed training entries, then ``jaxmix.fit_gmm`` on the completed rows.
* ``mean-impute + sklearn``: the same completed rows given to
  ``sklearn.mixture.GaussianMixture(k, covariance_type, n_init=8,
  random_state=seed, reg_covar=...)`` (the usual baseline; scikit-learn's
  mixture refuses NaN), limited to ``--sklearn-threads`` OpenMP/BLAS threads.
* ``complete data``: ``jaxmix.fit_gmm`` on the training rows before removal
  (the ceiling; one fit per seed, the same at every rate).

Settings. ``reg_covar=1e-6`` (both libraries' default) on every data set. On
wine also a regularised setting, added because at the default the
marginalised full-covariance fits run towards singular covariances from 20%
missing on (reported in the tables: smallest eigenvalues ~1e-5, stopped at
``max_iter``, test log-likelihood in the thousands below zero). That is a
property of the observed-data likelihood, not of the algorithm: a component
can flatten along a direction that involves a set S of coordinates as soon
as the rows that observe all of S are too few to span S (at most |S| of
them): its density on those rows grows without bound while the rows missing
any coordinate of S keep finite densities (they never see the flat direction
whole). With full 13 x 13 covariances such sets abound once complete rows
are rare: at 20% missing only ``0.8^13``, about 5% of wine's rows (about 2
per component), have nothing removed (the imputation tables count them).
Mean imputation has its own collapse (a component on rows that share an
imputed constant: variance at the ``reg_covar`` floor in that column, seen on
digits from 20-30% missing) but on wine it mostly shrinks the correlations
(imputed entries sit at the mean), which regularises full covariances in a
data set this small: at the default even 10% missing leaves the marginalised
full fit below the mean-imputed one on test rows (smaller eigenvalues, more
overfitting; the complete-data fit itself has train/test log-likelihoods
about -11.3 / -15.0). Both effects concern overfitting, not how the missing
entries are handled; so the regularised setting fixes ``reg_covar`` per
covariance type by 5-fold cross-validation of the complete-data jaxmix fit on
the *complete training rows* (grid ``REG_GRID``, highest mean held-out
log-likelihood; the test rows are not used), and gives that value to every
method alike. It uses complete rows a user with missing data would not have;
it is a fixed setting shared by all methods, not part of any method.

Measures, per data set, setting, covariance type, rate, seed and method (the
best restart of each fit: jaxmix's ``best_params``, scikit-learn's chosen
``n_init``):

* test log-likelihood: mean log-density of the complete test rows,
  ``jaxmix.gmm.log_prob(params, x_test).mean()`` (scikit-learn:
  ``score(x_test)``); reported as mean +- standard deviation over seeds, with
  the median (a single degenerate fit dominates a mean).
* imputation RMSE on the removed training entries (standardised units, so a
  column-mean fill scores about 1): the column means; the conditional mean
  ``E[x_m | x_o]`` under the marginalised model (``jaxmix.gmm.missing.impute(
  result.best_params, x_nan)``); the same under the complete-data model (an
  oracle: it was fitted on the removed values themselves).
* ARI (adjusted Rand index) against the class labels: on the complete test
  rows, ``jaxmix.gmm.predict(params, x_test)`` (scikit-learn: ``predict``), the
  same rows for every method; and on the training rows, each method's own
  view of them: ``marginalize`` the most probable component given the
  *observed* entries, ``argmax_k w_k p(x_o | k)`` (``jaxmix.gmm.missing.
  observed_log_prob``; not ``predict`` of imputed rows, which differs), the
  mean-imputed methods ``predict`` of the mean-imputed rows, ``complete
  data`` ``predict`` of the complete rows.
* fit health: restarts stopped at ``max_iter`` without converging, failed or
  degenerate restarts (the fit's flags), smallest covariance eigenvalue of
  the best model; for ``marginalize`` the largest decrease of any restart's
  objective between iterations (EM on the observed likelihood must not
  decrease it; the objective is the fit's own ``history``).
* fit time: jaxmix ``jaxmix.timed`` (its ``seconds`` exclude tracing and
  compiling; compile reported apart, once per program), scikit-learn
  ``time.perf_counter`` around ``fit``. Every jaxmix fit is compiled for its
  exact shapes (``jaxmix.fit.buckets.exact_shapes``: k=3 is otherwise padded to
  8 components and wine's 133 rows to 256, and the marginalising E-step's
  cost, one d x d Cholesky per row, component and restart, scales with both).
  All runs in one process on the CPU, with whatever else the machine runs
  (load averages are recorded).

Not covered: missing-not-at-random patterns (values removed because of their
size), missing entries in the test rows, the tied and spherical covariance
types, MAP fits (``prior=``), model selection with missing data, GPUs,
float32, other imputers (k-NN, iterative; scikit-learn's ``IterativeImputer``
would be the next baseline).

Writes ``missing_values.md`` and ``missing_values.png`` (atomically) to
``experiments/results/`` or ``--results``.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import pathlib
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.datasets import load_digits, load_wine  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.model_selection import KFold, train_test_split  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import jaxmix  # noqa: E402
from provenance import library_commit  # noqa: E402 (experiments/provenance.py)
import jaxmix.gmm  # noqa: E402
from jaxmix import timed  # noqa: E402
from jaxmix.atomic import atomic_write, write_text  # noqa: E402
from jaxmix.fit.buckets import exact_shapes  # noqa: E402
from jaxmix.gmm.covariance import family  # noqa: E402
from jaxmix.gmm.missing import impute, observed_log_prob  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
COVARIANCE_TYPES = ("full", "diag")
DEFAULT_REG = 1e-6
REG_GRID = (1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
MARG, MEAN_JX, MEAN_SK, COMPLETE = ("marginalize", "mean-impute + jaxmix",
                                    "mean-impute + sklearn", "complete data")
METHODS = (MARG, MEAN_JX, MEAN_SK, COMPLETE)
COLUMN_MEAN, COND_MARG, COND_ORACLE = ("column means", "conditional mean (marginalize)",
                                       "conditional mean (complete-data model, oracle)")
IMPUTERS = (COLUMN_MEAN, COND_MARG, COND_ORACLE)
STYLE = {MARG: ("C0", "o", "-"), MEAN_JX: ("C1", "s", "-"), MEAN_SK: ("C2", "^", "--"),
         COMPLETE: ("grey", "", ":"), COLUMN_MEAN: ("C1", "s", "-"),
         COND_MARG: ("C0", "o", "-"), COND_ORACLE: ("grey", "", ":")}


# ---------------------------------------------------------------- data

def standardised(train, test):
    mean, sd = train.mean(axis=0), train.std(axis=0)
    return (train - mean) / sd, (test - mean) / sd


def load_case(name: str) -> dict:
    """Train/test rows (float64, standardised with the training rows), labels, k."""
    if name == "wine":
        x, y = load_wine(return_X_y=True)
        k, desc = 3, "`load_wine`, standardised (d=13)"
    else:
        x, y = load_digits(return_X_y=True)
        k, desc = 10, ("`load_digits`, PCA to 10 dimensions on the complete training rows, "
                       "standardised")
    x_train, x_test, y_train, y_test = train_test_split(
        np.asarray(x, np.float64), y, test_size=0.25, stratify=y, random_state=0)
    if name == "digits":
        pca = PCA(10, random_state=0).fit(x_train)
        x_train, x_test = pca.transform(x_train), pca.transform(x_test)
    x_train, x_test = standardised(x_train, x_test)
    return {"name": name, "k": k, "desc": desc, "x_train": x_train, "x_test": x_test,
            "y_train": y_train, "y_test": y_test}


def removal_draws(shape, seed: int, max_rate: float) -> np.ndarray:
    """One uniform per entry; rows that would lose every entry at ``max_rate``
    drawn again (so no row is ever empty at any rate up to it)."""
    rng = np.random.default_rng(seed)
    u = rng.random(shape)
    while (empty := (u < max_rate).all(axis=1)).any():
        u[empty] = rng.random((int(empty.sum()), shape[1]))
    return u


def mean_imputed(x_nan) -> np.ndarray:
    return np.where(np.isnan(x_nan), np.nanmean(x_nan, axis=0), x_nan)


# ---------------------------------------------------------------- fits

def jx_fit(seed, x, k, ct, restarts, reg, missing="error"):
    with exact_shapes():
        return timed(jaxmix.fit_gmm, seed, x, k, covariance_type=ct, n_restarts=restarts,
                     reg_covar=reg, missing=missing)


def min_eig_jx(params, ct) -> float:
    k, d = params.means.shape
    cov = np.asarray(family(ct).dense_covariance(params.precisions_cholesky, k, d))
    return float(np.linalg.eigvalsh(cov).min())


def min_eig_sk(model) -> float:
    cov = model.covariances_
    return float(cov.min() if model.covariance_type == "diag" else np.linalg.eigvalsh(cov).min())


def worst_drop(result) -> float:
    """Largest decrease of any restart's objective between two iterations."""
    h, n = np.asarray(result.history), np.asarray(result.n_iter)
    drops = [np.max(-np.diff(h[r, :n[r]]), initial=0.0) for r in range(len(n))]
    return float(max(drops))


def jx_record(result, t, case, ct, train_labels) -> dict:
    p = result.best_params
    return {"test_ll": float(jaxmix.gmm.log_prob(p, case["x_test"]).mean()),
            "ari_test": adjusted_rand_score(case["y_test"],
                                            np.asarray(jaxmix.gmm.predict(p, case["x_test"]))),
            "ari_train": adjusted_rand_score(case["y_train"], np.asarray(train_labels)),
            "seconds": t.seconds, "compile": t.compile_seconds,
            "unconverged": int(np.sum(~np.asarray(result.converged))),
            "failed": int(np.sum(np.asarray(result.failed))),
            "degenerate": int(np.sum(np.asarray(result.degenerate))),
            "iters": int(np.max(result.n_iter)), "min_eig": min_eig_jx(p, ct),
            "finite": bool(np.all([np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(p)])),
            "drop": worst_drop(result)}


def sk_record(case, x, ct, k, restarts, reg, seed) -> dict:
    model = GaussianMixture(k, covariance_type=ct, n_init=restarts, random_state=seed,
                            reg_covar=reg)
    start = time.perf_counter()
    model.fit(x)
    seconds = time.perf_counter() - start
    return {"test_ll": float(model.score(case["x_test"])),
            "ari_test": adjusted_rand_score(case["y_test"], model.predict(case["x_test"])),
            "ari_train": adjusted_rand_score(case["y_train"], model.predict(x)),
            "seconds": seconds, "compile": 0.0, "unconverged": int(not model.converged_),
            "failed": 0, "degenerate": 0, "iters": int(model.n_iter_),
            "min_eig": min_eig_sk(model), "finite": True, "drop": float("nan")}


def rmse(a, b, mask) -> float:
    return float(np.sqrt(np.mean((np.asarray(a)[mask] - b[mask]) ** 2)))


def cv_reg(case, ct, restarts) -> tuple[float, dict]:
    """``reg_covar`` of ``REG_GRID`` with the highest 5-fold held-out mean
    log-likelihood of the complete-data jaxmix fit on the training rows."""
    x, k = case["x_train"], case["k"]
    folds = list(KFold(5, shuffle=True, random_state=0).split(x))
    scores = {}
    for reg in REG_GRID:
        lls = []
        for fit_rows, held in folds:
            result = jaxmix.fit_gmm(0, x[fit_rows], k, covariance_type=ct, n_restarts=restarts,
                                    reg_covar=reg)
            lls.append(float(jaxmix.gmm.log_prob(result.best_params, x[held]).mean()))
        scores[reg] = float(np.mean(lls))
    return max(scores, key=scores.get), scores


def run_case(case, setting: str, regs: dict, seeds: int, args, records, imputations) -> None:
    """Every covariance type, seed, rate and method of one data set and setting."""
    x, k, rates = case["x_train"], case["k"], sorted(args.rates)
    for ct in COVARIANCE_TYPES:
        reg = regs[ct]
        base = {"dataset": case["name"], "setting": setting, "ct": ct, "reg": reg}
        for seed in range(seeds):
            full, t = jx_fit(seed, x, k, ct, args.restarts, reg)
            oracle = full.best_params
            records.append({**base, "rate": 0.0, "seed": seed, "method": COMPLETE,
                            "realised": 0.0, **jx_record(full, t, case, ct,
                                                         jaxmix.gmm.predict(oracle, x))})
            u = removal_draws(x.shape, seed, max(rates))
            for rate in rates:
                mask = u < rate
                x_nan = np.where(mask, np.nan, x)
                x_mean = mean_imputed(x_nan)
                row = {**base, "rate": rate, "seed": seed, "realised": float(mask.mean()),
                       "complete_rows": int(np.sum(~mask.any(axis=1)))}
                marg, t = jx_fit(seed, x_nan, k, ct, args.restarts, reg, missing="marginalize")
                p = marg.best_params
                log_p, _ = observed_log_prob(p, x_nan)
                labels = np.argmax(np.asarray(log_p) + np.log(np.asarray(p.weights)), axis=1)
                records.append({**row, "method": MARG, **jx_record(marg, t, case, ct, labels)})
                mean_fit, t = jx_fit(seed, x_mean, k, ct, args.restarts, reg)
                records.append({**row, "method": MEAN_JX, **jx_record(
                    mean_fit, t, case, ct, jaxmix.gmm.predict(mean_fit.best_params, x_mean))})
                records.append({**row, "method": MEAN_SK,
                                **sk_record(case, x_mean, ct, k, args.restarts, reg, seed)})
                for name, filled in ((COLUMN_MEAN, x_mean), (COND_MARG, impute(p, x_nan)),
                                     (COND_ORACLE, impute(oracle, x_nan))):
                    imputations.append({**row, "imputer": name, "rmse": rmse(filled, x, mask)})
            print(f"{case['name']} {setting} {ct} seed {seed} done", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- summaries

def select(rows, **keys):
    return [r for r in rows if all(r[a] == b for a, b in keys.items())]


def stats(values) -> tuple[float, float, float]:
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, float(np.median(v))


def pm(values, spec=".3f") -> str:
    mean, sd, _ = stats(values)
    return f"{mean:{spec}} ± {sd:{spec}}"


def method_rows(records, dataset, setting, ct, rates):
    """``(rate, method, records)`` in table order; the complete-data fit once."""
    out = [(0.0, COMPLETE, select(records, dataset=dataset, setting=setting, ct=ct,
                                  method=COMPLETE))]
    for rate in rates:
        out += [(rate, m, select(records, dataset=dataset, setting=setting, ct=ct, rate=rate,
                                 method=m)) for m in METHODS if m != COMPLETE]
    return out


def fit_table(records, dataset, setting, ct, rates) -> list[str]:
    lines = ["| missing | method | test log-lik mean ± sd (median) | ARI test | ARI train | "
             "fit s | max iterations | restarts unconverged / failed / degenerate | "
             "smallest eigenvalue (min over seeds) |", "|" + "---|" * 9]
    for rate, method, rows in method_rows(records, dataset, setting, ct, rates):
        ll = [r["test_ll"] for r in rows]
        spec = ".1f" if abs(stats(ll)[0]) > 1e3 else ".3f"
        health = " / ".join(str(sum(r[f] for r in rows))
                            for f in ("unconverged", "failed", "degenerate"))
        if method == MEAN_SK:
            health = f"{sum(r['unconverged'] for r in rows)} fits / - / -"
        iters = max(r["iters"] for r in rows)
        lines.append(
            f"| {'none' if rate == 0 else f'{rate:.0%}'} | {method} | {pm(ll, spec)} "
            f"({stats(ll)[2]:{spec}}) | {pm([r['ari_test'] for r in rows])} | "
            f"{pm([r['ari_train'] for r in rows])} | {pm([r['seconds'] for r in rows], '.2f')} | "
            f"{iters} | {health} | {min(r['min_eig'] for r in rows):.2e} |")
    return lines


def imputation_table(imputations, dataset, setting, rates) -> list[str]:
    head = "| missing | realised | complete rows |" + "".join(
        f" {ct}: {i} |" for ct in COVARIANCE_TYPES for i in IMPUTERS[1:])
    lines = [head.replace("| complete rows |", f"| complete rows | {COLUMN_MEAN} |"),
             "|" + "---|" * (4 + 2 * len(IMPUTERS[1:]))]
    for rate in rates:
        rows = select(imputations, dataset=dataset, setting=setting, rate=rate)
        cells = [pm([r["rmse"] for r in select(rows, ct="full", imputer=COLUMN_MEAN)])]
        cells += [pm([r["rmse"] for r in select(rows, ct=ct, imputer=i)])
                  for ct in COVARIANCE_TYPES for i in IMPUTERS[1:]]
        one = select(rows, ct="full", imputer=COLUMN_MEAN)
        realised = np.mean([r["realised"] for r in one])
        complete = np.mean([r["complete_rows"] for r in one])
        lines.append(f"| {rate:.0%} | {realised:.1%} | {complete:.1f} | " + " | ".join(cells)
                     + " |")
    return lines


def compile_note(records, dataset) -> str:
    rows = [r for r in select(records, dataset=dataset) if r["method"] != MEAN_SK]
    marg = sum(r["compile"] for r in rows if r["method"] == MARG)
    other = sum(r["compile"] for r in rows if r["method"] != MARG)
    return (f"jaxmix compile time (excluded from fit s): {marg:.1f} s for the marginalising "
            f"programs, {other:.1f} s for the complete-data ones")


def health_note(records, dataset) -> str:
    marg = select(records, dataset=dataset, method=MARG)
    drop = max(r["drop"] for r in marg)
    bad = sum(not r["finite"] for r in select(records, dataset=dataset))
    return (f"Largest decrease of a `marginalize` restart's objective between iterations, "
            f"over all its {len(marg)} fits x restarts: {drop:.2e} (0 is monotone EM); fits "
            f"with non-finite best parameters: {bad}.")


# ---------------------------------------------------------------- figure

def line(ax, rates, rows_at, key, name):
    colour, marker, style = STYLE[name]
    med = np.array([np.median([r[key] for r in rows_at(rate)]) for rate in rates])
    lo = np.array([min(r[key] for r in rows_at(rate)) for rate in rates])
    hi = np.array([max(r[key] for r in rows_at(rate)) for rate in rates])
    ax.errorbar(np.asarray(rates) * 100, med, yerr=[med - lo, hi - med], color=colour,
                marker=marker, ls=style, capsize=3, label=name)
    return med, lo


def clip_axis(ax, keep, low_values, rates):
    """Limit the y axis to ``keep`` (values of the lines that stay in range);
    points below it are drawn on the bottom edge with their value."""
    lo, hi = min(keep), max(keep)
    pad = 0.08 * (hi - lo or 1.0)
    bottom = lo - pad
    ax.set_ylim(bottom, hi + pad)
    for rate, value in zip(rates, low_values):
        if value < bottom:
            ax.annotate(f"{value:.0f}", (rate * 100, bottom), xytext=(0, 9),
                        textcoords="offset points", ha="center", fontsize=7, color="C0")
            ax.plot(rate * 100, bottom, marker="v", color="C0", clip_on=False)


def plot(records, imputations, cases, rates, path) -> None:
    fig, axes = plt.subplots(len(cases), 4, figsize=(17, 3.6 * len(cases) + 0.8),
                             squeeze=False)
    fig.subplots_adjust(left=0.05, right=0.99, top=0.93, bottom=0.14, hspace=0.45,
                        wspace=0.25)
    for row, (dataset, setting, regs) in zip(axes, cases):
        for ax, ct in zip(row[:2], COVARIANCE_TYPES):
            sel = dict(dataset=dataset, setting=setting, ct=ct)
            complete = [r["test_ll"] for r in select(records, method=COMPLETE, **sel)]
            keep = [np.median(complete)]
            marg_low = None
            for m in (MARG, MEAN_JX, MEAN_SK):
                med, lo = line(ax, rates,
                               lambda rate: select(records, method=m, rate=rate, **sel),
                               "test_ll", m)
                if m == MARG:
                    marg_low = med
                    keep += [v for v in med if v > np.median(complete) - 25]
                else:
                    keep += list(med)
            ax.axhline(np.median(complete), color="grey", ls=":", label=COMPLETE)
            clip_axis(ax, keep, marg_low, rates)
            ax.set(title=f"{dataset}, {setting} (reg_covar {regs[ct]:g}), {ct}: test log-lik",
                   xlabel="entries removed (%)", ylabel="mean log-lik of test rows")
            ax.title.set_fontsize(9)
        for ax, ct in zip(row[2:], COVARIANCE_TYPES):
            for name in IMPUTERS:
                line(ax, rates, lambda rate: select(imputations, dataset=dataset,
                                                    setting=setting, ct=ct, rate=rate,
                                                    imputer=name), "rmse", name)
            ax.set(title=f"{dataset}, {setting}, {ct}: imputation RMSE",
                   xlabel="entries removed (%)", ylabel="RMSE (standardised units)")
            ax.title.set_fontsize(9)
    for ax in axes.ravel():
        ax.set_xlim(5, 45)
    for col, anchor in ((0, (0.25, 0.0)), (2, (0.75, 0.0))):
        handles, labels = axes[0, col].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=anchor, ncol=2,
                   fontsize=8, title="test log-likelihood" if col == 0 else "imputation",
                   title_fontsize=8)
    fig.suptitle("Marginalising EM vs mean imputation, entries of the training rows removed "
                 "at random: median over seeds, bars min-max; points below the axis marked "
                 "with their value. RMSE on the removed entries, standardised units",
                 fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    with atomic_write(path, "wb") as f:
        f.write(buffer.getvalue())


# ---------------------------------------------------------------- report

def headline(records, imputations, dataset, setting, rate) -> str:
    parts = []
    for ct in COVARIANCE_TYPES:
        sel = dict(dataset=dataset, setting=setting, ct=ct)
        ll = {m: stats([r["test_ll"] for r in select(records, method=m, rate=rate, **sel)])[0]
              for m in (MARG, MEAN_JX)}
        full = stats([r["test_ll"] for r in select(records, method=COMPLETE, **sel)])[0]
        parts.append(f"{ct} {ll[MARG]:.2f} vs {ll[MEAN_JX]:.2f} (complete {full:.2f})")
    rm = {i: stats([r["rmse"] for r in select(imputations, dataset=dataset, setting=setting,
                                              ct="full", rate=rate, imputer=i)])[0]
          for i in (COND_MARG, COLUMN_MEAN)}
    return (f"{dataset} ({setting}), {rate:.0%} removed: test log-lik marginalize vs "
            f"mean-impute {'; '.join(parts)}; imputation RMSE (full) {rm[COND_MARG]:.3f} vs "
            f"{rm[COLUMN_MEAN]:.3f}")


def report(args, env, cases, records, imputations, cv) -> str:
    rates = sorted(args.rates)
    lines = [
        "# Missing values: marginalising EM against mean imputation", "",
        f"Command: `{env['command']}`  ", f"Date: {env['date']}  ",
        f"Library: commit {env['commit']}  ",
        f"JAX {jax.__version__} on {jax.devices()[0].platform.upper()} "
        f"({len(os.sched_getaffinity(0))} cores available), float64 (`jax_enable_x64`), "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}; scikit-learn limited to "
        f"{args.sklearn_threads} OpenMP/BLAS thread(s) (threadpoolctl), JAX on its default "
        "thread pool  ",
        f"Load average (`os.getloadavg()`) at start: {env['load_start']}, at end: "
        f"{env['load_end']}; experiments' wall time {env['wall']:.1f} s (figure and report "
        "excluded).", "",
        "What is measured, and which cases are covered, is described in the module docstring "
        "of `experiments/missing_values.py`. In short: entries of the training rows removed "
        f"completely at random at {', '.join(f'{r:.0%}' for r in rates)}; "
        f"k-means-started EM with {args.restarts} restarts, `tol=1e-3`, `max_iter=100`, "
        "maximum likelihood; the test rows stay complete. `marginalize` is "
        "`fit_gmm(..., missing=\"marginalize\")`; the mean-imputed fits see every NaN replaced "
        "by its column's observed mean; `complete data` is the fit before removal (ceiling). "
        "Spread: mean ± standard deviation over the seeds; \"fit s\" excludes compilation.",
        "", "Headlines:", ""]
    for dataset, setting, _ in cases:
        lines.append(f"* {headline(records, imputations, dataset, setting, max(rates))}")
    lines.append("")
    if cv:
        lines += ["## Regularised setting: `reg_covar` by cross-validation", "",
                  "5-fold held-out mean log-likelihood of the complete-data jaxmix fit on wine's "
                  "complete training rows (the test rows are not used):", "",
                  "| reg_covar | " + " | ".join(COVARIANCE_TYPES) + " |",
                  "|" + "---|" * (1 + len(COVARIANCE_TYPES))]
        for reg in REG_GRID:
            cells = []
            for ct in COVARIANCE_TYPES:
                chosen, scores = cv[ct]
                cell = f"{scores[reg]:.3f}"
                cells.append(f"**{cell}**" if reg == chosen else cell)
            lines.append(f"| {reg:g} | " + " | ".join(cells) + " |")
        lines.append("")
    for dataset, setting, regs in cases:
        case_rows = select(records, dataset=dataset, setting=setting)
        seeds = len({r["seed"] for r in case_rows})
        lines += [f"## {dataset}, {setting} (reg_covar: "
                  + ", ".join(f"{ct} {regs[ct]:g}" for ct in COVARIANCE_TYPES) + ")", "",
                  f"{cases_desc(args, dataset)}; {seeds} seeds.", ""]
        for ct in COVARIANCE_TYPES:
            lines += [f"### {ct} covariances", "",
                      *fit_table(records, dataset, setting, ct, rates), ""]
        lines += ["### Imputation RMSE on the removed training entries", "",
                  "Standardised units; the column-mean fill does not depend on the covariance "
                  "type. *complete rows*: training rows with no entry removed (mean over "
                  "seeds), the rows a full covariance's flat directions must fit.", "",
                  *imputation_table(imputations, dataset, setting, rates), ""]
    for dataset in {c[0] for c in cases}:
        lines += [f"{dataset}: {compile_note(records, dataset)}. {health_note(records, dataset)}",
                  ""]
    lines += [
        "Notes:", "",
        "* *degenerate* is the fit's own flag (a component's smallest variance within twice "
        "`reg_covar`, or a weight below one sample). At a large `reg_covar` it fires without "
        "any collapse: with `reg_covar=0.1` every variance is at least 0.1, and a direction "
        "whose data variance is below 0.1 already counts; the smallest-eigenvalue column "
        "tells the cases apart.",
        "* The marginalising E-step costs one d x d Cholesky per row, component and restart "
        "(`jaxmix.gmm.missing`), so its fits take far longer per iteration than the "
        "complete-data ones (compare the fit s columns), and EM needs more iterations the "
        "more is missing.",
        "* scikit-learn's row counts its fits (its best `n_init`) that did not converge; "
        "jaxmix's counts restarts (8 per fit).", ""]
    lines += ["![test log-likelihood and imputation RMSE against the missing rate]"
              "(missing_values.png)", ""]
    return "\n".join(lines)


def cases_desc(args, dataset) -> str:
    case = args.loaded[dataset]
    return (f"{case['desc']}; {len(case['x_train'])} training rows (entries removed), "
            f"{len(case['x_test'])} complete test rows; k={case['k']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["wine", "digits"],
                        choices=["wine", "digits"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.1, 0.2, 0.3, 0.4])
    parser.add_argument("--seeds", type=int, default=5, help="removal/fit seeds for wine")
    parser.add_argument("--digits-seeds", type=int, default=3,
                        help="removal/fit seeds for digits (its marginalising fits take seconds)")
    parser.add_argument("--restarts", type=int, default=8)
    parser.add_argument("--sklearn-threads", type=int, default=1,
                        help="OpenMP/BLAS threads for scikit-learn (threadpoolctl)")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS,
                        help="folder of the report and figure")
    args = parser.parse_args()
    if not all(0 < r < 1 for r in args.rates):
        parser.error("--rates must lie strictly between 0 and 1")
    env = {"command": " ".join(["python experiments/missing_values.py", *sys.argv[1:]]),
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "load_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
           "commit": library_commit()}
    start = time.perf_counter()
    records, imputations, cases, cv = [], [], [], {}
    args.loaded = {name: load_case(name) for name in args.datasets}
    with threadpool_limits(limits=args.sklearn_threads):
        for name in args.datasets:
            case = args.loaded[name]
            seeds = args.seeds if name == "wine" else args.digits_seeds
            default = {ct: DEFAULT_REG for ct in COVARIANCE_TYPES}
            run_case(case, "default", default, seeds, args, records, imputations)
            cases.append((name, "default", default))
            if name == "wine":
                cv = {ct: cv_reg(case, ct, args.restarts) for ct in COVARIANCE_TYPES}
                regs = {ct: cv[ct][0] for ct in COVARIANCE_TYPES}
                run_case(case, "regularised", regs, seeds, args, records, imputations)
                cases.append((name, "regularised", regs))
    env.update(wall=time.perf_counter() - start,
               load_end=" ".join(f"{v:.2f}" for v in os.getloadavg()))
    args.results.mkdir(parents=True, exist_ok=True)
    plot(records, imputations, cases, sorted(args.rates), args.results / "missing_values.png")
    text = report(args, env, cases, records, imputations, cv)
    write_text(args.results / "missing_values.md", text)
    print(text)


if __name__ == "__main__":
    main()
