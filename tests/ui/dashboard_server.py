"""The dashboard served in a subprocess for the browser tests: ``python -m dashboard.serve`` on 127.0.0.1.

A plain module rather than ``conftest``: ``from conftest import ...`` would resolve to whichever conftest pytest
imported last. The launcher itself is the benchmarks' (:func:`benchmarks.browser.serve`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from benchmarks.browser import ServerError, serve

#: The logs of the servers running now, for the report of a test that fails (see conftest.py).
RUNNING_LOGS: list[Path] = []


@contextlib.contextmanager
def running_server(projects_root: Path, log: Path, project: str = "mnist", env: dict | None = None):
    """``python -m dashboard.serve PROJECT`` on 127.0.0.1 and a free port, until the block ends; yields its base URL
    once the page answers (the project's first inspection is then built). The server's log is kept at ``log``."""
    # (no background warm-up of the reducers: a test server's CPU is the tests'; a test that wants it says so)
    environ = {"LATENT_INSPECTOR_PROJECTS": str(projects_root), "LATENT_INSPECTOR_PROBE": "1",
               "LATENT_INSPECTOR_WARMUP": "0", **(env or {})}
    server = serve(["-m", "dashboard.serve", project], "/app", env=environ, timeout=300, log=log)
    try:
        base = server.__enter__()
    except ServerError as exc:
        pytest.fail(str(exc))
    RUNNING_LOGS.append(Path(log))
    try:
        yield base
    finally:
        RUNNING_LOGS.remove(Path(log))
        server.__exit__(None, None, None)
        print(f"dashboard server log: {log}")
