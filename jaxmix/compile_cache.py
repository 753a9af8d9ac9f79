"""JAX's persistent compilation cache, switched on in one call.

A new process compiles every program anew: a small fit spends seconds in XLA
and milliseconds fitting. With the persistent cache on, compiled programs are
written to a folder and a later process with the same programs, shapes,
dtypes, JAX version and device reads them back instead of compiling them.
The ``jaxmix`` command turns it on by default; a script calls
:func:`enable_compilation_cache` once, before its first fit.

Where it writes, first match wins: the ``path`` argument; the environment
variable ``JAXMIX_COMPILATION_CACHE`` (a folder, or ``0``/``off``/``false``/
``none`` to turn the cache off); a folder already set for JAX
(``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``); the per-user folder
:func:`default_cache_dir`.

The cache is trusted code: JAX runs what it reads from the folder. Do not
point it at a folder that other users can write to.

>>> from jaxmix.compile_cache import default_cache_dir
>>> default_cache_dir().parts[-2:]
('jaxmix', 'xla')
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import jax
from jax.experimental.compilation_cache import compilation_cache

from jaxmix import executables

ENV_VAR = "JAXMIX_COMPILATION_CACHE"
OFF_VALUES = frozenset({"0", "off", "false", "none"})
MIN_COMPILE_TIME_SECS = 0.0


def default_cache_dir() -> Path:
    """The per-user folder for compiled programs (not created here).

    ``$XDG_CACHE_HOME/jaxmix/xla``, else ``~/.cache/jaxmix/xla`` (Linux and
    other POSIX systems); ``~/Library/Caches/jaxmix/xla`` on macOS;
    ``%LOCALAPPDATA%\\jaxmix\\xla`` on Windows.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = xdg if os.path.isabs(xdg) else Path.home() / ".cache"  # the XDG rule
    return Path(base) / "jaxmix" / "xla"


def _chosen_dir(path) -> Path | None:
    """The folder to use (absolute), or None where the environment turns the cache off."""
    if path is None:
        setting = os.environ.get(ENV_VAR, "").strip()
        if setting.lower() in OFF_VALUES:
            return None
        path = setting or jax.config.jax_compilation_cache_dir or default_cache_dir()
    return Path(path).expanduser().absolute()


def enable_compilation_cache(path=None, *,
                             min_compile_time_secs: float = MIN_COMPILE_TIME_SECS):
    """Turn on JAX's persistent compilation cache; returns the folder used, or None.

    Call it once before the first fit; calling it again is harmless, and a
    call with another folder moves the cache there.

    Args:
      path: the folder (created if missing). Default: ``$JAXMIX_COMPILATION_CACHE``,
        else the folder already set for JAX, else :func:`default_cache_dir`.
        Where ``path`` is None and ``JAXMIX_COMPILATION_CACHE`` is ``0``,
        ``off``, ``false`` or ``none`` (any case), nothing is changed.
      min_compile_time_secs: programs that compile faster are not written.
        The default, 0, writes every program: shape buckets
        (:mod:`jaxmix.fit.buckets`) keep their number small, and reading a
        small program back is faster than compiling it (the seed notebook
        fit's first call in a new process: 0.68 s with everything cached,
        0.79 s with only programs over 0.1 s, 2.9 s without a cache; 2-core
        CPU). JAX's own default, 1 s, would leave many fits uncached.

    Returns:
      The folder as an absolute :class:`~pathlib.Path`, or None where the
      environment variable turns the cache off or JAX's own switch
      ``jax_enable_compilation_cache`` is off.

    Raises:
      ValueError: ``min_compile_time_secs`` is negative or not finite.
      OSError: the folder cannot be created.

    Example (a script; the ``jaxmix`` command does this itself)::

        import jaxmix
        jaxmix.enable_compilation_cache()  # ~/.cache/jaxmix/xla on Linux
        result = jaxmix.fit_gmm(0, x, 3)   # a second run reads the compiled fit back
    """
    if not (min_compile_time_secs >= 0 and math.isfinite(min_compile_time_secs)):
        raise ValueError(f"min_compile_time_secs must be a finite number >= 0, got "
                         f"{min_compile_time_secs!r}")
    folder = _chosen_dir(path)
    if folder is None or not jax.config.jax_enable_compilation_cache:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    if jax.config.jax_compilation_cache_dir != str(folder):
        jax.config.update("jax_compilation_cache_dir", str(folder))
        compilation_cache.reset_cache()  # a cache opened at another folder reopens here
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # no size floor
    executables.enable()
    return folder
