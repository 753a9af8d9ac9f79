"""DBSCAN speed and memory: jaxmix against scikit-learn.

* Speed at n=20000: the seed's moons (noise 0.05) at eps=0.05 and eps=0.2
  (min_samples=5, d=2; sklearn uses a k-d tree there) and blobs in d=16 with
  5% uniform noise at eps=4 (min_samples=10; sklearn brute force, as it picks
  for d > 15). Both libraries get the same float32 array. jaxmix is timed
  after a warm-up call per shape; its compile time (first call minus a warm
  call) is reported separately. Each time is the median of ``--repeats``
  runs, the two libraries interleaved; the ratio is of medians from the same
  run (the machine is shared and noisy: compare ratios, not absolute times
  across runs). Each row also says whether the labels and core samples equal
  sklearn's.
* Memory at n=100000: each library fits in a fresh process; the peak
  resident set size (``ru_maxrss``) is reported with the process's resident
  size just before the fit (imports and data), and the size an ``n x n``
  float32 distance matrix would take.

    python experiments/bench_dbscan.py                 # writes results/bench_dbscan.md
    python experiments/bench_dbscan.py --repeats 3 --mem-n 50000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import jax
import numpy as np
from sklearn.cluster import DBSCAN
from sklearn.datasets import make_blobs, make_moons

from jaxmix.dbscan import DEFAULT_BLOCK, fit_dbscan

CASES = {  # name -> (data maker, eps, min_samples)
    "moons d=2, eps=0.05": ("moons", 2, 0.05, 5),
    "moons d=2, eps=0.2": ("moons", 2, 0.2, 5),
    "blobs+noise d=16, eps=4": ("blobs", 16, 4.0, 10),
}


def make_data(kind, n, d, seed=42):
    if kind == "moons":
        return make_moons(n_samples=n, noise=0.05, random_state=seed)[0].astype(np.float32)
    n_noise = n // 20
    X, _ = make_blobs(n_samples=n - n_noise, n_features=d, centers=8, cluster_std=1.0,
                      random_state=seed)
    rng = np.random.default_rng(seed)
    noise = rng.uniform(X.min(0), X.max(0), size=(n_noise, d))
    return np.vstack([X, noise]).astype(np.float32)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run_jaxmix(X, eps, ms, block):
    res = fit_dbscan(X, eps, ms, block=block)
    jax.block_until_ready(res)
    return np.asarray(res.labels), np.flatnonzero(np.asarray(res.core)), int(res.n_sweeps)


def run_sklearn(X, eps, ms):
    sk = DBSCAN(eps=eps, min_samples=ms).fit(X)
    return sk.labels_, sk.core_sample_indices_


def speed_row(name, n, repeats, block):
    kind, d, eps, ms = CASES[name]
    X = make_data(kind, n, d)
    first, _ = timed(lambda: run_jaxmix(X, eps, ms, block))
    warm, _ = timed(lambda: run_jaxmix(X, eps, ms, block))
    times = {"sk": [], "jm": []}
    for _ in range(repeats):
        t, sk = timed(lambda: run_sklearn(X, eps, ms))
        times["sk"].append(t)
        t, jm = timed(lambda: run_jaxmix(X, eps, ms, block))
        times["jm"].append(t)
    sk_t, jm_t = statistics.median(times["sk"]), statistics.median(times["jm"])
    same = np.array_equal(sk[0], jm[0]) and np.array_equal(sk[1], jm[1])
    n_clusters = int(sk[0].max()) + 1
    return (f"| {name} | {sk_t:.3f} | {jm_t:.3f} | **{sk_t / jm_t:.2f}x** | "
            f"{max(first - warm, 0):.1f} | {jm[2]} | {n_clusters} | {len(sk[1])} | "
            f"{'yes' if same else 'NO'} |")


def _status_mib(field):
    """``VmRSS`` / ``VmHWM`` (peak) of this process from ``/proc/self/status``, MiB.

    (``ru_maxrss`` would do on a fresh interpreter, but Linux carries the
    forking parent's high-water mark over into the child.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak():
    """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs`` 5); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(lib, kind, n, d, eps, ms, block):
    """Fit in this (fresh) process; print JSON with RSS figures. jaxmix fits
    twice: the first call compiles, the second is measured on its own (peak
    reset in between) when the kernel allows it."""
    X = make_data(kind, n, d)
    if lib == "jaxmix":
        jax.block_until_ready(jax.numpy.zeros(1))  # backend up before the baseline
    fit = (lambda: run_jaxmix(X, eps, ms, block)) if lib == "jaxmix" else (
        lambda: run_sklearn(X, eps, ms))
    before = _status_mib("VmRSS")
    t, out = timed(fit)
    res = {"peak_mib": _status_mib("VmHWM"), "before_mib": before, "seconds": t,
           "clusters": int(out[0].max()) + 1, "core": int(len(out[1]))}
    if lib == "jaxmix" and _reset_peak():
        before = _status_mib("VmRSS")
        t, out = timed(fit)
        res.update(warm_peak_mib=_status_mib("VmHWM"), warm_before_mib=before, warm_seconds=t)
    print(json.dumps(res))


def memory_rows(n, block):
    rows = []
    for name in CASES:
        if "0.2" in name:
            continue
        kind, d, eps, ms = CASES[name]
        for lib in ("jaxmix", "sklearn"):
            cmd = [sys.executable, __file__, "--child", lib, kind, str(n), str(d), str(eps),
                   str(ms), "--block", str(block)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            runs = [("", r["before_mib"], r["peak_mib"], r["seconds"])]
            if lib == "jaxmix":
                runs[0] = ("first call, compiles", *runs[0][1:])
                if "warm_peak_mib" in r:
                    runs.append(("second call", r["warm_before_mib"], r["warm_peak_mib"],
                                 r["warm_seconds"]))
            for what, before, peak, t in runs:
                rows.append(f"| {name} | {lib}{f' ({what})' if what else ''} | {before:.0f} "
                            f"| {peak:.0f} | {peak - before:.0f} | {t:.2f} | {r['clusters']} "
                            f"| {r['core']} |")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mem-n", type=int, default=100000)
    ap.add_argument("--block", type=int, default=DEFAULT_BLOCK)
    ap.add_argument("--child", nargs=6, metavar=("LIB", "KIND", "N", "D", "EPS", "MS"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "bench_dbscan.md"))
    args = ap.parse_args()
    if args.child:
        lib, kind, n, d, eps, ms = args.child
        return child(lib, kind, int(n), int(d), float(eps), int(ms), args.block)
    load0 = os.getloadavg()[0]
    speed = [speed_row(name, args.n, args.repeats, args.block) for name in CASES]
    mem = memory_rows(args.mem_n, args.block)
    nn_gib = args.mem_n ** 2 * 4 / 2**30
    lines = [
        "# DBSCAN: jaxmix vs scikit-learn", "",
        f"float32 input, {os.cpu_count()} CPU cores, jax {jax.__version__}, "
        f"block={args.block}, median of {args.repeats}", "",
        f"## Speed, n={args.n}", "",
        "| data | sklearn (s) | jaxmix (s) | speed-up | jaxmix compile (s) | sweeps "
        "| clusters | core samples | labels and cores equal sklearn's |",
        "|---|---|---|---|---|---|---|---|---|", *speed, "",
        f"## Memory, n={args.mem_n} (fresh process per fit)", "",
        f"An n x n float32 distance matrix would take {nn_gib:.1f} GiB "
        f"({args.mem_n ** 2 * 4 / 1e9:.0f} GB).", "",
        "| data | library | RSS before fit (MiB) | peak RSS (MiB) | increase (MiB) "
        "| fit time (s) | clusters | core samples |",
        "|---|---|---|---|---|---|---|---|", *mem, "",
        f"1-minute load average (other jobs share the machine): {load0:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end", "",
    ]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
