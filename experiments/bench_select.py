"""Choosing k: the whole k grid with jaxmix.select_k against the same sweep
with scikit-learn, measured in the same run.

The sweep: Gaussian mixtures (full covariance by default) for k = 1..K with
R restarts each (sklearn: ``GaussianMixture(k, n_init=R)``, k-means init,
same tol, reg_covar and max_iter), on n samples in d dimensions drawn from a
5-component mixture. Reported:

* compiles: traces of jaxmix's compiled sweep (``jaxmix.fit.select.TRACE_COUNT``)
  and XLA backend compiles seen by ``jax.monitoring`` during the call (these
  include small host-side helpers);
* jaxmix time cold (first call: tracing + compiling + running) and warm
  (median of ``--repeats`` further calls with other keys);
* the same for ``strategy="per_k"`` (one compiled call per k) with ``--per-k``;
* sklearn's total time (median of ``--sk-repeats``) and the ratios.

    python experiments/bench_select.py                    # n=50000, d=8, k=1..10, R=8
    python experiments/bench_select.py --per-k            # also one compile per k
    python experiments/bench_select.py --n 5000 --k-max 6 --restarts 4   # quick

The report is printed and written to experiments/results/model_selection_bench.md.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import time
import warnings

import jax
import jax.monitoring
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from jaxmix.fit import select as select_mod
from jaxmix import select_k

COMPILES = {"n": 0, "seconds": 0.0}
RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def _on_event(event: str, duration: float, **_):
    if event == "/jax/core/compile/backend_compile_duration":
        COMPILES["n"] += 1
        COMPILES["seconds"] += duration


def make_data(n: int, d: int, true_k: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.normal(size=(true_k, d))
    labels = rng.integers(0, true_k, n)
    shear = 0.5 * rng.normal(size=(true_k, d, d)) + np.eye(d)
    noise = np.einsum("nd,nde->ne", rng.normal(size=(n, d)), shear[labels])
    return (centres[labels] + noise).astype(np.float32)


def time_jaxmix(x, ks, args, strategy: str):
    kw = dict(covariance_type=args.cov, n_restarts=args.restarts, tol=args.tol,
              max_iter=args.max_iter, strategy=strategy)
    traces0, compiles0, secs0 = select_mod.TRACE_COUNT["gmm"], COMPILES["n"], COMPILES["seconds"]
    start = time.perf_counter()
    sel = select_k(0, x, ks, **kw)
    cold = time.perf_counter() - start
    traces = select_mod.TRACE_COUNT["gmm"] - traces0
    compiles, compile_s = COMPILES["n"] - compiles0, COMPILES["seconds"] - secs0
    warm = []
    for rep in range(args.repeats):
        start = time.perf_counter()
        select_k(rep + 1, x, ks, **kw)
        warm.append(time.perf_counter() - start)
    assert select_mod.TRACE_COUNT["gmm"] - traces0 == traces, "warm calls must not retrace"
    return sel, cold, statistics.median(warm) if warm else float("nan"), traces, compiles, \
        compile_s


def time_sklearn(x, ks, args):
    times, bics, iters = [], None, None
    for rep in range(args.sk_repeats):
        start = time.perf_counter()
        b, it = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for k in ks:
                gm = GaussianMixture(k, covariance_type=args.cov, n_init=args.restarts,
                                     tol=args.tol, max_iter=args.max_iter, random_state=rep)
                gm.fit(x)
                b.append(gm.bic(x))
                it.append(gm.n_iter_)
        times.append(time.perf_counter() - start)
        bics, iters = b, it
    return statistics.median(times), np.array(bics), np.array(iters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--k-max", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=8)
    parser.add_argument("--cov", default="full")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2, help="warm jaxmix calls")
    parser.add_argument("--sk-repeats", type=int, default=1)
    parser.add_argument("--per-k", action="store_true", help="also time strategy='per_k'")
    args = parser.parse_args()
    jax.monitoring.register_event_duration_secs_listener(_on_event)

    x = make_data(args.n, args.d)
    ks = list(range(1, args.k_max + 1))
    header = (f"n={args.n} d={args.d} k=1..{args.k_max} R={args.restarts} cov={args.cov} "
              f"tol={args.tol} max_iter={args.max_iter} float32; jax {jax.__version__} on "
              f"{jax.devices()[0].platform}")
    print(header)
    log = []

    rows = []
    strategies = ["padded"] + (["per_k"] if args.per_k else [])
    results = {}
    for strategy in strategies:
        sel, cold, warm, traces, compiles, compile_s = time_jaxmix(x, ks, args, strategy)
        results[strategy] = (sel, cold, warm)
        rows.append((strategy, cold, warm, traces, compiles, compile_s))
        log.append(f"jaxmix {strategy:7s}: cold {cold:7.2f} s (traces {traces}, XLA compiles "
                   f"{compiles}, {compile_s:.1f} s compiling), warm {warm:7.2f} s; BIC picks "
                   f"k={sel.chosen_k('bic')}, best-restart n_iter {sel.n_iter[0].tolist()}")
        print(log[-1])
    sk_time, sk_bic, sk_iter = time_sklearn(x, ks, args)
    sel = results["padded"][0]
    rel = np.abs(sel.bic[0] - sk_bic) / np.abs(sk_bic)
    log += [
        f"sklearn        : {sk_time:7.2f} s; BIC picks k={ks[int(np.argmin(sk_bic))]}, "
        f"n_iter {sk_iter.tolist()}",
        f"BIC jaxmix vs sklearn, max relative difference over k: {rel.max():.2e}"]
    lines = [
        "| jaxmix strategy | traces | XLA compiles | compiling s | cold s | warm s | sklearn s "
        "| sklearn / jaxmix cold | sklearn / jaxmix warm |",
        "|---|---|---|---|---|---|---|---|---|"]
    for strategy, cold, warm, traces, compiles, compile_s in rows:
        lines.append(f"| {strategy} | {traces} | {compiles} | {compile_s:.1f} | {cold:.2f} "
                     f"| {warm:.2f} | {sk_time:.2f} | {sk_time / cold:.2f}x "
                     f"| {sk_time / warm:.2f}x |")
    print("\n".join(log[-2:] + [""] + lines))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "model_selection_bench.md").write_text("\n".join(
        ["# select_k sweep against scikit-learn", "", "```", header, *log, "```", "",
         *lines, ""]))


if __name__ == "__main__":
    main()
