"""float32 EM on data that degenerates, against float64 and scikit-learn
(issue 15, item 4).

Part 1, monotonicity: standardised wine (n=178, d=13), ``fit_gmm`` with its
defaults except ``max_iter=1000`` (so a fit that cycles shows it), 8
restarts, key 1, covariance types full and tied, k = 2..12, once on float32
data and once on float64 data. Per cell: iterations (over all restarts) whose
objective fell by more than ``1e-6`` relative (``FitResult.falling_iterations``), the largest ``n_iter`` of the
8 restarts, restarts that ran to ``max_iter``, restarts whose ``n_iter``
equals float64's, and ``best f32 - best f64`` (mean log-likelihood per sample).
With k >= 5 most restarts have a component on fewer than d + 1 = 14 points,
whose covariance sits at the ``reg_covar`` floor in its null directions.

Part 2, a k-grid against scikit-learn: ``select_k`` on float32 data (8
restarts, defaults) against ``sklearn.mixture.GaussianMixture(k, n_init=8,
random_state=0)`` on float64 data (scikit-learn's own precision), for the
four covariance types and k = 2..16 (60 cells), on digits (n=1797, the 64
raw pixels: several pixels are constant within digits, so full and tied fits
sit at the floor) and on standardised wine. A cell counts as worse or better
when the best objectives (mean log-likelihood per sample of the best
restart's final parameters, jaxmix's measured in float64) differ by more
than 1e-3.

    python experiments/float32_degenerate.py              # ~3 minutes on 2 cores
    python experiments/float32_degenerate.py --part 1

Results: ``experiments/results/float32_degenerate.md``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)  # float64 references; float32 data fit in float32

import jaxmix  # noqa: E402
from provenance import library_commit  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
TYPES = ("full", "tied", "diag", "spherical")


def wine():
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler
    return StandardScaler().fit_transform(load_wine().data)


def digits():
    from sklearn.datasets import load_digits
    return load_digits().data.astype(np.float64)


def part1(lines):
    x = wine()
    lines += ["## Part 1: monotonicity on standardised wine (float32 against float64)", "",
              "| type | k | drops f32 | drops f64 | max n_iter f32 / f64 | at max_iter f32 "
              "| same n_iter | best f32 - f64 |", "|---|---|---|---|---|---|---|---|"]
    for ct in ("full", "tied"):
        for k in range(2, 13):
            single, double = (jaxmix.fit_gmm(jax.random.key(1), x.astype(dt), k, n_restarts=8,
                                             max_iter=1000, covariance_type=ct)
                              for dt in (np.float32, np.float64))
            n32, n64 = np.asarray(single.n_iter), np.asarray(double.n_iter)
            gap = float(np.max(np.asarray(single.objective))) - float(
                np.max(np.asarray(double.objective)))
            falls = [f.falling_iterations().sum() for f in (single, double)]
            lines.append(f"| {ct} | {k} | {falls[0]} | {falls[1]} | {n32.max()} / "
                         f"{n64.max()} | {int(np.sum(n32 >= 1000))} | "
                         f"{int(np.sum(n32 == n64))}/8 | {gap:+.1e} |")
    lines.append("")


def sklearn_best(x, k, ct):
    from sklearn.mixture import GaussianMixture
    gm = GaussianMixture(k, covariance_type=ct, n_init=8, random_state=0).fit(x)
    return float(gm.score(x))


def jaxmix_scores(x, ct, ks):
    table = jaxmix.select_k(0, x.astype(np.float32), ks, covariance_type=ct, n_restarts=8)
    return [float(jaxmix.gmm.mean_log_likelihood(
        jax.tree.map(lambda a: np.asarray(a, np.float64) if np.asarray(a).dtype.kind == "f"
                     else a, p), x)) for p in table.params[0]]


def part2(lines):
    lines += ["## Part 2: a k-grid against scikit-learn (jaxmix float32, scikit-learn float64)",
              "", "| data | type | worse | better | equal | largest shortfall | jaxmix s "
              "| sklearn s |", "|---|---|---|---|---|---|---|---|"]
    ks = list(range(2, 17))
    totals = np.zeros(3, int)
    for name, x in (("digits", digits()), ("wine", wine())):
        for ct in TYPES:
            t = time.perf_counter()
            ours = jaxmix_scores(x, ct, ks)
            t_ours = time.perf_counter() - t
            t = time.perf_counter()
            theirs = [sklearn_best(x, k, ct) for k in ks]
            t_sk = time.perf_counter() - t
            diff = np.asarray(ours) - np.asarray(theirs)
            counts = np.array([np.sum(diff < -1e-3), np.sum(diff > 1e-3),
                               np.sum(np.abs(diff) <= 1e-3)])
            totals += counts
            lines.append(f"| {name} | {ct} | {counts[0]} | {counts[1]} | {counts[2]} | "
                         f"{min(diff.min(), 0.0):.3f} | {t_ours:.1f} | {t_sk:.1f} |")
    lines += [f"| all | | {totals[0]} | {totals[1]} | {totals[2]} | | | |", "",
              "Times include compilation (one grid program per type and data set); "
              "scikit-learn with its default threads."]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", type=int, choices=(1, 2))
    args = parser.parse_args()
    lines = ["# float32 EM on degenerating data", "",
             "`python experiments/float32_degenerate.py`", "",
             f"jaxmix {library_commit()}, jax {jax.__version__}, {os.cpu_count()} CPUs; "
             f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", ""]
    if args.part in (None, 1):
        part1(lines)
    if args.part in (None, 2):
        part2(lines)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.part is None:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "float32_degenerate.md").write_text(text)


if __name__ == "__main__":
    main()
