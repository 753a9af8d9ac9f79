"""A long-running process survives (issue 14, deliverable 4): one process runs
many fits with varying k, restarts, max_iter, covariance type and method, and
stays within a bounded number of compiled programs and bounded memory.

The fits run in a subprocess (this file run as a script), so that resident
memory (``VmRSS``) and the number of memory mappings (lines of
``/proc/self/maps``; the kernel aborts XLA with "LLVM ERROR: Unable to
allocate section memory" near ``vm.max_map_count``, 65,530 by default) are
those of that process alone, and compile counts start from zero.

The schedule: a *cover* phase fits one representative of every shape bucket
of every (method, covariance type) space first, then random draws from the
same spaces fill the run. The first half therefore compiles every program the
run needs; the second half changes k, R, n and max_iter only inside buckets
already compiled, so it must compile (almost) nothing, and must not keep
growing memory or mappings.

    python -m pytest -q -m slow tests/test_long_running.py   # 1,000 fits, ~5-8 min on 2 cores
    python tests/test_long_running.py 200                    # the child alone, prints JSON
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve()
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc/self/status and /proc/self/maps")

# (method, covariance_type, k values, R values, weight of random draws).
# R and k ranges are narrower for the rarer spaces to keep the number of
# programs (each 2-6 s to compile on a loaded 2-core CPU) near 55.
SPACES = (
    ("em", "full", range(1, 13), range(1, 11), 30),
    ("em", "diag", range(1, 9), range(1, 11), 10),
    ("em", "tied", range(1, 9), range(1, 4), 5),
    ("em", "spherical", range(1, 9), range(1, 4), 5),
    ("map", "full", range(1, 13), range(1, 5), 15),
    ("map", "diag", range(1, 9), range(1, 3), 5),
    ("kmeans", None, range(1, 13), range(1, 11), 25),
    ("adam", "full", range(1, 9), (1, 2), 5),
)
# the quick variant: the first k and R buckets only (one program each)
QUICK_SPACES = (
    ("em", "full", range(1, 9), (1,), 2),
    ("kmeans", None, range(1, 9), (1,), 1),
)
N_VALUES = (200, 230, 256)  # one sample bucket (256): n is padded with zero weights
MAX_ITER = range(5, 101)


def schedule(n_fits: int, spaces=SPACES, seed: int = 0) -> list:
    """Cover every bucket of every space once, then random draws."""
    import numpy as np

    from jaxmix.fit.buckets import component_bucket, restart_bucket

    rng = np.random.default_rng(seed)
    fits = []
    for method, cov, ks, rs, _ in spaces:
        exact = method == "adam"
        kb = {} if not exact else {k: [k] for k in ks}
        rb = {} if not exact else {r: [r] for r in rs}
        if not exact:
            for k in ks:
                kb.setdefault(component_bucket(k), []).append(k)
            for r in rs:
                rb.setdefault(restart_bucket(r), []).append(r)
        for kvals in kb.values():
            for rvals in rb.values():
                fits.append(dict(method=method, cov=cov, k=int(rng.choice(kvals)),
                                 r=int(rng.choice(rvals))))
    weights = np.array([s[4] for s in spaces], float)
    while len(fits) < n_fits:
        method, cov, ks, rs, _ = spaces[rng.choice(len(spaces), p=weights / weights.sum())]
        fits.append(dict(method=method, cov=cov, k=int(rng.choice(list(ks))),
                         r=int(rng.choice(list(rs)))))
    for fit in fits:
        fit["max_iter"] = int(rng.choice(MAX_ITER))
        fit["n"] = int(rng.choice(N_VALUES))
    return fits[:n_fits]


def _memory():
    with open("/proc/self/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    with open("/proc/self/maps") as f:
        maps = sum(1 for _ in f)
    return rss_kb / 1024.0, maps


def _max_map_count() -> int:
    try:
        return int(pathlib.Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return 65530  # the kernel's default


def child(n_fits: int, spaces: str = "all") -> dict:
    """Run the schedule in this process; returns counts at checkpoints."""
    import gc
    import time

    import jax.monitoring
    import numpy as np
    import optax

    import jaxmix

    compiles = [0]

    def on_event(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles[0] += 1

    jax.monitoring.register_event_duration_secs_listener(on_event)
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0], [0, 0, 6]], np.float32)
    data = (centres[np.arange(256) % 4] + rng.normal(size=(256, 3))).astype(np.float32)
    adam = optax.adam(0.05)  # one instance: the optimizer is a static argument
    fits = schedule(n_fits, QUICK_SPACES if spaces == "quick" else SPACES)
    checkpoints = sorted({max(1, len(fits) // 4), len(fits) // 2, 3 * len(fits) // 4, len(fits)})
    out = dict(n_fits=len(fits), checkpoints=[], per_method={})
    start = time.perf_counter()
    compiles_per_fit = []
    for i, f in enumerate(fits):
        x = data[:f["n"]]
        before = compiles[0]
        if f["method"] in ("em", "map"):
            res = jaxmix.fit_gmm(i, x, f["k"], covariance_type=f["cov"], n_restarts=f["r"],
                                 max_iter=f["max_iter"],
                                 prior="default" if f["method"] == "map" else None)
        elif f["method"] == "kmeans":
            res = jaxmix.fit_kmeans(i, x, f["k"], n_restarts=f["r"], max_iter=f["max_iter"])
        else:
            res = jaxmix.fit_gradient(i, x, f["k"], adam, covariance_type=f["cov"],
                                      n_restarts=f["r"], max_iter=f["max_iter"])
        objective = np.asarray(res.objective)[int(res.best)]
        if not np.isfinite(objective):
            raise AssertionError(f"fit {i} {f}: best objective {objective}")
        compiles_per_fit.append(compiles[0] - before)
        out["per_method"][f["method"]] = out["per_method"].get(f["method"], 0) + 1
        if i + 1 in checkpoints:
            gc.collect()
            rss, maps = _memory()
            out["checkpoints"].append(dict(fits=i + 1, compiles=compiles[0], rss_mb=rss,
                                           maps=maps, seconds=time.perf_counter() - start))
            print(json.dumps(out["checkpoints"][-1]), file=sys.stderr, flush=True)
    half = len(fits) // 2
    out["late_compiles"] = [dict(fit=i, compiles=c, **fits[i])
                            for i, c in enumerate(compiles_per_fit) if i >= half and c]
    return out


def run_child(n_fits: int, spaces: str = "all", timeout: float = 900) -> dict:
    env = dict(os.environ, JAXMIX_COMPILATION_CACHE="off", JAX_ENABLE_X64="0")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    proc = subprocess.run([sys.executable, str(HERE), str(n_fits), spaces], capture_output=True,
                          text=True, env=env, timeout=timeout)
    print(proc.stderr[-3000:])  # the checkpoints, in the test log
    assert proc.returncode == 0, f"child died (rc {proc.returncode}):\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.splitlines()[-1])


def check(out: dict, n_fits: int, max_late_compiles: int, rss_margin_mb: float,
          maps_margin: int):
    assert out["n_fits"] == n_fits
    mid = next(c for c in out["checkpoints"] if c["fits"] == n_fits // 2)
    end = out["checkpoints"][-1]
    late = end["compiles"] - mid["compiles"]
    print(f"fits {n_fits} {out['per_method']}; compiles at midpoint {mid['compiles']}, at end "
          f"{end['compiles']} (+{late}); RSS {mid['rss_mb']:.0f} -> {end['rss_mb']:.0f} MB; "
          f"maps {mid['maps']} -> {end['maps']} (vm.max_map_count {_max_map_count()}); "
          f"{end['seconds']:.0f} s")
    assert late <= max_late_compiles, f"the second half compiled {late}: {out['late_compiles']}"
    assert end["rss_mb"] - mid["rss_mb"] <= rss_margin_mb, out["checkpoints"]
    assert end["maps"] - mid["maps"] <= maps_margin, out["checkpoints"]
    limit = _max_map_count()
    assert end["maps"] <= 0.8 * limit, f"{end['maps']} mappings, vm.max_map_count {limit}"


@linux_only
@pytest.mark.slow
def test_thousand_fits_bounded_programs_and_memory():
    # Margins, from a measured run of this schedule (2-core CPU shared with
    # other work, jax 0.10.2): the cover phase compiles all 55 programs (82
    # backend compiles with the eager helpers) in the first ~250 s; at the
    # midpoint the process holds ~1,770 MB RSS and ~35,300 mappings (each
    # compiled program adds 400-870 mappings and 5-70 MB, measured per fit);
    # the second half (500 warm fits, ~4 s, no new program) moved RSS by 2 MB
    # and mappings by 0. 64 MB and 200 mappings leave room for allocator
    # noise and still fail one stray compiled program (>= 400 mappings) or a
    # leak of 0.13 MB per fit. "A few" late compiles (3): eager helpers a late
    # draw might meet first. The absolute bound (80% of vm.max_map_count) is
    # the abort the issue saw; this run sits at ~54% of the default 65,530.
    out = run_child(1000)
    check(out, 1000, max_late_compiles=3, rss_margin_mb=64, maps_margin=200)


@linux_only
def test_sixty_fits_one_program_each():
    # Quick variant (~5 s): EM (full) and K-Means only, k = 1..8 and R = 1 (one
    # bucket each), so the first fits compile the two programs and the rest reuse
    # them; measured: 4 compiles, RSS +0.3 MB and mappings +0 over the second half.
    out = run_child(60, "quick")
    check(out, 60, max_late_compiles=0, rss_margin_mb=50, maps_margin=50)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    which = sys.argv[2] if len(sys.argv) > 2 else "all"  # or "quick"
    print(json.dumps(child(n, which)))
