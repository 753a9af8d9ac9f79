"""Which E-step runs on real data, and what it costs (issue 15, part 1).

For each data set, from the same mid-fit parameters (10 EM iterations from
the default start), one full-covariance EM iteration of ``R`` restarts, in
float32, timed warm (best of ``--repeats``) per restart-iteration:

* ``exact``: centred distances, statistics about the previous means;
* ``gemm``: raw moments about the data's centre (no whitening);
* ``auto, data coordinates``: the GEMM path when ``eps * max ||mu||^2
  lambda_max(P) < GEMM_ERROR_BUDGET`` in the data's coordinates, else exact
  (the rule before whitening);
* ``auto, whitened``: the same rule in whitened coordinates, the GEMM path
  run there (what ``fit_gmm`` does for full and tied covariances);

with the path ``auto`` took, and the error of the iteration's covariances
against a float64 exact iteration (``max_k ||L_k^T (C_k - C64_k) L_k||``,
the error the log-density feels) and of its objective per sample.
scikit-learn's time per EM iteration (float64, one thread, ``GaussianMixture``
with the same start, ``max_iter`` 11 minus 1 iterations, divided by 10) is
measured in the same run; ``sklearn / this`` is its ratio to each row.

Data (shapes users meet): ``blobs``: the issue's correlated blobs (16
Gaussian blobs times a random 16x16 matrix, n=1e5, d=16, k=16, R=16);
``digits``: sklearn's digits, PCA to 10 dimensions, k=10, R=16; ``wine``:
standardised wine, k=3, R=16. It covers realistic correlated and real data,
not isotropic blobs (where every path is the GEMM path).

    python experiments/bench_estep.py            # all data sets (~2 min on 2 cores)
    python experiments/bench_estep.py --data wine
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)  # the float64 reference; the fits run in float32

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def blobs():
    rng = np.random.default_rng(0)
    n, d, k = 100_000, 16, 16
    a, centres = rng.normal(size=(d, d)), rng.normal(size=(k, d)) * 3
    return (rng.normal(size=(n, d)) + centres[rng.integers(0, k, n)]) @ a, k


def digits():
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    return PCA(10, random_state=0).fit_transform(load_digits().data), 10


def wine():
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler
    return StandardScaler().fit_transform(load_wine().data), 3


DATA = {"blobs": blobs, "digits": digits, "wine": wine}
R = 16
REG = 1e-6


def best_time(fn, repeats):
    jax.block_until_ready(fn())
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return best


def metric_error(p, ref):
    from jaxmix.gmm import family
    fam = family("full")
    c = np.asarray(fam.covariance(p.precisions_cholesky), np.float64)
    c_ref = np.asarray(fam.covariance(ref.precisions_cholesky), np.float64)
    pc = np.asarray(ref.precisions_cholesky, np.float64)
    return max(np.linalg.norm(l.T @ (a - b) @ l, 2) for l, a, b in zip(pc, c, c_ref))


def sklearn_per_iteration(x, start, repeats):
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits
    kw = dict(n_components=start.means.shape[0], tol=0.0, reg_covar=REG, n_init=1,
              weights_init=np.asarray(start.weights, np.float64) / np.sum(
                  np.asarray(start.weights, np.float64)),
              means_init=np.asarray(start.means, np.float64),
              precisions_init=np.asarray(jax.vmap(lambda l: l @ l.T)(
                  jnp.asarray(start.precisions_cholesky, jnp.float32)), np.float64))
    times = {}
    with threadpool_limits(1):
        for its in (1, 11):
            best = np.inf
            for _ in range(repeats):
                t = time.perf_counter()
                GaussianMixture(max_iter=its, **kw).fit(x)
                best = min(best, time.perf_counter() - t)
            times[its] = best
    return (times[11] - times[1]) / 10


def run(name, repeats):
    import warnings

    import jaxmix
    from jaxmix.data.chunked import chunk
    from jaxmix.gmm.stats import gemm_is_accurate, static_path
    from jaxmix.gmm.step import batched_em_step
    from jaxmix.gmm.whitening import whitening
    warnings.simplefilter("ignore")
    x, k = DATA[name]()
    x = x - np.median(x, axis=0)
    start = jaxmix.fit_gmm(0, x.astype(np.float32), k, n_restarts=1, max_iter=10).best_params
    x32 = jnp.asarray(x, jnp.float32)
    data32 = chunk(x32)
    data64 = chunk(jnp.asarray(x, jnp.float64))
    batch = jax.tree.map(lambda a: jnp.broadcast_to(a, (R,) + a.shape), start)
    white = whitening(x32, jnp.ones(len(x), jnp.float32))
    ref, ref_obj = batched_em_step(data64, REG, "exact")(jax.tree.map(
        lambda a: a[:1].astype(jnp.float64), batch))
    ref = jax.tree.map(lambda a: a[0], ref)
    rows = []
    for label, path, w in [("exact", "exact", None), ("gemm", "gemm", None),
                           ("auto, data coordinates", "auto", None),
                           ("auto, whitened", "auto", white)]:
        step = jax.jit(batched_em_step(data32, np.float32(REG), path, white=w))
        seconds = best_time(lambda: step(batch), repeats) / R
        new, obj = step(batch)
        took = path if path != "auto" else (
            "exact (small pass)" if static_path("auto", data32, k, R) == "exact" else
            "gemm" if bool(gemm_is_accurate(batch, w)) else "exact")
        rows.append((label, took, seconds, metric_error(jax.tree.map(lambda a: a[0], new), ref),
                     abs(float(obj[0]) - float(ref_obj[0]))))
    sk = sklearn_per_iteration(x, start, max(1, repeats // 2))
    return x.shape, k, sk, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    lines = [f"# bench_estep (float32, full covariance, R={R}; {jax.default_backend()}; "
             f"load average before {os.getloadavg()[0]:.2f})", ""]
    for name in args.data:
        shape, k, sk, rows = run(name, args.repeats)
        lines += [f"## {name}: n={shape[0]}, d={shape[1]}, k={k}; scikit-learn "
                  f"{sk * 1e3:.2f} ms per iteration", "",
                  "| E-step | path taken | ms per restart-iteration | sklearn / this | "
                  "covariance error | objective error |", "|---|---|---|---|---|---|"]
        lines += [f"| {label} | {took} | {s * 1e3:.3f} | {sk / s:.1f} | {err:.1e} | {obj:.1e} |"
                  for label, took, s, err, obj in rows]
        lines.append("")
    lines.append(f"load average after: {os.getloadavg()[0]:.2f}")
    text = "\n".join(lines)
    print(text)
    if set(args.data) == set(DATA):
        (RESULTS / "bench_estep.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
