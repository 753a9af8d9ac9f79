"""Compiled fits kept on disk by call signature, so that a new process skips
tracing and lowering as well as compiling.

JAX's persistent compilation cache (:mod:`jaxmix.compile_cache`) is keyed by
the lowered program: a new process must still trace and lower every fit
before it can look the program up, and for a small fit that is most of the
first call (the seed notebook fit, 2-core CPU: 2.0 s with JAX's cache
warm, 0.4-0.5 s read back from this store, of which 0.3 s is loading the
1.1 MB program). This store keys a compiled program by what
determines it before tracing: the function, its static arguments, the
structure, shapes and dtypes of its array arguments, the versions of jaxmix's
source, JAX and the backend, and JAX's tracing configuration. A hit loads the
executable and calls it; a miss lowers and compiles as ``jax.jit`` would and
writes the result.

It is active only after :func:`jaxmix.enable_compilation_cache` (the
``jaxmix`` command does this), in the folder ``jaxmix-executables`` inside
JAX's cache folder, and only for calls outside every transformation. A call
is served by plain ``jax.jit`` (and JAX's own cache) where its key could be
wrong or the program cannot be stored:

* a static argument or pytree node whose pickle refers to code outside
  jaxmix, NumPy, JAX and the standard library (user classes can change
  without the key seeing it), or that cannot be pickled at all;
* an array argument on another device than the default, or sharded;
* a program with host callbacks (they refer to objects of this process).

Files are written atomically with a SHA-256 digest of their content; a file
that does not match its digest is deleted and the program compiled again.
Like JAX's cache, the folder holds code that is run: it must not be writable
by other users. At most :data:`MAX_FILES` files are kept (least recently used
go first) and :data:`MAX_LOADED` programs are held in memory.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import hashlib
import inspect
import os
import pickle
import pickletools
import sys
from pathlib import Path

import jax
from jax.experimental import serialize_executable

from jaxmix.atomic import atomic_write

FOLDER_NAME = "jaxmix-executables"
MAX_FILES = 512
MAX_LOADED = 32  # x 400-1,400 memory mappings each, against the kernel's 65,530
MAGIC = b"jaxmix-executable-1\n"
# Modules whose objects may appear in a key's pickle: their code is pinned by
# the versions in the key. optax is not among them, but its version is in the
# key too: a named optimizer (plain values here) builds optax's code.
TRUSTED_MODULES = ("jaxmix", "jax", "jaxlib", "numpy", "builtins", "copyreg", "collections",
                   "_codecs", "enum", "functools", "operator", "math")

_state = {"on": False}
_loaded: collections.OrderedDict = collections.OrderedDict()
_counts = collections.Counter()


def enable(on: bool = True) -> None:
    """Serve top-level calls from the store (set by ``enable_compilation_cache``)."""
    _state["on"] = bool(on)


def folder() -> Path | None:
    """The store's folder, or None when it is off (also when JAX's cache
    folder was unset after :func:`enable`)."""
    base = jax.config.jax_compilation_cache_dir
    if not (_state["on"] and base and jax.config.jax_enable_compilation_cache):
        return None
    return Path(base) / FOLDER_NAME


def stats() -> dict:
    """Counts since import: ``hits`` (read from disk), ``memory`` (held
    programs), ``misses`` (compiled and written), ``declined`` (no
    trustworthy key: served by plain ``jax.jit``; or compiled here but not
    storable: held in memory only)."""
    return {name: _counts[name] for name in ("hits", "memory", "misses", "declined")}


def clear() -> None:
    """Drop the programs held in memory (the files stay)."""
    _loaded.clear()


# ---------------------------------------------------------------------------
# the key


def _trusted_pickle(obj) -> bytes | None:
    """``obj`` pickled (protocol 2: every global named in the stream), or
    None if it refers to an untrusted module or cannot be pickled."""
    try:
        data = pickle.dumps(obj, protocol=2)
    except Exception:  # noqa: BLE001 - unpicklable: not storable
        return None
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            module = arg.split(" ", 1)[0]
            if module.split(".", 1)[0] not in TRUSTED_MODULES:
                return None
    return data


def _config_state() -> str:
    """JAX's tracing configuration (what ``jax.jit`` keys its cache by), with
    objects that have no stable text shown by their type."""
    from jax._src.config import trace_context

    def plain(v):
        if v is None or isinstance(v, (bool, int, float, str, enum.Enum)):
            return repr(v)
        if isinstance(v, tuple):
            return "(" + ",".join(plain(u) for u in v) + ")"
        return type(v).__name__
    return plain(trace_context())


def _source_digest() -> str:
    """SHA-256 of jaxmix's Python source (computed once)."""
    if "source" not in _state:
        root = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
        _state["source"] = h.hexdigest()
    return _state["source"]


def _environment() -> bytes:
    """What pins the compiled code beyond the call: versions, devices, flags."""
    if "environment" not in _state:
        import jaxlib
        import optax

        from jaxmix.compiling import CPU_OPTIONS, SMALL_CPU_OPTIONS
        devices = jax.devices()
        parts = (_source_digest(), jax.__version__, jaxlib.__version__, optax.__version__,
                 sys.version,
                 devices[0].client.platform, devices[0].client.platform_version,
                 tuple(d.device_kind for d in devices), jax.process_count(),
                 sorted(CPU_OPTIONS.items()), sorted(SMALL_CPU_OPTIONS.items()),
                 os.environ.get("XLA_FLAGS", ""))
        _state["environment"] = repr(parts).encode()
    return _state["environment"]


def _leaf_type(leaf) -> str | None:
    """Shape, dtype and weak type of an array argument; None if it lives
    elsewhere than on the default device alone."""
    if isinstance(leaf, jax.Array):
        if isinstance(leaf, jax.core.Tracer) or len(leaf.devices()) != 1 or \
                next(iter(leaf.devices())) != jax.devices()[0]:
            return None
    try:
        return str(jax.typeof(leaf))
    except TypeError:  # not an array: plain jax.jit says what is wrong with it
        return None


def call_key(name: str, static, dynamic) -> str | None:
    """The store's key of a call (module docstring), or None where no
    trustworthy key exists."""
    leaves, tree = jax.tree.flatten(dynamic)
    described = (_trusted_pickle(static), _trusted_pickle(tree))
    types = [_leaf_type(leaf) for leaf in leaves]
    if None in described or None in types:
        return None
    h = hashlib.sha256(_environment())
    for part in (name.encode(), _config_state().encode(), *described, repr(types).encode()):
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# the files


def _prepare_backend() -> None:
    """What lowering would have set up: jaxlib binds its LAPACK kernels to
    SciPy's on the first lowering of a linear-algebra call, and a program
    read back without any lowering would call unbound kernels (a crash)."""
    if "prepared" not in _state:
        from jax._src.lax.linalg import initialize_lapack
        initialize_lapack()
        _state["prepared"] = True


def _read(path: Path):
    """The program stored at ``path``, or None (missing, corrupt, or for
    another backend: a corrupt file is deleted)."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    body = blob[len(MAGIC) + 32:]
    if not blob.startswith(MAGIC) or hashlib.sha256(body).digest() != blob[len(MAGIC):][:32]:
        path.unlink(missing_ok=True)
        return None
    try:
        _prepare_backend()
        serialized, in_tree, out_tree = pickle.loads(body)
        program = serialize_executable.deserialize_and_load(
            serialized, in_tree, out_tree, execution_devices=jax.devices()[:1])
    except Exception:  # noqa: BLE001 - written by another jaxlib build: compile anew
        path.unlink(missing_ok=True)
        return None
    os.utime(path)  # recently used
    return program


def _write(path: Path, program) -> bool:
    """Store ``program`` at ``path``; False where it cannot be stored."""
    unloaded = getattr(program._executable, "_unloaded_executable", None)
    if unloaded is None or getattr(unloaded, "host_callbacks", None):
        return False
    try:
        body = pickle.dumps(serialize_executable.serialize(program))
    except Exception:  # noqa: BLE001 - not serialisable on this backend
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(MAGIC + hashlib.sha256(body).digest() + body)
    _evict(path.parent)
    return True


def _evict(where: Path) -> None:
    """Delete the least recently used files beyond :data:`MAX_FILES`."""
    files = list(where.glob("*.exe"))
    if len(files) <= MAX_FILES:
        return
    files.sort(key=lambda p: p.stat().st_mtime)
    for path in files[:len(files) - MAX_FILES]:
        path.unlink(missing_ok=True)


def _on_event(name, **_):
    if name == "/jax/compilation_cache/cache_hits":
        _counts["jax_cache_hits"] += 1


jax.monitoring.register_event_listener(_on_event)


@contextlib.contextmanager
def _jax_cache_off():
    """JAX's persistent cache unused for the compiles inside (it decides
    once per process whether to use the cache, and has no switch per call)."""
    from jax._src import compilation_cache as cc
    if not hasattr(cc, "_cache_used") or not hasattr(cc, "_cache_checked"):
        yield  # another JAX: _compile_fresh's check still holds
        return
    with cc._cache_initialized_mutex:
        saved = cc._cache_checked, cc._cache_used
        cc._cache_checked, cc._cache_used = True, False
    try:
        yield
    finally:
        with cc._cache_initialized_mutex:
            cc._cache_checked, cc._cache_used = saved


def _compile_fresh(jitted, bound):
    """``(compiled program, whether XLA compiled it here)``. A program that
    JAX read back from its own cache cannot be serialised again (XLA:CPU
    keeps no object code for it: the copy fails with ``Function ... not
    found``), so our misses compile without JAX's cache."""
    lowered = jitted.lower(*bound.args, **bound.kwargs)
    before = _counts["jax_cache_hits"]
    with _jax_cache_off():
        program = lowered.compile()
    return program, _counts["jax_cache_hits"] == before


# ---------------------------------------------------------------------------
# calls


class Signature:
    """How ``jax.jit(fn, static_argnames=...)`` splits a call into static
    and array arguments, as one normal form for the key and the call."""

    def __init__(self, fn, jit_kwargs):
        self.name = f"{fn.__module__}.{fn.__qualname__}"
        own = fn.__module__.split(".")[0] == "jaxmix" and "<" not in fn.__qualname__
        self.usable = own and set(jit_kwargs) <= {"static_argnames", "static_argnums"}
        self.signature = inspect.signature(fn)
        self.names = names = list(self.signature.parameters)
        static = jit_kwargs.get("static_argnames", ())
        nums = jit_kwargs.get("static_argnums", ())
        self.static = set([static] if isinstance(static, str) else static) | {
            names[i] for i in ([nums] if isinstance(nums, int) else nums)}

    def split(self, args, kwargs):
        """``(static, dynamic args, dynamic kwargs)`` in the normal form."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        static = {n: v for n, v in bound.arguments.items() if n in self.static}
        dyn_args = tuple(a for n, a in zip(self.names, bound.args) if n not in self.static)
        dyn_kwargs = {n: v for n, v in bound.kwargs.items() if n not in self.static}
        return static, dyn_args, dyn_kwargs, bound


def call(signature: Signature, jitted, args, kwargs, options: str = ""):
    """``jitted(*args, **kwargs)``, its program taken from the store where
    it can be (module docstring); ``options`` names the compiler options
    ``jitted`` was built with (part of the key)."""
    where = folder()
    if where is None or not signature.usable:
        return jitted(*args, **kwargs)
    static, dyn_args, dyn_kwargs, bound = signature.split(args, kwargs)
    key = call_key(f"{signature.name}[{options}]", static, (dyn_args, dyn_kwargs))
    if key is None:
        _counts["declined"] += 1
        return jitted(*args, **kwargs)
    return _program(key, where, jitted, bound)(*dyn_args, **dyn_kwargs)


def _program(key, where: Path, jitted, bound):
    """The compiled program of ``key``: held, read, or compiled and written
    (a program that cannot be stored is held all the same)."""
    if key in _loaded:
        _loaded.move_to_end(key)
        _counts["memory"] += 1
        return _loaded[key]
    path = where / f"{key}.exe"
    program = _read(path)
    if program is not None:
        _counts["hits"] += 1
    else:
        program, fresh = _compile_fresh(jitted, bound)
        _counts["misses" if fresh and _write(path, program) else "declined"] += 1
    _loaded[key] = program
    while len(_loaded) > MAX_LOADED:
        _loaded.popitem(last=False)
    return program
