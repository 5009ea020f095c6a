"""Project discovery, manifests, inference and path confinement, on real folders."""

import os

import numpy as np
import pytest
from builders import build_models, write_project

from engine.errors import DataError, ProjectError
from engine.project import ViewSpec, list_projects, load_project


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


@pytest.mark.parametrize("name", ["../etc", "/etc", "a/b", "..", ".", "", "tiny/../../x", "~root"])
def test_project_names_cannot_leave_the_root(tiny_project, name):
    with pytest.raises(ProjectError):
        load_project(name, root=tiny_project)


def test_symlinked_project_outside_root_is_refused(tmp_path, model):
    outside = tmp_path / "outside"
    write_project(outside, "evil", model, np.zeros((2, 12), np.float32))
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside / "evil", root / "evil")
    with pytest.raises(ProjectError, match="outside the projects root"):
        load_project("evil", root=root)


@pytest.mark.parametrize(
    ("manifest", "match"),
    [
        ('inputs = "../../etc/passwd"\n', "outside the project folder"),
        ('inputs = "/etc/passwd"\n', "must be a file name inside"),
        ('model = "missing.h5"\n', "model file 'missing.h5' does not exist"),
        ("colour = 3\n", "unknown key.*'colour'"),
        ("class_names = 3\n", "class_names must be a list"),
        ("trust_model = \"yes\"\n", "trust_model must be a bool"),
        ("[input_view]\nkind = \"hologram\"\n", "kind = 'hologram'"),
        ("[input_view]\nkind = \"image\"\nshape = [28]\n", r"image shape is \[H, W\]"),
        ("[input_view]\nkind = \"image\"\nshape = [-1, 4]\n", "positive integers"),
        ("[output_view]\nsize = 3\n", "unknown key.*'size'"),
        ("this is = not toml [\n", "not valid TOML"),
    ],
)
def test_bad_manifests(tmp_path, model, manifest, match):
    write_project(tmp_path, "p", model, np.zeros((2, 12), np.float32), manifest=manifest)
    with pytest.raises(ProjectError, match=match) as info:
        load_project("p", root=tmp_path)
    assert "p" in str(info.value)


def test_folder_without_model(tmp_path):
    (tmp_path / "empty").mkdir()
    np.save(tmp_path / "empty" / "x.npy", np.zeros((2, 2)))
    with pytest.raises(ProjectError, match="no model file"):
        load_project("empty", root=tmp_path)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros((0, 12), np.float32), None, "zero samples"),
        (np.zeros(12, np.float32), None, "expected \\(samples, features"),
        (np.array([[0.0] * 11 + [np.nan]] * 3, np.float32), None, "NaN"),
        (np.zeros((3, 12), np.float32), np.array([0, 1]), "2 labels for 3 input samples"),
        (np.zeros((3, 12), np.float32), np.array([0.5, 1, 2]), "whole numbers"),
        (np.zeros((3, 12), np.float32), np.array([0, -1, 2]), "negative label"),
    ],
)
def test_bad_data_in_a_project(tmp_path, model, x, y, match):
    write_project(tmp_path, "p", model, x, y)
    p = load_project("p", root=tmp_path)
    with pytest.raises(DataError, match=match):
        p.labels() if y is not None else p.inputs()


def test_project_files_are_not_modified_by_errors(tmp_path, model):
    folder = write_project(tmp_path, "p", model, np.zeros((3, 12), np.float32), np.array([0, 1]))
    before = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    with pytest.raises(DataError):
        load_project("p", root=tmp_path).labels()
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == before
