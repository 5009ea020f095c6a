"""The dashboard served in a subprocess for the browser tests: ``python -m dashboard.serve`` on 127.0.0.1.

A plain module rather than ``conftest``: ``from conftest import ...`` would resolve to whichever conftest pytest
imported last.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(projects_root: Path, log: Path, project: str = "mnist"):
    """``python -m dashboard.serve PROJECT`` on 127.0.0.1 and a free port, until the block ends; yields its base URL
    once the page answers (the project's first inspection is then built)."""
    port = _free_port()
    env = dict(os.environ, LATENT_INSPECTOR_PROJECTS=str(projects_root), LATENT_INSPECTOR_PROBE="1",
               PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard.serve", project, "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dashboard server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{base}/app", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dashboard server not up after 300 s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        print(f"dashboard server log: {log}")
