"""The documentation site (docs/): the API pages are what
docs/api/generate.py writes, and the site builds with warnings as errors (a
broken cross-reference, or a public name missing from the API pages or
without a docstring, fails it). The guides' code: tests/test_guides.py."""

from __future__ import annotations

import logging
import pathlib
import shutil
import subprocess
import sys



ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(DOCS / "api"))


def build(source: pathlib.Path, out: pathlib.Path):
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q",
                           "-b", "html", str(source), str(out)],
                          capture_output=True, text=True, timeout=600)


def test_the_api_pages_are_generated():
    import generate
    for ns, text in generate.pages().items():
        assert (DOCS / "api" / f"{ns}.md").read_text() == text, \
            f"docs/api/{ns}.md is stale: run python docs/api/generate.py"


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    out = build(DOCS, tmp_path / "html")
    assert out.returncode == 0, out.stderr[-6000:]
    page = (tmp_path / "html" / "api" / "jaxmix.html").read_text()
    assert 'id="jaxmix.fit_gmm"' in page and "n_restarts" in page  # rendered, not literal


def test_a_broken_reference_fails_the_build(tmp_path):
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build"))
    index = source / "index.md"
    index.write_text(index.read_text() + "\nSee {func}`jaxmix.fit_gmm_typo`.\n")
    out = build(source, tmp_path / "html")
    assert out.returncode != 0 and "jaxmix.fit_gmm_typo" in out.stderr


def test_an_undocumented_public_name_is_reported(monkeypatch, caplog):
    import conf
    import jaxmix.gmm

    def undocumented(x):
        return x
    monkeypatch.setattr(jaxmix.gmm, "undocumented", undocumented, raising=False)
    monkeypatch.setattr(jaxmix.gmm, "__all__", [*jaxmix.gmm.__all__, "undocumented"])
    with caplog.at_level(logging.WARNING):
        conf.check_public_names(None)
    text = caplog.text
    assert "jaxmix.gmm.undocumented is public but not on docs/api/jaxmix.gmm.md" in text
    assert "jaxmix.gmm.undocumented has no docstring" in text
