"""Latent Inspector engine: load a Keras model, split it at any layer, propagate a dataset, reduce, decode.

The engine computes and knows no screen: it never imports Panel, Bokeh or HoloViews.
"""

import os
from pathlib import Path

__version__ = "0.1.0"

_REPO = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Where caches live: ``LATENT_INSPECTOR_CACHE``, else ``<repo>/.cache`` for a source checkout, else
    ``~/.cache/latent-inspector``. Read at every call, so a CLI flag or test can move it."""
    env = os.environ.get("LATENT_INSPECTOR_CACHE")
    if env:
        return Path(env)
    if (_REPO / "pyproject.toml").exists():
        return _REPO / ".cache"
    return Path.home() / ".cache" / "latent-inspector"


# numba (UMAP, pynndescent, datashader) compiles on first use; caching the machine code inside the project lets
# every later process, test run and dashboard reuse it. Must happen before anything imports numba.
os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba"))
# TensorFlow's C++ start-up chatter is noise for a CLI user; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
