"""EM speed: jaxmix against scikit-learn's GaussianMixture(n_init=R).

Both run the same number of EM iterations (tol=0) on the same data. The time
per restart-iteration is taken as a difference, ``(T(N2) - T(N1)) / ((N2 - N1)
* R)``, so initialisation and set-up cancel. jaxmix is timed after a warm-up
call; its compile time is reported separately. Each timing is the median of
``--repeats`` runs; ratios are of medians measured in the same run (the
machine is noisy, absolute times are not comparable across runs).

Used by ``jaxmix bench`` and ``experiments/bench_gmm.py``:
:func:`add_arguments` declares the options (each caller picks its default
size), :func:`run` prints the markdown table. It needs ``threadpoolctl``
(to time sklearn with one BLAS thread): ``pip install "jaxmix[bench]"``.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
import warnings

import jax
import numpy as np

from jaxmix.cli.data import UsageError
from jaxmix.data import chunk
from jaxmix.fit.gmm import fit_gmm
from jaxmix.fit.init import initialize

BENCH_HINT = 'pip install "jaxmix[bench]"'


def _threadpool_limits():
    """``threadpoolctl.threadpool_limits``; a :class:`UsageError` that says what
    to install where it is missing (the core library does not need it)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise UsageError("the benchmark needs threadpoolctl (it times sklearn with one BLAS "
                         f"thread), which is not installed: {BENCH_HINT}") from None
    return threadpool_limits


def make_data(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (k, d))
    labels = rng.integers(0, k, n)
    return (centres[labels] + rng.normal(0, 1, (n, d))).astype(np.float32)


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_sklearn(x, k, cov, restarts, iters, repeats, blas_threads=None):
    """sklearn's fit time; ``blas_threads`` limits its BLAS pool (``None``: default)."""
    from sklearn.exceptions import ConvergenceWarning  # here: a second of every command's start
    from sklearn.mixture import GaussianMixture

    threadpool_limits = _threadpool_limits()

    def run():
        with warnings.catch_warnings(), threadpool_limits(blas_threads, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            GaussianMixture(k, covariance_type=cov, n_init=restarts, max_iter=iters, tol=0,
                            init_params="random_from_data", random_state=0).fit(x)
    return median_time(run, repeats)


def sklearn_per_iteration(x, k, cov, args):
    """sklearn's ms per restart-iteration with its default BLAS threads and
    with one thread: on small per-component GEMMs its multithreaded BLAS can
    be 2x slower than one thread, so the faster of the two is the reference."""
    n1, n2 = args.iters
    per = {}
    for threads in (None, 1):
        t = [time_sklearn(x, k, cov, args.sklearn_restarts, it, args.repeats, threads)
             for it in (n1, n2)]
        per[threads] = ((t[1] - t[0]) / ((n2 - n1) * args.sklearn_restarts), t[1])
    return per


def time_jaxmix(x, k, cov, restarts, iters, repeats, path, chunk_size):
    xj = jax.numpy.asarray(x)
    data = chunk(xj - xj.mean(0), chunk_size or None)
    params0 = initialize(jax.random.PRNGKey(0), data, k, cov, restarts, "random_from_data", 1e-6)
    first = jax.tree.map(lambda a: a[0], params0)
    first = first.replace(means=first.means + xj.mean(0))

    def run():
        res = fit_gmm(0, xj, k, covariance_type=cov, n_restarts=restarts, init_params=first,
                      tol=0.0, max_iter=iters, path=path, chunk_size=chunk_size or None)
        jax.block_until_ready(res)
        return res

    start = time.perf_counter()
    res = run()
    first_call = time.perf_counter() - start
    steady = median_time(run, repeats)
    return steady, first_call - steady, res


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def add_arguments(ap, *, n=100_000, d=16, k=16, restarts=16):
    """The benchmark's options on ``ap`` (an ``argparse`` parser), with the
    default problem size given."""
    ap.add_argument("--n", type=_positive, default=n)
    ap.add_argument("--d", type=_positive, default=d)
    ap.add_argument("--k", type=_positive, default=k)
    ap.add_argument("--restarts", type=_positive, default=restarts)
    ap.add_argument("--iters", type=_positive, nargs=2, default=(5, 15), metavar=("N1", "N2"))
    ap.add_argument("--cov", nargs="+", default=["full", "diag"],
                    choices=["full", "tied", "diag", "spherical"])
    ap.add_argument("--path", default="auto", choices=["auto", "gemm", "exact"])
    ap.add_argument("--chunk-size", type=int, default=0)
    ap.add_argument("--repeats", type=_positive, default=3)
    ap.add_argument("--sklearn-restarts", type=_positive, default=2,
                    help="restarts for sklearn (its cost is linear in them; fewer saves time)")


def run(args, out=functools.partial(print, flush=True)):
    """Time both libraries as ``args`` says and print the table with ``out``."""
    n1, n2 = args.iters
    if n2 <= n1:
        raise ValueError(f"--iters {n1} {n2}: N2 must be larger than N1 (times are "
                         "differences between the two iteration counts)")
    _threadpool_limits()  # fail before timing anything
    x = make_data(args.n, args.d, args.k)
    out(f"n={args.n} d={args.d} k={args.k} R={args.restarts} float32, iterations {n1} vs {n2}, "
        f"path={args.path}, devices={jax.devices()}")
    out(f"load average before: {os.getloadavg()[0]:.2f} (ratios need a quiet machine)")
    out("| covariance | sklearn ms/restart-iter | sklearn, 1 BLAS thread | "
        "jaxmix ms/restart-iter | speed-up (vs faster sklearn) | "
        f"whole-fit speed-up at {n2} iters | jaxmix compile s |")
    out("|---|---|---|---|---|---|---|")
    for cov in args.cov:
        sk = sklearn_per_iteration(x, args.k, cov, args)
        jx = [time_jaxmix(x, args.k, cov, args.restarts, it, args.repeats, args.path,
                          args.chunk_size) for it in (n1, n2)]
        sk_per, sk_whole = min(sk.values())
        jx_per = (jx[1][0] - jx[0][0]) / ((n2 - n1) * args.restarts)
        compile_s = statistics.median([jx[0][1], jx[1][1]])
        # whole fits (init included) per restart: a bound that cannot go negative
        whole = (sk_whole / args.sklearn_restarts) / (jx[1][0] / args.restarts)
        ratio = f"{sk_per / jx_per:.1f}x" if sk_per > 0 and jx_per > 0 else "noise (T(N2) <= T(N1))"
        out(f"| {cov} | {1e3 * sk[None][0]:.2f} | {1e3 * sk[1][0]:.2f} | {1e3 * jx_per:.3f} | "
            f"{ratio} | {whole:.1f}x | {compile_s:.2f} |")
    out(f"load average after: {os.getloadavg()[0]:.2f}")
