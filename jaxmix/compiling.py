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
warm fits 3-4x slower. Other backends get JAX's defaults. The choice is made on the
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

# XLA DebugOptions for programs compiled for the CPU.
CPU_OPTIONS = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1}


class Compiled:
    """``jax.jit(fn, **jit_kwargs)`` built on first use with the options of
    the default backend; behaves as the jitted function (``lower``, ...)."""

    def __init__(self, fn, jit_kwargs):
        functools.update_wrapper(self, fn)
        self._fn, self._jit_kwargs = fn, jit_kwargs
        self._nested = jax.jit(fn, **jit_kwargs)
        self._jitted = None
        self._signature = executables.Signature(fn, jit_kwargs)

    def _get(self):
        if not _top_level():
            return self._nested
        if self._jitted is None:
            options = CPU_OPTIONS if jax.default_backend() == "cpu" else None
            self._jitted = jax.jit(self._fn, compiler_options=options, **self._jit_kwargs)
        return self._jitted

    def __call__(self, *args, **kwargs):
        jitted = self._get()
        if jitted is self._nested:
            return jitted(*args, **kwargs)
        return executables.call(self._signature, jitted, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._get(), name)


def jit(fn=None, **jit_kwargs):
    """``jax.jit`` for jaxmix's programs (module docstring); usable as
    ``@jit``, ``@jit(static_argnames=...)`` or ``jit(fn)``."""
    if fn is None:
        return lambda f: Compiled(f, jit_kwargs)
    return Compiled(fn, jit_kwargs)
