"""K-Means speed: jaxmix against scikit-learn at equal iterations.

* Lloyd: ``fit_kmeans(n_restarts=R)`` against ``KMeans(n_init=R,
  algorithm="lloyd")``, both with ``tol=0`` and the same ``max_iter``. The
  time per restart-iteration is a difference, ``(T(N2) - T(N1)) / (R (N2 -
  N1))`` (taken within each repeat), so k-means++ seeding and the final passes
  cancel; the whole-fit time at ``N2`` divided by ``R N2`` is shown too (it
  is robust to noise but includes seeding). The data are
  overlapping blobs, so that no restart converges (stops early) before
  ``N2``; the script checks the iteration counts and says so if one did.
* Mini-batch: ``fit_minibatch_kmeans`` against ``MiniBatchKMeans`` (one run,
  ``n_init=1``), both with ``max_no_improvement=None, tol=0`` and the same
  ``batch_size``; time per step from ``max_iter`` E1 and E2 passes
  (``E * n // batch_size`` steps each), again as a difference.

jaxmix is timed after a warm-up call per shape; its compile time (first call
minus a warm call) is reported separately. Each time is the median of
``--repeats`` runs, the two libraries interleaved; ratios are of medians from
the same run (the machine is shared and noisy: compare ratios, not absolute
times across runs).

    python experiments/bench_kmeans.py            # n=200000, d=32, k=64, R=8, float32
    python experiments/bench_kmeans.py --n 50000 --repeats 3 --skip-minibatch
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import jax
import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning

from jaxmix.fit.kmeans import fit_kmeans
from jaxmix.fit.minibatch import fit_minibatch_kmeans


def make_data(n, d, k, seed=0):
    """Overlapping blobs (centres N(0, 1.5^2), unit noise): Lloyd needs many
    iterations, so neither library stops before ``max_iter``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.5, (k, d))
    labels = rng.integers(0, k, n)
    return (centres[labels] + rng.normal(0, 1, (n, d))).astype(np.float32)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def quiet(fn):
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return fn()
    return run


def interleaved(sk, jm, settings, repeats):
    """Median times of ``sk(s)()`` and ``jm(s)()`` for each setting ``s``,
    interleaved; jaxmix's compile time per setting; the last results."""
    compile_s = {}
    for s in settings:
        first, _ = timed(jm(s))
        warm, _ = timed(jm(s))
        compile_s[s] = first - warm
    times = {(lib, s): [] for lib in ("sk", "jm") for s in settings}
    out = {}
    for _ in range(repeats):
        for s in settings:
            for lib, make in (("sk", sk), ("jm", jm)):
                t, res = timed(make(s))
                times[lib, s].append(t)
                out[lib, s] = res
    return times, compile_s, out


def per_unit(times, settings, units):
    """Median over repeats of ``(T(s2) - T(s1)) / (units[s2] - units[s1])``,
    differences taken within each repeat (the two runs are close in time)."""
    s1, s2 = settings
    return {lib: statistics.median((b - a) / (units[s2] - units[s1])
                                   for a, b in zip(times[lib, s1], times[lib, s2]))
            for lib in ("sk", "jm")}


def ratio_rows(per, whole, unit):
    """Table rows: time per unit by difference and by whole fit, and speed-ups."""
    rows = [f"| ms per {unit} (difference) | {1e3 * per['sk']:.3f} | {1e3 * per['jm']:.3f} |"]
    if per["sk"] > 0 and per["jm"] > 0:
        rows.append(f"| speed-up by difference (sklearn / jaxmix) | | "
                    f"**{per['sk'] / per['jm']:.2f}x** |")
    else:
        rows.append("| speed-up by difference | | n/a: a difference was not positive "
                    "(machine too noisy; use more --repeats) |")
    rows += [f"| ms per {unit} (whole fit incl. init and final pass) | {1e3 * whole['sk']:.3f} | "
             f"{1e3 * whole['jm']:.3f} |",
             f"| speed-up, whole fit (sklearn / jaxmix) | | **{whole['sk'] / whole['jm']:.2f}x** |"]
    return rows


def bench_lloyd(x, k, restarts, iters, repeats, chunk_size):
    xj = jax.numpy.asarray(x)

    def sk(n_iter):
        return quiet(lambda: KMeans(k, n_init=restarts, max_iter=n_iter, tol=0,
                                    algorithm="lloyd", random_state=0).fit(x))

    def jm(n_iter):
        return lambda: jax.block_until_ready(fit_kmeans(
            jax.random.PRNGKey(0), xj, k, n_restarts=restarts, tol=0.0, max_iter=n_iter,
            chunk_size=chunk_size))

    times, compile_s, out = interleaved(sk, jm, iters, repeats)
    n1, n2 = iters
    per = per_unit(times, iters, {n: restarts * n for n in iters})
    med = {key: statistics.median(v) for key, v in times.items()}
    whole = {lib: med[lib, n2] / (restarts * n2) for lib in ("sk", "jm")}
    sk_res, jm_res = out["sk", n2], out["jm", n2]
    jm_iters = np.asarray(jm_res.n_iter)
    notes = []
    if sk_res.n_iter_ != n2:
        notes.append(f"sklearn's best restart stopped at {sk_res.n_iter_} < {n2} iterations")
    if (jm_iters != n2).any():
        notes.append(f"jaxmix restarts stopped at {jm_iters.tolist()} iterations")
    return dict(per=per, whole=whole, med=med, compile=compile_s, notes=notes,
                inertia=(sk_res.inertia_, float(-jm_res.objective[jm_res.best])))


def bench_minibatch(x, k, batch, epochs, repeats):
    xj = jax.numpy.asarray(x)
    n = x.shape[0]

    def sk(e):
        return quiet(lambda: MiniBatchKMeans(k, batch_size=batch, max_iter=e, n_init=1, tol=0.0,
                                             max_no_improvement=None, random_state=0).fit(x))

    def jm(e):
        return lambda: jax.block_until_ready(fit_minibatch_kmeans(
            jax.random.PRNGKey(0), xj, k, batch_size=batch, max_iter=e, tol=0.0,
            max_no_improvement=None))

    times, compile_s, out = interleaved(sk, jm, epochs, repeats)
    e1, e2 = epochs
    steps = {e: e * n // batch for e in epochs}
    per = per_unit(times, epochs, steps)
    med = {key: statistics.median(v) for key, v in times.items()}
    whole = {lib: med[lib, e2] / steps[e2] for lib in ("sk", "jm")}
    sk_res, jm_res = out["sk", e2], out["jm", e2]
    notes = []
    if sk_res.n_steps_ != steps[e2] or int(jm_res.n_iter[0]) != steps[e2]:
        notes.append(f"steps run: sklearn {sk_res.n_steps_}, jaxmix {int(jm_res.n_iter[0])}, "
                     f"expected {steps[e2]}")
    return dict(per=per, whole=whole, med=med, compile=compile_s, notes=notes, steps=steps,
                inertia=(sk_res.inertia_, float(-jm_res.objective[0])))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--restarts", type=int, default=8)
    ap.add_argument("--iters", type=int, nargs=2, default=(5, 25),
                    help="two max_iter values N1 < N2 (Lloyd)")
    ap.add_argument("--chunk", type=int, default=0, help="jaxmix chunk size (0: default)")
    ap.add_argument("--batch", type=int, default=1024, help="mini-batch size")
    ap.add_argument("--epochs", type=int, nargs=2, default=(1, 3),
                    help="two mini-batch max_iter values E1 < E2 (passes over the data)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-minibatch", action="store_true")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "bench_kmeans.md"))
    args = ap.parse_args(argv)

    load0 = os.getloadavg()[0]
    x = make_data(args.n, args.d, args.k)
    head = (f"n={args.n}, d={args.d}, k={args.k}, float32, {os.cpu_count()} CPU cores, "
            f"jax {jax.__version__}, median of {args.repeats}")
    lines = ["# K-Means: jaxmix vs scikit-learn", "", head, ""]

    r = bench_lloyd(x, args.k, args.restarts, tuple(args.iters), args.repeats,
                    args.chunk or None)
    lines += [f"## Lloyd, R={args.restarts}, tol=0, max_iter {args.iters[0]} vs {args.iters[1]}",
              "", "| | sklearn KMeans(lloyd) | jaxmix fit_kmeans |", "|---|---|---|",
              *ratio_rows(r["per"], r["whole"], "restart-iteration"),
              f"| fit time at max_iter={args.iters[1]} (s) | {r['med']['sk', args.iters[1]]:.2f} | "
              f"{r['med']['jm', args.iters[1]]:.2f} |",
              "| compile time (s, not in the above) | | "
              + ", ".join(f"{v:.1f} (max_iter={n})" for n, v in r["compile"].items()) + " |",
              f"| best inertia | {r['inertia'][0]:.6g} | {r['inertia'][1]:.6g} |", ""]
    lines += [f"note: {s}" for s in r["notes"]]

    if not args.skip_minibatch:
        m = bench_minibatch(x, args.k, args.batch, tuple(args.epochs), args.repeats)
        e1, e2 = args.epochs
        lines += ["", f"## Mini-batch, batch_size={args.batch}, one run, max_iter {e1} vs {e2} "
                  f"passes ({m['steps'][e1]} vs {m['steps'][e2]} steps)", "",
                  "| | sklearn MiniBatchKMeans | jaxmix fit_minibatch_kmeans |", "|---|---|---|",
                  *ratio_rows(m["per"], m["whole"], "step"),
                  "| compile time (s, not in the above) | | "
                  + ", ".join(f"{v:.1f} (max_iter={e})" for e, v in m["compile"].items()) + " |",
                  f"| final inertia | {m['inertia'][0]:.6g} | {m['inertia'][1]:.6g} |", ""]
        lines += [f"note: {s}" for s in m["notes"]]

    lines += ["", "1-minute load average (other jobs share the machine): "
              f"{load0:.1f} at start, {os.getloadavg()[0]:.1f} at end"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
