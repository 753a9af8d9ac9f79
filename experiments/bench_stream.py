"""Out-of-core EM: fit a mixture from a memory-mapped float32 .npy larger than
what one would like to hold in memory, and measure peak memory and time per pass.

    python experiments/bench_stream.py                        # n=2e7, d=16, k=16 (1.28 GB)
    python experiments/bench_stream.py --n 2000000 --out -    # quick look, print only

Steps (each fit in a fresh subprocess, so that its peak memory is its own):

1. write (in a child process) ``n x d`` float32 samples of a ``k``-component full-covariance
   mixture to a temporary ``.npy`` in blocks (``np.lib.format.open_memmap``),
   fsync it and evict it from the page cache (``posix_fadvise(DONTNEED)``),
   so that the first (validating) pass reads from the disk;
2. ``fit_gmm`` from the path (``k`` full covariances, ``--iters`` EM
   iterations at ``tol=0``): wall time of the validating pass, the
   initialiser (``init_size`` rows), the compilation, and of every EM pass
   (timed on the host between the reads of chunk 0 of consecutive passes);
   peak resident memory (``VmHWM``, ``ru_maxrss``) and, sampled every 20 ms,
   its anonymous (process) and file-backed (mapped file pages) parts;
3. context on the first ``--context-n`` rows: in-memory ``fit_gmm`` per
   iteration (from the difference of two iteration counts, after warm-up)
   against ``fit_gmm`` from the path per pass on the same rows and start, and the
   largest difference between their means.

Results go to ``experiments/results/bench_stream.md`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "bench_stream.md"


# ---------------------------------------------------------------------------
# Data


def mixture(seed: int, k: int, d: int):
    """Weights, means and covariance factors of a well-separated mixture."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, 5.0))
    means = rng.normal(scale=6.0, size=(k, d))
    factors = np.stack([np.linalg.qr(rng.normal(size=(d, d)))[0]
                        * rng.uniform(0.3, 1.5, size=d) for _ in range(k)])
    return weights, means, factors


def write_data(path: Path, n: int, d: int, k: int, seed: int, block: int = 1_000_000):
    """Write the samples block by block; evict the file from the page cache."""
    weights, means, factors = mixture(seed, k, d)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(seed + 1)
    for start in range(0, n, block):
        m = min(block, n - start)
        labels = rng.choice(k, size=m, p=weights)
        z = rng.normal(size=(m, d))
        for j in range(k):
            rows = labels == j
            z[rows] = means[j] + z[rows] @ factors[j].T
        out[start:start + m] = z
    out.flush()
    del out
    evict(path)


def evict(path: Path):
    """Drop the file's clean pages from the page cache (no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# Measurements (run in a child process)


class MemorySampler(threading.Thread):
    """Peak of /proc/self/status RssAnon / RssFile, sampled every 20 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.02):
            for key, value in status().items():
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], value)


def status() -> dict:
    """/proc/self/status memory lines in MiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key.startswith(("Vm", "Rss")):
                out[key] = int(rest.split()[0]) / 1024
    return out


def start_params(k, d, seed):
    """Equal weights, means drawn near the true ones, unit covariances."""
    from jaxmix import GMMParams
    _, means, _ = mixture(seed, k, d)
    rng = np.random.default_rng(seed + 2)
    return GMMParams(np.full(k, 1.0 / k), means + rng.normal(size=means.shape),
                     np.broadcast_to(np.eye(d), (k, d, d)).copy(), "full")


def child_fit(args) -> dict:
    """Streaming fit from the path with per-phase timings and peak memory."""
    import jax

    import jaxmix.data.stream as stream
    import jaxmix.fit.gmm as gmm_fit
    import jaxmix.fit.inputs as inputs
    from jaxmix.data.source import read_chunk

    sampler = MemorySampler()
    sampler.start()
    marks = {}

    def timed(name, fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            marks[name + " start"] = t
            out = fn(*a, **kw)
            if name != "EM":   # EM runs asynchronously: timed by its passes
                jax.block_until_ready(out)
            marks[name] = marks.get(name, 0.0) + time.perf_counter() - t
            return out
        return wrapper

    pass_starts = []

    def read(src, info, i):
        if i == 0:
            pass_starts.append(time.perf_counter())
        return read_chunk(src, info, i)

    inputs.survey = timed("validating pass", inputs.survey)
    inputs.sample_rows = timed("init sample", inputs.sample_rows)
    stream.read_chunk = read
    baseline = status()["VmRSS"]
    kw = dict(covariance_type="full", tol=0.0, max_iter=args.iters)
    if args.start:
        kw["init_params"] = start_params(args.k, args.d, args.seed)
    t0 = time.perf_counter()
    gmm_fit.fit_rows = timed("EM", gmm_fit.fit_rows)   # initialiser and EM: one compiled call
    result = gmm_fit.fit_gmm(0, args.path, args.k, chunk_size=args.chunk, **kw)
    jax.block_until_ready(result)
    end = time.perf_counter()
    sampler.stop.set()
    sampler.join()
    passes = np.diff(pass_starts + [end]).tolist()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"total_s": end - t0, "marks": marks, "passes_s": passes,
            "compile_s": pass_starts[0] - marks["EM start"], "baseline_rss_mib": baseline,
            "vmhwm_mib": status()["VmHWM"], "ru_maxrss_mib": usage.ru_maxrss / 1024,
            "peak_anon_mib": sampler.peak["RssAnon"], "peak_file_mib": sampler.peak["RssFile"],
            "objective": float(result.objective[0]),
            "means": np.asarray(result.best_params.means).tolist(),
            "n_iter": int(result.n_iter[0]), "jax": jax.__version__}


def context_path(path) -> Path:
    return Path(path).with_name("context.npy")


def child_context(args) -> dict:
    """In-memory fit_gmm per iteration on the first rows, against the stream."""
    import jax

    from jaxmix import fit_gmm

    def fit_gmm_stream(key, path, k, **kw):
        return fit_gmm(key, str(path), k, **kw)

    x = np.load(args.path)
    p0 = start_params(args.k, args.d, args.seed)
    kw = dict(covariance_type="full", tol=0.0, init_params=p0, chunk_size=args.chunk)

    def seconds(fit, data, iters):
        start = time.perf_counter()
        jax.block_until_ready(fit(0, data, args.k, max_iter=iters, **kw))
        return time.perf_counter() - start

    few, many = 1, 1 + args.context_iters
    sub = args.path
    runs = {"in_memory": (fit_gmm, x), "stream": (fit_gmm_stream, sub)}
    for fit, data in runs.values():           # compile both iteration counts
        seconds(fit, data, few), seconds(fit, data, many)
    per_iter = {name: [] for name in runs}
    for _ in range(args.repeats):             # interleaved: both see the same load
        for name, (fit, data) in runs.items():
            per_iter[name].append((seconds(fit, data, many) - seconds(fit, data, few))
                                  / (many - few))
    out = {"n": len(x), "ratios": [s / m for s, m in zip(per_iter["stream"],
                                                        per_iter["in_memory"])]}
    for name, values in per_iter.items():
        out[name + "_per_iter_s"] = float(np.median(values))
    a = fit_gmm(0, x, args.k, max_iter=many, **kw)
    b = fit_gmm_stream(0, str(sub), args.k, max_iter=many, **kw)
    out["max_abs_mean_diff"] = float(np.max(np.abs(np.asarray(a.best_params.means)
                                                   - np.asarray(b.best_params.means))))
    out["mean_scale"] = float(np.max(np.abs(np.asarray(a.best_params.means))))
    return out


# ---------------------------------------------------------------------------
# Driver


def run_child(mode: str, args, path: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--path", str(path)] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
        if k in ("n", "d", "k", "iters", "chunk", "seed", "context_n", "context_iters", "repeats")
        and v is not None] + (["--start"] if args.start else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-4000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def chunk_rows(args) -> int:
    from jaxmix.data.chunked import chunk_rows as rule
    from jaxmix.gmm.stats import row_elements
    return args.chunk or rule(args.n, row_elements(1, args.k, args.d))


def report(args, file_mib, write_s, fit, ctx) -> str:
    passes = fit["passes_s"]
    fit["file_mib"] = file_mib
    runs = [fit]
    if ctx:
        ctx["fit"]["file_mib"] = ctx["n"] * args.d * 4 / 2 ** 20
        runs.append(ctx["fit"])
    lines = [
        "# Streaming EM from a memory-mapped file", "",
        f"`python experiments/bench_stream.py --n {args.n} --d {args.d} --k {args.k} "
        f"--iters {args.iters}` (jax {fit['jax']}, {os.cpu_count()} CPU cores, "
        f"load average {os.getloadavg()[0]:.1f} at the end; the machine is shared).", "",
        f"Data: {args.n:,} x {args.d} float32 samples of a {args.k}-component full-covariance "
        f"mixture, a {file_mib:,.0f} MiB `.npy` written in 1M-row blocks in {write_s:.0f} s, "
        "fsynced and evicted from the page cache (`posix_fadvise(DONTNEED)`).", "",
        f"Fit: `fit_gmm(0, path, {args.k}, covariance_type='full', tol=0, "
        f"max_iter={args.iters}" + (", init_params=start" if args.start else "")
        + ")` in a fresh process; chunk size "
        + f"{chunk_rows(args):,} rows ({-(-args.n // chunk_rows(args)):,} chunks per pass"
        + (", the default `jaxmix.data.chunk_rows` rule)" if args.chunk is None else ")") + ".", "",
        "| phase | seconds |", "|---|---|",
        f"| validating pass (reads the file: page cache cold) | {fit['marks']['validating pass']:.2f} |",
        f"| initialiser sample (`init_size` rows from the file) | "
        f"{fit['marks'].get('init sample', 0):.1f} |",
        f"| initialiser (in memory, on the sample) | {fit['marks'].get('initialiser', 0):.1f} |",
        f"| compilation of the streaming EM | {fit['compile_s']:.1f} |",
        *[f"| EM pass {i + 1} | {t:.2f} |" for i, t in enumerate(passes)],
        f"| **EM time per pass (median)** | **{np.median(passes):.2f}** |",
        f"| whole fit | {fit['total_s']:.1f} |", "",
        "| memory of the fitting process (MiB) | n = " + f"{args.n:,} |" + (
            f" n = {ctx['n']:,} |" if ctx else ""), "|---|---|" + ("---|" if ctx else ""),
        *[f"| {label} | " + " | ".join(f"{r[key]:,.0f}" for r in runs) + " |"
          for label, key in (("file size", "file_mib"),
                             ("resident after importing jax, before the fit", "baseline_rss_mib"),
                             ("**peak resident (VmHWM)**", "vmhwm_mib"),
                             ("peak resident (getrusage ru_maxrss)", "ru_maxrss_mib"),
                             ("peak anonymous (process memory), sampled", "peak_anon_mib"),
                             ("peak file-backed (mapped pages incl. libraries), sampled",
                              "peak_file_mib"))], "",
        f"Peak resident memory is {fit['vmhwm_mib'] / file_mib:.0%} of the file size"
        + (f"; at n = {ctx['n']:,} ({ctx['fit']['file_mib']:.0f} MiB file) it is "
           f"{ctx['fit']['vmhwm_mib']:.0f} MiB: the peak is the JAX runtime, XLA's compiler "
           "and one chunk's intermediates, not the data" if ctx else "") + ". Pages "
        "copied out of the read-only memory map are released after every chunk "
        "(`madvise(MADV_DONTNEED)`), so mapped file pages do not accumulate in the "
        "process; they stay in the kernel's page cache, which is why the EM passes after "
        "the validating pass read from memory, not the disk (the file fits in the "
        "machine's RAM). On a machine where it does not, every pass reads the disk.", "",
    ]
    if ctx:
        lines += [
            f"Context on the first {ctx['n']:,} rows (same start, chunk size, "
            f"{args.context_iters} iterations; {args.repeats} interleaved repeats, medians). "
            "Both take the exact E-step path here (`path='auto'`: the components are too far "
            "from the data centre for the float32 GEMM path's error budget):", "",
            "| | seconds per EM iteration |", "|---|---|",
            f"| `fit_gmm` (in memory) | {ctx['in_memory_per_iter_s']:.3f} |",
            f"| `fit_gmm` (from a `.npy`, page cache warm) | "
            f"{ctx['stream_per_iter_s']:.3f} |",
            f"| ratio stream / in memory (median of the paired ratios) | "
            f"{np.median(ctx['ratios']):.2f} (each: "
            + ", ".join(f"{r:.2f}" for r in ctx["ratios"]) + ") |",
            "",
            f"Largest difference between their fitted means: {ctx['max_abs_mean_diff']:.2e} "
            f"(means up to {ctx['mean_scale']:.1f} in absolute value; float32).", "",
            f"Scaled to n = {args.n:,}, the in-memory rate is "
            f"{ctx['in_memory_per_iter_s'] * args.n / ctx['n']:.2f} s per iteration "
            "(if the data fitted in memory).", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000_000)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--iters", type=int, default=3, help="EM iterations (passes)")
    ap.add_argument("--chunk", type=int, default=None, help="rows per chunk")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", action="store_true",
                    help="start from given parameters instead of the kmeans initialiser")
    ap.add_argument("--context-n", type=int, default=1_000_000)
    ap.add_argument("--context-iters", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where to write the data (default: a temp dir)")
    ap.add_argument("--out", default=str(RESULTS), help="markdown report ('-': print only)")
    ap.add_argument("--child", choices=["write", "fit", "context"], help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child == "write":
        write_data(Path(args.path), args.n, args.d, args.k, args.seed)
        if args.context_n:
            np.save(context_path(args.path), np.load(args.path, mmap_mode="r")[:args.context_n])
            evict(context_path(args.path))
        print("{}")
        return
    if args.child:
        fn = child_fit if args.child == "fit" else child_context
        print(json.dumps(fn(args)))
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "data.npy"
        t = time.perf_counter()
        run_child("write", args, path)   # children keep this process small: ru_maxrss
        write_s = time.perf_counter() - t  # is inherited across fork and exec
        file_mib = path.stat().st_size / 2 ** 20
        fit = run_child("fit", args, path)
        ctx = None
        if args.context_n:
            ctx = run_child("context", args, context_path(path))
            ctx["fit"] = run_child("fit", args, context_path(path))
    text = report(args, file_mib, write_s, fit, ctx)
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
