"""The GPU backend: CuPy arrays and cuML estimators, when a CUDA device is there; the CPU otherwise.

cuML and CuPy are optional. They are imported lazily, inside functions, and every import is guarded with
``except Exception`` (not only ``ImportError``): a CUDA install that is present but broken (driver mismatch, no
device) must fall back to the CPU instead of crashing.

Array code that runs on either device is written once against a namespace ``xp``::

    xp = get_namespace(a)        # cupy if ``a`` is a cupy.ndarray else numpy
"""

from __future__ import annotations

import functools
import sys

import numpy as np

from engine.errors import BackendUnavailableError, ReducerValueError

__all__ = ["BACKENDS", "cuml_available", "get_namespace", "gpu_available", "import_cuml", "resolve_backend", "to_numpy"]

BACKENDS = ("auto", "cpu", "gpu")

GPU_HINT = (
    "The GPU backend needs cuML and CuPy with a working CUDA device: "
    "pip install latent-inspector[gpu] (or the RAPIDS cuml package for your CUDA version), "
    "or use backend='cpu'."
)


@functools.cache
def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device (checked once per process). Any failure (no CUDA,
    a broken driver) means no GPU."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # a broken CUDA install raises all sorts of errors, not only ImportError
        return False


@functools.cache
def cuml_available() -> bool:
    """True when there is a GPU (:func:`gpu_available`) and cuML imports: the reducers can fit on the device."""
    if not gpu_available():
        return False
    try:
        import cuml  # noqa: F401
    except Exception:
        return False
    return True


def import_cuml():
    """Return the ``cuml`` module, or raise :class:`BackendUnavailableError` with the install hint."""
    if not cuml_available():
        raise BackendUnavailableError(GPU_HINT)
    import cuml

    return cuml


def resolve_backend(backend: str) -> str:
    """Turn ``"auto" | "cpu" | "gpu"`` into the backend to use, ``"cpu"`` or ``"gpu"``.

    Parameters
    ----------
    backend : {"auto", "cpu", "gpu"}
        ``"auto"`` picks the GPU only when cuML imports and a device is present (:func:`cuml_available`).

    Returns
    -------
    str
        ``"cpu"`` or ``"gpu"``.

    Raises
    ------
    ReducerValueError
        For any other value.
    BackendUnavailableError
        For ``"gpu"`` without cuML/CuPy/a device.

    Examples
    --------
    >>> resolve_backend("cpu")
    'cpu'
    """
    if backend not in BACKENDS:
        raise ReducerValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    if backend == "cpu":
        return "cpu"
    if backend == "gpu":
        import_cuml()
        return "gpu"
    return "gpu" if cuml_available() else "cpu"


def get_namespace(a):
    """Array namespace of ``a``: the ``cupy`` module for a ``cupy.ndarray``, else ``numpy``.

    Costs a type check, never an import: a CuPy array can only exist once CuPy is imported.
    """
    if type(a).__module__.startswith("cupy"):
        return sys.modules["cupy"]
    return np


def to_numpy(a) -> np.ndarray:
    """Host copy of a NumPy or CuPy array (NumPy arrays are returned as they are)."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)
