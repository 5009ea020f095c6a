"""Serve the dashboard: the same app as ``panel serve dashboard/app.py``, on 127.0.0.1 by default.

``latent-inspector serve [PROJECT] [--port N] [--address A] [--password-file F] [--show]`` calls :func:`serve`; so
does ``python -m dashboard.serve``.

Who may use it:

* By default the server listens on 127.0.0.1 (this machine only), and only pages served by itself may open its
  websocket (a page on another site cannot drive the dashboard through a visitor's browser).
* For shared use, Panel's basic authentication: a password (or a JSON file of ``{"user": "password"}``) read from
  ``--password-file`` or the ``LATENT_INSPECTOR_PASSWORD`` environment variable, never from the command line, where
  it would stay in the shell's history and in the process list. Every page then asks for it at ``/login``; the
  login is kept in a cookie signed with ``LATENT_INSPECTOR_COOKIE_SECRET``, or with a secret drawn at start-up
  (logins then last until the server restarts). Basic authentication sends the password in clear: put the server
  behind HTTPS (a reverse proxy) when it leaves this machine.
* For OAuth (GitHub, Google, Azure, an OIDC server, ...), serve the app with Panel itself:
  ``panel serve dashboard/app.py --oauth-provider github --oauth-key ... --oauth-secret ... --cookie-secret ...
  --oauth-encryption-key ...`` (Panel's authentication guide lists the providers).

How much it computes at once: the long work of every session (loading a model, fitting a reducer, training a probe)
queues for the process's worker threads, ``LATENT_INSPECTOR_WORKERS`` of them (default 1: on two cores, one computes
while the other keeps every page answering; give more where there are more cores). See :mod:`dashboard.jobs`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import secrets
import socket
import sys
import time
import webbrowser
from pathlib import Path

__all__ = ["APP", "COOKIE_SECRET_ENV", "EPILOG", "PASSWORD_ENV", "ROUTE", "UPLOAD_ENV", "add_arguments", "add_command",
           "credentials", "free_port", "main", "own_hosts", "run_command", "serve", "uploads_allowed", "url"]

APP = Path(__file__).resolve().with_name("app.py")
ROUTE = "app"
#: Environment variables read by :func:`credentials` and :func:`serve`.
PASSWORD_ENV = "LATENT_INSPECTOR_PASSWORD"
COOKIE_SECRET_ENV = "LATENT_INSPECTOR_COOKIE_SECRET"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# -- New project form (dashboard.upload) ------------------------------------------------------------------------------
#: Set by :func:`serve` for the sessions: ``1`` shows the New project form (uploads into the projects root), ``0``
#: hides it; unset (``panel serve dashboard/app.py``) hides it.
UPLOAD_ENV = "LATENT_INSPECTOR_UPLOAD"
_UPLOAD_LIMITS_ENV = ("LATENT_INSPECTOR_UPLOAD_MAX_MODEL, _MAX_DATA, _MAX_TOTAL, _MAX_UNPACKED (sizes such as 512MB or "
                      "2GB: the New project form's limits; defaults 512MB, 2GB, 2.5GB, 4GB)")
# -- end New project form -------------------------------------------------------------------------------------------
#: The serve command's closing words in ``--help``: the environment it reads.
EPILOG = (f"environment: {PASSWORD_ENV} (a password to ask for), {COOKIE_SECRET_ENV} (signs the login cookie), "
          "LATENT_INSPECTOR_WARMUP=0 (no warm-up of UMAP and t-SNE at start), "
          "LATENT_INSPECTOR_WORKERS (worker threads for the sessions' long work; default 1), "
          f"{_UPLOAD_LIMITS_ENV}")


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on ``address`` right now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def own_hosts(address: str) -> list[str]:
    """The host names under which a browser reaches a server bound to ``address``: the only websocket origins
    allowed (a page served elsewhere cannot drive the dashboard)."""
    if address in LOOPBACK:
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
    """The page's address for a server bound to ``address`` and ``port``, opening ``project``."""
    host = "localhost" if address in ("0.0.0.0", "::") else address
    return f"http://{host}:{port}/{ROUTE}" + (f"?project={project}" if project else "")


def credentials(password_file=None, environ=None) -> str | dict[str, str] | None:
    """The basic-authentication credentials: from ``password_file`` if given, else ``LATENT_INSPECTOR_PASSWORD``.

    Parameters
    ----------
    password_file : str or Path, optional
        A file holding the password on its first line (any user name is then accepted), or a JSON object
        ``{"user": "password", ...}`` (each user with their own password).
    environ : mapping, optional
        Where to read ``LATENT_INSPECTOR_PASSWORD`` (default ``os.environ``); unset or empty means no password.

    Returns
    -------
    str, dict or None
        The password, the users' passwords, or None (no authentication asked for).

    Raises
    ------
    engine.errors.DataError
        The file cannot be read, is empty, or holds JSON that is not an object of non-empty strings.

    Example
    -------
    >>> credentials(environ={"LATENT_INSPECTOR_PASSWORD": "s3cret"})
    's3cret'
    """
    from engine.errors import DataError

    if password_file is None:
        password = (os.environ if environ is None else environ).get(PASSWORD_ENV, "")
        return password or None
    path = Path(password_file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"password file {str(path)!r} cannot be read: {exc}") from None
    if text.lstrip().startswith("{"):
        try:
            users = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"password file {str(path)!r}: not valid JSON ({exc}); expected a password on the first "
                            'line or {"user": "password", ...}') from None
        if not (isinstance(users, dict) and users
                and all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in users.items())):
            raise DataError(f"password file {str(path)!r}: expected a JSON object of user names to non-empty "
                            "password strings")
        return users
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise DataError(f"password file {str(path)!r} is empty; expected the password on its first line")
    return password


# -- New project form (dashboard.upload) ------------------------------------------------------------------------------
def uploads_allowed(address: str, upload: bool | None = None) -> bool:
    """Whether the New project form is shown: as ``upload`` says, else only when the server listens on this
    machine alone (127.0.0.1, localhost, ::1).

    Example
    -------
    >>> uploads_allowed("127.0.0.1"), uploads_allowed("0.0.0.0"), uploads_allowed("0.0.0.0", True)
    (True, False, True)
    """
    return address in LOOPBACK if upload is None else bool(upload)
# -- end New project form -------------------------------------------------------------------------------------------


def serve(project: str | None = None, port: int = 5006, address: str = "127.0.0.1", show: bool = False, *,
          threads: int = 4, warm: bool = True, basic_auth: str | dict | None = None,
          cookie_secret: str | None = None, upload: bool | None = None) -> None:
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
    basic_auth : str or dict, optional
        Ask for this password (any user name), or for each user's own password (``{"user": "password"}``), through
        Panel's login page before any page or websocket (see :func:`credentials`).
    cookie_secret : str, optional
        Secret that signs the login cookie; default ``LATENT_INSPECTOR_COOKIE_SECRET``, else one drawn now.
    upload : bool, optional
        Show the New project form, which writes uploaded files into the projects root (:mod:`dashboard.upload`);
        default: only when ``address`` is this machine's alone (:func:`uploads_allowed`).

    Raises
    ------
    engine.errors.ProjectError
        ``project`` does not name a project.
    engine.errors.DataError
        ``basic_auth`` is empty, or a password names an existing file (Panel would read that file instead).
    engine.errors.UsageError
        ``LATENT_INSPECTOR_WORKERS`` is not a whole number of at least 1, or, with uploads on, a
        ``LATENT_INSPECTOR_UPLOAD_MAX_*`` limit is not a size.
    """
    panel_files = _panel_files_here()  # before Panel is imported (issue 17)
    import panel as pn

    from engine.data.project import project_dir
    from engine.errors import DataError

    from .jobs import worker_count

    worker_count()  # a bad LATENT_INSPECTOR_WORKERS fails here, not in every page's work
    # -- New project form (dashboard.upload) --
    uploads = uploads_allowed(address, upload)
    os.environ[UPLOAD_ENV] = "1" if uploads else "0"
    if uploads:
        from engine.data.upload import UploadLimits

        UploadLimits.from_environ()  # a bad limit fails here, not in the form
    # -- end New project form --
    if project is not None:
        project_dir(project)  # a bad name fails here, with the list of projects, not in the browser
        os.environ["LATENT_INSPECTOR_PROJECT"] = project
    auth = {}
    if basic_auth is not None:
        if not basic_auth:
            raise DataError("basic_auth is empty: give a password, or {'user': 'password', ...}")
        if isinstance(basic_auth, str) and os.path.exists(basic_auth):
            # Panel takes a string naming a file for a JSON file of users: never let a password be read that way
            raise DataError("the password names an existing file; pass the file with --password-file instead")
        secret = cookie_secret or os.environ.get(COOKIE_SECRET_ENV) or secrets.token_urlsafe(32)
        auth = {"basic_auth": basic_auth, "cookie_secret": secret}
    elif address not in LOOPBACK:
        writes = "write to the projects' datasets" + (" and make projects from uploaded files" if uploads else "")
        print(f"warning: serving on {address or 'every interface'} without a password: anyone who reaches this "
              f"port can use the dashboard and {writes} (set {PASSWORD_ENV} or use --password-file)",
              file=sys.stderr, flush=True)
    if port == 0:
        port = free_port(address)
    origins = [f"{host}:{port}" for host in own_hosts(address)]
    pn.config.nthreads = threads
    page = url(address, port, project)
    warm_up = warm and os.environ.get(WARMUP_ENV, "1") != "0"
    _freeze_libraries(project, reducers=WARMED_UP if warm_up else ())
    if warm:
        _prepare(project)
    server = pn.serve(
        {ROUTE: str(APP)}, port=port, address=address, websocket_origin=origins, show=False, start=False,
        title="Latent Inspector", warm=warm, print=False, static_dirs=panel_files, **auth,
    )
    print(f"Latent Inspector: {page}" + (" (log in first)" if auth else ""), flush=True)
    if show:
        server.io_loop.add_callback(webbrowser.open, page)
    server.start()
    if warm_up:
        _warm_reducers_in_background()
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)


# -- Panel's files from this server, never from its CDN (issue 17) ----------------------------------------------------
#: The path under which the server serves Panel's own files where Panel would ask its CDN for them.
PANEL_FILES_ROUTE = "/panel-cdn/"


def _panel_files_here() -> dict[str, str]:
    """Point Panel's CDN at this server, and return the route that serves Panel's files there (``static_dirs``).

    Panel rewrites the address of its own stylesheets (every component's ``loading.css``, a component's CSS) to its
    CDN, cdn.holoviz.org, when it updates a component that is off the page at that moment, such as a pane of a tab
    that is not open (``HTMLBasePane._update`` computes the stylesheets without the document, whose ``dist_url``
    names the server); the browser then asks the CDN once the component shows. Offline (a GPU node) the request
    fails; online it tells a third party who opens the page. ``PANEL_CDN_ROOT``, read when Panel is imported, moves
    that CDN to a path of this server. Nothing changes when Panel was imported before, or the variable is set.
    """
    if "panel.io.resources" not in sys.modules:
        os.environ.setdefault("PANEL_CDN_ROOT", PANEL_FILES_ROUTE)
    from panel.io.resources import CDN_DIST, DIST_DIR

    if not CDN_DIST.startswith("/"):  # a real CDN: Panel was imported first, or PANEL_CDN_ROOT names one
        return {}
    return {CDN_DIST.strip("/"): str(DIST_DIR)}
# -- end Panel's files ------------------------------------------------------------------------------------------------


#: Set to 0 to keep the server from warming the reducers up in the background at start.
WARMUP_ENV = "LATENT_INSPECTOR_WARMUP"
#: The reducers a server warms up: their libraries imported before the freeze, their code compiled after the first page.
WARMED_UP = ("umap", "tsne")


#: The warm-up starts this many seconds after the first page has loaded (its picture is then being drawn)...
WARMUP_AFTER_PAGE_S = 3.0
#: ... or this many seconds after the server started, when no page has come.
WARMUP_WITHOUT_PAGE_S = 60.0


def _warm_reducers_in_background(methods=WARMED_UP, page=None, after_s: float = WARMUP_AFTER_PAGE_S,
                                 without_page_s: float = WARMUP_WITHOUT_PAGE_S):
    """Import UMAP's and t-SNE's libraries and compile their code (:func:`engine.reduce.warm_up`) on a thread of
    lowest priority, while the first page shows PCA: a user's first UMAP then does not pay for it. A failure is
    logged and changes nothing (the fit compiles what it needs, as without the warm-up).

    It starts ``after_s`` after the first page of the process has loaded (``page``, by default
    :data:`dashboard.jobs.PAGE_LOADED`), or ``without_page_s`` after the call when none has: numba's compiled code
    holds the interpreter's lock for its whole call, so a warm-up beside the first page delayed it by 0.6-1 s on two
    cores. Returns the thread."""
    import threading

    from dashboard.jobs import PAGE_LOADED

    page = PAGE_LOADED if page is None else page

    def run():
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # this thread only (Linux)
        except (AttributeError, OSError):
            pass
        if page.wait(without_page_s):
            time.sleep(after_s)
        from engine.reduce import warm_up

        for method in methods:
            try:
                warm_up(method)
            except Exception as exc:  # noqa: BLE001 (a warm-up is a courtesy)
                print(f"warm-up of {method} failed: {exc}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=run, name="latent-inspector-warm-up", daemon=True)
    thread.start()
    return thread


def _freeze_libraries(project: str | None, reducers=()) -> None:
    """Import the dashboard's libraries, the framework of ``project``'s model (or of the default project) and the
    libraries of the ``reducers`` the server warms up, and leave every object they made out of Python's full garbage
    collections from now on (``gc.freeze``).

    They are most of what the process holds (some 600,000 objects with Keras, of 630,000 once the project's
    inspection is built), and they live until the process ends. Each full collection walked them all: 0.4-0.5 s with
    the interpreter's lock held, about once in every two or three sessions opened (1M points, 2 cores), and as long
    a pause for every page's taps and pans meanwhile. Frozen before the project opens: a frozen object's cycles are
    never collected, and a project's inspection may be dropped from the cache later.

    UMAP's and t-SNE's libraries are imported here too when the server warms them up: imported by the warm-up, after
    the freeze, their 225,000 objects doubled what each full collection walked (MNIST: 139-277 ms pauses in the
    seconds after the first page, each one a tap answered that much later)."""
    import importlib

    import dashboard.template  # noqa: F401 (Panel, HoloViews, Bokeh, Datashader)
    from engine.data.project import load_project
    from engine.model import framework_for

    try:
        name = project or os.environ.get("LATENT_INSPECTOR_PROJECT") or "mnist"
        for module in framework_for(load_project(name).model_path).requires:
            importlib.import_module(module)
    except Exception:  # noqa: BLE001 (the page says what is wrong with the project)
        pass
    try:
        from engine.reduce import import_libraries

        import_libraries(reducers)
    except Exception as exc:  # noqa: BLE001 (a warm-up is a courtesy: a fit imports what it needs)
        print(f"import of the reducers' libraries failed: {exc}", file=sys.stderr, flush=True)
    gc.collect()
    gc.freeze()


def _prepare(project: str | None) -> None:
    """Load the default project and build its default inspection now, into the process's cache, so that the
    first page opens at once. A failure is left for the page to show."""
    from .inspector.state import Inspector

    print(f"Preparing {project or 'the default project'} ...", flush=True)
    store = Inspector(project=project)  # outside a session the store works synchronously
    if store.error:
        print(f"  (the page will show: {store.error})", flush=True)


def add_arguments(parser) -> None:
    """The serve command's arguments, for ``latent-inspector serve`` and ``python -m dashboard.serve`` alike."""
    parser.add_argument("project", nargs="?", help="project opened first (default: the first project)")
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--address", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    parser.add_argument("--show", action="store_true", help="open a browser")
    parser.add_argument("--no-warm", dest="warm", action="store_false",
                        help="do not build the default inspection before serving")
    parser.add_argument("--password-file", metavar="FILE",
                        help="ask for a password (Panel's basic auth): the file's first line, or a JSON object of "
                        f"users' passwords; default: the {PASSWORD_ENV} environment variable, if set")
    parser.add_argument("--upload", action=argparse.BooleanOptionalAction, default=None,
                        help="show (or not) the New project form, which writes a model and data sent from the "
                        "browser into a new folder of the projects root; default: on when the server listens on "
                        "127.0.0.1, localhost or ::1 only, off on any other address")


def run_command(args) -> int:
    """``serve``: the global ``--root`` and ``--cache-dir`` (of ``latent-inspector``) reach the server's sessions
    through the environment; a bad project is one clear line here, not a broken page later."""
    from engine.data.project import load_project

    root = getattr(args, "root", None)
    if root:
        os.environ["LATENT_INSPECTOR_PROJECTS"] = str(Path(root).resolve())
    if getattr(args, "cache_dir", None):
        os.environ["LATENT_INSPECTOR_CACHE"] = str(Path(args.cache_dir).resolve())
    if args.project is not None:
        load_project(args.project, root=root)
    serve(args.project, port=args.port, address=args.address, show=args.show, warm=args.warm,
          basic_auth=credentials(args.password_file), upload=args.upload)
    return 0


def add_command(subparsers) -> None:
    """Add ``serve`` to the ``latent-inspector`` command (the ``latent_inspector.commands`` entry point)."""
    parser = subparsers.add_parser("serve", help="serve the dashboard (Panel) on 127.0.0.1", epilog=EPILOG)
    add_arguments(parser)
    parser.set_defaults(func=run_command)


def main(argv=None) -> int:
    """``python -m dashboard.serve``: the serve command on its own; 2 and one line on stderr for a user error."""
    parser = argparse.ArgumentParser(prog="python -m dashboard.serve", description=__doc__.splitlines()[0],
                                     epilog=EPILOG)
    add_arguments(parser)
    args = parser.parse_args(argv)
    from engine.errors import InspectorError

    try:
        return run_command(args)
    except InspectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
