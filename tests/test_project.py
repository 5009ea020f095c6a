"""Project discovery, manifests and inference, on real folders."""

import numpy as np
import pytest
from builders import build_models, write_project

from engine.data.project import ViewSpec, list_projects, load_project


@pytest.fixture(scope="module")
def model():
    return build_models()["sequential"][0]


def test_manifest_is_read(tiny_project):
    p = load_project("tiny", root=tiny_project)
    assert p.class_names == ("a", "b", "c")
    assert p.default_layer == "bottleneck"
    assert p.input_view == ViewSpec("image", (16, 16), None, ("a", "b", "c"))
    assert p.inputs().shape == (300, 16, 16, 1)
    assert p.labels().dtype == np.int64 and len(p.labels()) == 300
    assert list_projects(tiny_project) == ["tiny"]


def test_inference_without_manifest(tmp_path, model):
    x = np.random.default_rng(0).normal(size=(20, 12)).astype("float32")
    write_project(tmp_path, "plain", model, x, np.arange(20) % 2)
    p = load_project("plain", root=tmp_path)
    assert p.model_path.name == "model.keras" and p.inputs_path.name == "x.npy" and p.labels_path.name == "y.npy"
    assert any("model.keras" in note for note in p.inferred)
    assert p.label_names() == ("0", "1")


def test_inference_of_npz_keys(tmp_path, model):
    folder = tmp_path / "npz"
    folder.mkdir()
    model.save(folder / "m.h5")
    np.savez(folder / "dataset.npz", x=np.zeros((4, 12), np.float32), y=np.array([0, 1, 1, 0]))
    p = load_project("npz", root=tmp_path)
    assert (p.inputs_key, p.labels_key) == ("x", "y")
    assert p.labels().tolist() == [0, 1, 1, 0]


def test_project_without_labels(tmp_path, model):
    write_project(tmp_path, "nolabels", model, np.zeros((3, 12), np.float32))
    p = load_project("nolabels", root=tmp_path)
    assert p.labels() is None and p.label_names() is None
    assert any("labels: none" in n for n in p.inferred)


# Bad manifests, bad data, folders without a model, and files left unmodified by errors are cases of the bad-inputs
# corpus (tests/bad_inputs.py, run by tests/test_bad_inputs.py); names and paths that try to leave the projects root
# (traversal, absolute paths, symlinks) are tested in tests/test_paths.py.
