"""Batched propagation equals the model; the disk cache is reused and never left half-written."""

import numpy as np
import pytest

from engine.data.project import load_project
from engine.errors import ModelError
from engine.model import load_model, split
from engine.propagate import activations, cache_path, propagate


def test_propagation_equals_the_model_on_random_data(model_files):
    path, _, _ = model_files["conv2d", ".h5"]
    model = load_model(path)
    x = np.random.default_rng(5).random((1000, 16, 16, 1)).astype("float32")
    s = split(model, "bottleneck")
    seen = []
    z = propagate(s, x, batch_size=128, progress=lambda stage, done, total: seen.append((done, total)))
    np.testing.assert_allclose(z, np.asarray(s.prefix(x, training=False)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.decode(z), np.asarray(model(x, training=False)), rtol=1e-5, atol=1e-5)
    assert seen[-1] == (1000, 1000) and len(seen) == 8  # ceil(1000 / 128) batches


def test_propagation_reads_a_memory_map_and_writes_one(tmp_path, model_files):
    path, _, _ = model_files["conv1d", ".keras"]
    s = split(load_model(path), "gap")
    x = np.random.default_rng(6).normal(size=(500, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(tmp_path / "z.npy", mode="w+", dtype=np.float32, shape=(500, 4))
    propagate(s, xm, batch_size=64, out=out)
    out.flush()
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), s.encode(x), rtol=1e-5, atol=1e-6)


def test_flat_inputs_are_reshaped_and_wrong_shapes_named(model_files):
    s = split(load_model(model_files["conv2d", ".keras"][0]), "bottleneck")
    x = np.random.default_rng(0).random((4, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(propagate(s, x.reshape(4, 256)), s.encode(x), rtol=1e-6)
    with pytest.raises(ModelError, match=r"expects samples of shape \(16, 16, 1\) \(256 values\); "
                       r"the data's samples have shape \(100,\)"):
        propagate(s, np.zeros((4, 100), np.float32))


def test_activation_cache_is_reused(tiny_project, tmp_path):
    project = load_project("tiny", root=tiny_project)
    calls = []
    z1 = activations(project, "bottleneck", cache_dir=tmp_path, progress=lambda s, d, t: calls.append(d))
    assert calls and calls[-1] == 300
    path = cache_path(project, "bottleneck", tmp_path)
    assert path.is_file()
    mtime = path.stat().st_mtime_ns
    calls.clear()
    z2 = activations(load_project("tiny", root=tiny_project), "bottleneck", cache_dir=tmp_path,
                     progress=lambda s, d, t: calls.append(d))
    assert calls == []  # read back, not recomputed
    assert path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(z1, z2)
    model = project.model()
    np.testing.assert_allclose(z2, split(model, "bottleneck").encode(project.inputs()), rtol=1e-5, atol=1e-6)


def test_failed_propagation_leaves_no_cache_entry(tiny_project, tmp_path):
    project = load_project("tiny", root=tiny_project)

    def boom(stage, done, total):
        if done >= 100:
            raise RuntimeError("killed mid-run")

    with pytest.raises(RuntimeError):
        activations(project, "flat", cache_dir=tmp_path, progress=boom, batch_size=50)
    folder = tmp_path / "activations"
    assert not list(folder.iterdir())  # neither the entry nor its temporary file
    z = activations(project, "flat", cache_dir=tmp_path)  # and the next run computes it whole
    assert z.shape == (300, 128)


def test_project_hook_preprocesses_every_batch(tmp_path):
    from builders import build_models, write_project

    model, _ = build_models()["sequential"]
    x = np.random.default_rng(2).normal(size=(40, 6)).astype("float32")  # half the features the model takes
    folder = write_project(tmp_path, "hooked", model, x)
    (folder / "hooks.py").write_text("import numpy as np\n\ndef preprocess(batch):\n"
                                     "    return np.concatenate([batch, -batch], axis=1)\n")
    project = load_project("hooked", root=tmp_path)
    z = activations(project, "bottleneck", cache_dir=tmp_path / "cache", batch_size=16)
    expected = split(project.model(), "bottleneck").encode(np.concatenate([x, -x], axis=1))
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-6)
    assert "-h" in cache_path(project, "bottleneck", tmp_path / "cache").name  # the hook is part of the key


def test_a_hook_that_works_in_place_leaves_the_shared_inputs_as_they_were(tmp_path):
    """A project's inputs are shared by the sessions of a server, read-only: a hook that scales its batch in place
    gets a copy, and a second propagation sees the file's values."""
    from builders import build_models, write_project

    model, _ = build_models()["sequential"]
    x = np.random.default_rng(3).normal(size=(20, 12)).astype("float32")
    folder = write_project(tmp_path, "inplace", model, x)
    (folder / "hooks.py").write_text("def preprocess(batch):\n    batch *= 2.0\n    return batch\n")
    project = load_project("inplace", root=tmp_path)
    assert not project.inputs().flags.writeable
    first = activations(project, "bottleneck", cache_dir=tmp_path / "one", batch_size=8)
    second = activations(load_project("inplace", root=tmp_path), "bottleneck", cache_dir=tmp_path / "two")
    np.testing.assert_array_equal(project.inputs(), x)
    expected = split(project.model(), "bottleneck").encode(2.0 * x)
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(second, expected, rtol=1e-5, atol=1e-6)
