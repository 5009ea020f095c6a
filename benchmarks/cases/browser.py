"""Render, in the browser: time to first paint and pan latency in Chromium, every point a WebGL glyph vs datashaded.

The baseline is the original approach: every point sent to the browser and drawn by a Bokeh WebGL scatter
(headless Chromium renders WebGL in software, SwiftShader: there is no GPU). Ours are the dashboard's two plots: the
datashaded plot, one image per view shaded on the server; and, up to 100,000 points, the glyph plot the Inspect tab
draws below :data:`dashboard.glyphs.GLYPH_LIMIT` points (every point a glyph, coloured by category, with a legend;
:func:`dashboard.glyphs.embedding_glyphs`). All pages come from one Panel server (:mod:`benchmarks.pages`), show the
same points in an 800 x 800 frame and are loaded alternately after a warm-up load of each. Around the limit (15,000
to 30,000 points, full runs only) the glyph plot is measured against the datashaded plot: where its pan costs as
much, the limit lies.

- first paint: from navigation start to the first animation frame in which the figure has drawn its data.
- pan: a pan of a tenth of the frame, until the view shows the panned data (the second animation frame after).
  The scatter and the glyph plot redraw every glyph on each step of a drag: one step, as the pan tool makes it, is
  timed. The datashaded plot moves its image at once while dragging (``ours_frame_while_dragging_ms``) and shows the
  re-shaded view when the server's new image arrives: timed from the release of a real drag (HoloViews waits
  100 ms after the last range event before re-rendering: included).
"""

from __future__ import annotations

from benchmarks import browser as bb
from benchmarks.harness import Comparison, Side, load_average

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


#: The pages measured: path, name in the report, whether the browser pans it alone (one step timed) or the server
#: sends each view (a drag timed to the server's image).
PAGES = {"shaded": ("shaded", "datashaded plot (server image per view)", False),
         "glyphs": ("glyphs", "glyph plot (every point a glyph, dashboard.glyphs)", True),
         "scatter": ("scatter", "Bokeh WebGL scatter (every point a glyph)", True)}


def _sizes(quick: bool) -> dict[int, tuple[str, ...]]:
    """The pages measured at each number of points."""
    if quick:
        return {10_000: ("shaded", "glyphs", "scatter")}
    return {10_000: ("shaded", "glyphs", "scatter"), 15_000: ("shaded", "glyphs"), 20_000: ("shaded", "glyphs"),
            30_000: ("shaded", "glyphs"), 100_000: ("shaded", "glyphs", "scatter"), 1_000_000: ("shaded", "scatter"),
            10_000_000: ("shaded",)}


def _comparisons(n: int, kinds, paint: dict, pan: dict, extras: dict) -> list[Comparison]:
    """The rows of ``n`` points: each of our plots against the scatter where it ran, else the glyph plot against the
    datashaded plot (the sizes around the limit)."""
    pairs = [(ours, "scatter") for ours in ("shaded", "glyphs") if ours in kinds and "scatter" in kinds]
    if not pairs and "glyphs" in kinds:
        pairs = [("glyphs", "shaded")]
    if not pairs:
        pairs = [("shaded", None)]
    rows = []
    for what, got in (("first paint", paint), ("pan", pan)):
        for ours, base in pairs:
            rows.append(Comparison(
                "render (browser)", f"{what}, {n:,} points" + (", until the view shows the panned data"
                                                               if what == "pan" else ""), "ms",
                Side(PAGES[ours][1], got[ours]), Side(PAGES[base][1], got[base]) if base else None,
                extra=extras[what],
            ))
    return rows


def run(quick: bool) -> list[Comparison]:
    why = bb.unavailable()
    if why:
        return [Comparison("render (browser)", "first paint and pan", "ms", Side("datashaded"), skipped=why)]
    from dashboard.glyphs import GLYPH_LIMIT

    loads, pans = (2, 3) if quick else (5, 10)
    results = []
    with bb.serve(["-m", "benchmarks.pages"], "/health") as base, bb.chromium() as chromium:
        context = chromium.new_context(viewport=bb.VIEWPORT)
        renderer = None
        for n, kinds in _sizes(quick).items():
            timeout_s = 60 + n / 20_000  # a million glyphs in software WebGL take a while
            urls = {kind: f"{base}/{PAGES[kind][0]}?n={n}" for kind in kinds}
            rows = {kind: 1 if kind == "shaded" else n for kind in kinds}
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
                pan[kind] = _pans(page, pans, local=PAGES[kind][2], timeout_s=timeout_s)
                if kind == "shaded":
                    drag_frame_ms = round(_drag_frames(page, 5), 1)
                page.close()
            drawn = "glyphs" if n < GLYPH_LIMIT else "datashaded"
            extras = {
                "first paint": {"webgl": renderer, "image_payload_mib": round(800 * 800 * 4 / 2**20, 1),
                                "dashboard_draws": f"{drawn} (GLYPH_LIMIT {GLYPH_LIMIT:,})",
                                **({"scatter_payload_mib": round(n * 9 / 2**20, 1)} if "scatter" in kinds else
                                   {"baseline": "not run: every point as a glyph is the approach limited to 10k-1M "
                                                "points"} if "glyphs" not in kinds else {})},
                "pan": {"ours_frame_while_dragging_ms": drag_frame_ms, "load_avg": load_average()},
            }
            results += _comparisons(n, kinds, paint, pan, extras)
        context.close()
    return results
