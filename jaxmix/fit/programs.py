"""The compiled programs a process holds, and a guard that keeps a long
session alive.

Every XLA program compiled on the CPU keeps its machine code in memory
mappings of its own (400-900 per fit program measured on Linux,
``tests/test_long_running.py``). The kernel caps mappings per process
(``vm.max_map_count``, 65,530 by default), and past the cap LLVM aborts the
whole process (``LLVM ERROR: Unable to allocate section memory``) although
memory is free. Shape buckets (:mod:`jaxmix.fit.buckets`) bound how many
programs jaxmix compiles; :func:`guard`, called by every fit as it starts,
is the safety net for sessions that also compile programs of their own: when
the mappings pass :data:`MAP_FRACTION` of the cap it empties JAX's in-memory
caches (``jax.clear_caches()``, and the programs :mod:`jaxmix.executables`
holds; programs compile again when next used, or
are read back from the persistent cache, :mod:`jaxmix.compile_cache`) and
warns once.
"""

from __future__ import annotations

import warnings

import jax
import jax.monitoring

from jaxmix import executables

# Clear JAX's caches when the process holds more mappings than this share of
# the kernel's cap: half leaves room for the programs compiled meanwhile.
MAP_FRACTION = 0.5
# New programs between two looks at /proc/self/maps (reading it costs ~1 ms
# per 10,000 mappings).
CHECK_EVERY = 8

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_state = {"compiled": 0, "checked": 0, "warned": False, "cleared": 0}


def _on_event(name, _seconds, **_kwargs):
    if name == _COMPILE_EVENT:
        _state["compiled"] += 1


jax.monitoring.register_event_duration_secs_listener(_on_event)


def compiled_programs() -> int:
    """XLA programs compiled in this process since jaxmix was imported."""
    return _state["compiled"]


def times_cleared() -> int:
    """How often :func:`guard` emptied JAX's caches."""
    return _state["cleared"]


def map_count() -> int | None:
    """Memory mappings of this process (``None`` where ``/proc`` is absent)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def map_limit() -> int | None:
    """The kernel's cap on mappings per process (``None`` if unknown)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def guard() -> bool:
    """Empty JAX's caches if the mappings near the cap (module docstring);
    returns whether it did. Cheap: it looks only every :data:`CHECK_EVERY`
    new programs."""
    made = _state["compiled"] + executables.stats()["hits"]  # compiled or read back
    if made - _state["checked"] < CHECK_EVERY:
        return False
    _state["checked"] = made
    used, limit = map_count(), map_limit()
    if used is None or limit is None or used <= MAP_FRACTION * limit:
        return False
    jax.clear_caches()
    executables.clear()
    _state["cleared"] += 1
    if not _state["warned"]:
        _state["warned"] = True
        warnings.warn(
            f"this process holds {used} memory mappings, over {MAP_FRACTION:.0%} of the "
            f"kernel's limit (vm.max_map_count = {limit}), mostly compiled XLA programs; "
            "jaxmix emptied JAX's compilation caches so the process does not abort (programs "
            "compile again when next used). Fewer distinct shapes, or "
            "jaxmix.enable_compilation_cache(), make this rarer.", stacklevel=3)
    return True
