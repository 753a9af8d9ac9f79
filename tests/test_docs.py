"""The documentation site (docs/): the API pages are what
docs/api/generate.py writes, and the site builds with warnings as errors (a
broken cross-reference, or a public name missing from the API pages or
without a docstring, fails it). The guides' code: tests/test_guides.py."""

from __future__ import annotations

import logging
import pathlib
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


def test_a_reference_to_no_object_stays_broken():
    """nitpicky mode reports every unresolved reference and -W fails the build
    on it; conf.internal_reference resolves only references that name a real
    jaxmix object (shown as code), from the docstring's own module too."""
    import conf
    from docutils import nodes
    from sphinx.addnodes import pending_xref

    def ref(target, module=None, source=""):
        node = pending_xref("", refdomain="py", reftype="func", reftarget=target)
        node["py:module"] = module
        node.source = source
        return node
    text = nodes.literal("", "x")
    assert conf.internal_reference(None, None, ref("jaxmix.fit_gmm_typo"), text) is None
    assert conf.internal_reference(None, None, ref("jaxmix.fit.driver.iterate"), text) is text
    inside = "jaxmix/fit/gradient.py:docstring of jaxmix.fit.gradient.fit_gradient"
    assert conf.internal_reference(None, None, ref("map_refit", "jaxmix", inside), text) is text
    assert conf.internal_reference(None, None, ref("map_refit_typo", "jaxmix", inside),
                                   text) is None
    assert conf.nitpicky


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
