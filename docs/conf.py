"""Sphinx configuration of jaxmix's documentation site.

Build (what tests/test_docs.py runs, warnings are errors):

    python -m sphinx -W --keep-going -n -b html docs docs/_build/html

Sphinx, because its autodoc + napoleon read jaxmix's Google-style docstrings
as they are, and nitpicky mode (``-n``) turns every reference that does not
resolve into a warning, so with ``-W`` a broken cross-reference fails the
build; MyST lets the guides be Markdown whose code blocks the test suite
runs (tests/doc_blocks.py). The API pages document each public namespace's
``__all__``; :func:`check_public_names` warns (so fails the build) when a
public name is missing from them or has no docstring.
"""

from __future__ import annotations

import importlib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jaxmix  # noqa: E402

project = "jaxmix"
version = release = jaxmix.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "myst_parser"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = "jaxmix"
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "none"          # the docstrings say the types, in words and shapes
autodoc_default_options = {"members": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# The public namespaces and their API page (docs/api/NAME.md).
NAMESPACES = ["jaxmix", "jaxmix.gmm", "jaxmix.kmeans", "jaxmix.dbscan", "jaxmix.families",
              "jaxmix.sklearn", "jaxmix.data", "jaxmix.io"]

nitpicky = True
# References to other projects' objects (no inventories: the build is offline)
# and to the plain-language types docstrings use.
nitpick_ignore_regex = [
    (r"py:.*", r"(jax|jnp|np|numpy|optax|sklearn|scipy|matplotlib|typing|collections|pathlib)"
               r"(\..*)?"),
    (r"py:.*", r"(int|float|str|bool|None|tuple|list|dict|callable|object|bytes|type)"),
    (r"py:.*", r"(Array|ndarray|PRNGKey|Mesh|GradientTransformation|Path|PathLike)"),
]


def check_public_names(app):
    """Every name of every namespace's ``__all__`` is on its API page, and
    every public function and class has a docstring."""
    from sphinx.util import logging
    log = logging.getLogger("jaxmix.docs")
    for ns in NAMESPACES:
        page = ROOT / "docs" / "api" / f"{ns}.md"
        if not page.exists():
            log.warning(f"docs/api/{ns}.md is missing: the API page of {ns}")
            continue
        text = page.read_text()
        listed = set(re.findall(r"^\.\. auto\w+:: ([\w.]+)", text, flags=re.M))
        listed |= set(re.findall(r"^- \{mod\}`([\w.]+)`", text, flags=re.M))
        module = importlib.import_module(ns)
        for name in module.__all__:
            obj = getattr(module, name)
            if f"{ns}.{name}" not in listed:
                log.warning(f"{ns}.{name} is public but not on docs/api/{ns}.md")
            if (callable(obj) or isinstance(obj, type)) and not (obj.__doc__ or "").strip():
                log.warning(f"{ns}.{name} has no docstring")


def _resolve(name: str):
    """The object a dotted ``name`` names (a module, or an attribute path in
    one), or ``None``."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def internal_reference(app, env, node, contnode):
    """A Python reference that names a real object of jaxmix outside the API
    pages (an internal module or helper that docstrings point to): shown as
    code, not linked. One that names nothing is left unresolved, so nitpicky
    mode reports it and ``-W`` fails the build."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    scopes = [node.get("py:class"), node.get("py:module")]
    candidates = [target] + [f"{m}.{target}" for m in scopes if m]
    where = re.search(r"docstring of ([\w.]+)", node.source or "")  # the defining module
    for module in filter(None, [node.get("py:module"), where and where.group(1)]):
        while "." in module:  # names a docstring takes from its module or package
            module = module.rsplit(".", 1)[0]
            candidates.append(f"{module}.{target}")
    for name in candidates:
        if name.startswith("jaxmix") and _resolve(name) is not None:
            return contnode
    return None


def setup(app):
    app.connect("builder-inited", check_public_names)
    app.connect("missing-reference", internal_reference)
