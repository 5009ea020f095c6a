"""Compute backends, imported lazily: TensorFlow/Keras for models, CuPy/cuML on a GPU when present.

TensorFlow's C++ runtime writes start-up chatter straight to file descriptor 2 while it is imported ("Could not
find cuda drivers...") whatever ``TF_CPP_MIN_LOG_LEVEL`` says; a CLI user should see one clear line on error, so
the import runs with descriptor 2 pointed at /dev/null. Python exceptions raised by the import still show.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from types import ModuleType

_lock = threading.Lock()


def _quiet_import(name: str, then=None) -> ModuleType:
    """Import ``name`` (and run ``then(module)``) with file descriptor 2 silenced."""
    if name in sys.modules:
        return sys.modules[name]
    with _lock:
        try:
            sys.stderr.flush()
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # no real stderr (notebook, captured): nothing to silence
            return importlib.import_module(name)
        saved, devnull = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        try:
            module = importlib.import_module(name)
            if then is not None:
                then(module)
            return module
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            os.close(devnull)


def _init_devices(tf) -> None:
    # Device discovery (cuInit on a machine without a GPU) logs at the first operation, not at import.
    tf.config.list_logical_devices()


def keras() -> ModuleType:
    """The ``keras`` module (Keras 3 on the TensorFlow backend), imported on first use."""
    tensorflow()
    return _quiet_import("keras")


def tensorflow() -> ModuleType:
    """The ``tensorflow`` module, imported (and its devices discovered) on first use."""
    return _quiet_import("tensorflow", then=_init_devices)


def gpu_available() -> bool:
    """True when CuPy imports and sees a CUDA device. Any failure (no CUDA, broken driver) means no GPU."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def array_module(a) -> ModuleType:
    """``cupy`` for a CuPy array, else ``numpy``: write array code once for both."""
    mod = type(a).__module__.split(".")[0]
    if mod == "cupy":
        import cupy

        return cupy
    import numpy

    return numpy
