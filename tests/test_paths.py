"""Untrusted names and paths: everything that comes from a manifest, a URL or a widget stays in the projects root.

A projects root holds good projects; next to it, an ``outside`` folder holds a project whose ``hooks.py`` writes
a canary file when it runs, and files a hostile name or link would reach. Every attempt (``../``, ``..%2F``,
absolute paths, ``~``, null bytes, symlinked project folders, symlinked model, data, manifest and hooks files) is
refused with a typed error, by the engine and by the dashboard (the store the served app builds from
``?project=``, and the widgets' values), and a Python audit hook (:func:`sys.addaudithook`) records every file
opened and every folder listed meanwhile: none is outside the root. The canary never appears.

Also: a project's ``hooks.py`` runs for projects under the root, and a ``Lambda`` layer loads only with
``trust_model = true`` in the project's own manifest, which the dashboard never sets.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

import bad_inputs as bi
import numpy as np
import pytest
from bokeh_client import ClientThread

from engine.data.project import list_projects, load_project
from engine.errors import ModelError, ProjectError

# -- what the process opens ---------------------------------------------------------------------------------------

_RECORDING: list[tuple[str, str]] | None = None
_AUDITED = {"open", "os.listdir", "os.scandir", "os.chdir", "shutil.copyfile", "shutil.rmtree", "os.remove",
            "os.rename", "os.mkdir"}


def _audit(event, args):
    if _RECORDING is not None and event in _AUDITED and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _RECORDING.append((event, os.fsdecode(args[0])))


sys.addaudithook(_audit)  # cannot be removed; records only inside `opened()`


@contextlib.contextmanager
def opened():
    """Record the paths the process opens, lists, creates or removes inside the block."""
    global _RECORDING
    _RECORDING = record = []
    try:
        yield record
    finally:
        _RECORDING = None


def _under(path: str, folder: Path) -> bool:
    p = Path(os.path.abspath(path))
    return p == folder or folder in p.parents


# -- the layout ---------------------------------------------------------------------------------------------------

HOOK = """
from pathlib import Path
Path({marker!r}).write_text("ran")

def preprocess(batch):
    return batch * 0.0
"""


class Layout:
    """``root/`` (the configured projects root), ``outside/`` next to it, and ``markers/`` for the hooks."""

    def __init__(self, base: Path, assets: bi.Assets):
        self.base, self.assets = base, assets
        self.root, self.outside, self.markers = base / "root", base / "outside", base / "markers"
        self.markers.mkdir()
        bi.write_good(self.root, assets)
        # outside the root: a complete project whose hooks leave a canary, and a file worth stealing
        self.evil = self.outside / "evil"
        self.evil.mkdir(parents=True)
        bi._model(self.evil, assets)
        np.save(self.evil / "x.npy", assets.x)
        np.save(self.evil / "y.npy", assets.y)
        (self.evil / "hooks.py").write_text(HOOK.format(marker=str(self.canary)))
        (self.evil / "project.toml").write_text('title = "outside the root"\n')
        (self.outside / "secret.npy").write_bytes(self.evil.joinpath("x.npy").read_bytes())
        # inside the root: a project with hooks (they must run), and one folder that is a link out
        self.hooked = self.project("hooked")
        (self.hooked / "hooks.py").write_text(HOOK.format(marker=str(self.markers / "hooked")))
        os.symlink(self.evil, self.root / "escape")

    @property
    def canary(self) -> Path:
        return self.markers / "outside-hooks-ran"

    def project(self, name: str, *, x=True, y=True, model=True, manifest: str | None = None) -> Path:
        folder = self.root / name
        folder.mkdir()
        if model:
            bi._model(folder, self.assets)
        if x:
            np.save(folder / "x.npy", self.assets.x)
        if y:
            np.save(folder / "y.npy", self.assets.y)
        if manifest is not None:
            (folder / "project.toml").write_text(manifest)
        return folder

    def nothing_outside(self, record) -> None:
        """Nothing under ``outside/`` was opened, listed or touched, and the outside hooks never ran."""
        reached = [(event, path) for event, path in record if _under(path, self.outside.resolve())
                   or _under(path, self.outside)]
        assert not reached, reached
        assert not self.canary.exists(), "the hooks of a project outside the root ran"


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    base = tmp_path_factory.mktemp("paths")
    lay = Layout(base, bi.Assets(base / "assets"))
    mp = pytest.MonkeyPatch()  # the configured root, for the dashboard
    mp.setenv("LATENT_INSPECTOR_PROJECTS", str(lay.root))
    mp.setenv("LATENT_INSPECTOR_CACHE", str(base / "cache"))
    yield lay
    mp.undo()


def test_the_canary_works(layout, tmp_path):
    """The outside project's hooks do leave the canary when run, so its absence below means something."""
    marker = tmp_path / "ran"
    (tmp_path / "hooks.py").write_text(HOOK.format(marker=str(marker)))
    import importlib.util

    spec = importlib.util.spec_from_file_location("canary_check", tmp_path / "hooks.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert marker.read_text() == "ran"


# -- project names ------------------------------------------------------------------------------------------------

#: Hostile project names as they reach the engine (URL arguments arrive decoded once: ``..%2F`` stays literal when
#: it was sent as ``..%252F``). ``{outside}`` is replaced by the outside folder's absolute path.
NAMES = [
    "..", "../", "../outside/evil", "../../etc", "..%2Foutside%2Fevil", "..%2F", "%2e%2e", "%2e%2e%2fescape",
    "{outside}/evil", "{outside}", "/etc", "/", "~", "~/", "~root", "~/evil", "good/../../outside/evil",
    "good/../good", "good/", "./good", "..\\outside\\evil", "escape", "escape/..", "evil", "good\x00",
    "\x00../outside", ".", "", " ", "good\n", ".hidden", "_private", "a" * 5000, "C:\\outside\\evil",
    "file:///etc/passwd", "//outside/evil",
]


def _name(template: str, layout) -> str:
    return template.replace("{outside}", str(layout.outside))


@pytest.mark.parametrize("template", NAMES, ids=[repr(n[:30]) for n in NAMES])
def test_engine_refuses_names_that_leave_the_root(layout, template):
    name = _name(template, layout)
    with opened() as record, pytest.raises(ProjectError) as info:
        load_project(name, layout.root)
    assert re.search(r"invalid project name|outside the projects root|no project", str(info.value)), info.value
    layout.nothing_outside(record)


def test_a_symlinked_project_folder_is_neither_listed_nor_opened(layout):
    with opened() as record:
        listed = list_projects(layout.root)  # not "escape", and its target is not looked into
        assert "good" in listed and "hooked" in listed and "escape" not in listed
        with pytest.raises(ProjectError, match="resolves to .*outside the projects root"):
            load_project("escape", layout.root)
    layout.nothing_outside(record)


def test_names_that_would_match_except_for_a_newline_are_refused(layout, tmp_path):
    (tmp_path / "p\n").mkdir()
    bi._model(tmp_path / "p\n", layout.assets)
    np.save(tmp_path / "p\n" / "x.npy", layout.assets.x)
    assert list_projects(tmp_path) == []
    with pytest.raises(ProjectError, match="invalid project name"):
        load_project("p\n", tmp_path)


@pytest.mark.parametrize("template", NAMES, ids=[repr(n[:30]) for n in NAMES])
def test_dashboard_refuses_names_from_the_url(layout, template):
    """``?project=NAME`` reaches the store as ``Inspector(project=NAME)`` (dashboard/app.py): an alert, the default
    project instead, and nothing outside the root opened."""
    from dashboard.inspector.state import Inspector

    name = _name(template, layout)
    with opened() as record:
        store = Inspector(project=name)
    layout.nothing_outside(record)
    if name == "":  # no name: the default project, no error
        assert store.error == ""
    else:
        assert store.error.startswith(f"No project {name!r}"), store.error
    assert store.project == "good" and store.project_obj.path == (layout.root / "good").resolve()


@pytest.mark.parametrize("value", ["../outside/evil", "escape", "{outside}/evil", "evil", "good/../../outside"])
def test_dashboard_refuses_names_sent_as_the_project_menus_value(layout, value):
    """A value the browser sends for the project menu, not one it offered. The store's ``project`` parameter takes
    it (param checks a Selector's value only when its objects were known at declaration), and the engine refuses it:
    an alert, the open project unchanged, nothing outside the root opened."""
    from dashboard.inspector.state import Inspector

    store = Inspector(project="good")
    shown = store.inspection
    with opened() as record:
        store.project = _name(value, layout)
    layout.nothing_outside(record)
    assert re.search(r"invalid project name|outside the projects root|no project", store.error), store.error
    assert store.project_obj.name == "good" and store.inspection is shown


@pytest.mark.parametrize("value", ["../../outside", "/tmp/x", "..", "a/b", "~", "x\x00", ".generated"])
def test_dashboard_refuses_dataset_names_that_are_paths(layout, value):
    """The dataset name is free text in the page: a path is refused, nothing is written anywhere."""
    from dashboard.datasets.state import Datasets
    from dashboard.inspector.state import Inspector

    store = Inspector(project="good")
    datasets = Datasets(inspector=store)
    before = {p.name: bi.snapshot(p) for p in (layout.root / "good", layout.outside)}
    with opened() as record:
        datasets.dataset = value
        assert "invalid dataset name" in datasets.error, datasets.error
        x, y = (float(v) for v in np.asarray(store.inspection.embedding)[0])
        store.decode_at(x, y)
        assert datasets.save_current("a") is None and "invalid dataset name" in datasets.error
    layout.nothing_outside(record)
    assert {p.name: bi.snapshot(p) for p in (layout.root / "good", layout.outside)} == before


@pytest.mark.parametrize("value", ["../../outside/evil/model.keras", "{outside}/evil/model.keras", "../escape"])
def test_dashboard_refuses_model_versions_outside_the_project(layout, value):
    from dashboard.inspector.state import Inspector

    store = Inspector(project="good")
    with opened() as record:
        with pytest.raises(ValueError):
            store.model_version = _name(value, layout)
        with pytest.raises(ProjectError, match="not inside the folder of project 'good'|no model file"):
            store.project_obj.with_model(_name(value, layout))
    layout.nothing_outside(record)


def test_the_served_app_refuses_names_in_its_query(layout, tmp_path):
    """The real app behind a real server: a client session opened with ``?project=NAME`` (Bokeh's own client, as a
    browser's websocket would) for hostile names. Its document shows the alert naming the project and the default
    project opened instead; the outside hooks never run."""
    import panel.models  # noqa: F401  (the client must know Panel's models to read the document)
    import panel.models.location  # noqa: F401
    import panel.models.tabulator  # noqa: F401

    import dashboard.template  # noqa: F401
    from benchmarks.browser import serve

    env = {"LATENT_INSPECTOR_PROJECTS": str(layout.root), "LATENT_INSPECTOR_CACHE": str(layout.base / "cache")}
    with serve(["-m", "dashboard.serve", "good", "--no-upload"], "/app", env=env, timeout=300,
               log=tmp_path / "server.log") as base:
        for name in ["../outside/evil", "escape", str(layout.outside / "evil"), "~/evil"]:
            with ClientThread() as client:
                texts = client(_document_texts, f"{base}/app", name)
            alerts = [t for t in texts if "Error." in t]
            assert any(f"No project {name!r}; projects available: good" in t for t in alerts), (name, alerts)
    assert not layout.canary.exists()


def _document_texts(url, name):
    import html

    from bokeh.client import pull_session

    with pull_session(url=url, arguments={"project": name}) as session:
        return [html.unescape(html.unescape(model.text)) for model in session.document.models
                if isinstance(getattr(model, "text", None), str)]


# -- files inside a project that lead out -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "what"),
    [("model.keras", "model"), ("x.npy", "inputs"), ("y.npy", "labels"), ("project.toml", "manifest")],
)
def test_files_that_are_links_out_of_the_project_are_refused(layout, link, what):
    name = f"link_{what}"
    folder = layout.project(name, model=link != "model.keras", x=link != "x.npy", y=link != "y.npy")
    target = {"project.toml": layout.evil / "project.toml"}.get(link, layout.evil / link)
    os.symlink(target, folder / link)
    with opened() as record:
        with pytest.raises(ProjectError, match=rf"the {what} file is a link to .*outside the project folder"):
            load_project(name, layout.root)
        from dashboard.inspector.state import Inspector

        store = Inspector(project=name)
        assert "outside the project folder" in store.error, store.error
    layout.nothing_outside(record)


def test_a_hooks_file_that_leads_out_never_runs(layout):
    folder = layout.project("link_hooks")
    os.symlink(layout.evil / "hooks.py", folder / "hooks.py")
    with opened() as record:
        project = load_project("link_hooks", layout.root)
        for call in (project.preprocess, project.data_hash):
            with pytest.raises(ProjectError, match="hooks.py resolves to .*outside the project folder"):
                call()
        from dashboard.inspector.state import Inspector

        store = Inspector(project="link_hooks")
        assert "hooks.py resolves to" in store.error, store.error
    layout.nothing_outside(record)


def test_links_that_stay_inside_the_project_are_followed(layout):
    folder = layout.project("link_inside", x=False)
    (folder / "data").mkdir()
    np.save(folder / "data" / "x_v2.npy", layout.assets.x)
    os.symlink(folder / "data" / "x_v2.npy", folder / "x.npy")
    project = load_project("link_inside", layout.root)
    np.testing.assert_array_equal(project.inputs(), layout.assets.x)


@pytest.mark.parametrize(
    ("manifest", "match"),
    [
        ('inputs = "../../outside/secret.npy"\n', "points outside the project folder"),
        ('inputs = "../escape/x.npy"\n', "points outside the project folder"),
        ('inputs = "{outside}/secret.npy"\n', "must be a file name inside the project folder"),
        ('model = "/etc/passwd"\n', "must be a file name inside the project folder"),
        ('labels = "sub/../../../outside/evil/y.npy"\n', "points outside the project folder"),
        ('inputs = "out/secret.npy"\n', "points outside the project folder"),  # `out` links to the outside folder
        ('inputs = "~/secret.npy"\n', "inputs file '~/secret.npy' does not exist"),
        ('inputs = "x.npy\\u0000../../outside/secret.npy"\n', "must be a file name inside the project folder"),
        (f'inputs = "{"a" * 5000}.npy"\n', "is not a usable file name \\(File name too long\\)"),
        ('model = "x.npy/../../../outside/evil/model.keras"\n', "points outside the project folder"),
    ],
    ids=["dotdot", "via-linked-project", "absolute", "absolute-model", "labels-dotdot", "linked-folder", "tilde",
         "null-byte", "too-long", "through-a-file"],
)
def test_manifest_paths_that_leave_the_project_are_refused(layout, manifest, match, request):
    name = f"manifest_{request.node.callspec.id}"
    folder = layout.project(name, manifest=manifest.replace("{outside}", str(layout.outside)))
    os.symlink(layout.outside, folder / "out")
    with opened() as record, pytest.raises(ProjectError, match=match):
        load_project(name, layout.root)
    layout.nothing_outside(record)


# -- hooks and trust ----------------------------------------------------------------------------------------------


def test_hooks_of_a_project_under_the_root_run(layout):
    project = load_project("hooked", layout.root)
    preprocess = project.preprocess()
    assert (layout.markers / "hooked").read_text() == "ran"
    np.testing.assert_array_equal(preprocess(np.ones((2, 3))), np.zeros((2, 3)))
    from engine.propagate import activations

    acts = activations(project, bi.LAYER, cache_dir=layout.base / "cache")  # the hook reaches the model
    plain = activations(load_project("good", layout.root), bi.LAYER, cache_dir=layout.base / "cache")
    assert not np.allclose(acts, plain) and np.allclose(acts, acts[0])  # every input zeroed: one activation


def test_a_lambda_model_needs_trust_model_in_its_own_manifest(layout):
    for name, trusted in (("lambda_refused", False), ("lambda_trusted", True)):
        folder = layout.project(name, model=False, manifest="trust_model = true\n" if trusted else None)
        bi._copy(layout.assets.lambda_keras, folder / "model.keras")
    with pytest.raises(ModelError, match="Lambda layer.* set trust_model = true"):
        load_project("lambda_refused", layout.root).model()
    model = load_project("lambda_trusted", layout.root).model()
    assert "doubled" in [layer.name for layer in model.layers]

    from dashboard.inspector.state import Inspector

    store = Inspector(project="lambda_refused")
    assert "trust_model = true" in store.error and store.inspection is None
    store.project = "lambda_trusted"  # the file's own manifest trusts it: the dashboard follows the file
    assert store.error == "" and store.inspection is not None


def test_the_dashboard_has_no_way_to_set_trust(layout):
    """Trust comes only from project.toml: no parameter of the store, no field of its requests, no call in the
    dashboard's code sets it."""
    from dashboard.datasets.state import Datasets
    from dashboard.explore.state import Explorer
    from dashboard.finetune.state import FineTuning
    from dashboard.inspector.state import Inspector
    from dashboard.linked.state import Linked
    from dashboard.shared import Request
    from dashboard.units.state import Units

    for state in (Inspector, Datasets, FineTuning, Explorer, Linked, Units):  # every state of a session
        assert not [name for name in state.param if "trust" in name.lower() or "safe" in name.lower()], state
    assert not [f for f in Request.__dataclass_fields__ if "trust" in f or "safe" in f]
    source = "\n".join(p.read_text() for p in sorted(Path(__import__("dashboard").__file__).parent.rglob("*.py")))
    assert not re.search(r"trust_model\s*=|trust\s*=\s*True|safe_mode|load_model\(|load_model_cached\(", source)
