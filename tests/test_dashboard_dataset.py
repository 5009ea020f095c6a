"""The probe, label and generated-dataset views of the dashboard, driven in-process on real projects.

Two small real projects in a temporary projects root: ``blobs``, a dense classifier (softmax output) on three
labelled clusters, whose suffix can be fine-tuned; ``unlabelled``, an autoencoder without labels. The store's long
work runs synchronously outside a server, so each assertion follows its action.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from builders import blobs, projects_root

pn = pytest.importorskip("panel")

CLASSES = ["cat", "dog", "fox"]


def _build_blobs(path):
    import keras
    from keras import layers

    path.mkdir()
    x, y = blobs(3, 120, 6, spread=0.8)
    np.save(path / "x.npy", x)
    np.save(path / "y.npy", y)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6,)), layers.Dense(8, activation="tanh", name="hidden"), layers.Dense(4, name="code"),
        layers.Dense(8, activation="relu", name="head"), layers.Dense(3, activation="softmax", name="probs"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=30, verbose=0)
    model.save(path / "model.keras")
    (path / "project.toml").write_text(
        'model = "model.keras"\ninputs = "x.npy"\nlabels = "y.npy"\ndefault_layer = "code"\n'
        f"class_names = {CLASSES!r}\n".replace("'", '"')
        + '[input_view]\nkind = "vector"\n[output_view]\nkind = "probabilities"\n'
    )


def _build_unlabelled(path):
    import keras
    from keras import layers

    path.mkdir()
    x = np.random.default_rng(2).normal(size=(200, 5)).astype(np.float32)
    np.save(path / "x.npy", x)
    keras.Sequential([keras.Input((5,)), layers.Dense(2, name="bottleneck"), layers.Dense(5, name="out")]).save(
        path / "model.keras")
    (path / "project.toml").write_text('model = "model.keras"\ninputs = "x.npy"\ndefault_layer = "bottleneck"\n')


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    yield from projects_root(tmp_path_factory, blobs=_build_blobs, unlabelled=_build_unlabelled)


@pytest.fixture
def app(root, request):
    from dashboard.template import Dashboard

    dash = Dashboard(project="blobs")
    assert dash.store.error == "", dash.store.error
    dash.datasets.dataset = request.node.name.replace("[", "-").replace("]", "")[:90]  # one dataset per test
    return dash


def _tap(store, i, offset=0.0):
    x, y = (float(v) + offset for v in np.asarray(store.inspection.embedding)[i])
    return store.decode_at(x, y)


def test_probe_trains_on_the_layer_and_labels_every_decode(app):
    store, datasets = app.store, app.datasets
    assert not app.probe.train.disabled
    app.probe.train.clicks += 1
    probe = store.probe
    assert probe is not None and store.error == "" and datasets.error == ""
    assert probe.validation_accuracy_ > 0.8  # three well separated clusters
    assert set(store.param.color_by.objects) >= {"label", "prediction", "misclassified"}
    assert list(store.points["prediction"].cat.categories) == CLASSES
    wrong = probe.misclassified(store.inspection.activations, store.inspection.labels)
    assert (store.points["misclassified"] == "misclassified").sum() == wrong.sum()
    from dashboard.latent import category_colors

    store.color_by = "misclassified"  # the disagreements in red over grey
    assert category_colors(list(store.points["misclassified"].cat.categories)) == ["#c3c8d1", "#d62728"]
    assert app.latent._plot(store.points, store.color_by) is not None
    html = app.probe._summary.object
    assert f"{probe.validation_accuracy_:.1%}" in html and "<table class='confusion'>" in html

    decoded = _tap(store, 10)
    expected = probe.predict_one(decoded.activation)
    assert datasets.prediction.name == expected.name
    assert datasets.prediction.probabilities == pytest.approx(expected.probabilities)
    assert app.label.label.value == expected.name  # the suggestion is in the editable box
    assert expected.name in app.probe._prediction.object


def test_probe_is_shared_and_survives_a_reducer_change(app, root):
    from dashboard.template import Dashboard

    app.probe.train.clicks += 1
    probe = app.store.probe
    other = Dashboard(project="blobs")
    assert other.store.probe is probe  # the probe depends on the layer only, like the activations
    app.store.method = "umap" if app.store.method != "umap" else "pca"
    assert app.store.probe is probe and "prediction" in app.store.points


def test_unlabelled_project_says_why_there_is_no_probe(root):
    from dashboard.template import Dashboard

    dash = Dashboard(project="unlabelled")
    datasets = dash.datasets
    assert dash.store.inspection is not None
    assert "no labels" in datasets.probe_note
    assert dash.probe.train.disabled
    assert "Probe unavailable" in dash.probe._summary.object
    datasets.train_probe()  # even called directly: an alert, no crash
    assert dash.store.probe is None
    datasets.dataset = "blank-labels"
    _tap(dash.store, 2)
    assert datasets.save_current("   ") is None  # no label, and no probe to suggest one
    assert "label" in datasets.error and datasets.records == []
    assert "label" in dash.label.error.object  # shown beside Save, not in the banner over the page
    assert not dash._alert.visible


def test_label_save_table_marker_undo_and_delete(app, root):
    from engine.data.generated import GeneratedDataset

    store, datasets = app.store, app.datasets
    d1 = _tap(store, 3)
    # what the page's Save sends: the label its box shows, with a count, in one message
    app.label._request.value = json.dumps({"label": "not a number ", "n": 1})
    assert datasets.error == "", datasets.error
    records = GeneratedDataset(store.project_obj, datasets.dataset).records()
    assert [r.user_label for r in records] == ["not a number"]
    assert records[0].xy == d1.xy
    np.testing.assert_array_equal(records[0].output, d1.output)
    np.testing.assert_array_equal(records[0].activation, d1.activation)
    table = app.dataset.table.value
    assert list(table["user_label"]) == ["not a number"] and bool(table["on_plot"].iloc[0])
    stars = [(x, y) for x, y, m in zip(*(app.latent.marker_data()[k] for k in ("x", "y", "marker"))) if m == "star"]
    assert stars == [d1.xy]
    assert "not a number" in app.label._options()  # offered again for the next points

    d2 = _tap(store, 200)
    datasets.save_current("dog")
    assert [r.user_label for r in datasets.records] == ["not a number", "dog"]
    app.label.undo.clicks += 1  # takes back this session's last save: "dog"
    assert [r.user_label for r in datasets.records] == ["not a number"]
    assert d2.xy not in [r.xy for r in datasets.saved]

    record_id = app.dataset.table.value["id"].iloc[0]
    app.dataset._clicked(type("Click", (), {"column": "delete", "row": 0})())
    assert datasets.records == [] and datasets.saved == []
    assert GeneratedDataset(store.project_obj, datasets.dataset).ids() == []
    assert record_id in datasets.notice


def test_saved_records_reload_in_a_new_session_and_only_mark_their_own_plot(app):
    from dashboard.template import Dashboard

    store, datasets = app.store, app.datasets
    decoded = _tap(store, 7, offset=0.3)
    assert datasets.save_current("fox")
    again = Dashboard(project="blobs")
    again.datasets.dataset = datasets.dataset
    assert [r.xy for r in again.datasets.records] == [decoded.xy]
    assert [r.xy for r in again.datasets.saved] == [decoded.xy]
    again.store.method = "umap"  # another plane: the record's (x, y) means nothing there
    assert len(again.datasets.records) == 1 and again.datasets.saved == []


def test_save_without_a_label_or_into_a_bad_name_is_an_alert_and_nothing_is_lost(app):
    store, datasets = app.store, app.datasets
    name = datasets.dataset
    _tap(store, 1)
    assert datasets.save_current("cat")
    kept = [r.id for r in datasets.records]
    datasets.dataset = "../escape"
    assert "invalid dataset name" in datasets.error and datasets.records == []
    assert "invalid dataset name" in app.dataset.error.object  # shown above the records, where it was asked for
    assert "invalid dataset name" not in app._alert.object
    datasets.dismiss_error()
    assert datasets.save_current("cat") is None and "invalid dataset name" in datasets.error
    datasets.dataset = name
    assert [r.id for r in datasets.records] == kept


def test_exports_are_ready_to_train_on(app, tmp_path):
    store, datasets = app.store, app.datasets
    outputs = []
    for i, label in ((0, "cat"), (150, "dog"), (300, "not a number")):
        outputs.append(_tap(store, i).output)
        assert datasets.save_current(label)
    for fmt in ("npz", "csv", "h5"):
        path = app.dataset.downloads[("npz", "csv", "h5").index(fmt)].callback()
        assert path.suffix == f".{fmt}" and path.is_file()
    data = np.load(datasets.export_dataset("npz"))
    np.testing.assert_allclose(data["x"], np.stack(outputs), rtol=1e-6)
    names = list(data["names"])
    assert [names[c] for c in data["y"]] == ["cat", "dog", "not a number"]


def test_finetune_saves_a_version_switches_to_it_and_compares_with_the_original(app, root):
    store, datasets, tuning = app.store, app.datasets, app.finetuning
    original = (root / "blobs" / "model.keras").read_bytes()
    for i in range(0, 360, 30):  # relabel a dozen points as "fox"
        _tap(store, i)
        assert datasets.save_current("fox")
    assert not app.tuning.tune.disabled
    app.tuning.epochs.value = 7
    app.tuning.tune.clicks += 1
    assert store.error == "" and tuning.error == "", store.error or tuning.error
    assert store.model_version.startswith("models/model-") and store.model_version.endswith(".keras")
    assert (root / "blobs" / "model.keras").read_bytes() == original  # never overwritten
    assert str(store.inspection.project.model_path).endswith(store.model_version)
    assert "loss" in tuning.notice and "→" in tuning.notice
    assert "for 7 epochs" in tuning.notice  # the epochs chosen beside the button

    decoded = _tap(store, 0)
    assert tuning.compare is not None  # the original model's output at the same activation
    assert not np.allclose(tuning.compare, decoded.output)
    fox = CLASSES.index("fox")
    assert decoded.output[fox] > tuning.compare[fox]  # the version learned the new labels
    store.model_version = ""
    assert store.inspection.project.model_path.name == "model.keras"
    assert _tap(store, 0) is not None and tuning.compare is None


def test_refit_probe_with_records_learns_a_new_class(app):
    store, datasets, tuning = app.store, app.datasets, app.finetuning
    datasets.train_probe()
    for i in range(40, 48):
        _tap(store, i, offset=0.05 * (i - 40))
        assert datasets.save_current("odd one")
    app.tuning.refit.clicks += 1
    assert store.error == "" and tuning.error == "", store.error or tuning.error
    assert "odd one" in store.probe.class_names_
    assert "Probe refitted" in tuning.notice


def test_a_malformed_save_request_saves_nothing_and_the_next_one_works(app):
    store, datasets = app.store, app.datasets
    _tap(store, 2)
    for bad in ("not json", json.dumps(["cat"]), json.dumps({"n": 3})):
        app.label._request.value = bad
    assert datasets.records == [] and datasets.error == "" and store.error == ""
    app.label._request.value = json.dumps({"label": "cat", "n": 4})
    app.label._request.value = json.dumps({"label": "cat", "n": 5})  # the same label again: a second save
    assert [r.user_label for r in datasets.records] == ["cat", "cat"]


def test_undo_takes_back_only_this_sessions_saves_and_errors_show_beside_their_controls(root):
    """Issue 17: a fresh page's Undo took back another session's save; an error of the label box, of the records
    or of the probe is shown beside those controls (and nowhere else in the card's other places)."""
    from dashboard.template import Dashboard
    from engine.data.generated import GeneratedDataset

    others = Dashboard(project="blobs")
    others.datasets.dataset = "undo-own"
    _tap(others.store, 5)
    theirs = others.datasets.save_decode(others.store.decode, "dog")

    app = Dashboard(project="blobs")  # a fresh page on the same dataset
    datasets = app.datasets
    datasets.dataset = "undo-own"
    assert [r.id for r in datasets.records] == [theirs]
    assert not datasets.undoable and app.label.undo.disabled
    assert datasets.undo_save() is None and [r.id for r in datasets.records] == [theirs]
    _tap(app.store, 7)
    mine = datasets.save_decode(app.store.decode, "cat")
    assert datasets.undoable and not app.label.undo.disabled
    assert datasets.undo_save().id == mine
    assert GeneratedDataset(app.store.project_obj, "undo-own").ids() == [theirs] and not datasets.undoable

    assert datasets.save_decode(app.store.decode, "   ") is None  # no label, no suggestion
    assert datasets.error_at == "label" and "label" in app.label.error.object
    assert app.dataset.error.object == "" and "state-error" not in app.probe.status.object
    datasets.delete_record("00000099-nosuchrecord")
    assert datasets.error_at == "records" and "state-error" in app.dataset.error.object
    assert app.label.error.object == ""
    datasets.error = "from another state"  # set by no control of this state's: shown in each place
    assert datasets.error_at == "" and all("from another state" in pane.object
                                           for pane in (app.label.error, app.dataset.error, app.probe.status))
