"""One persistent XLA compilation cache for a whole test run.

Most of a test run is XLA compiling. Two worker processes compile many of
the same programs, and ``conftest._release_compiled_programs`` empties a
worker's in-memory caches once its compiled programs hold too many memory
mappings, after which later modules compile again what earlier ones had.
JAX's persistent cache, in one temporary folder shared by the workers of a
run, turns those second compiles into reads. The folder is made by the
controlling process (``pytest_configure``, before any worker starts, so
workers inherit it through the environment) and deleted when the run ends.
A run never reuses another run's programs.

What a test sees is unchanged: a program read back is the program XLA
compiled, and it still fires JAX's compile event
(``/jax/core/compile/backend_compile_duration`` spans the cache lookup), so
tests that count compiles count it as before. Tests of the cache itself
start from JAX's defaults (:func:`jax_cache_defaults`).

``JAXMIX_TEST_XLA_CACHE=off`` runs without it (to time compiles as a user's
first process sees them); a folder there is used and kept.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

from jaxmix.compile_cache import OFF_VALUES

ENV_VAR = "JAXMIX_TEST_XLA_CACHE"
# JAX's settings of the cache, with their defaults (the cache off).
OPTIONS = {"jax_compilation_cache_dir": None,
           "jax_persistent_cache_min_compile_time_secs": 1.0,
           "jax_persistent_cache_min_entry_size_bytes": 0}
_MADE = pytest.StashKey[str]()


def start(config) -> None:
    """Make the run's folder (controller only) and point this process's JAX at it."""
    if not hasattr(config, "workerinput") and ENV_VAR not in os.environ:
        folder = tempfile.mkdtemp(prefix="jaxmix-test-xla-")
        os.environ[ENV_VAR] = folder
        config.stash[_MADE] = folder
    folder = os.environ.get(ENV_VAR, "")
    if not folder or folder.lower() in OFF_VALUES:
        return
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def finish(config) -> None:
    """Delete the folder this process made (the controller, at the run's end)."""
    folder = config.stash.get(_MADE, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(ENV_VAR, None)  # a later run in this process makes its own


@contextlib.contextmanager
def jax_cache_defaults():
    """JAX's cache settings at their defaults inside, restored after, and
    jaxmix's store of executables off after (tests of the cache itself)."""
    from jaxmix import executables
    saved = {name: getattr(jax.config, name) for name in OPTIONS}
    for name, value in OPTIONS.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()
    try:
        yield
    finally:
        executables.enable(False)
        executables.clear()
        for name, value in saved.items():
            jax.config.update(name, value)
        compilation_cache.reset_cache()
