"""A new user's first commands on their own model: `info` before any data, flat data into an image model with a
preprocessing hook, a model with several inputs, and where `reduce`/`render` write.

Every command runs in this process (``engine.cli.main``) on real models and files.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from builders import build_models

from engine.cli import main

keras = pytest.importorskip("keras")


def run(*args, root, cache):
    argv = ["--root", str(root), "--cache-dir", str(cache), *map(str, args)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture(scope="module")
def conv(tmp_path_factory):
    """The 16x16x1 conv autoencoder of the builders, saved, with 64 images."""
    model, _ = build_models()["conv2d"]
    folder = tmp_path_factory.mktemp("conv")
    model.save(folder / "model.keras")
    x = np.random.default_rng(0).random((64, 16, 16, 1)).astype("float32")
    return SimpleNamespace(path=folder / "model.keras", x=x, model=model)


def _project(root, name, model_path, **files):
    folder = root / name
    folder.mkdir(parents=True)
    shutil.copyfile(model_path, folder / model_path.name)
    for filename, content in files.items():
        filename = filename.replace("_dot_", ".")
        if isinstance(content, str):
            (folder / filename).write_text(content)
        else:
            np.save(folder / filename, content)
    return folder


def test_info_lists_a_model_without_data_and_says_what_it_expects(conv, tmp_path):
    _project(tmp_path, "bare", conv.path)
    r = run("info", "bare", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "expects   samples of shape (16, 16, 1) float32 (input 'image')" in r.stdout
    assert "inputs    none: add the data as x.npy" in r.stdout
    assert "bottleneck" in r.stdout and "inferred  inputs: none (no data file in the folder)" in r.stdout
    r = run("propagate", "bare", "--layer", "bottleneck", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 2
    assert "bare: no inputs file in the project folder; add the data as x.npy" in r.stderr


def test_flat_data_and_a_preprocess_hook_take_the_same_path_in_every_command(conv, tmp_path):
    hooks = "def preprocess(batch):\n    return batch / 255.0\n"
    flat = (conv.x.reshape(64, 256) * 255.0).astype("float32")
    _project(tmp_path, "flat", conv.path, x_dot_npy=flat, hooks_dot_py=hooks)
    cache = tmp_path / "cache"
    r = run("info", "flat", root=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr
    assert "hooks     hooks.py: preprocess" in r.stdout and "(64, 256) float32" in r.stdout
    r = run("propagate", "flat", "--layer", "bottleneck", root=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr
    z = np.load(next((cache / "activations").rglob("*.npy")))
    encoder = keras.Model(conv.model.inputs[0], conv.model.get_layer("bottleneck").output)
    np.testing.assert_allclose(z, np.asarray(encoder(conv.x)), rtol=1e-4, atol=1e-5)
    r = run("reduce", "flat", "--layer", "bottleneck", "--method", "pca", root=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr


def test_data_that_cannot_be_reshaped_is_named_per_sample(conv, tmp_path):
    _project(tmp_path, "odd", conv.path, x_dot_npy=np.zeros((10_000, 255), np.float32))
    r = run("propagate", "odd", "--layer", "bottleneck", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "expects samples of shape (16, 16, 1) (256 values); the data's samples have shape (255,)" in line
    assert "(1, 255)" not in line and "(2, 255)" not in line


def test_a_model_with_several_inputs_is_refused_in_one_line_naming_its_single_input_part(tmp_path):
    from keras import layers

    encoder = keras.Sequential([keras.Input((6,)), layers.Dense(4, name="e1"), layers.Dense(3, name="code")],
                               name="encoder")
    a, b = keras.Input((6,), name="left"), keras.Input((6,), name="right")
    distance = layers.Subtract(name="diff")([encoder(a), encoder(b)])
    siamese = keras.Model([a, b], layers.Dense(1, activation="sigmoid", name="same")(distance))
    folder = tmp_path / "models"
    folder.mkdir()
    siamese.save(folder / "siamese.keras")
    _project(tmp_path, "siamese", folder / "siamese.keras", x_dot_npy=np.zeros((8, 6), np.float32))
    for command in (("info", "siamese"), ("propagate", "siamese", "--layer", "diff")):
        r = run(*command, root=tmp_path, cache=tmp_path / "cache")
        assert r.returncode == 2, r.stdout
        line = r.stderr.strip()
        assert "\n" not in line
        assert ("model 'siamese.keras' has 2 inputs ('left' (6,), 'right' (6,)); Latent Inspector feeds one input "
                "array to a model") in line
        assert "its nested model 'encoder' has one input" in line


def test_reduce_and_render_write_to_the_cache_and_never_overwrite_silently(tiny_project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "cache"
    r = run("reduce", "tiny", "--method", "pca", root=tiny_project, cache=cache)
    assert r.returncode == 0, r.stderr
    written = cache / "exports" / "tiny-bottleneck-pca.npz"
    assert written.is_file() and f"written to {written}" in r.stdout
    assert not list(tmp_path.glob("embedding-*"))  # nothing in the current directory
    before = written.stat().st_mtime_ns
    r = run("reduce", "tiny", "--method", "pca", root=tiny_project, cache=cache)
    assert r.returncode == 2 and "exists; pass --force to overwrite it" in r.stderr
    assert written.stat().st_mtime_ns == before
    r = run("reduce", "tiny", "--method", "pca", "--force", root=tiny_project, cache=cache)
    assert r.returncode == 0 and written.stat().st_mtime_ns != before
    r = run("render", "tiny", "--method", "pca", "--grid", "2", root=tiny_project, cache=cache)
    assert r.returncode == 0, r.stderr
    assert (cache / "exports" / "tiny-bottleneck-pca.png").is_file()


def test_info_says_the_cut_advice_once_and_each_refused_layer_briefly(model_files, tmp_path):
    path = model_files["residual", ".keras"][0]
    _project(tmp_path, "res", path, x_dot_npy=np.zeros((4, 10), np.float32))
    r = run("info", "res", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    refused = [line for line in r.stdout.splitlines() if " no: " in line]
    assert refused and all(len(line) < 160 for line in refused)
    assert any("a skip connection from 'stem' to" in line for line in refused)
    assert r.stdout.count("A cut must be a layer that every path") == 1


# ---- views inferred from shapes, activation and data -----------------------------------------------------------


def _classifier(n_classes: int, activation: str = "softmax"):
    from keras import layers

    inp = keras.Input((784,), name="pixels")
    h = layers.Dense(16, activation="relu", name="hidden")(inp)
    h = layers.Dense(n_classes, name="logits")(h)
    out = layers.Softmax(name="probs")(h) if activation == "layer" else layers.Activation(activation, name="act")(h)
    return keras.Model(inp, out)


@pytest.mark.parametrize("activation", ["softmax", "layer"])
def test_a_softmax_output_is_drawn_as_probabilities_with_the_class_names_that_fit(tmp_path, activation):
    models = tmp_path / "models"
    models.mkdir()
    _classifier(4, activation).save(models / "clf.keras")
    _project(tmp_path, "clf", models / "clf.keras", x_dot_npy=np.zeros((5, 784), np.float32),
             project_dot_toml='class_names = ["cat", "dog", "fox", "owl"]\n')
    r = run("info", "clf", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "input: image 28x28  (inferred: 784 values are a 28x28 square)" in r.stdout
    assert "output: probabilities 4 (cat, dog, fox, owl)  (inferred: the output ends in a softmax)" in r.stdout
    assert "warning" not in r.stdout


def test_class_names_of_another_count_are_a_warning_not_wrong_labels(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    _classifier(6).save(models / "clf6.keras")
    _project(tmp_path, "clf6", models / "clf6.keras", x_dot_npy=np.zeros((5, 784), np.float32),
             project_dot_toml='class_names = ["cat", "dog", "fox", "owl"]\n')
    r = run("info", "clf6", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "output: probabilities 6  (inferred" in r.stdout  # no names on the wrong output
    assert ("warning   class_names lists 4 names but output 'act' has 6 values, so its bars are numbered; name "
            "them with [output_view] class_names") in r.stdout


def test_views_of_images_series_and_flat_reconstructions_are_inferred(conv, tmp_path):
    from keras import layers

    from engine.data.project import load_project

    _project(tmp_path, "conv", conv.path, x_dot_npy=conv.x)
    project = load_project("conv", root=tmp_path)
    assert (project.input_view.kind, project.input_view.shape) == ("image", (16, 16, 1))
    assert (project.output_view.kind, project.output_view.shape) == ("image", (16, 16, 1))

    inp = keras.Input((40, 3), name="signal")
    h = layers.Conv1D(4, 3, padding="same", name="c")(inp)
    series = keras.Model(inp, layers.Conv1D(3, 3, padding="same", name="recon")(h))
    inp = keras.Input((28, 28, 1), name="img")
    h = layers.Dense(8, name="code")(layers.Flatten(name="flat")(inp))
    flat_out = keras.Model(inp, layers.Dense(784, activation="sigmoid", name="recon")(h))
    models = tmp_path / "models"
    models.mkdir()
    series.save(models / "series.keras")
    flat_out.save(models / "flat.keras")
    _project(tmp_path, "series", models / "series.keras", x_dot_npy=np.zeros((3, 40, 3), np.float32))
    _project(tmp_path, "flat", models / "flat.keras", x_dot_npy=np.zeros((3, 28, 28, 1), np.float32))
    s = load_project("series", root=tmp_path)
    assert (s.input_view.kind, s.input_view.shape, s.output_view.kind) == ("series", (40, 3), "series")
    f = load_project("flat", root=tmp_path)
    assert (f.output_view.kind, f.output_view.shape) == ("image", (28, 28, 1))  # drawn like the input
    assert "as many as the input's image" in f.output_view.why


def test_a_manifest_view_of_the_wrong_size_is_an_error_naming_both(conv, tmp_path):
    _project(tmp_path, "wrong", conv.path, x_dot_npy=conv.x,
             project_dot_toml='[output_view]\nkind = "image"\nshape = [28, 28]\n')
    r = run("info", "wrong", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 2
    assert ("project.toml: [output_view]: shape = [28, 28] (784 values) does not match the model's output 'recon' "
            "(16, 16, 1) (256 values)") in r.stderr


# ---- doctor, and data on another scale than the model's ---------------------------------------------------------


def _pixels_model(rescaling: bool):
    from keras import layers

    inp = keras.Input((8, 8, 1), name="pixels")
    h = layers.Rescaling(1 / 255.0, name="rescale")(inp) if rescaling else inp
    h = layers.Dense(4, activation="relu", name="code")(layers.Flatten(name="flat")(h))
    out = layers.Reshape((8, 8, 1), name="image")(layers.Dense(64, activation="sigmoid", name="dec")(h))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def pixels(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pixels")
    keras.utils.set_random_seed(0)
    _pixels_model(False).save(folder / "plain.keras")
    _pixels_model(True).save(folder / "rescaling.keras")
    x = np.random.default_rng(0).integers(0, 256, size=(40, 8, 8, 1)).astype(np.uint8)
    return SimpleNamespace(folder=folder, x=x)


def test_doctor_warns_of_0_255_data_into_a_model_without_rescaling_and_input_scale_fixes_it(pixels, tmp_path):
    _project(tmp_path, "raw", pixels.folder / "plain.keras", x_dot_npy=pixels.x)
    r = run("doctor", "raw", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("WARN  inputs  x.npy holds values 0..255, and the model has no Rescaling or Normalization layer at its "
            "input: if it was trained on 0..1 inputs, add input_scale = 255 to project.toml") in r.stdout
    assert ("info  layer   no default_layer in project.toml: 'code' is used (the valid cut with the fewest "
            "units)") in r.stdout
    assert "0 error(s), 1 warning(s)" in r.stdout

    _project(tmp_path, "scaled", pixels.folder / "plain.keras", x_dot_npy=pixels.x,
             project_dot_toml='input_scale = 255\ndefault_layer = "code"\n')
    r = run("doctor", "scaled", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0 and "WARN" not in r.stdout, r.stdout
    assert "info  inputs  input_scale = 255: inputs are divided by it before the model" in r.stdout
    r = run("propagate", "scaled", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    from engine.data.project import load_project

    model = load_project("scaled", root=tmp_path).model()
    encoder = keras.Model(model.inputs[0], model.get_layer("code").output)
    z = np.load(next((tmp_path / "cache" / "activations").rglob("*.npy")))
    np.testing.assert_allclose(z, np.asarray(encoder(pixels.x.astype("float32") / 255.0)), rtol=1e-5, atol=1e-6)


def test_doctor_is_quiet_about_a_model_that_rescales_its_own_inputs(pixels, tmp_path):
    _project(tmp_path, "own", pixels.folder / "rescaling.keras", x_dot_npy=pixels.x,
             project_dot_toml='default_layer = "code"\n')
    r = run("doctor", "own", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0 and "WARN" not in r.stdout, r.stdout
    assert "ok    run     32 samples through the model, cut at 'code'" in r.stdout


def test_doctor_fails_in_one_line_per_problem(pixels, tmp_path):
    _project(tmp_path, "nodata", pixels.folder / "plain.keras")
    r = run("doctor", "nodata", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 2
    assert "FAIL  inputs  " in r.stdout and "no inputs file in the project folder" in r.stdout
    _project(tmp_path, "misfit", pixels.folder / "plain.keras", x_dot_npy=np.zeros((4, 65), np.float32))
    r = run("doctor", "misfit", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    assert ("FAIL  inputs  x.npy: samples of shape (65,) (65 values) do not fit the model's input (8, 8, 1) (64 "
            "values)") in r.stdout


@pytest.mark.parametrize("value", ["0", "-3", '"255"', "true"])
def test_a_bad_input_scale_is_named(pixels, tmp_path, value):
    _project(tmp_path, "bad", pixels.folder / "plain.keras", x_dot_npy=pixels.x,
             project_dot_toml=f"input_scale = {value}\n")
    r = run("info", "bad", root=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 2
    assert "project.toml: input_scale" in r.stderr
