"""How jaxmix compiles its programs: ``jax.jit`` with compiler options
chosen for the backend the program runs on.

On the CPU, XLA's newer fusion emitters cost more compile time than they
save at run time for jaxmix's programs: with them off, the seed notebook
fit's first call (compile-bound) took 1.8 s instead of 2.7 s, and warm EM
iterations (full and diag covariance, n=1e5, d=16, k=16) ran as fast or
slightly faster (2-core CPU, ``experiments/bench_compile.py``; K-Means warm
within 15%). LLVM's optimisation level 1 instead of XLA's default 2 cut
compile time again (the seed fit's first call 2.43 -> 2.10 s, mean of three
fresh processes; full EM n=1e5, d=16, k=16, R=16: 1.92 -> 1.59 s, K-Means
n=2e5, d=32, k=64: 1.68 -> 1.08 s), with warm times within 4% (full and diag
EM equal, K-Means 4.9 -> 5.1 s); level 0 halves compile time again but ran
warm fits 3-4x slower. That trade pays for a small fit, where compiling is
nearly all of the first call: a fit program declares its work per pass over
the data (``jit(work=...)``), and one of at most :data:`SMALL_WORK` elements
compiles at level 0 (:data:`SMALL_CPU_OPTIONS`). The seed notebook fit
(491,520 elements per pass: k and R padded to their buckets) compiled in
0.95 s instead of 1.9 s, and ran warm in 0.05 s instead of 0.016 s
(scikit-learn: 0.07 s). A small program is also generated as one LLVM
module instead of XLA's parallel split (``xla_cpu_parallel_codegen_split_count
= 1``): two small GMM fits, a mini-batch and a K-Means fit compiled in 1.00-1.09
s instead of 1.21-1.30 s (three fresh processes each, 2-core CPU), where a
level-1 fit (full EM, n=1e5, d=16, k=16) compiled in 2.1-2.2 s instead of
1.5 s: its split compiles on both cores. The limit keeps that warm cost small: ``jaxmix
demo`` run twice in one process took 16.9 s and 5.1 s with a limit of 2^22
elements (its sweeps, 1.3 and 2.6 million, at level 0), 19.5 s and 3.1 s with
2^20, and 22.0 s and 2.1 s with every program at level 1. Larger fits, and
programs that declare no work, compile at level 1. The choice depends on
shapes alone, so the same call always runs the same program (bitwise
reproducible); it is not upgraded after a few calls, since that would change
a result's last bits between two identical calls. Two fits on either side of
the limit (another ``R`` or ``k`` bucket, or in-memory data against a
stream, whose size is not static and so compiles at level 1) may differ in
the last bits of the same restart. Other backends get JAX's
defaults. The choice is made on the
first call, so importing jaxmix initialises no backend. Compiler options
only apply to a top-level program: called under another transformation
(``jit``, ``vmap``, ``grad`` of user code) the plain ``jax.jit`` is used and
the outer program's options rule.
"""

from __future__ import annotations

import functools

import jax

from jaxmix import executables

try:  # whether a call happens outside every transformation
    from jax._src.core import trace_state_clean as _top_level
except ImportError:  # pragma: no cover - JAX moved it: never pass options
    def _top_level():
        return False

# XLA DebugOptions for programs compiled for the CPU, and for small ones.
CPU_OPTIONS = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1}
SMALL_CPU_OPTIONS = {**CPU_OPTIONS, "xla_backend_optimization_level": 0,
                     "xla_cpu_parallel_codegen_split_count": 1}
# Work per pass (elements, as a program's ``work`` counts them) up to which
# a CPU program compiles with SMALL_CPU_OPTIONS.
SMALL_WORK = 2 ** 20


class Compiled:
    """``jax.jit(fn, **jit_kwargs)`` built on first use with the options of
    the default backend; behaves as the jitted function (``lower``, ...).
    ``work(*args, **kwargs)``: the call's elements per pass over its data
    (``None``: unknown, e.g. a stream), which picks the small options."""

    def __init__(self, fn, jit_kwargs, work=None):
        functools.update_wrapper(self, fn)
        self._fn, self._jit_kwargs, self._work = fn, jit_kwargs, work
        self._nested = jax.jit(fn, **jit_kwargs)
        self._jitted = {}
        self._signature = executables.Signature(fn, jit_kwargs)

    def _tier(self, args, kwargs) -> str:
        """``"small"`` for a CPU call of declared small work, else ``""``
        (``work`` gets the arguments by name, however the call passed them)."""
        if self._work is None or jax.default_backend() != "cpu":
            return ""
        bound = self._signature.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        work = self._work(**bound.arguments)
        return "small" if work is not None and work <= SMALL_WORK else ""

    def _get(self, tier: str = ""):
        if not _top_level():
            return self._nested
        if tier not in self._jitted:
            cpu = jax.default_backend() == "cpu"
            options = (SMALL_CPU_OPTIONS if tier else CPU_OPTIONS) if cpu else None
            self._jitted[tier] = jax.jit(self._fn, compiler_options=options,
                                         **self._jit_kwargs)
        return self._jitted[tier]

    def __call__(self, *args, **kwargs):
        if not _top_level():
            return self._nested(*args, **kwargs)
        tier = self._tier(args, kwargs)
        return executables.call(self._signature, self._get(tier), args, kwargs, tier)

    def lower(self, *args, **kwargs):
        """``jax.jit(...).lower`` of the program this call would run."""
        tier = self._tier(args, kwargs) if _top_level() else ""
        return self._get(tier).lower(*args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._get(), name)


def jit(fn=None, *, work=None, **jit_kwargs):
    """``jax.jit`` for jaxmix's programs (module docstring); usable as
    ``@jit``, ``@jit(static_argnames=..., work=...)`` or ``jit(fn)``."""
    if fn is None:
        return lambda f: Compiled(f, jit_kwargs, work)
    return Compiled(fn, jit_kwargs, work)
