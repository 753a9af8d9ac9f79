"""Whole fits against the libraries users would pick instead (issue 15, item 6).

Every library fits the same float32 array in ONE run (the machine is noisy;
compare the ratios, not absolute times across runs). Times are wall time of
the call as a user makes it (data handed over as a numpy array), the median
of ``--repeats`` calls, libraries interleaved within each repeat. JAX
programs (jaxmix, gmmx) are called twice before timing; their compile time
is the first call minus the second. scikit-learn, scikit-learn-intelex and
faiss run with their default threads (all cores); one extra row times
scikit-learn with one BLAS thread (``threadpoolctl``) where it is cheap.

1. GMM, full covariance (``--part gmm``) on: ``blobs`` (the issue's correlated
   blobs, n=1e5, d=16, k=16, R=16, as in ``bench_estep.py``), ``digits``
   (sklearn's digits, ``PCA(10, random_state=0)``, k=10, R=16), ``wine``
   (standardised, k=3, R=16). Two variants:

   * default: each library's default initialisation and stopping rule (tol
     1e-3, max_iter 100): ``jaxmix.fit_gmm(0, x, k, n_restarts=R)``,
     ``GaussianMixture(k, n_init=R, random_state=0)``; gmmx has no restarts
     (its sklearn face refuses ``n_init > 1``), so R times
     ``GaussianMixtureModelJax.from_k_means(x, k, random_state=r)`` (its
     default initialiser: sklearn ``KMeans`` with ``n_init=10``) then
     ``EMFitter().fit``, in a Python loop, best by its final objective.
     Columns: whole fit, compile, initialisation (jaxmix: a fit with
     ``max_iter=0``; sklearn: ``max_iter=1`` minus one iteration, scaled to R
     restarts; gmmx: its ``from_k_means`` calls timed inside the loop).
   * fixed: tol=0 and max_iter 5 and 20 for everyone (equal work); time per
     restart-iteration ``(T(20) - T(5)) / 15 / R``, differences taken within
     each repeat, so initialisation cancels (gmmx: EM from cached starts).
     sklearn and gmmx cost is linear in R (restarts run one after another),
     so on ``blobs`` they are timed with ``PEER_R`` restarts to save time.

   Quality: the mean log-likelihood of each library's best model, evaluated
   by one shared float64 scorer (numpy, from the returned weights, means and
   precision Cholesky factors), and for every library its own returned
   objective (evaluated before the last M-step, as sklearn's
   ``lower_bound_``) minus that value; for jaxmix also its float32 score of
   the same final parameters minus the float64 one (float32 error alone).
2. Diagonal covariance (``--part diag``): the fixed variant on ``blobs`` and
   ``digits``, jaxmix, sklearn and gmmx.
3. K-Means (``--part kmeans``): bench_kmeans.py's overlapping blobs (centres
   N(0, 1.5^2), unit noise, n=2e5, d=32, k=64, R=8: Lloyd runs ~50
   iterations, so no restart stops before 20 at tol=0) and sklearn's raw
   digits (64 pixels, k=10, R=8). ``fit_kmeans(0, x, k, n_restarts=R)``,
   sklearn and sklearnex ``KMeans(k, n_init=R, random_state=0)`` (tol 1e-4,
   max_iter 300, k-means++), ``faiss.Kmeans(d, k, nredo=R, seed=0)`` (its
   defaults: random init, niter=25, no tol, trains on a subsample of 256
   points per centroid). Fixed: tol=0, max_iter 5 and 20 (faiss: niter 5
   and 20 on all points). Inertia of each best model by one float64 sum.
   ``--part kmeans-seeds``: the blobs' best-of-8 inertia for seeds 0-4,
   jaxmix and sklearn (and sklearnex), each relative to sklearn's.
4. DBSCAN (``--part dbscan``), n=2e4: ``make_moons(noise=0.05,
   random_state=0)`` at eps=0.05, min_samples=5, and bench_dbscan.py's blobs
   in d=16 with 5% uniform noise at eps=4, min_samples=10:
   ``fit_dbscan``, sklearn and sklearnex ``DBSCAN``; whether labels equal
   sklearn's up to relabelling (adjusted Rand index 1, same core samples,
   same noise samples).

sklearnex is imported per estimator (``from sklearnex.cluster import ...``),
never ``patch_sklearn()``, so the scikit-learn columns stay scikit-learn. A
peer that is not installed is skipped and the report says so.

    python experiments/bench_peers.py                 # all parts, writes results/bench_peers.md
    python experiments/bench_peers.py --quick --part gmm kmeans
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.metadata
import logging
import math
import os
import pathlib
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any, Callable, NamedTuple

import jax
import numpy as np
from scipy.special import logsumexp
from sklearn.cluster import DBSCAN, KMeans
from sklearn.datasets import load_digits, load_wine, make_moons
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

import jaxmix

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_dbscan import make_data as dbscan_data  # noqa: E402

PEER_R = 4         # sklearn / gmmx restarts timed in the fixed variant on blobs
ITERS = (5, 20)    # fixed variant: max_iter N1, N2
LOG_2PI = math.log(2 * math.pi)
SK1 = "sklearn, 1 BLAS thread"


def _peer(module):
    try:
        return importlib.import_module(module), None
    except ImportError as e:
        return None, f"not installed, skipped ({e})"


gmmx, GMMX_MISSING = _peer("gmmx")
faiss, FAISS_MISSING = _peer("faiss")
skx, SKX_MISSING = _peer("sklearnex.cluster")
try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    threadpool_info = threadpool_limits = None


class _Messages(logging.Handler):
    """Collects sklearnex's "running accelerated version" / "fallback" lines."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seen = set()

    def emit(self, record):
        self.seen.add(record.getMessage().strip())


SKX_LOG = _Messages()
_log = logging.getLogger("sklearnex")   # collected for the report, not printed per call
_log.handlers, _log.propagate = [SKX_LOG], False
_log.setLevel(logging.INFO)


# ---------------------------------------------------------------- data

def blobs(n=100_000):
    rng = np.random.default_rng(0)
    d, k = 16, 16
    a, centres = rng.normal(size=(d, d)), rng.normal(size=(k, d)) * 3
    return ((rng.normal(size=(n, d)) + centres[rng.integers(0, k, n)]) @ a).astype(np.float32)


def digits_pca():
    return PCA(10, random_state=0).fit_transform(load_digits().data).astype(np.float32)


def wine():
    return StandardScaler().fit_transform(load_wine().data).astype(np.float32)


def overlapping_blobs(n, d=32, k=64, seed=0):
    """bench_kmeans.py's data (copied: that script does not import today)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.5, (k, d))
    return (centres[rng.integers(0, k, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


# ---------------------------------------------------------------- timing

class Run(NamedTuple):
    lib: str
    setting: Any
    fn: Callable
    warm: Callable | None = None   # called twice first (JAX: the first call compiles)


def clock(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _error(e):
    return f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"


def measure(runs, repeats):
    """``{(lib, setting): dict(times, median, compile, out, error)}``, the runs
    interleaved within each repeat; a run that raises is recorded, not retried."""
    res = {(r.lib, r.setting): dict(times=[], compile=None, out=None, error=None) for r in runs}
    for r in runs:
        if r.warm is not None:
            try:
                first, _ = clock(r.warm)
                res[r.lib, r.setting]["compile"] = max(first - clock(r.warm)[0], 0.0)
            except Exception as e:  # noqa: BLE001 - a peer's failure is reported, not fatal
                res[r.lib, r.setting]["error"] = _error(e)
    for _ in range(repeats):
        for r in runs:
            m = res[r.lib, r.setting]
            if m["error"] is None:
                try:
                    t, m["out"] = clock(r.fn)
                    m["times"].append(t)
                except Exception as e:  # noqa: BLE001
                    m["error"] = _error(e)
    for m in res.values():
        m["median"] = statistics.median(m["times"]) if m["times"] else math.nan
    return res


def per_iteration(res, lib, restarts, iters=ITERS):
    """Median over repeats of ``(T(N2) - T(N1)) / ((N2 - N1) R)``, seconds."""
    a, b = res[lib, iters[0]]["times"], res[lib, iters[1]]["times"]
    if not a or not b:
        return math.nan
    return statistics.median((t2 - t1) / ((iters[1] - iters[0]) * restarts) for t1, t2 in zip(a, b))


@contextlib.contextmanager
def blas_threads(n):
    if n is None:
        yield
    else:
        with threadpool_limits(n, user_api="blas"):
            yield


@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------- shared float64 scores

def mean_loglik64(x64, weights, means, prec_chol):
    """Mean log-likelihood in float64 from precision Cholesky factors
    (full ``(k, d, d)`` upper, ``P = L L^T``, or diag ``(k, d)``)."""
    d = x64.shape[1]
    cols = []
    for w, mu, lc in zip(*(np.asarray(a, np.float64) for a in (weights, means, prec_chol))):
        y = (x64 - mu) @ lc if lc.ndim == 2 else (x64 - mu) * lc
        logdet = np.log(np.diag(lc) if lc.ndim == 2 else lc).sum()
        with np.errstate(divide="ignore"):
            cols.append(np.log(w) + logdet - 0.5 * (d * LOG_2PI + (y * y).sum(1)))
    return float(logsumexp(np.stack(cols, 1), axis=1).mean())


def inertia64(x64, centroids, block=8192):
    c = np.asarray(centroids, np.float64)
    cc, total = (c * c).sum(1), 0.0
    for s in range(0, len(x64), block):
        xb = x64[s:s + block]
        d2 = (xb * xb).sum(1)[:, None] - 2 * xb @ c.T + cc
        total += np.maximum(d2.min(1), 0.0).sum()
    return float(total)


# ---------------------------------------------------------------- GMM adapters

class GMMOut(NamedTuple):
    weights: Any
    means: Any
    prec_chol: Any
    n_iter: int            # of the best restart
    n_iter_max: int | None
    objective: float       # the library's own, before its last M-step
    init_s: float | None   # initialisation time measured inside the call
    params: Any = None     # jaxmix's GMMParams


def jaxmix_gmm(x, k, r, cov, **kw):
    def fit():
        res = jax.block_until_ready(jaxmix.fit_gmm(0, x, k, covariance_type=cov, n_restarts=r, **kw))
        b, p = int(res.best), res.best_params
        return GMMOut(np.asarray(p.weights), np.asarray(p.means), np.asarray(p.precisions_cholesky),
                      int(res.n_iter[b]), int(np.max(res.n_iter)), float(res.objective[b]), None, p)
    return fit


def sklearn_gmm(x, k, r, cov, threads=None, **kw):
    def fit():
        with quiet(), blas_threads(threads):
            g = GaussianMixture(k, covariance_type=cov, n_init=r, random_state=0, **kw).fit(x)
        return GMMOut(g.weights_, g.means_, g.precisions_cholesky_, int(g.n_iter_), None,
                      float(g.lower_bound_), None)
    return fit


def gmmx_init(x, k, cov, seed):
    with quiet():
        return gmmx.GaussianMixtureModelJax.from_k_means(x, k, covariance_type=cov,
                                                          random_state=seed)


def gmmx_gmm(x, k, r, cov, starts=None, **kw):
    """R gmmx fits in a loop (its default init unless ``starts`` are given),
    the best by its final objective."""
    def fit():
        fitter, best, iters, init_s = gmmx.EMFitter(**kw), None, [], 0.0
        for seed in range(r):
            if starts is None:
                t, g0 = clock(lambda: gmmx_init(x, k, cov, seed))
                init_s += t
            else:
                g0 = starts[seed]
            res = jax.block_until_ready(fitter.fit(x, g0))
            iters.append(int(res.n_iter))
            ll = float(res.log_likelihood)
            if best is None or ll > best[0] or math.isnan(best[0]):
                best = (ll, res)
        g = best[1].gmm
        return GMMOut(g.weights_numpy, g.means_numpy, g.covariances.precisions_cholesky_numpy,
                      int(best[1].n_iter), max(iters), best[0], init_s if starts is None else None)
    return fit


# ---------------------------------------------------------------- GMM cases

def _skip_rows(name, libs):
    return [f"| {name} | {lib} | {why} |" for lib, why in libs]


def gmm_fixed_runs(x, k, r, peer_r, cov, starts):
    fixed = dict(tol=0.0)
    runs = [Run("jaxmix", m, jaxmix_gmm(x, k, r, cov, max_iter=m, **fixed)) for m in (0, *ITERS)]
    runs = [rn._replace(warm=rn.fn) for rn in runs]
    runs += [Run("sklearn", m, sklearn_gmm(x, k, peer_r, cov, max_iter=m, **fixed)) for m in (1, *ITERS)]
    if threadpool_limits is not None:
        runs += [Run(SK1, m, sklearn_gmm(x, k, peer_r, cov, 1, max_iter=m, **fixed))
                 for m in (1, *ITERS)]
    if starts is not None:
        runs += [Run("gmmx", m, gmmx_gmm(x, k, peer_r, cov, starts, max_iter=m, **fixed),
                     gmmx_gmm(x, k, 1, cov, starts, max_iter=m, **fixed)) for m in ITERS]
    return runs


def fixed_rows(name, x, res, r, peer_r):
    """Rows of the fixed-variant table and each library's per restart-iteration time."""
    x64, rows, per = x.astype(np.float64), [], {}
    for lib in dict.fromkeys(lib for lib, _ in res):
        m = res[lib, ITERS[1]]
        if m["error"]:
            rows.append(f"| {name} | {lib} | {m['error']} | | | | | |")
            continue
        restarts = r if lib == "jaxmix" else peer_r
        per[lib] = per_iteration(res, lib, restarts)
        out = m["out"]
        ll = mean_loglik64(x64, out.weights, out.means, out.prec_chol)
        own = (f"{float(jaxmix.gmm.mean_log_likelihood(out.params, x)) - ll:+.1e}"
               if out.params is not None else "")
        rows.append(f"| {name} | {lib} | {restarts} | {_per(per, lib)} | {out.n_iter} | {ll:.6f} | "
                    f"{out.objective - ll:+.1e} | {own} |")
    return rows, per


def sklearn_init(res, lib, peer_r, r, per):
    """sklearn's initialisation for R restarts: T(max_iter=1) minus one iteration."""
    t1 = res[lib, 1]["median"] if (lib, 1) in res else math.nan
    return (t1 / peer_r - per.get(lib, math.nan)) * r


def gmm_fixed(name, x, k, r, peer_r, cov, repeats):
    starts = None
    if gmmx is not None:
        starts = [gmmx_init(x, k, cov, seed) for seed in range(peer_r)]
    res = measure(gmm_fixed_runs(x, k, r, peer_r, cov, starts), repeats)
    rows, per = fixed_rows(name, x, res, r, peer_r)
    if gmmx is None:
        rows += _skip_rows(name, [("gmmx", GMMX_MISSING)])
    inits = {"jaxmix": res["jaxmix", 0]["median"],
             **{lib: sklearn_init(res, lib, peer_r, r, per) for lib in ("sklearn", SK1)}}
    return rows, per, inits


def gmm_default(name, x, k, r, inits, repeats):
    runs = [Run("jaxmix", "default", jaxmix_gmm(x, k, r, "full"), jaxmix_gmm(x, k, r, "full")),
            Run("sklearn", "default", sklearn_gmm(x, k, r, "full"))]
    if threadpool_limits is not None:
        runs.append(Run(SK1, "default", sklearn_gmm(x, k, r, "full", 1)))
    if gmmx is not None:   # compile: EM from one start, twice
        one = [gmmx_init(x, k, "full", 0)]
        runs.append(Run("gmmx", "default", gmmx_gmm(x, k, r, "full"), gmmx_gmm(x, k, 1, "full", one)))
    res, x64, rows = measure(runs, repeats), x.astype(np.float64), []
    base = res["jaxmix", "default"]
    for (lib, _), m in res.items():
        if m["error"]:
            rows.append(f"| {name} | {lib} | {m['error']} | | | | | | |")
            continue
        out = m["out"]
        ll = mean_loglik64(x64, out.weights, out.means, out.prec_chol)
        init = out.init_s if out.init_s is not None else inits.get(lib, math.nan)
        iters = f"{out.n_iter}" + (f" ({out.n_iter_max})" if out.n_iter_max is not None else "")
        rows.append(f"| {name} | {lib} | {m['median']:.3f} | {m['median'] / base['median']:.2f} | "
                    f"{_num(m['compile'], '.2f')} | {_num(init, '.3f')} | {iters} | {ll:.6f} | "
                    f"{out.objective - ll:+.1e} |")
    if gmmx is None:
        rows += _skip_rows(name, [("gmmx", GMMX_MISSING)])
    return rows


def _per(per, lib):
    """``ms per restart-iteration | x jaxmix's`` cells; a difference that is not
    positive is noise (T(N2) <= T(N1)), said so instead of a number."""
    t, base = per[lib], per.get("jaxmix", math.nan)
    if not t > 0:
        return f"noise: T({ITERS[1]}) <= T({ITERS[0]}) | -"
    return f"{1e3 * t:.3f} | " + (f"{t / base:.2f}" if base > 0 else "-")


def _num(v, spec):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


FIXED_HEAD = ["| data | library | restarts timed | ms per restart-iteration | x jaxmix's | "
              "iterations (best) | mean log-lik, float64 | own objective - f64 | "
              "jaxmix f32 score - f64 |", "|---|---|---|---|---|---|---|---|---|"]
DEFAULT_HEAD = ["| data | library | whole fit, s (warm) | x jaxmix's | compile, s | "
                "init, s (R restarts) | iterations best (max) | mean log-lik, float64 | "
                "own objective - f64 |", "|---|---|---|---|---|---|---|---|---|"]


def gmm_cases(quick):
    n = 10_000 if quick else 100_000
    return [("blobs", blobs(n), 16, 16, PEER_R), ("digits", digits_pca(), 10, 16, 16),
            ("wine", wine(), 3, 16, 16)]


def part_gmm(args, out):
    fixed, default = [], []
    for name, x, k, r, peer_r in gmm_cases(args.quick):
        rows, _, inits = gmm_fixed(name, x, k, r, peer_r, "full", args.repeats)
        fixed += rows
        default += gmm_default(name, x, k, r, inits, args.repeats)
        out(f"  gmm {name} done, load {os.getloadavg()[0]:.2f}")
    return ["## GMM, full covariance: default fits (each library's init and stopping, "
            "tol 1e-3, max_iter 100)", "", *DEFAULT_HEAD, *default, "",
            f"## GMM, full covariance: fixed work (tol=0, max_iter {ITERS[0]} vs {ITERS[1]})",
            "", *FIXED_HEAD, *fixed, ""]


def part_diag(args, out):
    rows = []
    for name, x, k, r, peer_r in gmm_cases(args.quick)[:2]:
        rows += gmm_fixed(name, x, k, r, peer_r, "diag", args.repeats)[0]
        out(f"  diag {name} done, load {os.getloadavg()[0]:.2f}")
    return [f"## GMM, diagonal covariance: fixed work (tol=0, max_iter {ITERS[0]} vs {ITERS[1]})",
            "", *FIXED_HEAD, *rows, ""]


# ---------------------------------------------------------------- K-Means

class KMOut(NamedTuple):
    centroids: Any
    n_iter: str
    n_min: int   # fewest iterations known to have run (sklearn: its best restart's)


def jaxmix_km(x, k, r, seed=0, **kw):
    def fit():
        res = jax.block_until_ready(jaxmix.fit_kmeans(seed, x, k, n_restarts=r, **kw))
        b = int(res.best)
        return KMOut(np.asarray(res.params.centroids[b]),
                     f"{int(res.n_iter[b])} ({int(np.max(res.n_iter))})", int(np.min(res.n_iter)))
    return fit


def sklearn_km(cls, x, k, r, seed=0, **kw):
    def fit():
        with quiet():
            km = cls(k, n_init=r, random_state=seed, **kw).fit(x)
        return KMOut(np.asarray(km.cluster_centers_), str(km.n_iter_), int(km.n_iter_))
    return fit


def faiss_km(x, k, r, niter=None):
    """faiss's defaults, or ``niter`` iterations on every point (no subsample)."""
    kw = {} if niter is None else dict(niter=niter, max_points_per_centroid=len(x))
    xc = np.ascontiguousarray(x, np.float32)

    def fit():
        km = faiss.Kmeans(x.shape[1], k, nredo=r, seed=0, **kw)
        km.train(xc)
        used = min(len(x), km.cp.max_points_per_centroid * k)
        return KMOut(km.centroids.copy(),
                     f"{km.cp.niter}" + (f" on {used} points" if used < len(x) else ""), km.cp.niter)
    return fit


def km_runs(x, k, r, setting):
    kw = {} if setting == "default" else dict(tol=0.0, max_iter=setting)
    jm = jaxmix_km(x, k, r, **kw)
    runs = [Run("jaxmix", setting, jm, jm), Run("sklearn", setting, sklearn_km(KMeans, x, k, r, **kw))]
    if skx is not None:
        runs.append(Run("sklearnex", setting, sklearn_km(skx.KMeans, x, k, r, **kw)))
    if faiss is not None:
        runs.append(Run("faiss", setting, faiss_km(x, k, r, None if setting == "default" else setting)))
    return runs


def km_rows(name, x, res, r):
    x64 = x.astype(np.float64)
    inertia = {lib: inertia64(x64, res[lib, ITERS[1]]["out"].centroids) for lib, s in res
               if s == ITERS[1] and res[lib, s]["out"] is not None}
    inertia_d = {lib: inertia64(x64, res[lib, "default"]["out"].centroids) for lib, s in res
                 if s == "default" and res[lib, s]["out"] is not None}
    best = min(inertia_d.values())
    per = {lib: per_iteration(res, lib, r) for lib in inertia}
    default, fixed = [], []
    for lib in dict.fromkeys(lib for lib, _ in res):
        m, f = res[lib, "default"], res[lib, ITERS[1]]
        default.append(f"| {name} | {lib} | " + (m["error"] or (
            f"{m['median']:.3f} | {m['median'] / res['jaxmix', 'default']['median']:.2f} | "
            f"{_num(m['compile'], '.2f')} | {m['out'].n_iter} | {inertia_d[lib]:.6g} | "
            f"{inertia_d[lib] / best - 1:+.2e}")) + " |")
        fixed.append(f"| {name} | {lib} | " + (f["error"] or (
            f"{_per(per, lib)} | {f['out'].n_iter}"
            + (" - stopped early: unequal work" if f["out"].n_min < ITERS[1] else "")
            + f" | {inertia[lib]:.6g}")) + " |")
    return default, fixed


def part_kmeans(args, out):
    n = 20_000 if args.quick else 200_000
    cases = [("overlapping blobs", overlapping_blobs(n), 64, 8),
             ("digits (64 px)", load_digits().data.astype(np.float32), 10, 8)]
    default, fixed = [], []
    for name, x, k, r in cases:
        runs = [rn for s in ("default", *ITERS) for rn in km_runs(x, k, r, s)]
        d_rows, f_rows = km_rows(name, x, measure(runs, args.repeats), r)
        default, fixed = default + d_rows, fixed + f_rows
        out(f"  kmeans {name} done, load {os.getloadavg()[0]:.2f}")
    skipped = [(lib, why) for lib, why in (("sklearnex", SKX_MISSING), ("faiss", FAISS_MISSING)) if why]
    default += [row for name, *_ in cases for row in _skip_rows(name, skipped)]
    return ["## K-Means: default fits", "",
            "| data | library | whole fit, s (warm) | x jaxmix's | compile, s | iterations best (max) | "
            "inertia, float64 | vs best |", "|---|---|---|---|---|---|---|---|", *default, "",
            f"## K-Means: fixed work (tol=0, max_iter {ITERS[0]} vs {ITERS[1]})", "",
            f"| data | library | ms per restart-iteration | x jaxmix's | iterations at {ITERS[1]} | "
            "inertia, float64 |", "|---|---|---|---|---|---|", *fixed, ""]


def part_kmeans_seeds(args, out):
    """Best-of-R inertia of jaxmix and sklearn (sklearnex where installed)
    on the overlapping blobs for several seeds: one seed's best of 8 moves by
    about 1% with the seed, so a single seed cannot say which is better."""
    n, seeds = (20_000, 2) if args.quick else (200_000, 5)
    x, k, r = overlapping_blobs(n), 64, 8
    x64 = x.astype(np.float64)
    libs = [("jaxmix", lambda s: jaxmix_km(x, k, r, seed=s)),
            ("sklearn", lambda s: sklearn_km(KMeans, x, k, r, seed=s))]
    if skx is not None:
        libs.append(("sklearnex", lambda s: sklearn_km(skx.KMeans, x, k, r, seed=s)))
    got = {(lib, s): inertia64(x64, make(s)().centroids) for s in range(seeds)
           for lib, make in libs}
    out(f"  kmeans seeds done, load {os.getloadavg()[0]:.2f}")
    rows = []
    for lib, _ in libs:
        rel = np.array([got[lib, s] / got["sklearn", s] - 1 for s in range(seeds)])
        rows.append(f"| {lib} | " + " | ".join(f"{v:+.2e}" for v in rel)
                    + f" | {np.median(rel):+.2e} | {int(np.sum(rel < -1e-6))} / "
                    f"{int(np.sum(np.abs(rel) <= 1e-6))} / {int(np.sum(rel > 1e-6))} |")
    return [f"## K-Means: best-of-{r} inertia over {seeds} seeds (overlapping blobs, n={n})", "",
            "Relative to scikit-learn's inertia with the same seed (`fit_kmeans(seed, ...)`, "
            "`KMeans(random_state=seed)`; float64 sums). Below 0: lower (better) inertia.", "",
            "| library | " + " | ".join(f"seed {s}" for s in range(seeds))
            + " | median | better / equal / worse |",
            "|---|" + "---|" * (seeds + 2), *rows, ""]


# ---------------------------------------------------------------- DBSCAN

def db_fit(lib, x, eps, ms):
    if lib == "jaxmix":
        def fit():
            res = jax.block_until_ready(jaxmix.fit_dbscan(x, eps, ms))
            return np.asarray(res.labels), np.asarray(res.core, bool)
        return fit
    cls = DBSCAN if lib == "sklearn" else skx.DBSCAN

    def fit():
        db = cls(eps=eps, min_samples=ms).fit(x)
        core = np.zeros(len(x), bool)
        core[db.core_sample_indices_] = True
        return db.labels_, core
    return fit


def db_rows(name, res):
    ref_labels, ref_core = res["sklearn", name]["out"]
    rows = []
    for (lib, _), m in res.items():
        if m["error"]:
            rows.append(f"| {name} | {lib} | {m['error']} | | | | | | |")
            continue
        labels, core = m["out"]
        same = (adjusted_rand_score(ref_labels, labels) == 1.0, np.array_equal(core, ref_core),
                np.array_equal(labels == -1, ref_labels == -1))
        rows.append(f"| {name} | {lib} | {m['median']:.3f} | "
                    f"{m['median'] / res['jaxmix', name]['median']:.2f} | {_num(m['compile'], '.2f')} | "
                    f"{labels.max() + 1} | {core.sum()} | " + " | ".join("yes" if s else "NO" for s in same) + " |")
    return rows


def part_dbscan(args, out):
    n = 4_000 if args.quick else 20_000
    cases = [("moons d=2, eps=0.05", make_moons(n, noise=0.05, random_state=0)[0].astype(np.float32), 0.05, 5),
             ("blobs+noise d=16, eps=4", dbscan_data("blobs", n, 16), 4.0, 10)]
    rows = []
    for name, x, eps, ms in cases:
        libs = ["jaxmix", "sklearn"] + (["sklearnex"] if skx is not None else [])
        runs = [Run(lib, name, db_fit(lib, x, eps, ms), db_fit(lib, x, eps, ms) if lib == "jaxmix" else None)
                for lib in libs]
        rows += db_rows(name, measure(runs, args.repeats))
        if skx is None:
            rows += _skip_rows(name, [("sklearnex", SKX_MISSING)])
        out(f"  dbscan {name} done, load {os.getloadavg()[0]:.2f}")
    return [f"## DBSCAN, n={n}", "",
            "| data | library | fit, s (warm) | x jaxmix's | compile, s | clusters | core samples | "
            "ARI vs sklearn = 1 | same cores | same noise |", "|---|---|---|---|---|---|---|---|---|---|",
            *rows, ""]


# ---------------------------------------------------------------- report

def versions():
    names = ["jax", "jaxlib", "numpy", "scipy", "scikit-learn", "threadpoolctl", "gmmx",
             "faiss-cpu", "scikit-learn-intelex"]
    got = []
    for name in names:
        try:
            got.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            got.append(f"{name} not installed")
    return f"jaxmix {jaxmix.__version__}, python {sys.version.split()[0]}, " + ", ".join(got)


def revision():
    """The commit measured, and whether jaxmix/ had uncommitted changes."""
    def git(*cmd):
        return subprocess.run(["git", *cmd], cwd=HERE, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--", "../jaxmix")
    except (OSError, subprocess.SubprocessError):
        return "commit unknown (git not available)"
    return f"commit {head or 'unknown'}" + (", jaxmix/ with uncommitted changes" if dirty else "")


def threads():
    pools = ("threadpoolctl not installed" if threadpool_info is None else ", ".join(
        f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info()))
    return (f"{os.cpu_count()} CPU cores; XLA CPU devices {jax.devices()}; thread pools at start "
            f"(default, used for sklearn/sklearnex/faiss): {pools}")


NOTES = f"""\
Notes:

* `x jaxmix's`: the library's time divided by jaxmix's in the same table and
  data (above 1: jaxmix is faster). Times are medians of the repeats,
  libraries interleaved; per restart-iteration times are within-repeat
  differences `(T({ITERS[1]}) - T({ITERS[0]})) / {ITERS[1] - ITERS[0]} / restarts`.
* Everyone gets the same float32 array. scikit-learn's GaussianMixture, KMeans
  and DBSCAN compute in float32 when given float32 (it keeps the input's
  dtype); sklearnex and faiss compute in float32; gmmx in JAX's default
  float32.
* Threads: scikit-learn, sklearnex and faiss use their defaults (all cores:
  OpenBLAS / OpenMP / TBB); the `sklearn, 1 BLAS thread` rows limit
  scikit-learn's BLAS with threadpoolctl. XLA uses all cores.
* GMM `init`: jaxmix: a warm fit with `max_iter=0` (k-means initialisation
  of all R restarts plus set-up); sklearn: `max_iter=1` minus one
  iteration, measured with the fixed variant's restarts and scaled to R;
  gmmx: the `from_k_means` calls of the default fit (sklearn KMeans with
  n_init=10 per restart).
* GMM `own objective - f64`: each library's returned objective of its best
  restart (jaxmix `objective`, sklearn `lower_bound_`, gmmx
  `log_likelihood`), all evaluated before the final M-step, minus the shared
  float64 mean log-likelihood of the returned parameters: it includes the
  last M-step's gain. `jaxmix f32 score - f64` is jaxmix's float32
  `gmm.mean_log_likelihood` of the same parameters minus the float64 value:
  float32 error alone.
* GMM fixed on `blobs`: sklearn and gmmx time {PEER_R} restarts (their cost is
  linear in restarts: they run one after another), jaxmix all 16 batched.
  gmmx's fixed runs start from cached `from_k_means` starts (initialisation
  cancels in the difference anyway).
* K-Means `iterations`: sklearn and sklearnex report the best restart's
  `n_iter_` and stop at tol=0 when no label changes; jaxmix stops a restart
  when its centroids stop moving; faiss always runs `niter`. A row marked
  `stopped early` did less than the fixed work, so its per restart-iteration
  time is not comparable. faiss's default
  trains on a subsample (256 points per centroid) and starts from random
  points; its fixed rows use every point.
* DBSCAN: sklearnex and sklearn are compared with sklearn on the same float32
  array; `same noise`: the same samples labelled -1.
"""

NOT_COVERED = """\
Not covered: GPUs or any accelerator (this is a CPU-only run), float64
computation, tied and spherical covariances, streamed or sharded data,
mini-batch K-Means, DBSCAN memory and larger n (see bench_dbscan.py), a
vmapped gmmx (gmmx has no restart API; the loop is what its API offers),
faiss on GPU, cuML."""


def write_atomically(path, text):
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


PARTS = {"gmm": part_gmm, "diag": part_diag, "kmeans": part_kmeans,
         "kmeans-seeds": part_kmeans_seeds, "dbscan": part_dbscan}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--part", nargs="+", choices=list(PARTS), default=list(PARTS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small n, 1 repeat (development)")
    ap.add_argument("--out", default=None,
                    help="markdown report (default results/bench_peers.md; --quick: none)")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats = 1
    out_path = args.out or (None if args.quick else HERE / "results" / "bench_peers.md")

    def say(line):
        print(line, flush=True)

    load0 = os.getloadavg()
    head = ["# Whole fits: jaxmix against scikit-learn, sklearnex, gmmx, faiss", "",
            f"`python experiments/bench_peers.py {' '.join(argv if argv is not None else sys.argv[1:])}`, "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
            f"{'QUICK (small n), ' if args.quick else ''}median of {args.repeats}.", "",
            f"* {versions()}, {revision()}", f"* {threads()}",
            "* peers: " + ", ".join(f"{p}: {why or 'ok'}" for p, why in
                                    (("gmmx", GMMX_MISSING), ("faiss", FAISS_MISSING),
                                     ("sklearnex", SKX_MISSING))),
            f"* load average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in load0)}", ""]
    for line in head:
        say(line)
    body = []
    for part in args.part:
        say(f"{part} ...")
        lines = PARTS[part](args, say)
        body += lines
        for line in lines:
            say(line)
    load1 = os.getloadavg()
    tail = [f"Load average (1, 5, 15 min) after: {', '.join(f'{v:.2f}' for v in load1)}", "",
            "sklearnex said: " + ("; ".join(sorted(SKX_LOG.seen)) or "nothing"), "",
            NOTES, NOT_COVERED, ""]
    for line in tail:
        say(line)
    if out_path is not None:
        write_atomically(out_path, "\n".join(head + body + tail))
        say(f"wrote {out_path}")


if __name__ == "__main__":
    main()
