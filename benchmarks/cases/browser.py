"""Render, in the browser: time to first paint and pan latency in Chromium, every point a WebGL glyph vs datashaded.

The baseline is the original approach: every point sent to the browser and drawn by a Bokeh WebGL scatter
(headless Chromium renders WebGL in software, SwiftShader: there is no GPU). Ours is the dashboard's datashaded
plot: one image per view, shaded on the server. Both pages come from one Panel server (:mod:`benchmarks.pages`),
show the same points in an 800 x 800 frame and are loaded alternately after a warm-up load of each.

- first paint: from navigation start to the first animation frame in which the figure has drawn its data.
- pan: a pan of a tenth of the frame, until the view shows the panned data (the second animation frame after).
  The scatter redraws every glyph on each step of a drag: one step, as the pan tool makes it, is timed. The
  datashaded plot moves its image at once while dragging (``ours_frame_while_dragging_ms``) and shows the
  re-shaded view when the server's new image arrives: timed from the release of a real drag (HoloViews waits
  100 ms after the last range event before re-rendering: included).
"""

from __future__ import annotations

from benchmarks import browser as bb
from benchmarks.harness import Comparison, Side

NAME = "bench-figure"


def _first_paint(context, url: str, rows: int, timeout_s: float):
    """Load ``url`` in a new page; return (page, ms from navigation to the first frame showing the data)."""
    page = context.new_page()
    page.bring_to_front()
    page.goto(url, wait_until="commit", timeout=timeout_s * 1e3)
    handle = page.wait_for_function(bb.PAINTED_JS, arg=[NAME, rows], polling="raf", timeout=timeout_s * 1e3)
    return page, float(handle.json_value())


def _pans(page, count: int, local: bool, timeout_s: float) -> list[float]:
    """Seconds until each of ``count`` pans (a tenth of the frame, alternating directions) shows the panned data.

    ``local`` (every point in the browser): one pan step redrawn. Otherwise a drag of the mouse, from its release
    to the server's new image painted.
    """
    if local:
        return [page.evaluate(bb.PAN_STEP_JS, [NAME, 0.1 * s, 0.05 * s]) / 1e3
                for s in (1 if i % 2 == 0 else -1 for i in range(count))]
    page.evaluate(bb.REPAINT_JS, NAME)
    frame = bb.figure(page, NAME)
    for i in range(count):
        sign = 1 if i % 2 == 0 else -1
        bb.drag(page, frame, 0.1 * sign, 0.05 * sign)
        bb.wait_until(lambda i=i: len(bb.samples(page, "__repaint")) > i, timeout_s, f"the view after pan {i + 1}")
        page.wait_for_timeout(200)
    return [ms / 1e3 for ms in bb.samples(page, "__repaint")[:count]]


def _drag_frames(page, count: int) -> float:
    """Median ms of a pan step of the datashaded plot while dragging (the image moved, before the server's)."""
    return float(sorted(page.evaluate(bb.PAN_STEP_JS, [NAME, 0.02, 0.0]) for _ in range(count))[count // 2])


def run(quick: bool) -> list[Comparison]:
    why = bb.unavailable()
    if why:
        return [Comparison("render (browser)", "first paint and pan", "ms", Side("datashaded"), skipped=why)]
    both = (20_000,) if quick else (10_000, 100_000, 1_000_000)
    shaded_only = () if quick else (10_000_000,)
    loads, pans = (2, 3) if quick else (5, 10)
    results = []
    with bb.serve(["-m", "benchmarks.pages"], "/health") as base, bb.chromium() as chromium:
        context = chromium.new_context(viewport=bb.VIEWPORT)
        renderer = None
        for n in (*both, *shaded_only):
            timeout_s = 60 + n / 20_000  # a million glyphs in software WebGL take a while
            urls = {"ours": f"{base}/shaded?n={n}", "base": f"{base}/scatter?n={n}"}
            kinds = ("ours", "base") if n in both else ("ours",)
            rows = {"ours": 1, "base": n}
            for kind in kinds:  # warm-up: the server makes the data, the browser caches BokehJS
                page, _ = _first_paint(context, urls[kind], rows[kind], timeout_s)
                renderer = renderer or bb.webgl_renderer(page)
                page.close()
            paint = {kind: [] for kind in kinds}
            for _ in range(loads):  # one page open at a time: a background tab gets no animation frames
                for kind in kinds:
                    page, ms = _first_paint(context, urls[kind], rows[kind], timeout_s)
                    paint[kind].append(ms / 1e3)
                    page.close()
            pan, drag_frame_ms = {}, None
            for kind in kinds:
                page, _ = _first_paint(context, urls[kind], rows[kind], timeout_s)
                page.wait_for_timeout(1000)  # the view settles (the server's re-render for the page's size)
                pan[kind] = _pans(page, pans, local=kind == "base", timeout_s=timeout_s)
                if kind == "ours":
                    drag_frame_ms = round(_drag_frames(page, 5), 1)
                page.close()
            extras = {
                "first paint": {"webgl": renderer, "image_payload_mib": round(800 * 800 * 4 / 2**20, 1),
                                **({"scatter_payload_mib": round(n * 9 / 2**20, 1)} if "base" in kinds else
                                   {"baseline": "not run: every point as a glyph is the approach limited to 10k-1M "
                                                "points"})},
                "pan": {"ours_frame_while_dragging_ms": drag_frame_ms},
            }
            for what, got in (("first paint", paint), ("pan", pan)):
                results.append(Comparison(
                    "render (browser)", f"{what}, {n:,} points" + (", until the view shows the panned data"
                                                                   if what == "pan" else ""), "ms",
                    Side("datashaded plot (server image per view)", got["ours"]),
                    Side("Bokeh WebGL scatter (every point a glyph)", got["base"]) if "base" in kinds else None,
                    extra=extras[what],
                ))
        context.close()
    return results
