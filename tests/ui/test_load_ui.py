"""Many users at once: 8 browser sessions, each tapping the latent plot 6 times, against one real server.

The driver is the benchmark's (:mod:`benchmarks.load`), run in a process of its own (Playwright's async API, and a
clean reading of memory): every session opens in its own browser context of one headless Chromium, then all tap at
once. Asserted: no errors (every tap decoded within the timeout, for the point that session tapped, with the values
the engine computes for that point, one decode per tap), the server alive after the sessions closed, and every
latency and memory figure measured. The figures are printed, not asserted (speed lives in the benchmarks).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ui, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
# 20 x 50 takes about 6 minutes here (most of it the 20 pages' rendering in one Chromium on two cores), beyond this
# test's budget: the benchmark runs it (python -m benchmarks --only load). The test runs 8 sessions x 6 taps: 12 x 10
# took 230 s of the suite's time, the largest browser test; 8 sessions still tap at once against one server, each
# its own points, and every decode is checked against the engine's.
SESSIONS, TAPS = 8, 6


def test_eight_sessions_tapping_at_once(tmp_path):
    root = tmp_path / "projects"
    shutil.copytree(REPO / "projects" / "mnist", root / "mnist", ignore=shutil.ignore_patterns("generated"))
    report_path = tmp_path / "load.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", "--sessions", str(SESSIONS), "--taps", str(TAPS),
         "--projects-root", str(root), "--json", str(report_path), "--log", str(tmp_path / "server.log"),
         "--settle", "5"],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
    )
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    assert report_path.is_file(), f"the load driver failed:\n{proc.stderr[-4000:]}"
    report = json.loads(report_path.read_text())
    assert report["error_list"] == [] and report["errors"] == 0
    assert proc.returncode == 0
    assert report["decodes"] == SESSIONS * TAPS
    assert report["paint_ms"]["n"] == SESSIONS * TAPS and report["data_ms"]["n"] == SESSIONS * TAPS
    assert all(s["decodes"] == TAPS and len(s["targets"]) == TAPS for s in report["per_session"])
    # each session tapped its own points: no two sessions share a target
    targets = [tuple(t) for s in report["per_session"] for t in s["targets"]]
    assert len(set(targets)) == len(targets)
    rss = report["rss_mb"]
    assert rss["before"] > 0 and len(rss["with_sessions"]) == len(rss["after_close"]) == 1
