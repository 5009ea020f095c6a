"""One reducer fit in a fresh process, so that numba's compiled-code cache is what it is on a first run:
``python -m benchmarks.coldstart METHOD DATA.npy [NAME=VALUE ...]`` prints ``{"import_s": ..., "fit_s": ...}``.

``import_s`` is the reducer library's import (umap-learn compiles, or loads from the cache, part of its numba code
when imported), ``fit_s`` the engine's fit. The caller chooses the cache with ``NUMBA_CACHE_DIR``: a fresh
temporary folder is a cold cache, the project's ``.cache/numba`` a warm one (see :func:`fit_in_fresh_process`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

LIBRARIES = {"pca": "sklearn.decomposition", "umap": "umap", "tsne": "openTSNE"}


def fit_in_fresh_process(method: str, data: Path, numba_cache: Path, params: dict | None = None,
                         timeout: float = 1800) -> dict:
    """Run this module in a new Python process with ``NUMBA_CACHE_DIR=numba_cache``; return its timings.

    Raises
    ------
    RuntimeError
        The process failed (its stderr is in the message).
    """
    args = [f"{k}={v}" for k, v in (params or {}).items()]
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "benchmarks.coldstart", method, str(data), *args],
                          cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"coldstart {method} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    method, data, *rest = argv
    params = {}
    for item in rest:
        name, _, value = item.partition("=")
        params[name] = float(value) if "." in value else int(value)
    import importlib

    import numpy as np

    X = np.load(data)
    t0 = time.perf_counter()
    importlib.import_module(LIBRARIES[method])
    import_s = time.perf_counter() - t0
    from engine.reduce import make_reducer

    t0 = time.perf_counter()
    make_reducer(method, inverse=None, random_state=0, **params).fit(X)
    fit_s = time.perf_counter() - t0
    print(json.dumps({"import_s": import_s, "fit_s": fit_s, "rows": len(X)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
