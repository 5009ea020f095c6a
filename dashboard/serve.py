"""Serve the dashboard: the same app as ``panel serve dashboard/app.py``, on 127.0.0.1 by default.

``latent-inspector serve [PROJECT] [--port N] [--address A] [--show]`` calls :func:`serve`; so does
``python -m dashboard.serve``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import webbrowser
from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")
ROUTE = "app"


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on ``address`` right now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def own_hosts(address: str) -> list[str]:
    """The host names under which a browser reaches a server bound to ``address``: the only websocket origins
    allowed (a page served elsewhere cannot drive the dashboard)."""
    if address in ("127.0.0.1", "localhost", "::1"):
        return ["127.0.0.1", "localhost"]
    if address in ("0.0.0.0", "::", ""):  # every interface: this machine's names and addresses
        hosts = {"127.0.0.1", "localhost", socket.gethostname(), socket.getfqdn()}
        try:
            hosts |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
        except OSError:
            pass
        return sorted(hosts)
    return [address]


def url(address: str, port: int, project: str | None = None) -> str:
    host = "localhost" if address in ("0.0.0.0", "::") else address
    return f"http://{host}:{port}/{ROUTE}" + (f"?project={project}" if project else "")


def serve(project: str | None = None, port: int = 5006, address: str = "127.0.0.1", show: bool = False, *,
          threads: int = 4, warm: bool = True) -> None:
    """Serve the dashboard until interrupted.

    Parameters
    ----------
    project : str, optional
        Project opened by default (a URL's ``?project=`` still chooses another). Checked before serving.
    port : int
        0 picks a free port.
    address : str
        Interface to listen on; the default serves this machine only. Only the page's own origin may open the
        websocket.
    show : bool
        Open the page in the default browser.
    threads : int
        Threads for widget events, so that one session's callbacks do not hold the event loop all sessions share.
    warm : bool
        Build the default project's inspection before accepting the first browser (imports, propagation, fit).

    Raises
    ------
    engine.errors.ProjectError
        ``project`` does not name a project.
    """
    import panel as pn

    from engine.project import project_dir

    if project is not None:
        project_dir(project)  # a bad name fails here, with the list of projects, not in the browser
        os.environ["LATENT_INSPECTOR_PROJECT"] = project
    if port == 0:
        port = free_port(address)
    origins = [f"{host}:{port}" for host in own_hosts(address)]
    pn.config.nthreads = threads
    page = url(address, port, project)
    if warm:
        _prepare(project)
    server = pn.serve(
        {ROUTE: str(APP)}, port=port, address=address, websocket_origin=origins, show=False, start=False,
        title="Latent Inspector", warm=warm, print=False,
    )
    print(f"Latent Inspector: {page}", flush=True)
    if show:
        server.io_loop.add_callback(webbrowser.open, page)
    server.start()
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)


def _prepare(project: str | None) -> None:
    """Load the default project and build its default inspection now, into the process's cache, so that the
    first page opens at once. A failure is left for the page to show."""
    from .state import Inspector

    print(f"Preparing {project or 'the default project'} ...", flush=True)
    store = Inspector(project=project)  # outside a session the store works synchronously
    if store.error:
        print(f"  (the page will show: {store.error})", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard.serve", description=__doc__.splitlines()[0])
    parser.add_argument("project", nargs="?")
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--show", action="store_true")
    parser.add_argument("--no-warm", dest="warm", action="store_false")
    args = parser.parse_args(argv)
    from engine.errors import InspectorError

    try:
        serve(args.project, port=args.port, address=args.address, show=args.show, warm=args.warm)
    except InspectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
