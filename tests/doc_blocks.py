"""Run the ```python blocks of a Markdown page in order, in one namespace,
in a scratch folder: what tests/test_guides.py does for every guide.

    python tests/doc_blocks.py docs/guides/getting-started.md

A block whose first line is ``# slow: <why>`` runs only with ``--slow`` (the
slow set runs every guide whole, each in a process of its own); one whose
first line is ``# several processes: ...`` is a program each of several
processes runs (the slow set runs it as two local processes joined by
``jax.distributed``; :func:`process_blocks`); ``# not run: <why>`` never runs.

    python tests/doc_blocks.py --slow docs/guides/getting-started.md
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import sys
import tempfile


def python_blocks(text: str, slow: bool = False) -> list:
    """The ```python blocks of ``text`` (MyST's ```{code-block} python too)
    that run: not ``# not run`` ones, ``# slow`` ones only when ``slow``."""
    found = re.findall(r"```(?:python|\{code-block\} python)\n(.*?)```", text, flags=re.S)
    skip = ("# not run", "# several processes") + (() if slow else ("# slow",))
    return [b for b in found if not b.lstrip().startswith(skip)]


def command_lines(text: str) -> list:
    """Every command of the ```bash blocks of ``text``: lines with their
    ``  #`` comments stripped, split on ``&&``."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            out += [part.strip() for part in line.split("&&") if part.strip()]
    return out


def process_blocks(text: str) -> list:
    """The ```python blocks of ``text`` that several processes run."""
    found = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return [b for b in found if b.lstrip().startswith("# several processes")]


@contextlib.contextmanager
def scratch_folder(folder=None):
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(folder or tmp)
        try:
            yield
        finally:
            os.chdir(here)


def run_page(path, folder=None, slow: bool = False) -> dict:
    """The python blocks of the page at ``path`` (``slow``: the slow ones
    too), in order; the namespace."""
    path = pathlib.Path(path).resolve()
    namespace = {"__name__": f"doc_{path.stem.replace('-', '_')}"}
    with scratch_folder(folder):
        for i, block in enumerate(python_blocks(path.read_text(), slow)):
            # dont_inherit: this module's own __future__ imports must not reach the blocks
            exec(compile(block, f"{path.name} python block {i}", "exec", dont_inherit=True),
                 namespace)
    return namespace


if __name__ == "__main__":
    slow = "--slow" in sys.argv[1:]
    for page in [a for a in sys.argv[1:] if a != "--slow"]:
        run_page(page, slow=slow)
        print(f"{page}: {len(python_blocks(pathlib.Path(page).read_text(), slow))} blocks ran")
