"""The guides' examples work (docs/guides/*.md): each guide's ```python
blocks run in order in one namespace (tests/doc_blocks.py), its `jaxmix`
command lines parse, and the families guide's worked family is checked
against scipy.stats."""

from __future__ import annotations

import os
import pathlib
import shlex
import subprocess
import sys

import numpy as np
import pytest

from doc_blocks import command_lines, process_blocks, python_blocks, run_page
from jaxmix.cli.main import build_parser

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
GUIDES = sorted((DOCS / "guides").glob("*.md"))


_RUN: dict = {}


def guide_namespace(page: pathlib.Path) -> dict:
    """The namespace of ``page``'s python blocks, run once per test process."""
    if page not in _RUN:
        _RUN[page] = run_page(page)
    return _RUN[page]


@pytest.mark.parametrize("page", GUIDES, ids=[p.stem for p in GUIDES])
def test_guide_runs(page):
    assert python_blocks(page.read_text()), f"{page.name} has no python block to run"
    guide_namespace(page)


@pytest.mark.parametrize("page", GUIDES, ids=[p.stem for p in GUIDES])
def test_guide_blocks_compile(page):
    """Every python block is valid Python (the guides that fit for long run
    in the slow set only: tests/slow_for_time.py)."""
    for i, block in enumerate(python_blocks(page.read_text())):
        compile(block, f"{page.name}, block {i + 1}", "exec")


@pytest.mark.slow
@pytest.mark.parametrize("page", GUIDES, ids=[p.stem for p in GUIDES])
def test_guide_runs_whole_with_jax_defaults(page, tmp_path):
    """Every block but those that need several hosts, slow ones included, in a
    process of its own with JAX's defaults (float32, as a user runs them);
    caches go to a scratch folder."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("JAX_ENABLE_X64", None)
    env.pop("JAXMIX_COMPILATION_CACHE", None)
    out = subprocess.run([sys.executable, str(pathlib.Path(__file__).with_name("doc_blocks.py")),
                          "--slow", str(page)], capture_output=True, text=True, timeout=900,
                         env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]


@pytest.mark.slow
def test_blocks_for_several_processes_run_as_two_local_processes(tmp_path):
    """The scaling guide's program for several hosts, run by two processes on
    this machine (CPU collectives), each with half the seed data as its part."""
    import socket

    from jaxmix.datasets import seed_blobs
    blocks = [b for page in GUIDES for b in process_blocks(page.read_text())]
    assert blocks, "no guide shows a program for several processes"
    x = seed_blobs()
    for rank in range(2):
        np.save(tmp_path / f"part-{rank}.npy", x[rank * 625:(rank + 1) * 625])
    for block in blocks:
        with socket.socket() as s:
            s.bind(("localhost", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        env.pop("JAX_ENABLE_X64", None)
        procs = [subprocess.Popen(
            [sys.executable, "-c", f"COORDINATOR = 'localhost:{port}'\nN_PROCESSES = 2\n"
             f"RANK = {rank}\n" + block], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True) for rank in range(2)]
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]
        for proc, output in zip(procs, outputs):
            assert proc.returncode == 0, output[-4000:]


def test_the_family_written_in_the_guide_is_scipys_geometric(tmp_path):
    """The families guide's worked example (a geometric family written in full): its log-density is
    scipy.stats.geom's (shifted to start at 0), EM recovers the planted
    probabilities, BIC picks the planted k, the gradient fit reaches EM's
    objective, and its model file reads back only as the class passed."""
    from scipy import stats as st

    from jaxmix.families import fit_mixture
    from jaxmix.sklearn import MixtureModel
    ns = guide_namespace(DOCS / "guides" / "families.md")
    geo, family = ns["Geometric"], ns["Geometric"]()
    theta = np.array([[0.7, 0.2], [0.1, 0.6]])
    x = np.array([[0.0, 3.0], [5.0, 1.0], [2.0, 0.0]])
    want = np.stack([st.geom.logpmf(x + 1, t).sum(axis=1) for t in theta], axis=1)
    np.testing.assert_allclose(family.log_prob(theta, x), want, rtol=1e-10)
    assert ns["geo"].chosen_k("bic") == 2
    em = fit_mixture(0, ns["counts"], 2, family, n_restarts=4)
    got = np.asarray(em.best_params.theta)
    got = got[np.argsort(got[:, 0])[::-1]]
    np.testing.assert_allclose(got, theta, atol=0.03)
    assert float(ns["adam"].objective[0]) >= float(em.objective[em.best]) - 1e-3
    est = MixtureModel(family, 2).fit(ns["counts"])
    est.save(tmp_path / "geo.npz")
    with pytest.raises(ValueError, match=r"not built in; pass its class"):
        MixtureModel.load(tmp_path / "geo.npz")
    again = MixtureModel.load(tmp_path / "geo.npz", families=[geo])
    np.testing.assert_allclose(again.score_samples(x), est.score_samples(x), rtol=1e-12)


def test_guide_command_lines_parse():
    lines = [c for page in GUIDES for c in command_lines(page.read_text())
             if c.startswith("jaxmix ")]
    assert lines, "the guides show no jaxmix command line"
    for line in lines:
        args = build_parser().parse_args(shlex.split(line)[1:])
        assert callable(args.run), line
