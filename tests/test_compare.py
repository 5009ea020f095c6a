"""Compare view: the same layer of two models kept in one project folder, linked by sample id."""

import numpy as np
import pytest

from engine.data.project import load_project
from engine.errors import InspectorError, ProjectError
from engine.explore.compare import compare
from engine.explore.inspection import Inspection
from engine.explore.selection import select_box


def autoencoder(code: int, seed: int):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((12,)), layers.Dense(8, activation="relu", name="enc"),
                             layers.Dense(code, name="bottleneck"), layers.Dense(12, name="recon")])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare-projects")
    path = root / "ae"
    path.mkdir()
    autoencoder(3, 0).save(path / "ae3.keras")
    autoencoder(6, 1).save(path / "ae6.keras")
    rng = np.random.default_rng(0)
    np.save(path / "x.npy", rng.normal(size=(200, 12)).astype(np.float32))
    np.save(path / "y.npy", rng.integers(0, 2, size=200))
    (path / "project.toml").write_text('model = "ae3.keras"\ndefault_layer = "bottleneck"\n')
    return root


def test_the_same_layer_of_two_models_in_one_folder(folder, tmp_path):
    project = load_project("ae", root=folder)
    assert [p.name for p in project.model_files()] == ["ae3.keras", "ae6.keras"]
    other = project.with_model("ae6.keras")
    assert other.model_path.name == "ae6.keras" and other.inputs_path == project.inputs_path
    assert project.model_path.name == "ae3.keras"  # the original is untouched
    left = Inspection(project, "bottleneck", cache_dir=tmp_path)
    right = Inspection(other, "bottleneck", cache_dir=tmp_path)
    assert left.latent_shape == (3,) and right.latent_shape == (6,)  # not the cache of the other model
    pair = compare(left, right)
    ids = select_box(left.embedding, 0.0, 10.0, -10.0, 10.0)
    mapped = pair.to_right(ids)
    np.testing.assert_array_equal(mapped.ids, ids)
    np.testing.assert_array_equal(mapped.xy, right.embedding[ids])
    np.testing.assert_array_equal(pair.to_left(ids).xy, left.embedding[ids])


def test_unknown_model_files_are_refused(folder):
    project = load_project("ae", root=folder)
    with pytest.raises(ProjectError, match=r"no model file 'x\.npy' in the project folder; model files there: "
                                           r"ae3\.keras, ae6\.keras"):
        project.with_model("x.npy")
    outside = folder / "outside.keras"
    outside.write_bytes((folder / "ae" / "ae3.keras").read_bytes())
    with pytest.raises(ProjectError, match=r"no model file '\.\./outside\.keras'"):
        project.with_model("../outside.keras")
    assert project.with_model("../ae/ae6.keras").model_path.name == "ae6.keras"  # inside after all


def test_inspections_of_different_inputs_cannot_be_compared(folder, tmp_path):
    project = load_project("ae", root=folder)
    other_root = tmp_path / "root"
    (other_root / "ae").mkdir(parents=True)
    for name in ("ae3.keras", "project.toml", "y.npy"):
        (other_root / "ae" / name).write_bytes((folder / "ae" / name).read_bytes())
    np.save(other_root / "ae" / "x.npy", np.ones((200, 12), np.float32))
    left = Inspection(project, "bottleneck", cache_dir=tmp_path / "c")
    right = Inspection(load_project("ae", root=other_root), "bottleneck", cache_dir=tmp_path / "c")
    with pytest.raises(InspectorError, match="they read different input files"):
        compare(left, right)
