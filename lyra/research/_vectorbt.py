"""vectorbt, imported once with numba's on-disk cache turned on for its simulators.

vectorbt 1.x compiles its portfolio simulators (``Portfolio.from_signals``, ``from_orders``, ...)
with ``@njit`` but without ``cache=True``, so every new Python process (each notebook kernel,
each ``lyra run``, each test worker) spent ~10-15 s compiling them again. Lyra's research code
imports vectorbt through :func:`vectorbt`, which turns numba's on-disk cache on for those
functions: the same machine code, compiled once (``scripts/warm_numba.py`` does it at set-up)
and loaded by every later process.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from typing import Any

#: vectorbt's modules whose ``@njit`` functions Lyra's research code compiles.
VBT_NB_MODULES = (
    "vectorbt.base.combine_fns",
    "vectorbt.generic.nb",
    "vectorbt.portfolio.nb",
    "vectorbt.records.nb",
    "vectorbt.returns.nb",
    "vectorbt.signals.nb",
)

_lock = threading.Lock()
_enabled = False


def enable_vectorbt_caching() -> int:
    """Turn numba's on-disk cache on for vectorbt's uncached ``@njit`` functions; return how many.

    Idempotent. Only functions defined in :data:`VBT_NB_MODULES` are touched; their results
    are unchanged (the cache stores the machine code numba would compile anyway, keyed by the
    source file's time stamp and the argument types).
    """
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    n = 0
    for name in VBT_NB_MODULES:
        mod = importlib.import_module(name)
        for obj in vars(mod).values():
            cache = getattr(obj, "_cache", None)
            if (isinstance(obj, Dispatcher) and obj.__module__ == name
                    and isinstance(cache, NullCache) and not _takes_functions(obj)):
                obj.enable_caching()
                n += 1
    return n


def _takes_functions(dispatcher: object) -> bool:
    """True for functions taking jitted functions (vectorbt names them ``*_nb``): numba keys
    their cache entries by those functions' types, which differ in every process, so entries
    would pile up on disk without ever being loaded again."""
    params = inspect.signature(dispatcher.py_func).parameters  # type: ignore[attr-defined]
    return any(p.endswith("_nb") for p in params)


def vectorbt() -> Any:
    """The ``vectorbt`` module, with its simulators' on-disk cache on (once per process)."""
    global _enabled
    import vectorbt as vbt

    if not _enabled:
        with _lock:
            if not _enabled:
                enable_vectorbt_caching()
                _enabled = True
    return vbt
