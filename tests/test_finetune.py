"""Fine-tuning on a generated dataset: a real Keras classifier's suffix trained on saved records and saved as a
new version beside the untouched original; the probe refit with a new label; versions listed and switched to."""

import dataclasses
import hashlib
import re

import numpy as np
import pytest
from builders import build_models, write_project

from engine.data.generated import GeneratedDataset, Record
from engine.data.project import load_project
from engine.errors import DataError, ModelError, ProjectError
from engine.explore.probe import finetune_probe
from engine.model import load_model
from engine.model.finetune import decode_with, finetune_suffix, model_versions
from engine.model.keras import Split


def _record(project, z, label) -> Record:
    return Record(project=project.name, model_hash=project.model_hash(), layer="gap", method="pca",
                  params={"n_components": 2}, inverse="exact", xy=(0.0, 0.0), activation=z,
                  output=np.full(3, 1 / 3, np.float32), user_label=label)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A project holding the 3-class conv1d classifier, and a dataset of 40 records at its ``gap`` layer labelled
    with the class the model finds least likely (so that learning them is visible)."""
    root = tmp_path_factory.mktemp("projects")
    models = build_models()
    model, _ = models["conv1d"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 32, 3)).astype("float32")
    write_project(root, "clf", model, x, rng.integers(0, 3, 60), manifest='class_names = ["a", "b", "c"]\n')
    project = load_project("clf", root)
    s = Split(load_model(project.model_path), "gap")
    z = s.encode(x[:40])
    least = np.asarray(s.suffix(z, training=False)).argmin(axis=1)
    ds = GeneratedDataset(project, "corrections")
    for zi, c in zip(z, least):
        ds.save(_record(project, zi, "abc"[c]))
    return project, ds, x, z, least, models


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_suffix_fine_tuning_learns_the_labels_and_saves_a_new_version(classifier):
    project, ds, x, z, least, _ = classifier
    original = _digest(project.model_path)
    epochs_seen = []
    result = finetune_suffix(project, ds, epochs=2, learning_rate=0.05, batch_size=8,
                             progress=lambda stage, done, total: epochs_seen.append((done, total)))

    assert _digest(project.model_path) == original  # the original file is never written
    assert result.path.parent == project.path / "models"
    assert re.fullmatch(r"model-\d{8}T\d{6}(-\d+)?\.keras", result.path.name)
    assert result.layer == "gap" and result.classes == ("a", "b", "c") and result.n_records == 40
    assert len(result.history) == 2 and epochs_seen == [(1, 2), (2, 2)]
    assert result.loss_after < result.loss_before and result.accuracy_after > result.accuracy_before

    tuned = load_model(result.path)  # loads like the original
    before = Split(load_model(project.model_path), "gap")
    after = Split(tuned, "gap")
    p_before = before.decode(z)[np.arange(40), least]
    p_after = after.decode(z)[np.arange(40), least]
    assert p_after.mean() > p_before.mean() + 0.05  # moved towards the user labels
    # the prefix is untouched: the layer's activations (and so the projection and the records) stay valid
    np.testing.assert_allclose(after.encode(x), before.encode(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(decode_with(project, result.path, "gap", z), after.decode(z), rtol=1e-6, atol=1e-6)


def test_versions_are_listed_and_never_overwritten(classifier):
    project, ds, *_ = classifier
    first = finetune_suffix(project, ds, epochs=1)
    second = finetune_suffix(project, ds, epochs=1)
    assert first.path != second.path and first.path.is_file() and second.path.is_file()

    versions = model_versions(project)
    assert versions[0].original and versions[0].path == project.model_path and versions[0].created is None
    assert {first.path, second.path} <= {v.path for v in versions[1:]}
    assert all(not v.original and v.created is not None for v in versions[1:])
    assert [v.created for v in versions[1:]] == sorted(v.created for v in versions[1:])

    switched = project.with_model(versions[-1])
    assert switched.model_path == versions[-1].path and switched.model_hash() != project.model_hash()
    assert switched.name == project.name and np.array_equal(switched.inputs(), project.inputs())
    assert model_versions(switched)[0].path == project.model_path  # the original stays the original
    # fine-tuning a version names the next one after the original's stem, not after the version
    third = finetune_suffix(switched, ds, epochs=1)
    assert re.fullmatch(r"model-\d{8}T\d{6}(-\d+)?\.keras", third.path.name)

    with pytest.raises(ProjectError, match="not inside the folder of project 'clf'"):
        project.with_model(project.path.parent / "elsewhere.keras")
    with pytest.raises(ProjectError, match="no model file"):
        project.with_model("models/missing.keras")


def test_labels_outside_the_model_classes_are_refused_or_skipped(classifier):
    project, _, _, z, *_ = classifier
    ds = GeneratedDataset(project, "mixed")
    ids = [ds.save(_record(project, z[i], label)) for i, label in enumerate(["a", "not a number", "2", "b"])]
    with pytest.raises(DataError, match=f"record {ids[1]} is labelled 'not a number'.*finetune_probe"):
        finetune_suffix(project, ds, epochs=1)
    result = finetune_suffix(project, "mixed", epochs=1, unknown_labels="skip")
    assert result.skipped == (ids[1],) and result.n_records == 3  # "2" is class code 2 ("c")
    with pytest.raises(DataError, match="holds no records"):
        finetune_suffix(project, "nothing-saved-here")


def test_an_autoencoder_suffix_is_not_fine_tuned_on_labels_but_its_probe_is(classifier, tmp_path):
    models = classifier[-1]
    model, _ = models["conv2d"]
    rng = np.random.default_rng(1)
    x = rng.random((90, 16, 16, 1)).astype("float32")
    write_project(tmp_path, "ae", model, x, np.repeat([0, 1, 2], 30), manifest='class_names = ["a", "b", "c"]\n')
    project = load_project("ae", tmp_path)
    z = Split(load_model(project.model_path), "bottleneck").encode(x[:6])
    ds = GeneratedDataset(project, "odd")
    odd = 25.0 + z  # far from the data: the probe can tell them apart
    for i in range(6):
        rec = _record(project, odd[i] if i < 4 else z[i], "not a number" if i < 4 else "b")
        ds.save(dataclasses.replace(rec, layer="bottleneck", output=np.zeros((16, 16, 1), np.float32)))

    with pytest.raises(ModelError, match=r"output has shape \(16, 16, 1\), not a vector of class probabilities.*"
                                         "finetune_probe"):
        finetune_suffix(project, ds)
    assert not (project.path / "models").exists()

    probe = finetune_probe(project, ds, record_weight=5.0, cache_dir=tmp_path / "cache", random_state=0)
    assert probe.class_names_ == ("a", "b", "c", "not a number")
    assert probe.n_features_in_ == 5 and len(probe.train_index_) + len(probe.validation_index_) == 96
    assert list(probe.predict(odd[:4])) == ["not a number"] * 4
    records_only = finetune_probe(project, ds, include_project=False, validation_fraction=0.34)
    assert records_only.binary_ and records_only.classes_.tolist() == ["b", "not a number"]
