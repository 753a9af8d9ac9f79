"""Writes docs/api/NAMESPACE.md for every public namespace (docs/conf.py's
NAMESPACES): the module's docstring, then one autodoc entry per name of its
``__all__``, in its order (the top level in the groups its ``__all__``'s
comments name). A name exported by several namespaces is indexed once, where
it is first listed (the top level first) when it is a class (Sphinx would see
one class described twice); functions are indexed in every namespace.

    python docs/api/generate.py      # rerun when an __all__ changes

tests/test_docs.py checks that the pages are what this writes.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import re
import sys
import types

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent))

from conf import NAMESPACES  # noqa: E402


def groups(ns: str) -> list:
    """``[(heading or None, [names])]``: the top level's ``__all__`` comments."""
    module = importlib.import_module(ns)
    if ns != "jaxmix":
        return [(None, list(module.__all__))]
    source = inspect.getsource(module)
    block = source[source.index("__all__ = ["):]
    block = block[:block.index("]\n") + 1]
    out = []
    for line in block.splitlines()[1:]:
        comment = re.match(r"\s*# (.*)", line)
        if comment:
            out.append((comment.group(1)[0].upper() + comment.group(1)[1:], []))
        else:
            out[-1][1].extend(re.findall(r'"(\w+)"', line))
    return out


def directive(obj) -> str:
    if isinstance(obj, types.ModuleType):
        return ""
    if isinstance(obj, type):
        return "autoclass"
    return "autofunction" if callable(obj) else "autodata"


def entry(ns: str, name: str, obj, indexed: bool) -> list:
    kind = directive(obj)
    if not kind:  # a namespace: its own page
        return [f"- {{mod}}`{ns}.{name}`: [its page]({ns}.{name}.md)", ""]
    options = []
    if kind == "autoclass" and not issubclass(obj, tuple):
        options.append("   :members:")
    if not indexed:
        options.append("   :no-index:")
    return ["```{eval-rst}", f".. {kind}:: {ns}.{name}", *options, "```", ""]


def page(ns: str, seen: set) -> str:
    module = importlib.import_module(ns)
    lines = [f"# `{ns}`", "", "```{eval-rst}", f".. automodule:: {ns}", "   :no-members:", "```",
             ""]
    for heading, names in groups(ns):
        if heading:
            lines += [f"## {heading}", ""]
        for name in names:
            obj = getattr(module, name)
            key = id(obj) if not isinstance(obj, (int, float, str, tuple, dict)) else (ns, name)
            lines += entry(ns, name, obj, not isinstance(obj, type) or key not in seen)
            seen.add(key)
    return "\n".join(lines).rstrip() + "\n"


def pages() -> dict:
    seen: set = set()
    return {ns: page(ns, seen) for ns in NAMESPACES}


if __name__ == "__main__":
    for ns, text in pages().items():
        (HERE / f"{ns}.md").write_text(text)
        print(f"docs/api/{ns}.md")
