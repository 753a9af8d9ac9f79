"""EM and MAP-EM against gradient fits (adam, L-BFGS) on the same objective.

Objectives (:mod:`jaxmix.gmm.objective`), each method compared only with the
others on the same one:

* ``ML``: ``J`` = mean log-likelihood per sample. EM (``jaxmix.fit_gmm``)
  against ``jaxmix.fit_gradient(prior=None)``.
* ``MAP``: ``J`` = mean log-posterior per sample under ``prior="default"``
  (the default prior each fit builds from its centred data). MAP-EM
  (``fit_gmm(prior="default")``) against ``fit_gradient(prior="default")``.

Gradient methods: ``adam warmup-cosine`` (``optax.adam`` on
``warmup_cosine_decay_schedule`` from 0 up to ``LR`` over ``WARMUP``
iterations, then cosine decay to 0 at ``MAX_ITER``), ``adam fixed``
(``optax.inject_hyperparams(optax.adam)``, learning rate ``LR`` passed as
``hyperparams``) and ``L-BFGS`` (``optax.lbfgs()``). One optimizer instance per
method for the whole run (they are static arguments). Every fit: full
covariances, float32, the library's defaults ``tol=1e-3`` and
``reg_covar=1e-6``, ``max_iter=MAX_ITER``, ``N_RESTARTS`` restarts from key 0,
so every method starts from the same k-means starts (``history[:, 0]`` equal,
checked and reported).

Data sets and k: ``seed`` (``jaxmix.datasets.seed_blobs``: n=1250, d=2, three
blobs) k=2..4; ``digits`` (``load_digits``, PCA to 10 dimensions) k=5..10;
``wine`` (``load_wine``, standardised) k=5..10. ``--quick`` (the default)
runs seed k=3 and digits and wine k=5 and 10; ``--full`` runs every k.

Measures. Objective values are the fits' own (``FitResult.objective`` and
``history``): the final ``J`` of a restart is its ``objective``, ``J`` of the
parameters its last iteration started from (for EM, before its last M-step).
The one recomputed value is a check: under ML, ``J`` of the returned
parameters (``jaxmix.gmm.mean_log_posterior``) less that final ``J``, reported
per method (under MAP the fit's default prior is built from its centred data,
so it is not recomputed). Per (data set, objective, k), *best* is
the highest final ``J`` (``FitResult.objective``) over all methods and
restarts, failed restarts excluded. Per method, over its restarts:

* ``ok 1e-3`` / ``ok 1e-4``: share of restarts (not failed) whose final ``J``
  is within 1e-3 / 1e-4 of best (success rate).
* ``median J``: median final ``J`` (not failed).
* ``conv``, ``stall``, ``fail``, ``degen``: shares flagged ``converged``,
  ``stalled``, ``failed``, ``degenerate`` by the fit.
* ``iters``, ``evals``, ``grads``: medians of ``n_iter``, ``n_evals`` (passes
  over the data that evaluated ``J``) and ``n_grads`` (passes that also gave
  its gradient).
* ``ms/iter``: ``jaxmix.timed``'s ``per_iteration`` of the second of two
  identical calls (the first compiles; its compile time is reported apart):
  the batch of all restarts' run time (initialisation included, compilation
  excluded) per loop iteration.
* ``s to 1e-3 (est.)``: median, over the restarts whose ``history`` gets
  within 1e-3 of best, of (iterations until it first does) x ``ms/iter``:
  an estimate assuming a constant time per iteration.

Figures, for ``REPRESENTATIVE`` under each objective: gap ``best - J`` per
iteration (log scale, floored at ``FLOOR``, about float32's resolution of
``J`` here), against iterations, against evaluations (estimated: iteration x
the restart's ``n_evals / n_iter``; fits count passes per fit, not per
iteration) and against seconds (estimated: iteration x ``ms/iter``); one
line per restart, a stopped restart held at its final ``J`` (outcomes are
often bimodal across restarts, so a median line would mislead). A second
figure shows success rates against k. The report ends with checks: equal
starts, EM's monotonicity, gradient restarts reported converged within two
iterations, the ML lag above, and that both calls gave identical histories.

    python experiments/em_vs_gradient.py            # --quick
    python experiments/em_vs_gradient.py --full

Writes ``experiments/results/em_vs_gradient.md``,
``em_vs_gradient_traces.png`` and ``em_vs_gradient_success.png`` (``--out``
to change the folder), each atomically.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax

import jaxmix
from jaxmix.atomic import atomic_write, write_text
from jaxmix.datasets import seed_blobs

N_RESTARTS, MAX_ITER, LR, WARMUP = 8, 500, 0.05, 50
TARGETS = (1e-3, 1e-4)
FLOOR = 1e-6
KS = {"full": {"seed": (2, 3, 4), "digits": tuple(range(5, 11)), "wine": tuple(range(5, 11))},
      "quick": {"seed": (3,), "digits": (5, 10), "wine": (5, 10)}}
REPRESENTATIVE = ("digits", 10)
PRIORS = {"ML": None, "MAP": "default"}
EM_LABELS = {"ML": "EM", "MAP": "MAP-EM"}
OPTIMIZERS = {  # label -> (optimizer, hyperparams); static arguments, one instance each
    "adam warmup-cosine": (optax.adam(optax.warmup_cosine_decay_schedule(0.0, LR, WARMUP,
                                                                          MAX_ITER)), None),
    "adam fixed": (optax.inject_hyperparams(optax.adam)(learning_rate=LR),
                   {"learning_rate": LR}),
    "L-BFGS": (optax.lbfgs(), None),
}
COLORS = {"EM": "C0", "MAP-EM": "C0", "adam warmup-cosine": "C1", "adam fixed": "C2",
          "L-BFGS": "C3"}
FLAGS = {"conv": "converged", "stall": "stalled", "fail": "failed", "degen": "degenerate"}
FIELDS = ("objective", "history", "n_iter", "converged", "stalled", "failed", "degenerate",
          "n_evals", "n_grads")


# ---------------------------------------------------------------------------
# data and fits


def load(name: str) -> np.ndarray:
    from sklearn.datasets import load_digits, load_wine
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    if name == "seed":
        x = seed_blobs()
    elif name == "digits":
        x = PCA(10, random_state=0).fit_transform(load_digits().data)
    else:
        x = StandardScaler().fit_transform(load_wine().data)
    return np.asarray(x, np.float32)


def methods(objective: str):
    """``[(label, fit, extra keyword arguments)]``, EM first."""
    out = [(EM_LABELS[objective], jaxmix.fit_gmm, {})]
    for label, (optimizer, hyperparams) in OPTIMIZERS.items():
        out.append((label, jaxmix.fit_gradient,
                    dict(optimizer=optimizer, hyperparams=hyperparams)))
    return out


def fit_twice(fit, x, k, prior, **extra) -> dict:
    """The fit's fields as arrays, timed on the second of two identical calls."""
    kw = dict(n_restarts=N_RESTARTS, prior=prior, max_iter=MAX_ITER, **extra)
    first, compiling = jaxmix.timed(fit, 0, x, k, **kw)
    result, timing = jaxmix.timed(fit, 0, x, k, **kw)
    rec = {f: np.asarray(getattr(result, f)) for f in FIELDS}
    rec.update(compile_s=compiling.compile_seconds, recompile_s=timing.compile_seconds,
               s_per_iter=timing.per_iteration, lag=lag(result, x, prior),
               repeatable=bool(np.array_equal(first.history, result.history, equal_nan=True)))
    return rec


def lag(result, x, prior):
    """ML only: ``J`` of the returned parameters less ``objective`` (the ``J`` of
    the parameters the last iteration started from), per restart; NaN with a
    prior (its default is built from the fit's centred data)."""
    if prior is not None:
        return np.full(np.shape(result.objective), np.nan)
    data = jaxmix.chunk(x)
    final = jax.vmap(lambda p: jaxmix.gmm.mean_log_posterior(p, data, None))(result.params)
    return np.asarray(final) - np.asarray(result.objective)


def run_case(x, k, objective) -> dict:
    """``{label: record}`` for every method on one (data set, k, objective)."""
    case = {}
    for label, fit, extra in methods(objective):
        t = time.perf_counter()
        case[label] = fit_twice(fit, x, k, PRIORS[objective], **extra)
        print(f"  {objective:3s} k={k:2d} {label:20s} {time.perf_counter() - t:6.1f} s "
              f"(compile {case[label]['compile_s']:.1f} s)", flush=True)
    return case


# ---------------------------------------------------------------------------
# measures


def ok(rec):
    return ~rec["failed"] & np.isfinite(rec["objective"])


def best_known(case) -> float:
    return max(np.max(r["objective"][ok(r)], initial=-np.inf) for r in case.values())


def first_reach(history, level):
    """Per restart, the first iteration whose ``J`` is at least ``level`` (-1: never)."""
    hit = history >= level  # NaN after the stop compares False
    return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)


def summarise(rec, best) -> dict:
    good = ok(rec)
    row = {f"ok {t:g}": np.mean(good & (rec["objective"] >= best - t)) for t in TARGETS}
    reach = first_reach(rec["history"], best - TARGETS[0])
    reached = good & (reach >= 0)
    row.update({
        "median J": np.median(rec["objective"][good]) if good.any() else np.nan,
        **{short: np.mean(rec[flag]) for short, flag in FLAGS.items()},
        "iters": np.median(rec["n_iter"]), "evals": np.median(rec["n_evals"]),
        "grads": np.median(rec["n_grads"]), "ms/iter": 1e3 * rec["s_per_iter"],
        "s to 1e-3 (est.)": (np.median(reach[reached]) * rec["s_per_iter"]
                             if reached.any() else np.nan),
    })
    return row


def held(history, n_iter):
    """``history`` up to the longest run, each restart held at its last value."""
    length = max(int(n_iter.max()), 1)
    index = np.clip(np.minimum(np.arange(length), n_iter[:, None] - 1), 0, None)
    return np.take_along_axis(history, index, axis=1)


# ---------------------------------------------------------------------------
# figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=90)
    _pyplot().close(fig)


AXES = (("iterations", lambda rec: np.ones(len(rec["n_iter"]))),
        ("evaluations (est.: iteration x n_evals / n_iter)",
         lambda rec: rec["n_evals"] / np.maximum(rec["n_iter"], 1)),
        ("seconds (est.: iteration x s/iter of the batch)",
         lambda rec: np.full(len(rec["n_iter"]), rec["s_per_iter"])))


def plot_gaps(ax, case, best, scale_of):
    for label, rec in case.items():
        good = ok(rec)
        gaps = np.maximum(best - held(rec["history"], rec["n_iter"])[good], FLOOR)
        steps = np.arange(gaps.shape[1])
        for i, (gap, s) in enumerate(zip(gaps, scale_of(rec)[good])):
            ax.plot(steps * s, gap, color=COLORS[label], alpha=0.45, lw=1,
                    label=label if i == 0 else None)
    ax.axhline(TARGETS[0], color="k", ls=":", lw=0.8)
    ax.set_yscale("log")


def plot_traces(results, bests, name, k, path):
    plt = _pyplot()
    fig, axes = plt.subplots(len(PRIORS), len(AXES), figsize=(16, 4.2 * len(PRIORS)),
                             squeeze=False)
    for row, objective in enumerate(PRIORS):
        key = (name, objective, k)
        for col, (xlabel, scale_of) in enumerate(AXES):
            ax = axes[row, col]
            plot_gaps(ax, results[key], bests[key], scale_of)
            ax.set(xlabel=xlabel, ylabel=f"best - J ({objective})",
                   title=f"{name}, k={k}, {objective}")
            ax.legend(fontsize=8)
    fig.suptitle(f"Gap to the best known J per iteration, one line per restart ({N_RESTARTS} "
                 f"per method; a stopped restart held at its final J; dotted: {TARGETS[0]:g}; "
                 f"floored at {FLOOR:g})")
    fig.tight_layout()
    _save(fig, path)


def plot_success(summary, names, path):
    plt = _pyplot()
    fig, axes = plt.subplots(len(PRIORS), len(names), figsize=(4 * len(names) + 3, 7),
                             squeeze=False)
    for (name, objective, label), (ks, rates) in _success_lines(summary).items():
        ax = axes[list(PRIORS).index(objective), names.index(name)]
        ax.set(title=f"{name}, {objective}", xlabel="k", ylabel="success rate",
               ylim=(-0.05, 1.05), xticks=ks)
        for t, style in zip(TARGETS, ("-o", ":x")):
            ax.plot(ks, rates[t], style, color=COLORS[label], label=f"{label}, within {t:g}")
    for ax in axes[:, -1]:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"Share of {N_RESTARTS} restarts ending within 1e-3 (solid) / 1e-4 (dotted)\n"
                 "of the best known J of their (data set, objective, k)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _success_lines(summary):
    lines = {}
    for (name, objective, k, label), row in summary.items():
        ks, rates = lines.setdefault((name, objective, label), ([], {t: [] for t in TARGETS}))
        ks.append(k)
        for t in TARGETS:
            rates[t].append(row[f"ok {t:g}"])
    return lines


# ---------------------------------------------------------------------------
# report


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return out + [""]


def _fmt(key, v):
    if key.startswith(("ok", "conv", "stall", "fail", "degen")):
        return f"{100 * v:.0f}%"
    if key == "median J":
        return f"{v:.4f}"
    return f"{v:.3g}" if key in ("ms/iter", "s to 1e-3 (est.)") else f"{v:.0f}"


def _records(results):
    """``(objective, method, record, EM's record on the same case)`` for every fit."""
    for (_, objective, _), case in results.items():
        for label, rec in case.items():
            yield objective, label, rec, case[EM_LABELS[objective]]


def checks(results) -> list[str]:
    lines = []
    for o in PRIORS:
        pairs = [(r, em) for obj, _, r, em in _records(results) if obj == o]
        diff = np.concatenate([np.abs(r["history"][:, 0] - em["history"][:, 0])
                               for r, em in pairs])
        scale = np.concatenate([np.abs(em["history"][:, 0]) for _, em in pairs])
        drop = max(float(np.nanmax(-np.diff(em["history"]), initial=0.0)) for _, em in pairs)
        lines += [f"- Same start ({o}): largest |history[:, 0] - {EM_LABELS[o]}'s history[:, 0]|"
                  f" over methods, restarts and cases: {diff.max():.2e} (relative to |J|: "
                  f"{np.max(diff / np.maximum(scale, 1e-30)):.1e}).",
                  f"- {EM_LABELS[o]}: largest one-iteration decrease of J in any history: "
                  f"{drop:.2e}."]
    early, lags = dict.fromkeys(OPTIMIZERS, 0), {}
    for objective, label, rec, _ in _records(results):
        if label in early:
            early[label] += int(np.sum(rec["converged"] & (rec["n_iter"] <= 2)))
        if objective == "ML":
            lags.setdefault(label, []).extend(rec["lag"][ok(rec)])
    recs = [rec for _, _, rec, _ in _records(results)]
    return lines + [
        "- Gradient restarts reported converged within 2 iterations: "
        + ", ".join(f"{label} {n}" for label, n in early.items()) + ".",
        "- ML: J of the returned parameters (recomputed with `jaxmix.gmm.mean_log_posterior`) "
        "less the reported final J (that of the parameters the last iteration started from), "
        "median [range] over restarts and cases: " + "; ".join(
            f"{label} {np.median(v):.1e} [{np.min(v):.1e}, {np.max(v):.1e}]"
            for label, v in lags.items()) + ".",
        f"- Repeat calls gave identical histories: {sum(r['repeatable'] for r in recs)} of "
        f"{len(recs)} configurations; largest compile time inside a timed (second) call: "
        f"{max(r['recompile_s'] for r in recs):.2f} s.", ""]


def _header(args, meta) -> list[str]:
    cases = "; ".join(f"{n} k={','.join(map(str, KS[args.mode][n]))}" for n in args.names)
    return [
        "# EM vs gradient fitting on one objective", "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']}; run time {meta['elapsed'] / 60:.1f} min; load average "
        f"(/proc/loadavg) at start `{meta['load0']}`, at end `{meta['load1']}`.  ",
        f"jax {jax.__version__}, optax {optax.__version__}, jaxmix {jaxmix.__version__}, "
        f"numpy {np.__version__}, Python {platform.python_version()}; devices: "
        f"{', '.join(sorted({d.platform for d in jax.devices()}))} ({meta['cpus']} CPU cores "
        "visible).", "",
        f"Definitions: the script's docstring. Covers: {cases}; objectives ML and MAP; "
        f"{N_RESTARTS} restarts (key 0), max_iter {MAX_ITER}, tol 1e-3, reg_covar 1e-6, full "
        f"covariances, adam learning rate {LR} (warmup {WARMUP} iterations for the schedule). "
        "Not covered: GPUs or other accelerators (CPU only), float64, covariance types other "
        "than full, mini-batch gradient fits, other learning rates or tolerances, the time per "
        "evaluation (times are per loop iteration of the whole batch of restarts, "
        "initialisation included).", ""]


def report(args, meta, results, bests, summary) -> str:
    keys = list(next(iter(summary.values())))
    lines = _header(args, meta) + ["## Mean success rate over the cases run", ""]
    lines += _table(["objective", "method"] + [f"mean ok {t:g}" for t in TARGETS],
                    _mean_success(summary))
    lines += ["## Best known J per case", ""]
    lines += _table(["data set", "objective", "k", "best J",
                     f"found by (restarts within {TARGETS[1]:g})"],
                    [(n, o, k, f"{b:.4f}", _finders(results[(n, o, k)], b))
                     for (n, o, k), b in bests.items()])
    lines += ["## Per method", ""]
    lines += _table(["data set", "objective", "k", "method"] + keys,
                    [(n, o, k, m, *(_fmt(c, row[c]) for c in keys))
                     for (n, o, k, m), row in summary.items()])
    lines += ["## Compile time (first call), summed over cases", ""]
    lines += _table(["objective", "method", "compile s"], _compile_totals(results))
    lines += ["## Checks", ""] + checks(results)
    lines += ["## Figures", "", "![traces](em_vs_gradient_traces.png)", "",
              "![success](em_vs_gradient_success.png)", ""]
    return "\n".join(lines)


def _mean_success(summary):
    groups = {}
    for (_, objective, _, label), row in summary.items():
        groups.setdefault((objective, label), []).append([row[f"ok {t:g}"] for t in TARGETS])
    return [(o, m, *(f"{100 * v:.0f}%" for v in np.mean(rows, axis=0)))
            for (o, m), rows in groups.items()]


def _finders(case, best):
    near = {label: int(np.sum(ok(r) & (r["objective"] >= best - TARGETS[1])))
            for label, r in case.items()}
    return ", ".join(f"{label} ({n})" for label, n in near.items() if n)


def _compile_totals(results):
    totals = {}
    for (_, objective, _), case in results.items():
        for label, rec in case.items():
            totals[(objective, label)] = totals.get((objective, label), 0.0) + rec["compile_s"]
    return [(o, m, f"{s:.0f}") for (o, m), s in totals.items()]


# ---------------------------------------------------------------------------


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="seed k=3, digits and wine k=5,10 (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="seed k=2..4, digits and wine k=5..10")
    parser.add_argument("--only", default="seed,digits,wine",
                        help="comma-separated data sets (default: all three)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    args.mode = args.mode or "quick"
    args.names = [n for n in KS[args.mode] if n in args.only.split(",")]
    return args


def main(argv=None):
    args = parse(argv)
    meta = dict(command="python experiments/em_vs_gradient.py " + " ".join(sys.argv[1:]),
                date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                load0=loadavg(), cpus=len(os.sched_getaffinity(0)))
    t0 = time.perf_counter()
    results = {}
    for name in args.names:
        x = load(name)
        print(f"{name}: n={len(x)}, d={x.shape[1]}", flush=True)
        for k in KS[args.mode][name]:
            for objective in PRIORS:
                results[(name, objective, k)] = run_case(x, k, objective)
    bests = {key: best_known(case) for key, case in results.items()}
    summary = {(*key, label): summarise(rec, bests[key])
               for key, case in results.items() for label, rec in case.items()}
    meta.update(elapsed=time.perf_counter() - t0, load1=loadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    text = report(args, meta, results, bests, summary)
    write_text(args.out / "em_vs_gradient.md", text)
    name, _, k = next(iter(results))  # the first case run, when REPRESENTATIVE is not
    if (REPRESENTATIVE[0], "ML", REPRESENTATIVE[1]) in results:
        name, k = REPRESENTATIVE
    plot_traces(results, bests, name, k, args.out / "em_vs_gradient_traces.png")
    plot_success(summary, args.names, args.out / "em_vs_gradient_success.png")
    print(text)


if __name__ == "__main__":
    main()
