"""scikit-learn's own estimator suites, timed: against :mod:`jaxmix.sklearn`
(the imports switched, as ``tests/sklearn/upstream.py`` rewrites them) and
against scikit-learn itself, the same tests in the same kind of process.

The goal of issue 17: each suite within 3x of scikit-learn's own run. Each
run is a fresh ``pytest`` process on one suite (the tests that
``upstream.EXCLUDED`` sets aside deselected in both), JAX in its default
float32 mode, jaxmix's compilation cache off, so compiling is counted as a
new user's first run sees it. The slowest jaxmix tests are listed.

    python experiments/bench_upstream.py                      # all three suites
    python experiments/bench_upstream.py --suites dbscan
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "sklearn"))
import upstream  # noqa: E402  (the suites' rewriting and exclusions, shared with the tests)

RESULTS = REPO / "experiments" / "results" / "bench_upstream.md"


def _run(path: pathlib.Path, deselect: list, folder: pathlib.Path) -> tuple:
    """``(wall seconds, summary line, slowest tests)`` of one pytest process."""
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
            "sklearn.conftest", "--rootdir", str(folder), "--durations=5", path.name]
    args += sum((["--deselect", f"{path.name}::{name}"] for name in deselect), [])
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=folder, env=upstream._env(False), capture_output=True,
                          text=True, timeout=7200)
    wall = time.perf_counter() - start
    lines = proc.stdout.splitlines()
    summary = next((ln for ln in reversed(lines)
                    if " in " in ln and ("passed" in ln or "failed" in ln)), "?")
    slowest = [ln.split(path.name + "::")[-1] + " " + ln.split()[0]
               for ln in lines if ln.split() and ln.split()[0].endswith("s")
               and " call " in ln][:5]
    return wall, summary.strip("= "), slowest


def bench(suite: str, folder: pathlib.Path) -> dict:
    ours = upstream.write_suite(suite, folder)
    theirs = folder / f"test_sklearn_{suite}.py"
    theirs.write_text((upstream.SKLEARN / upstream.SUITES[suite][0]).read_text())
    names = upstream._collect([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "-p", "sklearn.conftest", "--rootdir", str(folder),
                               ours.name], folder, False)
    drop = [n for n in names if upstream._excluded(suite, n)]
    sk_wall, sk_summary, _ = _run(theirs, drop, folder)
    jm_wall, jm_summary, slowest = _run(ours, drop, folder)
    return {"suite": suite, "tests": len(names) - len(drop), "jaxmix": jm_wall,
            "sklearn": sk_wall, "jm_summary": jm_summary, "sk_summary": sk_summary,
            "slowest": slowest}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="+", default=sorted(upstream.SUITES),
                        choices=sorted(upstream.SUITES))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for suite in args.suites:
            rows.append(bench(suite, pathlib.Path(tmp)))
            print(rows[-1], flush=True)
    import jax
    import sklearn
    lines = ["# scikit-learn's estimator suites: jaxmix.sklearn against scikit-learn", "",
             "`python experiments/bench_upstream.py`", "",
             f"jax {jax.__version__}, scikit-learn {sklearn.__version__}, {os.cpu_count()} "
             f"CPUs; load average before: {' '.join(f'{v:.2f}' for v in load_before)}, "
             f"after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", "",
             "Goal (issue 17): each suite within 3x of scikit-learn's own run.", "",
             "| suite | tests | jaxmix s | scikit-learn s | ratio | goal | jaxmix outcome |"
             " scikit-learn outcome |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r["jaxmix"] / r["sklearn"]
        lines.append(f"| {r['suite']} | {r['tests']} | {r['jaxmix']:.0f} | {r['sklearn']:.0f} "
                     f"| {ratio:.1f}x | {'met' if ratio <= 3 else '**not met**'} "
                     f"| {r['jm_summary']} | {r['sk_summary']} |")
    lines += ["", "Each run: one fresh pytest process (interpreter start and imports "
              "included), JAX in float32 mode, jaxmix's compilation cache off; tests set "
              "aside by `tests/sklearn/upstream.py`'s EXCLUDED deselected in both.", "",
              "Slowest jaxmix tests:", ""]
    lines += [f"* {r['suite']}: " + "; ".join(r["slowest"]) for r in rows]
    text = "\n".join(lines) + "\n"
    from jaxmix.atomic import atomic_write
    with atomic_write(RESULTS, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
