"""Latent Inspector's dashboard, served with ``panel serve dashboard/app.py`` or ``latent-inspector serve``.

The project to open comes from the URL (``?project=mnist``), else from ``LATENT_INSPECTOR_PROJECT`` (set by
``latent-inspector serve PROJECT``), else the bundled MNIST project; the rest of the address (layer, reducer, view,
tapped point...) is read by :func:`dashboard.urlstate.read_query`.
"""

import os
import sys
from pathlib import Path

__all__: list[str] = []

try:
    import engine  # noqa: F401
except ImportError:  # `panel serve dashboard/app.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import holoviews as hv
import panel as pn

from dashboard.connection import notify_when_lost, watch_holds
from dashboard.template import Dashboard, extension
from dashboard.urlstate import read_query

extension()
# HoloViews draws its figures with WebGL by default. The page's images, bars and lines draw no faster so, and Bokeh
# copies each WebGL figure onto the page at every repaint of it (on a machine without a GPU, the copies took 3.0 of
# the 6.9 s the browser spent after a first paint at MNIST, 2.6 s of it the latent plot's own). The latent plot is
# drawn on a canvas too, glyphs or image (dashboard.latent.OUTPUT_BACKEND).
hv.renderer("bokeh").webgl = False
if pn.config.nthreads is None:
    # Widget events (a new project, layer or reducer: they start work and update many views) run on a thread pool,
    # so that one session's callbacks do not hold the event loop every session shares.
    pn.config.nthreads = 4

notify_when_lost()  # a page whose server went away says so and offers a reload
watch_holds()  # a page whose document stays on hold: said in the server's log
link = read_query(pn.state.session_args)  # the page's address: project, layer, reducer, view... (checked)
project = link.choices.get("project") or os.environ.get("LATENT_INSPECTOR_PROJECT")
Dashboard(project=project or None, link=link).template().servable(title="Latent Inspector")
