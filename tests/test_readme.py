"""README.md's examples work: its ```python blocks run in order in one
namespace (in a scratch folder), and its `jaxmix` command lines parse."""

from __future__ import annotations

import pathlib
import re
import shlex

import numpy as np
import pytest

from jaxmix.cli.main import build_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands() -> list:
    """Every line of the ```bash blocks, comments stripped, split on ``&&``."""
    out = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            out += [part.strip() for part in line.split("&&") if part.strip()]
    return out


@pytest.fixture(scope="module")
def readme_namespace(tmp_path_factory):
    """Every ```python block run in order in one namespace, once per module
    (the family example's class is defined once, so its programs compile once)."""
    import os
    code = blocks("python")
    assert len(code) >= 2, "README should show a functional and an estimator example"
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("readme"))  # the examples write files (gm.npz)
    namespace = {}
    try:
        for i, block in enumerate(code):
            exec(compile(block, f"README.md python block {i}", "exec"), namespace)
    finally:
        os.chdir(here)
    return namespace


def test_python_blocks_run(readme_namespace):
    assert "result" in readme_namespace and "gm" in readme_namespace


def test_first_command_installs_and_runs_the_main_job():
    first = commands()[:2]
    assert first[0].startswith("pip install -e ")
    assert first[1] == "jaxmix demo"
    extras = re.findall(r"\[(\w+)\]", first[0])
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(extras) <= set(project["optional-dependencies"])
    assert project["scripts"]["jaxmix"] == "jaxmix.cli.main:main"


@pytest.mark.parametrize("line", [c for c in commands() if c.startswith("jaxmix ")])
def test_cli_lines_parse(line):
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert callable(args.run)


def test_the_family_written_in_the_readme_is_scipys_geometric(readme_namespace, tmp_path):
    """The README's worked family example, run on its own: its log-density is
    scipy.stats.geom's (shifted to start at 0), EM recovers the planted
    probabilities, BIC picks the planted k, the gradient fit reaches EM's
    objective, and its model file reads back only as the class passed."""
    from scipy import stats as st

    from jaxmix.families import fit_mixture
    from jaxmix.sklearn import MixtureModel
    ns = readme_namespace
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
