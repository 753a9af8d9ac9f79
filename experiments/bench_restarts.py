"""Many restarts in one call against a loop of single-restart calls (issue 15,
straggler cost).

A vmapped ``while_loop`` runs until its slowest member stops; the fit driver
now runs restarts in a fixed number of slots and refills a slot when its
restart stops (``jaxmix.fit.driver.iterate``, ``jaxmix.fit.buckets.RESTART_SLOTS``).
For each data set this prints, measured in one run (warm: every program is
compiled before timing; best of ``--repeats``):

* ``one call``: ``fit_gmm(key, x, k, n_restarts=R)`` with the default slots;
* ``one batch``: the same call with every restart in one batch (the
  driver before slots: ``RESTART_SLOTS = R``);
* ``batches of 10``: R/10 calls of 10 restarts each;
* ``loop``: R calls of one restart (keys ``fold_in``-distinct, as the batched
  restarts);

with the best objective each reaches, the total restart-iterations, the
slowest restart's iterations, and the ratio loop / one call. The default
fit is used throughout (k-means initialisation, tol 1e-3, ``path="auto"``), so
initialisation is included.

Data: ``digits`` (sklearn's digits, PCA to 10 dimensions, k=10) and
``blobs`` (correlated: 16 Gaussian blobs times a random 16x16 matrix,
n=20000, d=16, k=16). Both are shapes users meet; ``blobs`` takes the exact
E-step path at most iterations (see issue 15), ``digits`` mostly the GEMM path.

    python experiments/bench_restarts.py                 # R=200, both data sets
    python experiments/bench_restarts.py --restarts 50 --data digits
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax
import numpy as np

import jaxmix
import jaxmix.fit.buckets as buckets

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def digits():
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    return PCA(10, random_state=0).fit_transform(load_digits().data).astype(np.float32), 10


def blobs():
    rng = np.random.default_rng(0)
    n, d, k = 20000, 16, 16
    a, centres = rng.normal(size=(d, d)), rng.normal(size=(k, d)) * 3
    x = (rng.normal(size=(n, d)) + centres[rng.integers(0, k, n)]) @ a
    return x.astype(np.float32), k


DATA = {"digits": digits, "blobs": blobs}


def timed(fn, repeats):
    fn()  # compile
    best, out = np.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return best, out


def summary(results):
    obj = max(float(np.max(np.where(np.asarray(r.failed), -np.inf, np.asarray(r.objective))))
              for r in results)
    iters = np.concatenate([np.asarray(r.n_iter) for r in results])
    return obj, int(iters.sum()), int(iters.max())


def run(name, restarts, repeats):
    x, k = DATA[name]()
    key = jax.random.PRNGKey(0)

    def calls(size):
        return [jaxmix.fit_gmm(jax.random.fold_in(key, i), x, k, n_restarts=size)
                for i in range(restarts // size)]

    rows = []
    default = buckets.RESTART_SLOTS
    for label, slots, size in [("one call", default, restarts), ("one batch", restarts, restarts),
                               ("batches of 10", default, 10), ("loop", default, 1)]:
        buckets.RESTART_SLOTS = slots
        jax.clear_caches()  # the slot count is read when a fit is traced
        seconds, results = timed(lambda: calls(size), repeats)
        rows.append((label, seconds, *summary(results)))
    buckets.RESTART_SLOTS = default
    return x.shape, k, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--restarts", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    args = parser.parse_args(argv)
    lines = [f"# bench_restarts (R={args.restarts}, slots={buckets.RESTART_SLOTS}, "
             f"{jax.default_backend()}, load average before {os.getloadavg()[0]:.2f})", ""]
    for name in args.data:
        shape, k, rows = run(name, args.restarts, args.repeats)
        loop = rows[-1][1]
        lines += [f"## {name}: n={shape[0]}, d={shape[1]}, k={k}", "",
                  "| how | seconds | loop / this | best objective | restart-iterations | "
                  "slowest |", "|---|---|---|---|---|---|"]
        lines += [f"| {label} | {s:.3f} | {loop / s:.2f} | {obj:.5f} | {total} | {slowest} |"
                  for label, s, obj, total, slowest in rows]
        lines.append("")
    lines.append(f"load average after: {os.getloadavg()[0]:.2f}")
    text = "\n".join(lines)
    print(text)
    if args.restarts == 200 and set(args.data) == set(DATA):
        (RESULTS / "bench_restarts.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
