"""What an experiment's report records about the code it ran: the commit of
the checkout ``jaxmix`` was imported from."""

from __future__ import annotations

import pathlib
import subprocess

import jaxmix


def library_commit() -> str:
    """The commit of the checkout ``jaxmix`` was imported from, marked when
    its ``jaxmix/`` has uncommitted changes."""
    root = pathlib.Path(jaxmix.__file__).resolve().parent.parent

    def git(*cmd):
        return subprocess.run(["git", *cmd], cwd=root, capture_output=True,
                              text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--", "jaxmix")
    return (git("rev-parse", "--short", "HEAD") or f"unknown ({root})") + (
        " with uncommitted changes under jaxmix/" if dirty else " (clean)")
