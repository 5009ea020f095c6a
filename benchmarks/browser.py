"""A real browser against a real server: a Panel server on 127.0.0.1 in a subprocess, driven by Playwright in
Debian's Chromium (headless, software WebGL through SwiftShader: there is no GPU).

The one home of the page helpers (Bokeh views found through ``Bokeh.index`` by their model's name), the Chromium
flags and the server launcher: the benchmarks use them, and so do the browser tests (``tests/ui``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("LATENT_INSPECTOR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
VIEWPORT = {"width": 1500, "height": 950}


def unavailable() -> str:
    """Why the browser cases cannot run here ("" when they can)."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (make chromium installs Debian's)"
    try:
        import playwright.sync_api  # noqa: F401
    except Exception as exc:  # not installed, or a broken install
        return f"Playwright is not usable ({exc}); pip install -e '.[test]'"
    return ""


class ServerError(RuntimeError):
    """The server under test exited or did not answer in time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(args: list[str], probe: str, env: dict | None = None, timeout: float = 300, log: Path | None = None):
    """Run ``python ARGS --port P`` (a Panel server) until the block ends; yields ``http://127.0.0.1:P``.

    Ready when ``GET probe`` (a path) answers 200; :class:`ServerError` (with the log's end) if the server exits or
    is not ready within ``timeout`` seconds. The server is stopped by its process group. Its log goes to ``log``,
    kept, or else to a temporary file deleted afterwards.
    """
    port = free_port()
    keep = log is not None
    log = Path(log) if keep else Path(tempfile.mkstemp(prefix="bench-server-", suffix=".log")[1])
    environ = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, *args, "--port", str(port)], cwd=REPO, env=environ, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise ServerError(f"server {args} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(base + probe, timeout=60) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"server {args} not up after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
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
        if not keep:
            log.unlink(missing_ok=True)


@contextlib.contextmanager
def chromium():
    """A headless Chromium (Playwright); yields the browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def webgl_renderer(page) -> str | None:
    """The page's WebGL renderer string (None without WebGL)."""
    return page.evaluate("""() => {
      const gl = document.createElement('canvas').getContext('webgl');
      if (!gl) return null;
      const info = gl.getExtension('WEBGL_debug_renderer_info');
      return info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : 'webgl';
    }""")


class WaitTimeout(AssertionError):
    """What a page was waited for did not happen (an assertion failure in a test, an error in a benchmark)."""


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """The first truthy value of ``predicate()``, polled every ``interval`` seconds; :class:`WaitTimeout` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# -- Bokeh figures by name -------------------------------------------------------------------------------------------

FIGURE_JS = """
(name) => {
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === name && v.frame != null);
  if (view == null) return null;
  const rect = view.canvas_view.el.getBoundingClientRect();
  const f = view.frame.bbox;
  const xr = view.frame.x_range, yr = view.frame.y_range;
  return {left: rect.left + f.left, top: rect.top + f.top, width: f.width, height: f.height,
          x0: xr.start, x1: xr.end, y0: yr.start, y1: yr.end,
          title: view.model.title ? view.model.title.text : ""};
}
"""

# Page pixels of data coordinates (x, y) in the named figure, scrolled into view first if it is not.
TO_PAGE_JS = """
([name, x, y]) => {
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === name && v.frame != null);
  const el = view.canvas_view.el, box = el.getBoundingClientRect();
  if (box.top < 0 || box.bottom > window.innerHeight) el.scrollIntoView({block: "center"});
  const rect = view.canvas_view.el.getBoundingClientRect();
  return [rect.left + view.frame.x_scale.compute(x), rect.top + view.frame.y_scale.compute(y)];
}
"""

# True (the time since navigation, ms) once the named figure has drawn its named source with at least `rows` rows:
# polled on every animation frame, so the time is that of the first frame showing the data.
PAINTED_JS = """
([name, rows]) => {
  if (!window.Bokeh || !Bokeh.index) return false;
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === name && v.frame != null);
  if (view == null || !view.has_finished()) return false;
  const source = Bokeh.documents.flatMap(d => [...d.all_models]).find(m => m.name === name + '-source');
  if (source == null || source.get_length() < rows) return false;
  return performance.now();
}
"""

# Times from each pointerup (the end of a drag; its event time, so the wait for a busy page counts) to the second
# animation frame after the named source changed, i.e. after the browser painted the server's new data.
REPAINT_JS = """
(name) => {
  const lat = window.__repaint = {t0: null, samples: [], pending: false};
  document.addEventListener('pointerup', (e) => { lat.t0 = e.timeStamp; lat.pending = true; }, true);
  for (const doc of Bokeh.documents) {
    doc.on_change((event) => {
      const model = event.model;
      if (!lat.pending || model == null || model.name !== name + '-source') return;
      lat.pending = false;
      const t0 = lat.t0;
      requestAnimationFrame(() => requestAnimationFrame(() => lat.samples.push(performance.now() - t0)));
    });
  }
}
"""

# One pan step as the pan tool makes it (both ranges moved by a fraction of their span), timed to the second
# animation frame after it: the view has redrawn from the data it holds.
PAN_STEP_JS = """
async ([name, fx, fy]) => {
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === name && v.frame != null);
  const xr = view.frame.x_range, yr = view.frame.y_range;
  const dx = (xr.end - xr.start) * fx, dy = (yr.end - yr.start) * fy;
  const t0 = performance.now();
  xr.setv({start: xr.start + dx, end: xr.end + dx});
  yr.setv({start: yr.start + dy, end: yr.end + dy});
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  return performance.now() - t0;
}
"""

# Times from each pointerdown to the decoded-output source's change ("data") and to the second animation frame after
# it (the frame after the one in which the browser paints the new image): window.__latency.data and .samples.
TAP_JS = """
() => {
  if (window.__latency) return true;
  const lat = window.__latency = {t0: null, samples: [], data: [], held: [], pending: false, down: null};
  document.addEventListener('pointerdown', (e) => {
    lat.t0 = performance.now(); lat.pending = true; lat.down = e.timeStamp;
  }, true);
  // how long the button was down, as the page saw it (over 300 ms, BokehJS calls it a press, not a tap)
  document.addEventListener('pointerup', (e) => { if (lat.down != null) lat.held.push(e.timeStamp - lat.down); }, true);
  for (const doc of Bokeh.documents) {
    doc.on_change((event) => {
      const model = event.model;
      if (!lat.pending || model == null || model.name !== 'decoded-output-source') return;
      lat.pending = false;
      const t0 = lat.t0;
      lat.data.push(performance.now() - t0);
      requestAnimationFrame(() => requestAnimationFrame(() => lat.samples.push(performance.now() - t0)));
    });
  }
  return true;
}
"""


def figure(page, name: str):
    """Frame of a named figure in page pixels, with its data ranges and title; None if not rendered."""
    return page.evaluate(FIGURE_JS, name)


def to_page(page, x: float, y: float, name: str) -> tuple[float, float]:
    """Page pixels of data coordinates ``(x, y)`` in the named figure."""
    return tuple(page.evaluate(TO_PAGE_JS, [name, x, y]))


def samples(page, key: str) -> list[float]:
    return page.evaluate(f"() => window.{key} ? window.{key}.samples.slice() : []")


def drag(page, frame: dict, fx: float, fy: float, steps: int = 6):
    """Drag from the frame's centre by ``(fx, fy)`` of its size (the pan tool moves the view)."""
    cx, cy = frame["left"] + frame["width"] / 2, frame["top"] + frame["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + fx * frame["width"], cy + fy * frame["height"], steps=steps)
    page.mouse.up()
