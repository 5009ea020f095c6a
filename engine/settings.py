"""Where the engine keeps what it computes, read from the environment at every call.

* ``LATENT_INSPECTOR_CACHE``: the cache folder (activations, fitted projections, numba's compiled code); default
  ``<checkout>/.cache`` for a source checkout, else ``~/.cache/latent-inspector``.
* ``LATENT_INSPECTOR_PROJECTS``: the projects root (see :func:`engine.data.project.projects_root`).
* ``LATENT_INSPECTOR_PYRAMID_POINTS``: from how many points the dashboard draws zoomed-out views from a pyramid of
  counts (:meth:`engine.explore.inspection.Inspection.pyramid`; default 2,000,000).
* ``LATENT_INSPECTOR_MAX_PARAMS``: the most weights a model file's architecture may declare before it is built
  (default 1,000,000,000: 4 GB of float32).
* ``LATENT_INSPECTOR_PYRAMID``: ``auto`` (default: a view is drawn from the pyramid when that reads fewer cells than
  it has points, :meth:`engine.render.Pyramid.serves`), ``always`` (every view it can serve) or ``off`` (none built).
* ``LATENT_INSPECTOR_JOB_TIMEOUT``: the seconds a dashboard job may run on a worker before the page abandons it
  (:mod:`dashboard.jobs`; default 1800, ``off`` for no limit).
* ``LATENT_INSPECTOR_ONNX_MEMORY_GB``: the most memory ONNX Runtime may hold on the CPU for the process's ONNX
  models, weights and run-time tensors together (:func:`onnx_memory`; default half the machine's memory). Read once,
  when the process runs its first ONNX model.
* ``LATENT_INSPECTOR_UPLOAD_MEMORY_GB``: the address space the separate process that first loads an uploaded model
  may take (:func:`upload_memory`; default 8 GiB), and ``LATENT_INSPECTOR_UPLOAD_CHECK_S`` the seconds it may run
  (default 300): an uploaded model that needs more is refused without touching the server's memory.

Read at every call, so that a CLI flag or a test can move them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["JOB_TIMEOUT_ENV", "ONNX_MEMORY_ENV", "UPLOAD_CHECK_ENV", "UPLOAD_MEMORY_ENV", "cache_dir", "job_timeout",
           "max_params", "onnx_memory", "pyramid_mode", "pyramid_points", "upload_check_seconds", "upload_memory"]

_CHECKOUT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Where caches live: ``LATENT_INSPECTOR_CACHE``, else ``<repo>/.cache`` for a source checkout, else
    ``~/.cache/latent-inspector``."""
    env = os.environ.get("LATENT_INSPECTOR_CACHE")
    if env:
        return Path(env)
    if (_CHECKOUT / "pyproject.toml").exists():
        return _CHECKOUT / ".cache"
    return Path.home() / ".cache" / "latent-inspector"


def pyramid_points(default: int) -> int:
    """``LATENT_INSPECTOR_PYRAMID_POINTS`` when it is a whole number of at least 1, else ``default``."""
    try:
        value = int(os.environ.get("LATENT_INSPECTOR_PYRAMID_POINTS", ""))
    except ValueError:
        return default
    return value if value >= 1 else default


#: The values of ``LATENT_INSPECTOR_PYRAMID``.
PYRAMID_MODES = ("auto", "always", "off")


def pyramid_mode() -> str:
    """``LATENT_INSPECTOR_PYRAMID`` when it is one of :data:`PYRAMID_MODES` (any case), else ``auto``."""
    value = os.environ.get("LATENT_INSPECTOR_PYRAMID", "auto").strip().lower()
    return value if value in PYRAMID_MODES else "auto"


def max_params(default: int = 1_000_000_000) -> int:
    """``LATENT_INSPECTOR_MAX_PARAMS`` when it is a whole number of at least 1, else ``default``."""
    try:
        value = int(os.environ.get("LATENT_INSPECTOR_MAX_PARAMS", ""))
    except ValueError:
        return default
    return value if value >= 1 else default


#: The environment variable of :func:`job_timeout`.
JOB_TIMEOUT_ENV = "LATENT_INSPECTOR_JOB_TIMEOUT"


def job_timeout(default: float = 1800.0, environ=None) -> float | None:
    """``LATENT_INSPECTOR_JOB_TIMEOUT``: the seconds a dashboard job may run before it is abandoned, when it is a
    finite number above 0; None (no limit) when it is ``off``; else ``default``.

    Example
    -------
    >>> job_timeout(environ={"LATENT_INSPECTOR_JOB_TIMEOUT": "90"}), job_timeout(environ={})
    (90.0, 1800.0)
    """
    text = (os.environ if environ is None else environ).get(JOB_TIMEOUT_ENV, "").strip().lower()
    if text in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        return default
    return value if 0 < value < float("inf") else default


#: The environment variable of :func:`onnx_memory`.
ONNX_MEMORY_ENV = "LATENT_INSPECTOR_ONNX_MEMORY_GB"


def onnx_memory(environ=None) -> int:
    """``LATENT_INSPECTOR_ONNX_MEMORY_GB`` in bytes when it is a number above 0, else half the machine's memory (8 GiB
    where the machine does not say): what ONNX Runtime may hold on the CPU for this process's ONNX models.

    Example
    -------
    >>> onnx_memory({"LATENT_INSPECTOR_ONNX_MEMORY_GB": "0.5"})
    536870912
    """
    text = (os.environ if environ is None else environ).get(ONNX_MEMORY_ENV, "").strip()
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value > 0 and value == value and value != float("inf"):
        return int(value * 2**30)
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 2
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30


UPLOAD_MEMORY_ENV = "LATENT_INSPECTOR_UPLOAD_MEMORY_GB"
UPLOAD_CHECK_ENV = "LATENT_INSPECTOR_UPLOAD_CHECK_S"


def _positive(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


def upload_memory(environ=None) -> int:
    """``LATENT_INSPECTOR_UPLOAD_MEMORY_GB`` in bytes when it is a number above 0, else 8 GiB: the address space of the
    process that loads an uploaded model for the first time (TensorFlow alone reserves about 2 GiB of it).

    Example
    -------
    >>> upload_memory({"LATENT_INSPECTOR_UPLOAD_MEMORY_GB": "4"}), upload_memory({})
    (4294967296, 8589934592)
    """
    value = _positive((os.environ if environ is None else environ).get(UPLOAD_MEMORY_ENV, "").strip())
    return int((value or 8) * 2**30)


def upload_check_seconds(environ=None) -> float:
    """``LATENT_INSPECTOR_UPLOAD_CHECK_S`` when it is a number above 0, else 300: how long that process may take to
    load the model and run a batch.

    Example
    -------
    >>> upload_check_seconds({"LATENT_INSPECTOR_UPLOAD_CHECK_S": "off"})
    300.0
    """
    value = _positive((os.environ if environ is None else environ).get(UPLOAD_CHECK_ENV, "").strip())
    return float(value or 300.0)
