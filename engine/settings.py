"""Where the engine keeps what it computes, read from the environment at every call.

* ``LATENT_INSPECTOR_CACHE``: the cache folder (activations, fitted projections, numba's compiled code); default
  ``<checkout>/.cache`` for a source checkout, else ``~/.cache/latent-inspector``.
* ``LATENT_INSPECTOR_PROJECTS``: the projects root (see :func:`engine.data.project.projects_root`).

Read at every call, so that a CLI flag or a test can move them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]

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
