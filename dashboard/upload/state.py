"""The state of the New project form: the name typed, the files received, and the project made from them.

:class:`Uploads` follows the session's :class:`~dashboard.inspector.state.Inspector`: once the engine has made the
project (:func:`engine.data.upload.create_project`, on the process's worker, :mod:`dashboard.jobs`), the inspector's
list of projects is read again and the session opens the new one. Every check is the engine's; an error is kept with
the field it is about (``field``), so that the view shows it beside that field.

The form exists only where the server allows uploads: ``LATENT_INSPECTOR_UPLOAD=1``, which ``latent-inspector serve``
sets when it listens on this machine only, or when given ``--upload`` (:func:`uploads_enabled`).
"""

from __future__ import annotations

import functools
import os

import param

from engine.data.upload import ROLES, UploadLimits, check_file_name, check_name, create_project
from engine.errors import UploadError

from ..inspector.state import Follower
from ..serve import UPLOAD_ENV

__all__ = ["Uploads", "uploads_enabled"]


def uploads_enabled(environ=None) -> bool:
    """True where the server allows the New project form: ``LATENT_INSPECTOR_UPLOAD`` is ``1`` (or ``true``,
    ``yes``, ``on``). Unset means off: ``panel serve dashboard/app.py`` shows no form unless asked.

    Example
    -------
    >>> uploads_enabled({"LATENT_INSPECTOR_UPLOAD": "1"}), uploads_enabled({})
    (True, False)
    """
    text = (os.environ if environ is None else environ).get(UPLOAD_ENV, "")
    return text.strip().lower() in ("1", "true", "yes", "on")


class Uploads(Follower):
    """The New project form of one session.

    Parameters
    ----------
    inspector : Inspector
        Opens the new project once it is made.
    limits : engine.data.upload.UploadLimits, optional
        Default: the environment's (:meth:`UploadLimits.from_environ`).

    Example
    -------
    >>> uploads = Uploads(inspector=store)                                          # doctest: +SKIP
    >>> uploads.receive("model", "ae.keras", open("ae.keras", "rb"))                # doctest: +SKIP
    >>> uploads.receive("inputs", "x.npy", open("x.npy", "rb"))                     # doctest: +SKIP
    >>> uploads.project_name = "mine"; uploads.create(); store.project               # doctest: +SKIP
    'mine'
    """

    project_name = param.String(default="", doc="The new project's name, as typed")
    model = param.Parameter(default=None, doc="(file name, content) of the model file received, or None")
    inputs = param.Parameter(default=None, doc="(file name, content) of the data file received, or None")
    labels = param.Parameter(default=None, doc="(file name, content) of the labels file received, or None")
    field = param.Selector(default="", objects=["", "name", *ROLES], doc="What the error is about: the name, a "
                           "file's role, or '' for the upload as a whole")
    notice = param.String(default="", doc="What the last upload made, in words")
    limits = param.ClassSelector(class_=UploadLimits, doc="How much an upload may hold")

    def __init__(self, **params):
        if params.get("limits") is None:
            params["limits"] = UploadLimits.from_environ()
        super().__init__(**params)

    @staticmethod
    def _root():
        """Where projects are made: the projects root, which the inspector lists and opens projects from."""
        from engine.data.project import projects_root

        return projects_root()

    # -- the form's fields ---------------------------------------------------------------------------------------------

    def refuse(self, field: str, message: str) -> None:
        """Show ``message`` as the error of ``field`` (a file the browser could not send whole, say)."""
        self.param.update(error=message, field=field)

    def receive(self, role: str, filename: str, content) -> None:
        """Keep the file the browser sent as ``role`` (``content``: bytes or a binary file object), unless its kind
        is not one the engine takes for that role (the error then says which kinds are)."""
        try:
            check_file_name(role, filename)
        except UploadError as exc:
            self.forget(role)
            self.refuse(role, str(exc))
            return
        self.forget(role)  # the file it replaces
        setattr(self, role, (filename, content))

    def forget(self, role: str) -> None:
        """Drop the file received as ``role`` (the user removed or replaced it)."""
        kept = getattr(self, role)
        setattr(self, role, None)
        if kept is not None and hasattr(kept[1], "close"):
            kept[1].close()
        self._clear(role)

    def _clear(self, field: str) -> None:
        if self.field == field:
            self.param.update(error="", field="")

    @param.depends("project_name", watch=True)
    def _renamed(self):
        self._clear("name")

    def name_problem(self, name: str | None = None) -> str:
        """What is wrong with ``name`` (default: the name typed) as a new project's name, or ''."""
        name = self.project_name if name is None else name
        if not name.strip():
            return ""
        try:
            check_name(name.strip(), self._root())
        except UploadError as exc:
            return str(exc)
        return ""

    def missing(self) -> list[str]:
        """What the form still needs before a project can be made, in words."""
        have = {"a name": self.project_name.strip(), "a model file": self.model, "a data file": self.inputs}
        return [words for words, given in have.items() if not given]

    # -- making the project --------------------------------------------------------------------------------------------

    def create(self, *_):
        """Make the project from the files received (on the worker), then open it in this session."""
        name = self.project_name.strip()
        files = {role: getattr(self, role) for role in ROLES if getattr(self, role) is not None}
        root, limits = self._root(), self.limits

        def work(progress):
            try:
                return create_project(root, name, files, limits=limits, progress=progress)
            except UploadError as exc:  # returned: _made, on the event loop, notes its field, then raises it
                return exc

        self.param.update(field="", notice="")
        self.jobs.submit("upload", f"making project {name}", work, functools.partial(self._made, files=files))

    def _made(self, result, files):
        if isinstance(result, UploadError):
            self.field = result.field or ""
            raise result  # the job runner makes it this state's error (shown beside the field), with no "done"
        from engine.data.project import list_projects

        project, sent, cleared = result.project, [], {}
        for role in ROLES:
            kept = files.get(role)
            if kept is None:
                continue
            sent.append(kept[0])
            if hasattr(kept[1], "close"):
                kept[1].close()
            if getattr(self, role) is kept:  # (not a file that came while the project was made: it stays)
                cleared[role] = None
        names = ", ".join(sent[:-1]) + f" and {sent[-1]}" if len(sent) > 1 else sent[0]
        notice = f"Project {project.name!r} made from {names}, and opened."
        notice += "".join(f" Note: {w}" for w in result.warnings)
        self.param.update(**cleared, project_name="", field="", notice=notice)
        inspector = self.inspector
        inspector.param.project.objects = list_projects()
        inspector.project = project.name
