"""The New project form, opened by a button at the top of the sidebar: a name, a model file, a data file and,
optionally, a labels file; *Create project* makes the project and opens it.

Files travel in chunks (:class:`Dropper`, Panel's ``FileDropper``): a file is never one websocket message, so no
server message limit caps its size, and the browser refuses a file over the limit before sending a byte, with the
limit in words beside the file. What the server receives goes to a temporary file, counted against the same limit
as it arrives. Every check of the files and the name is the engine's (:mod:`engine.data.upload`); an error shows
beside the field it is about.
"""

from __future__ import annotations

import html
import tempfile
import threading

import panel as pn
import param

from engine.data.upload import DATA_SUFFIXES, MODEL_SUFFIXES, format_size

from ..widgets import NOTE_CSS, View, WorkProgress, weakly
from .state import Uploads

__all__ = ["Dropper", "FilePondGate", "NewProjectView", "UploadsView"]

#: Bytes per chunk the browser sends: one websocket message each, well under Bokeh's 20 MB message limit.
CHUNK = 4_000_000
#: Bytes of a received file kept in memory before it spills to a temporary file.
IN_MEMORY = 8_000_000

FORM_CSS = NOTE_CSS + """
:host .field-label { font-size: 13px; font-weight: 600; color: #2c3e63; margin: 0; }
:host .field-label small { font-weight: 400; color: #666; }
:host .field-error { color: #b02a37; font-weight: 600; font-size: 12px; overflow-wrap: anywhere; }
:host .field-hint { color: #666; font-size: 12px; }
:host .done { color: #2c6e2f; font-size: 12px; overflow-wrap: anywhere; }
"""


#: A file's slot while a project is being made: greyed, and no pointer reaches its drop zone. FilePond's own
#: ``disabled`` is not used for this: FilePond takes the zone's file input out of the page when disabled and makes a
#: new one when enabled, and once (CI, two busy cores) a field had no file input 30 s after a refused project: the
#: form took no more files there. The slot's style leaves FilePond's input in place.
BUSY_STYLES = {"pointer-events": "none", "opacity": "0.55"}

#: A drop zone that shows on the sidebar's grey: white, with a dashed frame. (Panel's own stylesheet paints FilePond's
#: root and its label in the surface grey, over FilePond's panel: the frame goes on the root, the white on both.)
DROP_CSS = """
:host .bk-input.filepond--root { background-color: white; border: 1px dashed #a9b4c8; border-radius: 4px;
                               margin-bottom: 0; max-height: 100%; box-sizing: border-box; }
:host .bk-input.filepond--root .filepond--drop-label { background-color: white; color: #444; font-size: 13px; }
:host .filepond--panel-root { background-color: white; }
"""


class FilePondGate(pn.reactive.ReactiveHTML):
    """Never shown: the class carries ``filepond_gate.js``, which Panel loads into every page of the process after
    FilePond's own script. FilePond 4's painter asks for every animation frame from the moment its script loads, drop
    zone or not; the gate holds it back while the page has no drop zone (see the script). The form makes its drop
    zones only when it first opens (:meth:`NewProjectView._opened`)."""

    __javascript__ = ["filepond_gate.js"]
    _template = "<div></div>"


class Dropper(pn.widgets.FileDropper):
    """Panel's ``FileDropper`` for one file at a time, whose chunks go to a temporary file (spilled to disk past
    8 MB) instead of a list in memory, counted against ``limit`` as they arrive.

    The server's event threads may handle the chunks of a file in any order (``pn.config.nthreads``): each is
    written at its own offset, and the file is complete when every chunk has come. The browser checks ``limit``
    before sending (``max_file_size``); the count here holds for a client that would not.

    Parameters
    ----------
    limit : int
        Most bytes taken.
    on_file : callable(file name, file object)
        A file has come whole (the file object at its start).
    on_clear : callable()
        The user removed the file.
    on_refused : callable(message)
        A file was larger than ``limit``; its chunks were dropped.
    """

    limit = param.Integer(default=None, allow_None=True, doc="Most bytes taken")

    _rename = {**pn.widgets.FileDropper._rename, "limit": None}  # the server's own count, not the browser's

    def __init__(self, on_file, on_clear, on_refused, **params):
        params.setdefault("chunk_size", CHUNK)
        params.setdefault("multiple", False)
        params.setdefault("layout", "compact")
        params.setdefault("previews", [])
        if params.get("limit") is not None:
            params.setdefault("max_file_size", str(params["limit"]))  # in bytes (FilePond reads a bare number so)
        super().__init__(**params)
        self._on_file, self._on_clear, self._on_refused = on_file, on_clear, on_refused
        self._lock = threading.Lock()
        self._incoming: dict[str, dict] = {}

    def _process_event(self, event):
        data = event.data
        name = str(data.get("name", ""))
        if event.event_name == "delete_event":
            with self._lock:
                self._drop(name)
            self._on_clear()
            return
        chunk, total, block = int(data["chunk"]), int(data["total_chunks"]), data["data"]
        done = refused = None
        with self._lock:
            entry = self._incoming.get(name)
            if entry is None or entry["total"] != total or chunk in entry["chunks"]:  # a new file of that name
                self._drop(name)
                entry = self._incoming[name] = {"file": tempfile.SpooledTemporaryFile(max_size=IN_MEMORY),
                                                "total": total, "chunks": set(), "bytes": 0, "refused": False}
            entry["chunks"].add(chunk)
            if not entry["refused"]:
                entry["bytes"] += len(block)
                if self.limit is not None and entry["bytes"] > self.limit:
                    entry["refused"] = True
                    entry["file"].close()
                    refused = (f"{name} is larger than the {format_size(self.limit)} this file may hold; it was not "
                               "kept")
                else:
                    entry["file"].seek((chunk - 1) * self.chunk_size)
                    entry["file"].write(block)
            if len(entry["chunks"]) == total:
                del self._incoming[name]
                if not entry["refused"]:
                    entry["file"].seek(0)
                    done = entry["file"]
        if refused is not None:
            self._on_refused(refused)
        if done is not None:
            self._on_file(name, done)

    def _drop(self, name: str) -> None:
        entry = self._incoming.pop(name, None)
        if entry is not None:
            entry["file"].close()


class UploadsView(View):
    """A view of the New project form's state."""

    store = param.ClassSelector(class_=Uploads, doc="The session's New project form")


class NewProjectView(UploadsView):
    """The New project form, opened by a *New project…* button: a name, the three files, *Create project*, the work
    under way and what came of it. An error shows under the field it is about."""

    def __init__(self, **params):
        super().__init__(**params)
        store, limits = self.store, self.store.limits
        self.name_input = pn.widgets.TextInput(label="Project name", placeholder="letters, digits, - and _",
                                               sizing_mode="stretch_width", css_classes=["upload-name"],
                                               margin=(0, 10))
        self.name_input.param.watch(weakly(self._typed), "value_input")
        kinds = {"model": (f"Model <small>{', '.join(MODEL_SUFFIXES)} · up to {format_size(limits.model)}</small>",
                           limits.model),
                 "inputs": (f"Input data <small>{', '.join(DATA_SUFFIXES)}: one sample per row · up to "
                            f"{format_size(limits.data)}</small>", limits.data),
                 "labels": (f"Labels, optional <small>one class code per sample · up to "
                            f"{format_size(limits.data)}</small>", limits.data)}
        self._labels = {role: pn.pane.HTML(f"<p class='field-label'>{text}</p>", sizing_mode="stretch_width",
                                           margin=(8, 10, 0, 10), stylesheets=[FORM_CSS])
                        for role, (text, _) in kinds.items()}
        self._limits = {role: limit for role, (_, limit) in kinds.items()}
        busy = pn.bind(lambda busy: dict(BUSY_STYLES) if busy else {}, store.param.busy)
        self._slots = {role: pn.Column(sizing_mode="stretch_width", margin=0, styles=busy) for role in kinds}
        self.droppers: dict[str, Dropper] = {}  # made when the form first opens (see _opened)
        self.create = pn.widgets.Button(
            label="Create project", color="primary", margin=(10, 10, 0, 10), css_classes=["create-project"],
            disabled=pn.bind(lambda busy, *_: busy or bool(store.missing()), store.param.busy,
                             store.param.project_name, store.param.model, store.param.inputs),
            description="Write the files into a new project folder, check that the model loads and runs on the "
            "data, and open it",
        )
        self.create.on_click(store.create)
        self.progress = WorkProgress(states=[store])
        store.param.watch(weakly(self._made), "notice")
        self.toggle = pn.widgets.Toggle(label="New project…", color="primary", variant="outline",
                                        sizing_mode="stretch_width", margin=(5, 10), css_classes=["new-project-toggle"])
        self.toggle.param.watch(weakly(self._opened), "value")
        self.form = pn.Column(*self._form(), visible=self.toggle.param.value, sizing_mode="stretch_width", margin=0,
                              styles={"border-bottom": "1px solid #d9dee7", "padding-bottom": "8px"})

    # -- the droppers --------------------------------------------------------------------------------------------------

    def _opened(self, event):
        """The form opens: its drop zones are made now, not with the page. While a page holds a drop zone (hidden
        or not), FilePond redraws it on every animation frame (see :class:`FilePondGate`): made with the page, they
        kept every dashboard tab at 60 frames a second, about 9% of a core here, while nobody touched it."""
        if event.new and not self.droppers:
            for role in self._slots:
                self._new_dropper(role)

    def _new_dropper(self, role: str) -> None:
        store = self.store
        dropper = Dropper(
            on_file=lambda name, content: store.receive(role, name, content),
            on_clear=lambda: store.forget(role),
            on_refused=lambda message: (store.forget(role), store.refuse(role, message)),
            limit=self._limits[role], sizing_mode="stretch_width", height=70, margin=(2, 10),
            css_classes=[f"upload-{role}"], stylesheets=[DROP_CSS],
        )
        self.droppers[role] = dropper
        self._slots[role].objects = [dropper]

    def _made(self, event):
        """A project was made: fresh, empty droppers for the files it was made from (the browser still shows them);
        a file that came while it was made stays."""
        if event.new:
            for role in self.droppers:
                if getattr(self.store, role) is None:
                    self._new_dropper(role)
            self.name_input.value = ""

    def _typed(self, event):
        self.store.project_name = event.new or ""

    # -- what the form says --------------------------------------------------------------------------------------------

    def _field_note(self, field: str):
        def note(error, at, name, *_):
            if error and at == field:
                return f"<span class='field-error'>{html.escape(error)}</span>"
            if field == "name":
                problem = self.store.name_problem(name)
                return f"<span class='field-error'>{html.escape(problem)}</span>" if problem else ""
            kept = getattr(self.store, field)
            return f"<span class='field-hint'>received: {html.escape(kept[0])}</span>" if kept else ""

        store = self.store
        kept = [store.param[field]] if field != "name" else []
        return pn.pane.HTML(pn.bind(note, store.param.error, store.param.field, store.param.project_name, *kept),
                            sizing_mode="stretch_width", margin=(0, 10), stylesheets=[FORM_CSS],
                            css_classes=[f"upload-{field}-note"])

    def _summary(self, error, field, busy, name, model, inputs, notice):
        if error and field:
            return (f"<span class='field-error'>Not created: see the "
                    f"{'name' if field == 'name' else field.replace('inputs', 'input data') + ' file'} above.</span>")
        if error:
            return f"<span class='field-error'>{html.escape(error)}</span>"
        missing = self.store.missing()
        if busy or (notice and len(missing) == 3):  # (a project was just made: nothing asked of the next yet)
            return ""
        return f"<span class='field-hint'>Still needed: {', '.join(missing)}.</span>" if missing else ""

    def _form(self):
        store = self.store
        intro = pn.pane.HTML(
            "<span class='field-hint'>Make a project from your own files: they are written into a new folder of "
            "the projects root, checked (the model loads without running code from it, the data fits it), and "
            "opened.</span>", sizing_mode="stretch_width", margin=(0, 10, 5, 10), stylesheets=[FORM_CSS])
        summary = pn.pane.HTML(pn.bind(self._summary, store.param.error, store.param.field, store.param.busy,
                                       store.param.project_name, store.param.model, store.param.inputs,
                                       store.param.notice),
                               sizing_mode="stretch_width", margin=(5, 10, 0, 10), stylesheets=[FORM_CSS],
                               css_classes=["upload-summary"])
        done = pn.pane.HTML(pn.bind(lambda t: f"<span class='done'>{html.escape(t)}</span>" if t else "",
                                    store.param.notice), sizing_mode="stretch_width", margin=(5, 10),
                            stylesheets=[FORM_CSS], css_classes=["upload-notice"])
        parts = [intro, self.name_input, self._field_note("name")]
        for role in self._slots:
            parts += [self._labels[role], self._slots[role], self._field_note(role)]
        return parts + [self.create, summary, self.progress, done]

    def __panel__(self):
        return pn.Column(self.toggle, self.form, sizing_mode="stretch_width", margin=0, css_classes=["new-project"])
