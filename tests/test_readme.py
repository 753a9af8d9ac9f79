"""README.md's examples work: its ```python blocks run in order in one
namespace (in a scratch folder), and its `jaxmix` command lines parse."""

from __future__ import annotations

import pathlib
import re
import shlex

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


def test_python_blocks_run(tmp_path, monkeypatch):
    code = blocks("python")
    assert len(code) >= 2, "README should show a functional and an estimator example"
    monkeypatch.chdir(tmp_path)  # the examples write files (gm.npz)
    namespace = {}
    for i, block in enumerate(code):
        exec(compile(block, f"README.md python block {i}", "exec"), namespace)
    assert "result" in namespace and "gm" in namespace


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
