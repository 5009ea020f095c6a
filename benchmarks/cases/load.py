"""Many users: concurrent browser sessions each tapping the latent plot, one server; tap latency, errors, server memory.

The run of :mod:`benchmarks.load`: 20 sessions (each its own browser context of one headless Chromium) tap 50
times each, all at once, against ``python -m dashboard.serve mnist``; then a second wave of 20 on the same server.
Every decode is checked against the engine's (the point tapped, the values). Latency from pointerdown to the decoded
image painted, over every tap; the server's RSS before the sessions, with them open, and after they closed and were
discarded, per wave.
"""

from __future__ import annotations

from benchmarks import browser as bb
from benchmarks import load
from benchmarks.harness import Comparison, Side


def run(quick: bool) -> list[Comparison]:
    sessions, taps = (4, 10) if quick else (20, 50)
    label = f"{sessions} sessions x {taps} taps at once, tap to decoded image painted"
    why = bb.unavailable()
    if why:
        return [Comparison("load (browser)", label, "ms", Side("dashboard server"), skipped=why)]
    report = load.run(sessions, taps, waves=1 if quick else 2, settle_s=20.0 if quick else 45.0)
    samples = [ms / 1e3 for s in report["per_session"] for ms in s["paint_ms"]]
    print(load.summary(report), flush=True)
    return [Comparison(
        "load (browser)", label, "ms", Side(f"dashboard server, {sessions} concurrent sessions", samples),
        target="0 errors", met=report["errors"] == 0,
        extra={"errors": report["errors"], "error_list": report["error_list"][:10], "decodes": report["decodes"],
               "data_ms": report["data_ms"], "server_rss_mb": report["rss_mb"], "open_s": report["open_s"],
               "server_cpu_s": report["server_cpu_s"], "walls_s": report["walls_s"], "load_avg": report["load_avg"]},
    )]
