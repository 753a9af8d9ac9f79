"""EM, MAP-EM and gradient fitting (adam, L-BFGS) on the same objectives.

Two objectives, each compared only with itself:

* ``ML``: mean log-likelihood per sample. EM (``fit_gmm``, ``reg_covar=1e-6``)
  against gradient fits without a prior (``fit_gradient(prior=None)``).
* ``MAP``: mean log-posterior per sample under the default prior
  (``jaxmix.gmm.priors.default_prior``). MAP-EM (``fit_gmm(prior=...)``) against
  gradient fits with the same prior.

Every method starts from the same k-means initialisation for a given seed
(``init="kmeans"``, key = seed); a gradient MAP fit first refits that start
with one MAP-EM step (``jaxmix.fit.gradient.map_refit``), which ``fit_gradient``
counts as its iteration 1, so its ``history[0]`` and iteration 1 are MAP-EM's. One fit per seed
(one restart), float32, ``path="auto"`` (EM's E-step in both methods: the
gradient fits take the log-likelihood's value and gradient from it).

Per (data set, objective) the *best* objective is the highest final objective
(evaluated on the final parameters with ``mean_log_posterior``) over all
methods and seeds, failed runs excluded. Reported per method: the best and
median final objective, ``hit``: share of seeds whose final objective is
within ``1e-4`` of the best, the median iterations and wall time until the
objective trace (``FitResult.history``) first gets within ``1e-4`` of the
best (over the seeds that get there), the median iterations until it gets
within ``1e-4`` of the run's own final objective (convergence speed to
whichever optimum it finds), milliseconds per iteration, ``fail``:
share of runs flagged failed (a non-finite step), ``degen``: share of runs
ending with a component of weight below one sample or a variance below
``1e-6`` of the data's. Wall time is measured per fit after a compiling
warm-up call; time to target is ``wall * iterations to target / n_iter``
(constant cost per iteration assumed; L-BFGS iterations vary with the line
search, so its times are approximate).

    python experiments/em_vs_gradient.py            # default: ~3-5 min on 2 CPU cores
    python experiments/em_vs_gradient.py --big      # more seeds, more data sets, longer runs

Writes ``experiments/results/em_vs_gradient.md`` and
``em_vs_gradient_{trace,final}.png`` (``--out`` to change the directory).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import optax

from jaxmix import chunk, fit_gmm
from jaxmix.gmm import mean_log_posterior
from jaxmix.datasets import seed_blobs
from jaxmix.gmm.gradient import fit_gradient
from jaxmix.gmm.priors import default_prior

TARGET = 1e-4


# ---------------------------------------------------------------------------
# data


def _scaled(x):
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(np.asarray(x, np.float64))
    return x[:, x.std(0) > 0]  # constant pixels carry nothing and are singular


def datasets(big: bool):
    from sklearn.datasets import load_digits, load_iris, make_blobs

    def blobs(std):
        x, _ = make_blobs(n_samples=1000, centers=4, n_features=3, cluster_std=std,
                          random_state=0)
        return x

    out = {
        "seed (k=3, full)": (seed_blobs(), 3, "full"),
        "blobs std=1 (k=4, full)": (blobs(1.0), 4, "full"),
        "blobs std=3 (k=4, full)": (blobs(3.0), 4, "full"),
        "iris scaled (k=3, full)": (_scaled(load_iris().data), 3, "full"),
        "digits scaled (k=10, diag)": (_scaled(load_digits().data), 10, "diag"),
    }
    if big:
        out["blobs std=2 (k=4, full)"] = (blobs(2.0), 4, "full")
        out["blobs std=5 (k=4, full)"] = (blobs(5.0), 4, "full")
    return {name: (np.asarray(x, np.float32), k, cov) for name, (x, k, cov) in out.items()}


# ---------------------------------------------------------------------------
# methods: (objective, label, fit(seed) -> FitResult, iteration offset)


def methods(x, k, cov, max_iter_em, max_iter_grad, adam_lr, mini_batch):
    adam, lbfgs = optax.adam(adam_lr), optax.lbfgs()
    prior = default_prior(x, k, cov)
    common = dict(covariance_type=cov, init="kmeans", tol=1e-7)

    def em(p):
        return lambda seed: fit_gmm(seed, x, k, prior=p, max_iter=max_iter_em, **common)

    def grad(opt, p, **kw):
        return lambda seed: fit_gradient(seed, x, k, opt, prior=p, max_iter=max_iter_grad,
                                         **common, **kw)

    out = [("ML", "EM", em(None), 0),
           ("ML", "adam", grad(adam, None), 0),
           ("ML", "L-BFGS", grad(lbfgs, None), 0),
           ("MAP", "MAP-EM", em(prior), 0),
           ("MAP", "adam", grad(adam, prior), 0),
           ("MAP", "L-BFGS", grad(lbfgs, prior), 0)]  # the refit is counted by the fit
    if mini_batch:
        out.append(("MAP", "adam mini-batch 128", grad(optax.adam(adam_lr / 5), prior,
                                                       batch_size=128), 0))
    return out, prior


def run_method(fit, seeds, x, prior_for_eval):
    """Fit every seed (after a warm-up compile); per seed: final objective,
    trace, wall seconds, n_iter, failed, degenerate."""
    jax.block_until_ready(fit(10_000))  # compile
    data = chunk(x)
    var = float(np.mean(np.var(x, axis=0)))
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        result = jax.block_until_ready(fit(seed))
        wall = time.perf_counter() - start
        p = result.best_params
        final = float(mean_log_posterior(p, data, prior_for_eval))
        min_var = _min_variance(p)
        rows.append(dict(
            final=final, trace=np.asarray(result.history[0], np.float64),
            wall=wall, n_iter=int(result.n_iter[0]), failed=bool(result.failed[0]),
            degenerate=bool(np.min(np.asarray(p.weights)) * x.shape[0] < 1
                            or min_var < 1e-6 * var)))
    return rows


def _min_variance(p):
    from jaxmix.gmm import family

    return float(np.min(np.asarray(family(p.covariance_type).variances(p.precisions_cholesky))))


# ---------------------------------------------------------------------------
# summary


def summarise(rows, best, offset):
    finals = np.array([r["final"] for r in rows])
    ok = np.array([not r["failed"] and np.isfinite(r["final"]) for r in rows])
    iters, times, own = [], [], []
    for r in rows:
        settled = np.flatnonzero(r["trace"] >= r["final"] - TARGET)
        if settled.size and not r["failed"]:
            own.append(int(settled[0]) + offset)
        reached = np.flatnonzero(r["trace"] >= best - TARGET)
        if reached.size and not r["failed"]:
            i = int(reached[0]) + offset
            iters.append(i)
            times.append(r["wall"] * i / max(r["n_iter"] + offset, 1))
    per_iter = [r["wall"] / max(r["n_iter"] + offset, 1) for r in rows]
    return dict(
        best=np.max(np.where(ok, finals, -np.inf)) if ok.any() else np.nan,
        median=np.median(finals[ok]) if ok.any() else np.nan,
        hit=np.mean(ok & (finals >= best - TARGET)),
        iters=np.median(iters) if iters else np.nan,
        own=np.median(own) if own else np.nan,
        time_ms=1e3 * np.median(times) if times else np.nan,
        ms_iter=1e3 * np.median(per_iter),
        n_iter=np.median([r["n_iter"] + offset for r in rows]),
        fail=np.mean([r["failed"] for r in rows]),
        degen=np.mean([r["degenerate"] for r in rows]),
    )


def markdown(results, args, elapsed):
    lines = [
        "# EM vs MAP-EM vs gradient fitting",
        "",
        f"`python experiments/em_vs_gradient.py{' --big' if args.big else ''}` "
        f"({len(args.seeds)} seeds, float32, jax {jax.__version__}, optax {optax.__version__}, "
        f"{elapsed / 60:.1f} min; see the script's docstring for definitions). "
        f"Adam learning rate {args.adam_lr}; EM at most {args.max_iter_em} iterations, "
        f"gradient fits at most {args.max_iter_grad}; tol 1e-7 on the objective change.",
        "",
        "| data set | objective | method | best final | median final | hit 1e-4 | "
        "median iters to 1e-4 | median ms to 1e-4 | median iters to own final | ms / iter | "
        "median n_iter | fail | degen |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (dataset, objective, label), s in results.items():
        lines.append(
            f"| {dataset} | {objective} | {label} | {s['best']:.5f} | {s['median']:.5f} | "
            f"{100 * s['hit']:.0f}% | {s['iters']:.0f} | {s['time_ms']:.1f} | {s['own']:.0f} | "
            f"{s['ms_iter']:.3f} | {s['n_iter']:.0f} | {100 * s['fail']:.0f}% | "
            f"{100 * s['degen']:.0f}% |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# figures


COLORS = {"EM": "C0", "MAP-EM": "C0", "adam": "C1", "L-BFGS": "C2", "adam mini-batch 128": "C3"}


def plot_traces(traces, names, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(names), 4, figsize=(17, 3.1 * len(names)), squeeze=False)
    for row, dataset in enumerate(names):
        for col, (objective, xaxis) in enumerate([("ML", "iter"), ("ML", "time"),
                                                  ("MAP", "iter"), ("MAP", "time")]):
            ax = axes[row, col]
            for (d, o, label), (best, rows, offset) in traces.items():
                if d != dataset or o != objective:
                    continue
                curves = []
                for r in rows:
                    tr = r["trace"][~np.isnan(r["trace"])]
                    if r["failed"] or not tr.size:
                        continue
                    gap = np.maximum(best - tr, 1e-7)
                    step = r["wall"] / max(r["n_iter"] + offset, 1)
                    xs = np.arange(offset, offset + tr.size) + (1 if xaxis == "iter" else 0)
                    curves.append((xs * (1 if xaxis == "iter" else 1e3 * step), gap))
                for i, (xs, gap) in enumerate(curves):
                    ax.plot(xs, gap, color=COLORS[label], alpha=0.25, lw=0.8,
                            label=label if i == 0 else None)
            ax.axhline(TARGET, color="k", ls=":", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(1e-7, None)
            ax.set_title(f"{dataset}: {objective}", fontsize=9)
            ax.set_xlabel("iteration" if xaxis == "iter" else "wall time (ms)")
            if col in (0, 2):
                ax.set_ylabel("best - objective (per sample)")
            ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Objective gap to the best found, one line per seed (dotted: 1e-4 target; "
                 "floored at 1e-7)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_finals(traces, names, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(names), figsize=(3.6 * len(names), 6.5), squeeze=False)
    for col, dataset in enumerate(names):
        for row, objective in enumerate(("ML", "MAP")):
            ax = axes[row, col]
            labels = []
            for (d, o, label), (best, rows, offset) in traces.items():
                if d != dataset or o != objective:
                    continue
                gaps = np.array([best - r["final"] for r in rows if not r["failed"]])
                pos = len(labels)
                labels.append(label)
                jitter = np.linspace(-0.15, 0.15, max(gaps.size, 1))[:gaps.size]
                ax.scatter(pos + jitter, np.maximum(gaps, 1e-7), s=10, color=COLORS[label])
                n_fail = sum(r["failed"] for r in rows)
                if n_fail:
                    ax.annotate(f"{n_fail} failed", (pos, 2e-7), ha="center", fontsize=7,
                                color="red")
            ax.axhline(TARGET, color="k", ls=":", lw=0.8)
            ax.set_yscale("log")
            ax.set_ylim(1e-7 / 2, None)
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
            ax.set_title(f"{dataset}\n{objective}", fontsize=8)
            if col == 0:
                ax.set_ylabel("best - final objective")
    fig.suptitle("Final objective per seed (gap to the best; floored at 1e-7)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", action="store_true",
                        help="50 seeds, two more blob overlaps, mini-batch adam, longer caps")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds")
    parser.add_argument("--adam-lr", type=float, default=0.03)
    parser.add_argument("--only", default="", help="run the data sets whose name contains this")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    n_seeds = args.seeds or (50 if args.big else 10)
    args.seeds = list(range(n_seeds))
    args.max_iter_em = 1000 if args.big else 500
    args.max_iter_grad = 3000 if args.big else 1000
    warnings.simplefilter("ignore", FutureWarning)
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    data = {name: v for name, v in datasets(args.big).items() if args.only in name}
    traces, results = {}, {}
    for dataset, (x, k, cov) in data.items():
        runs, prior = methods(x, k, cov, args.max_iter_em, args.max_iter_grad, args.adam_lr,
                              args.big)
        per_objective = {}
        for objective, label, fit, offset in runs:
            t = time.perf_counter()
            rows = run_method(fit, args.seeds, x, prior if objective == "MAP" else None)
            per_objective.setdefault(objective, []).append((label, rows, offset))
            print(f"{dataset:28s} {objective:4s} {label:20s} {time.perf_counter() - t:6.1f} s",
                  flush=True)
        for objective, entries in per_objective.items():
            finals = [r["final"] for _, rows, _ in entries for r in rows
                      if not r["failed"] and np.isfinite(r["final"])]
            best = max(finals)
            for label, rows, offset in entries:
                traces[(dataset, objective, label)] = (best, rows, offset)
                results[(dataset, objective, label)] = summarise(rows, best, offset)
    elapsed = time.perf_counter() - t0
    table = markdown(results, args, elapsed)
    (args.out / "em_vs_gradient.md").write_text(table)
    names = list(data)
    plot_traces(traces, names, args.out / "em_vs_gradient_trace.png")
    plot_finals(traces, names, args.out / "em_vs_gradient_final.png")
    print(table)
    print(f"total {elapsed:.0f} s; wrote {args.out}/em_vs_gradient.md and "
          "em_vs_gradient_{trace,final}.png")


if __name__ == "__main__":
    main()
