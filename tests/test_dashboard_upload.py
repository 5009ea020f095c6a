"""The New project form's state and file pickers, driven in-process: the files a browser sends (in chunks, in any
order), the project made from them and opened by the session, an error kept with the field it is about, and the
form shown only where the server allows uploads. The browser itself is tests/ui/test_upload_ui.py's.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from builders import blobs, build_models, projects_root

pn = pytest.importorskip("panel")


def _build_seed(path):
    model, _ = build_models()["sequential"]
    x, y = blobs(3, 40, 12, spread=0.5)
    path.mkdir()
    model.save(path / "model.keras")
    np.save(path / "x.npy", x)
    np.save(path / "y.npy", y)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    yield from projects_root(tmp_path_factory, seed=_build_seed)


def _npy(array) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def _chunks(dropper, name: str, content: bytes, order):
    """Send ``content`` to ``dropper`` as the browser does, in chunks of its ``chunk_size``, in ``order``."""
    from panel.models.file_dropper import UploadEvent

    size = dropper.chunk_size
    total = -(-(len(content) + 1) // size)
    for i in order(list(range(1, total + 1))):
        block = content[(i - 1) * size: i * size]
        dropper._process_event(UploadEvent(model=None, data={"name": name, "chunk": i, "total_chunks": total,
                                                            "data": block, "type": ""}))


def test_chunks_handled_in_any_order_make_the_file_and_a_file_over_the_limit_is_dropped():
    from dashboard.upload.views import Dropper

    got, refused, cleared = [], [], []
    dropper = Dropper(on_file=lambda name, f: got.append((name, f.read())), on_clear=lambda: cleared.append(1),
                      on_refused=refused.append, limit=1000, chunk_size=64)
    content = bytes(range(256)) * 3 + b"end"
    _chunks(dropper, "x.npy", content, lambda order: order[::-1])  # the last chunk first
    assert got == [("x.npy", content)] and refused == []
    _chunks(dropper, "big.npy", bytes(1001), lambda order: order)
    assert refused == ["big.npy is larger than the 1 KB this file may hold; it was not kept"] and len(got) == 1
    from panel.models.file_dropper import DeleteEvent

    dropper._process_event(DeleteEvent(model=None, data={"name": "x.npy"}))
    assert cleared == [1]
    assert dropper.max_file_size == "1000"  # the browser refuses it before sending, with the limit in words


def test_a_project_made_from_the_form_is_opened_by_the_session(root):
    from dashboard.inspector.state import Inspector
    from dashboard.upload.state import Uploads

    store = Inspector(project="seed")
    uploads = Uploads(inspector=store)
    assert uploads.missing() == ["a name", "a model file", "a data file"]
    x, y = blobs(2, 30, 12, spread=0.5, seed=4)
    uploads.receive("model", "autoencoder.keras", io.BytesIO((root / "seed" / "model.keras").read_bytes()))
    uploads.receive("inputs", "pairs.npy", _npy(x))
    uploads.receive("labels", "pair-labels.npy", _npy(y))
    uploads.project_name = "pairs"
    assert uploads.missing() == [] and uploads.name_problem() == ""
    uploads.create()
    assert uploads.error == "" and "Project 'pairs' made from autoencoder.keras, pairs.npy and pair-labels.npy" \
        in uploads.notice
    assert store.project == "pairs" and "pairs" in store.param.project.objects
    assert store.inspection is not None and len(store.points) == 60
    assert uploads.model is None and uploads.project_name == ""
    assert uploads.name_problem("pairs") == "a project named 'pairs' already exists; choose another name"


def test_an_error_is_kept_with_the_field_it_is_about(root):
    from dashboard.inspector.state import Inspector
    from dashboard.upload.state import Uploads

    store = Inspector(project="seed")
    uploads = Uploads(inspector=store)
    uploads.receive("model", "weights.mat", b"x")  # not a kind of model file: refused on arrival
    assert uploads.field == "model" and "not a model file this tool reads" in uploads.error and uploads.model is None
    uploads.receive("model", "ae.keras", (root / "seed" / "model.keras").read_bytes())
    assert uploads.error == "" and uploads.field == ""
    uploads.receive("inputs", "wide.npy", _npy(np.zeros((10, 5), np.float32)))
    uploads.project_name = "wide"
    uploads.create()
    assert uploads.field == "inputs" and "'wide.npy': samples of shape (5,)" in uploads.error
    assert store.project == "seed" and not (root / "wide").exists()
    assert uploads.status == ""  # no "done" after a refusal
    uploads.project_name = "../x"
    assert "holds a path separator" in uploads.name_problem()


def test_the_form_is_shown_only_where_the_server_allows_uploads(root, monkeypatch):
    from dashboard.serve import uploads_allowed
    from dashboard.template import Dashboard

    monkeypatch.delenv("LATENT_INSPECTOR_UPLOAD", raising=False)
    assert Dashboard(project="seed").new_project is None
    monkeypatch.setenv("LATENT_INSPECTOR_UPLOAD", "1")
    monkeypatch.setenv("LATENT_INSPECTOR_UPLOAD_MAX_MODEL", "3MB")
    dashboard = Dashboard(project="seed")
    assert dashboard.uploads.limits.model == 3_000_000
    form = dashboard.new_project
    # no drop zone before the form opens: FilePond would redraw the page on every animation frame from then on
    assert form.droppers == {} and not any(slot.objects for slot in form._slots.values())
    form.toggle.value = True
    zones = dict(form.droppers)
    assert list(zones) == ["model", "inputs", "labels"] and zones["model"].max_file_size == "3000000"
    assert all(form._slots[role].objects == [zone] for role, zone in zones.items())
    form.toggle.value = False
    form.toggle.value = True  # opened again: the same drop zones, with what they hold
    assert all(form.droppers[role] is zone and form._slots[role].objects == [zone] for role, zone in zones.items())
    assert uploads_allowed("127.0.0.1") and uploads_allowed("::1") and not uploads_allowed("0.0.0.0")
    assert not uploads_allowed("127.0.0.1", False) and uploads_allowed("10.0.0.5", True)


def test_serve_help_says_when_uploads_are_on():
    import argparse

    from dashboard.serve import EPILOG, add_arguments

    parser = argparse.ArgumentParser(epilog=EPILOG)
    add_arguments(parser)
    assert parser.parse_args([]).upload is None
    assert parser.parse_args(["--no-upload"]).upload is False and parser.parse_args(["--upload"]).upload is True
    text = " ".join(parser.format_help().split())
    assert "on when the server listens on 127.0.0.1, localhost or ::1 only, off on any other address" in text
    assert "LATENT_INSPECTOR_UPLOAD_MAX_MODEL" in text


def test_a_file_sent_while_a_project_is_made_stays_for_the_next_and_the_form_is_blocked_by_style(root, monkeypatch):
    """While a project is made the file slots are greyed by their style, not by FilePond's ``disabled`` (which takes
    the page's file input away); a file that arrives meanwhile is kept, with its drop zone, for the next project."""
    import dashboard.upload.state as upload_state
    from dashboard.inspector.state import Inspector
    from dashboard.upload.views import BUSY_STYLES, NewProjectView

    store = Inspector(project="seed")
    uploads = upload_state.Uploads(inspector=store)
    view = NewProjectView(store=uploads)
    view.toggle.value = True  # the form opened: its drop zones made
    x, y = blobs(2, 30, 12, spread=0.5, seed=5)
    later = ("next-labels.npy", _npy(y))
    seen_busy = []

    def made_while_a_file_comes(*args, **kwargs):
        seen_busy.append((uploads.busy, {role: view._slots[role].styles for role in view.droppers}))
        made = create_project(*args, **kwargs)
        uploads.receive("labels", *later)
        return made

    create_project = upload_state.create_project
    monkeypatch.setattr(upload_state, "create_project", made_while_a_file_comes)
    uploads.receive("model", "autoencoder.keras", (root / "seed" / "model.keras").read_bytes())
    uploads.receive("inputs", "trio.npy", _npy(x))
    uploads.project_name = "trio"
    before = dict(view.droppers)
    uploads.create()

    assert "Project 'trio' made from autoencoder.keras and trio.npy" in uploads.notice
    assert seen_busy == [(True, {role: BUSY_STYLES for role in view.droppers})]
    assert uploads.model is None and uploads.inputs is None
    assert uploads.labels == later  # not made into 'trio', and not dropped with the files that were
    assert view.droppers["labels"] is before["labels"]
    assert view.droppers["model"] is not before["model"] and view.droppers["inputs"] is not before["inputs"]
    assert not any(d.disabled for d in view.droppers.values())
    assert all(view._slots[role].styles == {} for role in view.droppers)
