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
    assert p.labels().dtype == np.int16 and len(p.labels()) == 300  # (held while the project is open: 2 bytes each)
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


def test_labels_are_held_in_the_smallest_type_their_codes_fit(tmp_path, model):
    """Float, one-hot and 64-bit codes all come back as the smallest of int16, int32 and int64 that holds them."""
    x = np.zeros((4, 12), np.float32)
    cases = {"few": (np.array([0.0, 2.0, 1.0, 2.0]), np.int16, [0, 2, 1, 2]),
             "onehot": (np.eye(3)[[2, 0, 1, 1]], np.int16, [2, 0, 1, 1]),
             "many": (np.array([0, 40_000, 5, 1], np.int64), np.int32, [0, 40_000, 5, 1]),
             "huge": (np.array([0, 2**33, 5, 1], np.uint64), np.int64, [0, 2**33, 5, 1])}
    for name, (y, dtype, codes) in cases.items():
        write_project(tmp_path, name, model, x, y)
        labels = load_project(name, root=tmp_path).labels()
        assert labels.dtype == dtype and labels.tolist() == codes, name


def test_projects_of_one_labels_file_share_one_read_only_array_until_the_file_changes(tmp_path, model):
    """Each dashboard session opens its own Project: they hold one copy of the labels, which none can write into,
    and a labels file written again is read again."""
    x = np.zeros((6, 12), np.float32)
    write_project(tmp_path, "shared", model, x, np.array([0, 1, 1, 0, 2, 2]))
    first, second = (load_project("shared", root=tmp_path).labels() for _ in range(2))
    assert first is second and not first.flags.writeable
    with pytest.raises(ValueError):
        first[0] = 5
    labels_file = load_project("shared", root=tmp_path).labels_path
    np.save(labels_file, np.array([2, 2, 1, 0, 1, 0]))  # (same size: the file's time tells)
    assert load_project("shared", root=tmp_path).labels().tolist() == [2, 2, 1, 0, 1, 0]


def test_a_project_is_in_memory_once_another_of_its_folder_read_it_and_until_a_file_changes(tmp_path, model):
    """What a dashboard session asks before opening a project at once rather than in the background: the model,
    inputs and labels of the folder, as their files are now, are held by the process."""
    x = np.zeros((6, 12), np.float32)
    write_project(tmp_path, "held", model, x, np.array([0, 1, 1, 0, 2, 2]))
    assert not load_project("held", root=tmp_path).in_memory()
    first = load_project("held", root=tmp_path)
    first.inputs()
    first.labels()
    assert not load_project("held", root=tmp_path).in_memory()  # the model is still to be read
    first.model()
    assert load_project("held", root=tmp_path).in_memory()
    np.save(first.labels_path, np.array([2, 2, 1, 0, 1, 0]))
    assert not load_project("held", root=tmp_path).in_memory()  # the labels file was written again
    load_project("held", root=tmp_path).labels()
    assert load_project("held", root=tmp_path).in_memory()
    first.inputs_path.unlink()
    assert not load_project("held", root=tmp_path).in_memory()  # said by opening it, not here


def test_project_without_labels(tmp_path, model):
    write_project(tmp_path, "nolabels", model, np.zeros((3, 12), np.float32))
    p = load_project("nolabels", root=tmp_path)
    assert p.labels() is None and p.label_names() is None
    assert any("labels: none" in n for n in p.inferred)


# Bad manifests, bad data, folders without a model, and files left unmodified by errors are cases of the bad-inputs
# corpus (tests/bad_inputs.py, run by tests/test_bad_inputs.py); names and paths that try to leave the projects root
# (traversal, absolute paths, symlinks) are tested in tests/test_paths.py.
