"""The dashboard on a project of N points (10M, 100M): what it costs to open, to pan and zoom, to tap, in memory.

``python -m benchmarks.bigdash --rows 100000000 --workdir DIR [--taps 20] [--json FILE]``

1. A synthetic project of ``rows`` samples in ``DIR/projects`` (:func:`benchmarks.scale.write_inputs`: ten Gaussian
   classes in 16 features, a small dense autoencoder cut at its 8-unit code; written once, kept for later runs).
2. The engine, in a fresh process with an empty cache (``DIR/cache``): the inspection the dashboard builds (PCA),
   its plot table, point index and pyramid (both stored in the cache), then per view the server's work for the
   plot, as :class:`dashboard.latent.shade_categories` does it (the pyramid where it serves the view, else the point
   index; then shading), the nearest-sample lookup and the decode of a tap. Each stage's wall time and the process's
   resident memory after it and at its peak (``VmHWM``, reset before each stage), with the part that is the
   process's own (``RssAnon``) apart from pages of mapped files (``RssFile``: the cached embedding, point index,
   activations and inputs, which the system can drop).
3. The dashboard (``python -m dashboard.serve`` on 127.0.0.1, the same cache), one Chromium session: the server's
   start with the default inspection opened from the cache, the page until the plot is ready (and the page's own
   timeline: its first byte, its load event, the plot ready), ``taps`` taps to the decoded image painted
   (:func:`benchmarks.load.drive`), and the server's memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.browser import REPO

#: Views of the plot, as fractions of the embedding's extent: (name, centre x, centre y, width, height).
VIEWS = (("pan (whole extent)", 0.5, 0.5, 1.1, 1.1), ("zoom (a quarter of the extent)", 0.45, 0.5, 0.25, 0.25),
         ("deep zoom (a 32nd)", 0.5, 0.5, 1 / 32, 1 / 32))
SIZE = 800  # pixels per side of a view, as the benchmarks of the render path


def _memory(pid="self") -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    got = {k: int(re.search(rf"^{k}:\s+(\d+) kB", status, re.M).group(1)) // 1024
           for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}
    return {"rss_mib": got["VmRSS"], "peak_mib": got["VmHWM"], "anon_mib": got["RssAnon"],
            "file_mib": got["RssFile"]}


def _stage(report: dict, name: str, f):
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here
    t0 = time.perf_counter()
    out = f()
    report[name] = {"s": round(time.perf_counter() - t0, 2), **_memory()}
    print(f"  {name}: {report[name]}", file=sys.stderr, flush=True)
    return out


def make_project(root: Path, rows: int) -> str:
    """The synthetic project of ``rows`` samples under ``root`` (written once); its name."""
    from benchmarks.scale import CLASSES, build_model, write_inputs

    name = f"synthetic{rows}"
    folder = root / name
    if (folder / "project.toml").exists():
        return name
    folder.mkdir(parents=True, exist_ok=True)
    write_inputs(folder, rows)
    build_model(folder / "model.keras")
    names = ", ".join(f'"{c}"' for c in CLASSES)
    (folder / "project.toml").write_text(
        f'title = "{rows:,} synthetic points"\nmodel = "model.keras"\ntrust_model = false\ninputs = "x.npy"\n'
        f'labels = "y.npy"\nclass_names = [{names}]\ndefault_layer = "code"\n')
    return name


def engine_side(root: Path, name: str, cache: Path, seed: int = 0) -> dict:
    """Step 2, in this process (run it in a fresh one)."""
    from dashboard.latent import category_colors
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection
    from engine.render import aggregate_colors, make_canvas, shade_colors
    from engine.render.pyramid import aggregate_pyramid

    report = {}
    project = load_project(name, root)
    insp = _stage(report, "inspection (propagate, PCA, inverse, trust)",
                  lambda: Inspection(project, method="pca", cache_dir=cache))
    report["inspection timings"] = {k: round(v, 2) for k, v in insp.timings.items()}
    frame = _stage(report, "plot table", lambda: insp.frame)
    index = _stage(report, "point index (built, stored)", lambda: insp.point_index())
    pyramid = _stage(report, "pyramid (built, stored)", lambda: insp.pyramid())
    names = list(frame["label"].cat.categories)
    colors = dict(zip(names, category_colors(names)))
    x0, x1, y0, y1 = index.bounds
    rng = np.random.default_rng(seed)
    views = {}
    for label, cx, cy, w, h in VIEWS:
        times, sources = [], []
        for i in range(10):
            jx, jy = rng.uniform(-0.05, 0.05, 2) * (w, h)  # a pan of up to 5 % between views
            xr = (x0 + (x1 - x0) * (cx + jx - w / 2), x0 + (x1 - x0) * (cx + jx + w / 2))
            yr = (y0 + (y1 - y0) * (cy + jy - h / 2), y0 + (y1 - y0) * (cy + jy + h / 2))
            t0 = time.perf_counter()
            view = pyramid.serves(xr, yr, SIZE, SIZE, index) if pyramid is not None else None
            if view is not None:
                agg = aggregate_pyramid(pyramid, view, colors=colors)
            else:
                agg = aggregate_colors(index, canvas=make_canvas(width=SIZE, height=SIZE, x_range=xr, y_range=yr),
                                       colors=colors)
            shade_colors(agg, how="eq_hist", min_alpha=90)
            if i >= 2:  # after two of warm-up
                times.append((time.perf_counter() - t0) * 1e3)
                sources.append("pyramid" if view is not None else "points")
        views[label] = {"median_ms": round(float(np.median(times)), 1),
                        "p95_ms": round(float(np.percentile(times, 95)), 1),
                        "from": {s: sources.count(s) for s in set(sources)}}
    report["views (server, 800 x 800)"] = views
    queries = np.c_[rng.uniform(x0 - (x1 - x0), x1 + (x1 - x0), 200), rng.uniform(y0 - (y1 - y0), y1 + (y1 - y0), 200)]
    queries[:100] = insp.embedding[rng.integers(0, len(insp.embedding), 100)]  # half on the data

    def timed(f):
        out = []
        for qx, qy in queries:
            t0 = time.perf_counter()
            f(float(qx), float(qy))
            out.append((time.perf_counter() - t0) * 1e3)
        return {"median_ms": round(float(np.median(out)), 3), "p95_ms": round(float(np.percentile(out, 95)), 3)}

    report["nearest sample (200 points, half far outside)"] = timed(insp.nearest)
    report["decode (inverse, suffix, trust, nearest)"] = timed(insp.decode)
    report["points"] = len(insp.embedding)
    report["trust tree points"] = int(insp.reducer.trust_.tree_.n)
    report["process"] = _memory()
    return report


def dashboard_side(root: Path, name: str, cache: Path, taps: int, log: Path) -> dict:
    """Step 3: the server and one browser session."""
    from benchmarks.load import Server, drive

    report = {}
    with Server(root, name, log, env={"LATENT_INSPECTOR_CACHE": str(cache)}) as server:
        report["server ready_s"] = round(server.started_s, 1)
        report["server after start"] = _memory(server.pid)
        sessions, walls = asyncio.run(drive(server.base, name, 1, taps, timeout_s=300))
        s = sessions[0]
        report["page: plot ready_s"] = round(s.opened_s, 2)
        # the page's own clock: the server's document (first byte), the load event, the plot ready
        report["page: timeline_s"] = s.timeline
        report["tap to decoded image painted"] = {
            "median_ms": round(float(np.median(s.paint_ms)), 1) if s.paint_ms else None,
            "p95_ms": round(float(np.percentile(s.paint_ms, 95)), 1) if s.paint_ms else None, "n": len(s.paint_ms)}
        report["errors"] = s.errors
        report["server after the session"] = _memory(server.pid)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bigdash", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--workdir", type=Path, required=True, help="the project and the cache go here")
    parser.add_argument("--taps", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--engine-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root, cache = args.workdir / "projects", args.workdir / "cache"
    root.mkdir(parents=True, exist_ok=True)
    if args.engine_only:  # step 2, in the fresh process step 1 starts
        print(json.dumps(engine_side(root, f"synthetic{args.rows}", cache)))
        return 0
    t0 = time.perf_counter()
    name = make_project(root, args.rows)
    report = {"rows": args.rows, "project written_s": round(time.perf_counter() - t0, 1),
              "load average before": round(os.getloadavg()[0], 2)}
    subprocess.run(["rm", "-rf", str(cache)], check=True)
    out = subprocess.run([sys.executable, "-m", "benchmarks.bigdash", "--rows", str(args.rows), "--workdir",
                          str(args.workdir), "--engine-only"], cwd=REPO, capture_output=True, text=True)
    if out.returncode:
        print(out.stderr[-4000:], file=sys.stderr)
        return out.returncode
    report["engine"] = json.loads(out.stdout.strip().splitlines()[-1])
    report["dashboard"] = dashboard_side(root, name, cache, args.taps, args.workdir / "server.log")
    report["load average after"] = round(os.getloadavg()[0], 2)
    text = json.dumps(report, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 1 if report["dashboard"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
