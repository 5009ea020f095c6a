"""Many users at once: N browser sessions, each tapping the latent plot M times, against one real dashboard server.

``python -m benchmarks.load [--sessions 20] [--taps 50] [--waves 1] [--json FILE]`` serves the dashboard
(``python -m dashboard.serve`` on 127.0.0.1, a free port, the decode probe on), opens every session in its own
browser context of one headless Chromium (Playwright's async API: the sessions really run at once), waits for each
page's layout to settle, then lets them all tap at the same time. Each session taps its own random points of the
plot (where the page really shows the plot), one after the other: a person waits to see the image before tapping
again. Reported:

- the tap latency in the page, from ``pointerdown`` to the second animation frame after the decoded image's data
  arrived (the frame after the one that paints it), and to the data's arrival; median and p95 over every tap;
- errors: a tap whose decode or image did not arrive within the timeout, a decode for another point than the
  session tapped, a decode whose values differ from the engine's own decode of that point (checked here after the
  run, every tap), a decode count that skips or repeats, a server that died;
- the server's resident memory (RSS, from ``/proc``) before the sessions open, with them open after the taps, and
  after they closed and the server discarded them, per wave (a second wave on the same server shows whether the
  first one's sessions were released); the server's CPU time per wave.

:func:`run` is what the benchmark case and the test call; :class:`Server` (start, RSS, SIGKILL) is shared with the
crash test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FIGURE_JS,
    REPO,
    TAP_JS,
    TO_PAGE_JS,
    VIEWPORT,
    ServerError,
    free_port,
)

LATENT = "latent-figure"

# In the page: each tap's times (ms) from pointerdown to the decoded-output source's change and to the second
# animation frame after it (benchmarks.browser.TAP_JS: window.__latency.data and .samples), and a reader of the decode
# probe (the hidden element the server fills with the decode's coordinates and values when LATENT_INSPECTOR_PROBE=1)
# through its Bokeh model.
PAGE_JS = r"""
() => {
  (""" + TAP_JS.strip() + r""")();
  if (window.__probe) return true;
  window.__probe = () => {
    let m = window.__probeModel;
    if (m == null || m.document == null) {
      m = window.__probeModel = Bokeh.documents.flatMap(d => [...d.all_models])
        .find(m => m.css_classes && m.css_classes.includes('decode-probe-pane'));
    }
    if (m == null || !m.text) return null;
    const text = m.text.replace(/&#x27;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    const out = {};
    for (const [, k, v] of text.matchAll(/data-(\w+)='([^']*)'/g)) out[k] = v;
    return out.seq === undefined ? null : out;
  };
  return true;
}
"""

# Whether page pixel (px, py) shows the named figure's canvas (not a card or a legend drawn over it): the element
# there, looked up through the shadow roots Panel renders into, is inside the figure's view.
VISIBLE_JS = """([name, px, py]) => {
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === name && v.frame != null);
  if (view == null) return false;
  const canvas = view.canvas_view.el;
  let el = document.elementFromPoint(px, py), hit = false;
  while (el) {
    hit = hit || el === canvas;
    if (!el.shadowRoot) break;
    const inner = el.shadowRoot.elementFromPoint(px, py);
    if (inner == null || inner === el) break;
    el = inner;
  }
  const f = view.frame.bbox, box = canvas.getBoundingClientRect();
  const inFrame = px > box.left + f.left && px < box.left + f.right && py > box.top + f.top && py < box.top + f.bottom;
  return inFrame && hit;
}"""
PROBE_JS = "() => window.__probe ? window.__probe() : null"
# True once the page holds the decode after number ``seq`` and its image (the ``images``-th change of the image).
DECODED_JS = """([seq, images]) => {
  const p = window.__probe && window.__probe();
  return p != null && +p.seq > seq && window.__latency.data.length >= images;
}"""
# What the page shows of the decoded output: the figures named so, and whether each one's image holds data.
OUTPUT_STATE_JS = """() => Bokeh.documents.flatMap(d => [...d.all_models])
  .filter(m => m.name === 'decoded-output-source').map(m => Object.keys(m.data).length)"""


@dataclass
class Session:
    """What one session did and got."""

    index: int
    opened_s: float = float("nan")  # from navigation to the plot ready
    # the page's own clock, seconds from navigation: the first byte of the page (the server has made the session's
    # document), the load event, and the first animation frame with the plot ready
    timeline: dict = field(default_factory=dict)
    frame: dict = field(default_factory=dict)  # the latent figure's frame: page pixels and data ranges
    targets: list = field(default_factory=list)  # (x, y) tapped, data coordinates
    decodes: list = field(default_factory=list)  # (seq, x, y, values as a list of float32) received
    paint_ms: list = field(default_factory=list)
    data_ms: list = field(default_factory=list)
    held_ms: list = field(default_factory=list)  # how long each tap's button was down, as the page saw it
    errors: list = field(default_factory=list)
    hidden: int = 0  # targets drawn again because that part of the plot was covered or outside the page
    console: list = field(default_factory=list)  # the page's uncaught errors and console errors, in order


class Server:
    """``python -m dashboard.serve PROJECT`` on 127.0.0.1 and a free port, as a context manager.

    Parameters
    ----------
    projects_root : str or Path
    project : str
    log : str or Path
        The server's output.
    env : dict, optional
        More environment (``LATENT_INSPECTOR_PROBE=1`` is always set).
    args : list of str, optional
        More arguments of ``dashboard.serve``.
    """

    def __init__(self, projects_root, project: str, log, env: dict | None = None, args: list | None = None):
        self.projects_root, self.project, self.log = Path(projects_root), project, Path(log)
        self.env = dict(env or {})
        self.args = list(args or [])
        self.proc = None
        self.port = None
        self.started_s = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, timeout: float = 300, port: int | None = None) -> str:
        """Start and wait until ``GET /app`` answers 200 (the default inspection is then built); the base URL.
        ``port``: the one to listen on (a restart where the pages were), by default a free one."""
        self.port = port or free_port()
        began = time.monotonic()
        environ = dict(os.environ, LATENT_INSPECTOR_PROJECTS=str(self.projects_root), LATENT_INSPECTOR_PROBE="1",
                       PYTHONUNBUFFERED="1", **self.env)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dashboard.serve", self.project, "--port", str(self.port), *self.args],
                cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"the dashboard server exited with {self.proc.returncode}:\n{self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/app", timeout=30) as response:
                    if response.status == 200:
                        self.started_s = time.monotonic() - began  # to the first page served
                        return self.base
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"the dashboard server did not answer within {timeout:.0f} s:\n{self._tail()}")
            time.sleep(0.5)

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def rss_mb(self) -> float:
        """The server process's resident memory in MiB (``VmRSS`` of ``/proc/PID/status``)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024

    def cpu_s(self) -> float:
        """CPU seconds the server process has used so far (user + system, ``/proc/PID/stat``)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()


# Before the page's scripts: the time (the page's clock) of the first animation frame in which the plot is ready.
READY_FRAME_JS = """(() => {
  const ready = %s;
  const poll = () => {
    try { if (ready()) { window.__plotReadyAt = performance.now(); return; } } catch (e) {}
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
})();"""
# Seconds from navigation to the page's first byte, its load event and the plot ready (READY_FRAME_JS).
TIMELINE_JS = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const s = t => t == null ? null : Math.round(t) / 1000;
  return {document_s: s(n.responseStart), loaded_s: s(n.loadEventEnd), plot_ready_s: s(window.__plotReadyAt)};
}"""


def plot_ready_js() -> str:
    """True once the latent figure is drawn with its points (its title counts them)."""
    return f"""() => {{
      if (!window.Bokeh || !Bokeh.index) return false;
      const f = ({FIGURE_JS})('{LATENT}');
      if (f == null || !f.title.includes('points')) return false;
      const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === '{LATENT}' && v.frame != null);
      return view.has_finished();
    }}"""


async def _open(context, base: str, project: str, session: Session, timeout_s: float):
    page = await context.new_page()
    page.on("pageerror", lambda exc: session.console.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: msg.type in ("error", "warning") and session.console.append(
        f"console.{msg.type}: {msg.text}"))
    await page.add_init_script(READY_FRAME_JS % plot_ready_js())
    t0 = time.perf_counter()
    await page.goto(f"{base}/app?project={project}", timeout=timeout_s * 1e3)
    await page.wait_for_function(plot_ready_js(), timeout=timeout_s * 1e3, polling=250)
    await page.evaluate(PAGE_JS)
    session.opened_s = time.perf_counter() - t0
    session.timeline = await page.evaluate(TIMELINE_JS)
    await _settle(page, timeout_s)
    return page


async def _settle(page, timeout_s: float, still_s: float = 1.0):
    """Wait until the latent figure's frame has kept its place and size for ``still_s`` (the page's responsive
    layout has settled), as a person waits for the page to stop moving before tapping."""
    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        frame = await page.evaluate(f"(name) => ({FIGURE_JS})(name)", LATENT)
        key = None if frame is None else tuple(round(frame[k]) for k in ("left", "top", "width", "height"))
        if key != last:
            last, since = key, time.monotonic()
        elif key is not None and time.monotonic() - since >= still_s:
            return
        await page.wait_for_timeout(200)


def _target(frame: dict, rng) -> tuple[float, float]:
    """A random point inside the middle 90% of the frame's data ranges."""
    a, b = rng.uniform(0.05, 0.95, 2)
    return float(frame["x0"] + a * (frame["x1"] - frame["x0"])), float(frame["y0"] + b * (frame["y1"] - frame["y0"]))


async def _aim(page, frame: dict, rng, session: Session) -> tuple[float, float, float, float]:
    """A random point of the plot that the page really shows (data and page coordinates); up to 50 draws."""
    for _ in range(50):
        x, y = _target(frame, rng)
        px, py = await page.evaluate(TO_PAGE_JS, [LATENT, x, y])
        if await page.evaluate(VISIBLE_JS, [LATENT, px, py]):
            return x, y, px, py
        session.hidden += 1
    raise RuntimeError("no visible point of the latent plot in 50 draws")


async def _tap_all(page, session: Session, taps: int, seed: int, timeout_s: float, artifacts=None):
    frame = session.frame = await page.evaluate(f"(name) => ({FIGURE_JS})(name)", LATENT)
    rng = np.random.default_rng(seed)
    probe = await page.evaluate(PROBE_JS)
    seq = int(probe["seq"]) if probe else 0
    failures = 0
    for k in range(1, taps + 1):
        if failures >= 3:
            session.errors.append(f"taps {k} to {taps} not made after 3 failures")
            break
        x, y, px, py = await _aim(page, frame, rng, session)
        session.targets.append((x, y))
        images = await page.evaluate("() => window.__latency.data.length")
        await page.mouse.click(px, py)
        try:  # a person waits for the image before tapping again
            await page.wait_for_function(DECODED_JS, arg=[seq, images + 1], timeout=timeout_s * 1e3, polling="raf")
        except Exception as exc:  # Playwright's TimeoutError, or the page went away
            failures += 1
            got = await page.evaluate(PROBE_JS)
            decoded = got is not None and int(got["seq"]) > seq
            what = "the decode arrived but no image" if decoded else "no decode"
            data = await page.evaluate("() => window.__latency.data.slice()")
            if len(data) > images:  # the image's data is in the page, but no animation frame came to see it
                what = f"the image's data arrived after {data[images]:.0f} ms, but the page drew no frame"
            held = await page.evaluate("() => window.__latency.held.slice(-1)[0]")
            what += "" if held is None else f" (button held {held:.0f} ms)"
            session.errors.append(f"tap {k} at ({x:.4g}, {y:.4g}): {what} within {timeout_s:.0f} s "
                                  f"({type(exc).__name__}; image sources in the page: "
                                  f"{await page.evaluate(OUTPUT_STATE_JS)}; the page's last errors: "
                                  f"{session.console[-3:] or 'none'})")
            if artifacts is not None:
                await page.screenshot(path=str(Path(artifacts) / f"session{session.index}-tap{k}.png"))
            if not decoded:
                session.decodes.append(None)
                continue
        got = await page.evaluate(PROBE_JS)
        if int(got["seq"]) != seq + 1:
            session.errors.append(f"tap {k}: decode number {got['seq']} after {seq}")
        seq = int(got["seq"])
        values = got.get("values")
        session.decodes.append((seq, float(got["x"]), float(got["y"]), values))
    try:  # the last tap's paint: two animation frames after its image, later on a loaded machine
        decoded = sum(d is not None for d in session.decodes)
        await page.wait_for_function(f"() => window.__latency.samples.length >= {decoded}",
                                     timeout=timeout_s * 1e3, polling=100)
    except Exception:  # reported below, as images painted for taps
        pass
    times = await page.evaluate("() => ({data: window.__latency.data.slice(), "
                                "paint: window.__latency.samples.slice(), held: window.__latency.held.slice()})")
    session.paint_ms, session.data_ms, session.held_ms = times["paint"], times["data"], times["held"]
    if len(session.paint_ms) != taps:
        session.errors.append(f"{len(session.paint_ms)} decoded images painted for {taps} taps")


async def drive(base: str, project: str, sessions: int, taps: int, *, seed: int = 0, timeout_s: float = 120,
                open_at_once: int = 5, on_tapped=None, artifacts=None) -> tuple[list[Session], dict]:
    """Open ``sessions`` pages of ``base`` (each in its own browser context), then tap ``taps`` times in each, all
    sessions at once; close them. ``on_tapped()`` runs once every session has tapped, before they close; a tap that
    fails leaves a screenshot in the folder ``artifacts`` when given.

    Returns
    -------
    (list of Session, dict of phase wall times in seconds)
    """
    from playwright.async_api import async_playwright

    result = [Session(i) for i in range(sessions)]
    walls = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            contexts = [await browser.new_context(viewport=VIEWPORT) for _ in range(sessions)]
            gate = asyncio.Semaphore(open_at_once)  # the server builds each session's page: not all in one go

            async def open_one(i):
                async with gate:
                    return await _open(contexts[i], base, project, result[i], timeout_s * 3)

            t0 = time.perf_counter()
            pages = await asyncio.gather(*(open_one(i) for i in range(sessions)))
            walls["open_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            await asyncio.gather(*(_tap_all(page, s, taps, seed * 1000 + s.index, timeout_s, artifacts)
                                   for page, s in zip(pages, result)))
            walls["tap_s"] = time.perf_counter() - t0
            if on_tapped is not None:
                on_tapped()
            for context in contexts:
                await context.close()
        finally:
            await browser.close()
    return result, walls


def check_decodes(sessions: list[Session], projects_root, project: str) -> None:
    """Add to each session's errors: a decode for another point than the one tapped (more than 1.5 pixels of the
    session's plot away), or values other than the engine's decode of the same point (computed here)."""
    os.environ["LATENT_INSPECTOR_PROJECTS"] = str(projects_root)
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection

    insp = Inspection(load_project(project, root=projects_root), method="pca")
    for s in sessions:
        rows = [(i, d) for i, d in enumerate(s.decodes) if d is not None]
        if not rows:
            continue
        f = s.frame
        tolerance = (1.5 * abs(f["x1"] - f["x0"]) / f["width"], 1.5 * abs(f["y1"] - f["y0"]) / f["height"])
        xy = np.array([[d[1], d[2]] for _, d in rows], np.float32)
        _, outputs, _ = insp.decode_batch(xy)
        for (i, (_, x, y, values)), expected in zip(rows, outputs):
            tx, ty = s.targets[i]
            if abs(x - tx) > tolerance[0] or abs(y - ty) > tolerance[1]:
                s.errors.append(f"tap {i + 1}: tapped ({tx:.4g}, {ty:.4g}), decoded ({x:.4g}, {y:.4g})")
                continue
            if values is None:
                s.errors.append(f"tap {i + 1}: the page received no values (LATENT_INSPECTOR_PROBE=1 not set?)")
                continue
            got = np.frombuffer(base64.b64decode(values), np.float32)
            want = np.asarray(expected, np.float32).ravel()
            if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-4):
                s.errors.append(f"tap {i + 1} at ({x:.4g}, {y:.4g}): the values are not the engine's decode there")


def wave_line(wave: int, got: list, cpu_s: float, rss_mb: float) -> str:
    """One wave's figures, printed as it ends: decodes, errors, tap to painted image and the first taps."""
    paint = np.concatenate([np.asarray(s.paint_ms, float) for s in got]) if got else np.array([])
    first = [s.paint_ms[0] for s in got if s.paint_ms]
    errors = sum(len(s.errors) for s in got)
    decodes = sum(d is not None for s in got for d in s.decodes)
    figures = (f"painted median {np.median(paint):.0f} ms, p95 {np.percentile(paint, 95):.0f} ms; first taps "
               f"median {np.median(first):.0f} ms, max {max(first):.0f} ms") if len(paint) and first else "none painted"
    return (f"wave {wave + 1}: {len(got)} sessions, {decodes} decodes, {errors} errors; {figures}; server CPU "
            f"{cpu_s} s, RSS after close {rss_mb} MiB")


def run(sessions: int = 20, taps: int = 50, *, waves: int = 1, project: str = "mnist", projects_root=None,
        seed: int = 0, log=None, settle_s: float = 45.0, check: bool = True, artifacts=None) -> dict:
    """Serve the dashboard, drive ``waves`` waves of ``sessions`` x ``taps``, check every decode; a report.

    Parameters
    ----------
    sessions, taps : int
    waves : int
        Waves of sessions, one after the other on the same server: the memory after a second wave tells whether
        the first wave's sessions were released (it then grows little) or kept (it grows as much again).
    project : str
    projects_root : str or Path, optional
        Default: the repository's ``projects``.
    seed : int
        Seeds the points each session taps.
    log : str or Path, optional
        The server's log (default: a temporary file).
    settle_s : float
        After a wave's sessions close, how long to wait for the server to discard them (Bokeh's unused-session
        lifetime is 15 s, checked every 17 s) before the memory reading.
    check : bool
        Compare every decode with the engine's (loads the model here, after each wave).
    artifacts : str or Path, optional
        A folder for the screenshots of failed taps.

    Returns
    -------
    dict
        ``sessions``, ``taps``, ``waves``, ``decodes``, ``errors`` (count) and ``error_list``, ``paint_ms`` /
        ``data_ms`` / ``held_ms`` (median, p95, max, n; held: how long each tap's button was down in the page),
        ``rss_mb`` (``before``, then ``with_sessions`` and ``after_close`` per wave), ``server_cpu_s`` per wave,
        phase wall times, ``hidden_targets``, ``load_avg``, ``per_session``.
    """
    import tempfile

    root = Path(projects_root) if projects_root is not None else REPO / "projects"
    log = Path(log) if log is not None else Path(tempfile.mkstemp(prefix="load-server-", suffix=".log")[1])
    rss = {"before": None, "with_sessions": [], "after_close": []}
    result, walls, cpu = [], [], []
    with Server(root, project, log) as server:
        time.sleep(2)  # the warm-up's last allocations
        rss["before"] = round(server.rss_mb(), 1)
        for wave in range(waves):
            cpu0 = server.cpu_s()
            got, times = asyncio.run(drive(
                server.base, project, sessions, taps, seed=seed * 100 + wave, artifacts=artifacts,
                on_tapped=lambda: rss["with_sessions"].append(round(server.rss_mb(), 1)),
            ))
            cpu.append(round(server.cpu_s() - cpu0, 1))
            for s in got:
                s.index += wave * sessions
            closed = time.monotonic()
            if check:
                check_decodes(got, root, project)
            time.sleep(max(0.0, settle_s - (time.monotonic() - closed)))
            rss["after_close"].append(round(server.rss_mb(), 1))
            result += got
            print(wave_line(wave, got, cpu[-1], rss["after_close"][-1]), flush=True)  # kept if a later wave is cut
            walls.append({k: round(v, 1) for k, v in times.items()})
        alive = server.proc.poll() is None
    errors = [f"session {s.index}: {e}" for s in result for e in s.errors]
    if not alive:
        errors.append("the server died")

    def stats(key):
        values = np.concatenate([np.asarray(getattr(s, key), float) for s in result]) if result else np.array([])
        if not len(values):
            return {"n": 0}
        return {"median": round(float(np.median(values)), 1), "p95": round(float(np.percentile(values, 95)), 1),
                "max": round(float(values.max()), 1), "n": int(len(values))}

    opened = [s.opened_s for s in result]
    return {
        "sessions": sessions, "taps": taps, "waves": waves, "project": project,
        "decodes": sum(d is not None for s in result for d in s.decodes),
        "errors": len(errors), "error_list": errors[:50],
        "paint_ms": stats("paint_ms"), "data_ms": stats("data_ms"), "held_ms": stats("held_ms"), "rss_mb": rss,
        "server_cpu_s": cpu,
        "open_s": {"median": round(float(np.median(opened)), 1), "max": round(float(np.max(opened)), 1)},
        "walls_s": walls, "hidden_targets": sum(s.hidden for s in result), "load_avg": round(os.getloadavg()[0], 2),
        "server_log": str(log), "per_session": [asdict(s) | {"decodes": len(s.decodes)} for s in result],
    }


def summary(report: dict) -> str:
    """One paragraph of the report's figures."""
    p, d, r = report["paint_ms"], report["data_ms"], report["rss_mb"]
    waves = report["waves"]
    walls = "; ".join(f"opened in {w.get('open_s')} s, tapped in {w.get('tap_s')} s" for w in report["walls_s"])
    return (f"{waves} wave(s) of {report['sessions']} sessions x {report['taps']} taps ({report['decodes']} decodes "
            f"received): {report['errors']} errors; tap to painted image median {p.get('median')} ms, p95 "
            f"{p.get('p95')} ms (data arrived: median {d.get('median')} ms, p95 {d.get('p95')} ms); button held "
            f"up to {report['held_ms'].get('max')} ms (BokehJS's press threshold: 300 ms); server RSS "
            f"{r['before']} MiB before, {r['with_sessions']} MiB with the sessions open, {r['after_close']} MiB after "
            f"they closed; server CPU {report['server_cpu_s']} s; {walls}; {report['hidden_targets']} targets drawn "
            f"again (covered); load average {report['load_avg']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--taps", type=int, default=50)
    parser.add_argument("--waves", type=int, default=1, help="waves of sessions, one after the other")
    parser.add_argument("--project", default="mnist")
    parser.add_argument("--projects-root", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settle", type=float, default=45.0, help="seconds for the server to discard closed sessions")
    parser.add_argument("--no-check", dest="check", action="store_false", help="skip the engine's check of decodes")
    parser.add_argument("--log", type=Path, default=None, help="keep the server's log here")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--artifacts", type=Path, default=None, help="screenshots of failed taps go here")
    args = parser.parse_args(argv)
    if args.artifacts:
        args.artifacts.mkdir(parents=True, exist_ok=True)
    report = run(args.sessions, args.taps, waves=args.waves, project=args.project, projects_root=args.projects_root,
                 seed=args.seed, log=args.log, settle_s=args.settle, check=args.check, artifacts=args.artifacts)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    print(summary(report))
    for line in report["error_list"]:
        print("  error:", line)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
