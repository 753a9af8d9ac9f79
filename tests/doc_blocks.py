"""Run the ```python blocks of a Markdown page in order, in one namespace,
in a scratch folder: what tests/test_docs.py does for every guide.

    python tests/doc_blocks.py docs/guides/getting-started.md

A block whose first line is ``# not run`` is shown, not run (say why in it).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import sys
import tempfile


def python_blocks(text: str) -> list:
    """The ```python blocks of ``text`` (MyST's ```{code-block} python too)."""
    found = re.findall(r"```(?:python|\{code-block\} python)\n(.*?)```", text, flags=re.S)
    return [b for b in found if not b.lstrip().startswith("# not run")]


@contextlib.contextmanager
def scratch_folder(folder=None):
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(folder or tmp)
        try:
            yield
        finally:
            os.chdir(here)


def run_page(path, folder=None) -> dict:
    """Every python block of the page at ``path``, in order; the namespace."""
    path = pathlib.Path(path).resolve()
    namespace = {"__name__": f"doc_{path.stem.replace('-', '_')}"}
    with scratch_folder(folder):
        for i, block in enumerate(python_blocks(path.read_text())):
            # dont_inherit: this module's own __future__ imports must not reach the blocks
            exec(compile(block, f"{path.name} python block {i}", "exec", dont_inherit=True),
                 namespace)
    return namespace


if __name__ == "__main__":
    for page in sys.argv[1:]:
        run_page(page)
        print(f"{page}: {len(python_blocks(pathlib.Path(page).read_text()))} blocks ran")
