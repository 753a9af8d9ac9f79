"""README.md's examples work: its ```python blocks run in order in one
namespace (in a scratch folder), and its `jaxmix` command lines parse."""

from __future__ import annotations

import pathlib
import re
import shlex

import pytest

from doc_blocks import command_lines
from jaxmix.cli.main import build_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands() -> list:
    """Every command of the ```bash blocks (tests/doc_blocks.py)."""
    return command_lines(README)


@pytest.fixture(scope="module")
def readme_namespace(tmp_path_factory):
    """Every ```python block run in order in one namespace, once per module."""
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
