"""The ``>>>`` examples in jaxmix's docstrings run and print what they show.

They run in a subprocess with JAX's defaults (float32), as a user would see
them: the test session enables x64 (conftest), which would change the printed
dtypes. Modules whose examples fit models for many seconds run in the slow set.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import jaxmix

SLOW = {"dbscan.clusters", "data.sharding", "gmm.gradient", "fit.gmm", "fit.kmeans",
        "kmeans.minibatch", "fit.select", "data.stream", "fit.online", "fit.gradient",
        "families.online", "families.select", "fit.progress", "gmm.frozen",
        # 1.5-3 s each in one process (2026-12-03); the default run's time budget
        "sklearn.gmm", "families.gradient", "dbscan.prediction", "fit.timing",
        "sklearn.dbscan", "gmm.priors", "fit.minibatch"}
SKIP = {"__main__"}  # the command line is tested end to end in test_cli.py
MODULES = sorted(m.name.removeprefix("jaxmix.") for m in
                 pkgutil.walk_packages(jaxmix.__path__, "jaxmix.")
                 if m.name.removeprefix("jaxmix.") not in SKIP
                 and not m.name.startswith("jaxmix.cli"))

SCRIPT = """
import doctest, importlib, sys
failed = attempted = 0
for name in sys.argv[1:]:
    r = doctest.testmod(importlib.import_module("jaxmix." + name),
                        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    failed, attempted = failed + r.failed, attempted + r.attempted
print("attempted", attempted)
sys.exit(1 if failed else 0)
"""


def run_doctests(names):
    out = subprocess.run([sys.executable, "-c", SCRIPT, *names], capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > 0, "no examples found: the test would prove nothing"


def test_docstring_examples_fast_modules():
    run_doctests([m for m in MODULES if m not in SLOW])


@pytest.mark.slow
def test_docstring_examples_slow_modules():
    run_doctests(sorted(SLOW & set(MODULES)))
