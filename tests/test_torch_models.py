"""PyTorch models through the model interface: real ``torch.export`` programs, state dicts with the project's
``build_model()``, pickled modules (refused without trust), cut at every module boundary and checked exact against
the eager module; residual and U-Net cuts refused naming the crossing tensor; gradients (activation maximization),
suffix training and a saved version; bad files give one line and exit 2 from the CLI."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_models as tm  # noqa: E402

from engine.errors import CutError, ModelError  # noqa: E402
from engine.model import (  # noqa: E402
    ModelObjects,
    channel_axis,
    features,
    framework_for,
    framework_of,
    input_specs,
    list_layers,
    load_model,
    output_specs,
    split,
)


def _eager(module, x):
    with torch.no_grad():
        out = module(torch.as_tensor(x))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every test model kind exported to a ``.pt2``, with its eager module."""
    folder = tmp_path_factory.mktemp("torch")
    out = {}
    for name in tm.BUILDERS:
        module, example = tm.build(name)
        out[name] = (module, example, tm.export(module, example, folder / f"{name}.pt2"))
    return out


# Layers each model must refuse, with the tensor named as crossing the cut.
REFUSED = {
    "residual": {"block1.conv1": "'relu' to 'block1'", "block2.bn1": "'block1' to 'block2'"},
    "unet": {"pool": "'relu' to 'cat'", "mid": "'relu' to 'cat'", "up": "'relu' to 'cat'"},
    "two_heads": {"classes": "output 'recon' does not depend", "recon": "output 'softmax' does not depend"},
    "recurrent_skip": {"gru": "'select_1' to 'add'"},
}
# Layers each model must offer as cuts.
VALID = {
    "sequential": {"x", "features.0", "features", "flatten", "fc", "drop", "out", "softmax"},
    "residual": {"stem", "block1", "block2", "reshape", "head"},
    "unet": {"down", "relu", "cat", "fuse", "sigmoid"},
    "two_heads": {"trunk", "bottleneck"},
    "recurrent": {"lstm", "fc", "softmax"},
    "recurrent_skip": {"embed", "relu", "add", "fc", "softmax"},
    "series": {"conv1", "conv2", "pool", "flatten", "fc"},
}


@pytest.mark.parametrize("name", sorted(tm.BUILDERS))
def test_every_valid_cut_is_exact_and_the_refusals_name_the_crossing_tensor(exported, name):
    module, example, path = exported[name]
    model = load_model(path)
    assert framework_of(model).name == "pytorch" and framework_for(path).name == "pytorch"
    layers = list_layers(model)
    valid = {layer.name for layer in layers if layer.valid_cut}
    assert VALID[name] <= valid
    x = torch.rand((9, *example.shape[1:])).numpy()  # another batch size than the export's example
    expected = _eager(module, x)
    for layer in layers:
        if not layer.valid_cut:
            continue
        s = split(model, layer.name)
        z = s.encode(x)
        assert z.shape == (9, *s.latent_shape) == (9, *layer.output_shape[1:])
        heads = s.decode_heads(z)
        assert len(heads) == len(expected)
        for got, want in zip(heads, expected):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{name} cut at {layer.name}")
    by_name = {layer.name: layer for layer in layers}
    for layer, crossing in REFUSED.get(name, {}).items():
        assert not by_name[layer].valid_cut and crossing in by_name[layer].reason
        with pytest.raises(CutError, match=f"cannot cut model '{name}.pt2' at '{layer}'.*{crossing}.*such as"):
            split(model, layer)


def test_shapes_names_and_activations_of_inputs_and_outputs(exported):
    model = load_model(exported["two_heads"][2])
    assert input_specs(model) == [("x", (6,), "float32")]
    assert output_specs(model) == [("softmax", (4,), "softmax"), ("recon", (6,), "linear")]
    s = split(model, "bottleneck")
    assert s.output_names == ("softmax", "recon") and s.output_shapes == ((4,), (6,))
    assert output_specs(load_model(exported["unet"][2]))[0][2] == "sigmoid"
    # channels of a convolution are its first per-sample axis; a Linear's are last
    seq = load_model(exported["sequential"][2])
    assert channel_axis(seq, "features.0") == 0 and channel_axis(seq, "fc") == -1
    assert channel_axis(load_model(exported["series"][2]), "conv2") == 0
    with pytest.raises(CutError, match="no layer 'featurs'.*layers are|did you mean"):
        split(seq, "featurs")


def test_a_program_exported_for_a_fixed_batch_runs_any_batch_in_chunks(tmp_path):
    module, example = tm.build("residual")
    path = tm.export(module, example, tmp_path / "fixed.pt2", dynamic=False)  # batch 5, baked into the reshape
    model = load_model(path)
    for n in (1, 5, 7, 12):
        x = torch.rand((n, *example.shape[1:])).numpy()
        s = split(model, "block1")
        np.testing.assert_allclose(s.decode(s.encode(x)), _eager(module, x)[0], rtol=1e-5, atol=1e-6)


def test_a_state_dict_loads_into_the_hooks_module_and_is_traced_on_an_example(tmp_path):
    module, example = tm.build("residual", seed=3)
    path = tmp_path / "weights.pt"
    torch.save(module.state_dict(), path)
    objects = ModelObjects(build_model=tm.Residual, example_input=lambda: example.numpy(), origin="hooks.py")
    model = load_model(path, objects=objects)
    assert model.source == "state_dict"
    x = torch.rand((4, *example.shape[1:])).numpy()
    s = split(model, "block1")
    np.testing.assert_allclose(s.decode(s.encode(x)), _eager(module, x)[0], rtol=1e-5, atol=1e-6)
    assert not {layer.name: layer for layer in list_layers(model)}["block1.conv1"].valid_cut

    with pytest.raises(ModelError, match=r"weights\.pt: holds a state dict .*define build_model\(\) in the project's "
                                         r"hooks\.py"):
        load_model(path)
    wrong = ModelObjects(build_model=tm.SequentialCNN, example_input=lambda: example.numpy())
    with pytest.raises(ModelError, match=r"weights\.pt: the weights do not fit the module build_model\(\) returns"):
        load_model(path, objects=wrong)


def test_a_pickled_module_needs_trust_and_loads_with_it(tmp_path):
    module, example = tm.build("sequential")
    path = tmp_path / "whole.pt"
    torch.save(module, path)
    with pytest.raises(ModelError, match=r"whole\.pt: holds a whole pickled object .*runs arbitrary code.*"
                                         r"trust_model = true"):
        load_model(path)
    model = load_model(path, trust=True, objects=ModelObjects(example_input=lambda: example.numpy()))
    assert model.source == "pickle"
    x = example.numpy()
    s = split(model, "fc")
    np.testing.assert_allclose(s.decode(s.encode(x)), _eager(module, x)[0], rtol=1e-5, atol=1e-6)


def test_bad_files_give_one_line(tmp_path, exported):
    good = exported["sequential"][2].read_bytes()
    cases = {
        "truncated.pt2": (good[: len(good) // 3], "not a complete PyTorch archive"),
        "text.pt2": (b"hello, not a model", "not a complete PyTorch archive"),
        "garbage.pth": (b"\x80\x05garbage" * 10, "not a readable PyTorch file"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ModelError, match=message) as info:
            load_model(tmp_path / name)
        assert "\n" not in str(info.value) and name in str(info.value)
    scripted = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 3)), scripted)
    with pytest.raises(ModelError, match="TorchScript archive.*torch.export"):
        load_model(scripted)
    with pytest.raises(ModelError, match=r"no such model file"):
        load_model(tmp_path / "missing.pt2")


def _project(tmp_path, module, example, x, *, name="tp", hooks=None, model_file="model.pt2"):
    folder = tmp_path / name
    folder.mkdir()
    if model_file.endswith(".pt2"):
        tm.export(module, example, folder / model_file)
    else:
        torch.save(module.state_dict(), folder / model_file)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", np.arange(len(x)) % 3)
    if hooks is not None:
        (folder / "hooks.py").write_text(hooks)
    return folder


def test_cli_exits_2_with_one_line_for_bad_torch_files_and_modifies_nothing(tmp_path, exported):
    module, example, path = exported["sequential"]
    folder = _project(tmp_path, module, example, torch.rand((6, 1, 14, 14)).numpy(), model_file="model.pth")
    (folder / "hooks.py").write_text("x = 1\n")  # defines no build_model
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    run = subprocess.run([sys.executable, "-m", "engine.cli", "info", "tp"], capture_output=True, text=True,
                         env={"LATENT_INSPECTOR_PROJECTS": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert run.returncode == 2, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "model.pth: holds a state dict" in lines[0] and "build_model()" in lines[0]
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    assert after == before


def test_a_project_with_build_model_traces_on_its_own_data(tmp_path):
    from engine.data.project import load_project

    module, example = tm.build("series", seed=1)
    x = torch.rand((10, 3, 16)).numpy()
    here = str(Path(tm.__file__).parent)
    hooks = (f"import sys\nsys.path.insert(0, {here!r})\nfrom torch_models import Series\n\n"
             "def build_model():\n    return Series()\n")
    _project(tmp_path, module, example, x, hooks=hooks, model_file="weights.pth")
    project = load_project("tp", tmp_path)
    model = project.model()
    assert model.source == "state_dict"
    s = split(model, "conv2")
    np.testing.assert_allclose(s.decode(s.encode(x)), _eager(module, x)[0], rtol=1e-5, atol=1e-6)


def test_activation_maximization_climbs_a_torch_units_gradient(exported):
    from engine.explore import featurevis as fv

    module, example, path = exported["sequential"]
    model = load_model(path)
    # a convolution's channel, addressed channels-last like every unit
    assert fv.unit_shape(model, "features.0") == (14, 14, 4)
    space = fv.InputSpace.from_data(torch.rand((32, 1, 14, 14)).numpy())
    for objective in (fv.Objective.unit("features.0", 2), fv.Objective.unit("fc", 3),
                      fv.Objective.unit("features.0", 1, (3, 4)), fv.Objective.deepdream("features")):
        m = fv.Maximizer(model, objective)
        start = fv.noise_start(space, seed=0)
        result = m.run(start, space, steps=30, lr=0.05, regularizers=fv.Regularizers(l2=0.01, tv=0.01, jitter=1))
        assert result.activation > result.start_activation + 1e-3, objective
        assert np.all(result.input >= space.low - 1e-6) and np.all(result.input <= space.high + 1e-6)
    # the objective's value agrees with the layer's own activations, channel axis and all
    x = torch.rand((3, 1, 14, 14)).numpy()
    (a,) = features(model, ("features.0",))(x)
    got = fv.Maximizer(model, fv.Objective.unit("features.0", 2, (5, 6))).value(x)
    np.testing.assert_allclose(got, a[:, 2, 5, 6], rtol=1e-6)


def test_training_the_suffix_and_saving_a_version_keeps_the_prefix(tmp_path, exported):
    module, example, path = exported["sequential"]
    framework = framework_for(path)
    model = load_model(path)  # a private copy
    s = split(model, "fc")
    x = torch.rand((40, 1, 14, 14)).numpy()
    z = s.encode(x)
    y = s.decode(z).argmin(axis=1)  # the least likely class: learning it is visible
    before = s.decode(z)[np.arange(40), y].mean()
    history = framework.train_suffix(s, z, y, epochs=5, learning_rate=0.05, batch_size=8, freeze_batchnorm=True)
    assert len(history) == 5 and history[-1] < history[0]
    assert s.decode(z)[np.arange(40), y].mean() > before + 0.05
    np.testing.assert_allclose(s.encode(x), z, rtol=1e-6, atol=1e-6)  # the prefix did not move
    framework.save(model, tmp_path / "tuned.pt2")
    tuned = split(load_model(tmp_path / "tuned.pt2"), "fc")
    np.testing.assert_allclose(tuned.decode(z), s.decode(z), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split(load_model(path), "fc").decode(z).argmin(axis=1), y)  # the original unchanged
    assert zipfile.is_zipfile(tmp_path / "tuned.pt2")


# Prepended to a script: TensorFlow cannot be found, as on a machine without it (the import system's path finder
# answers None for it; a None in sys.modules would not do, Keras takes that for TensorFlow imported).
NO_TENSORFLOW = """import importlib.machinery as _m, sys as _sys
class _NoTensorFlow(_m.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if name.split(".")[0] == "tensorflow" else super().find_spec(name, path, target)
_sys.meta_path[:] = [_NoTensorFlow if f is _m.PathFinder else f for f in _sys.meta_path]
"""


def test_the_bundled_keras_model_runs_on_keras_pytorch_backend(tmp_path):
    """Where only PyTorch is installed (the lent GPU machines), Keras 3 runs the bundled Keras models on its PyTorch
    backend: the same activations and decodes as on TensorFlow, with TensorFlow not importable at all, and the MLP
    inverse map trains there too (Keras' PyTorch trainer takes one step per call)."""
    from engine.data.project import load_project

    project = load_project("mnist")
    x = np.asarray(project.inputs()[:64])
    s = split(project.model(), "bottleneck")
    z = s.encode(x)
    np.save(tmp_path / "x.npy", x)
    script = (NO_TENSORFLOW + "import sys, numpy as np\n"
              "from engine.data.project import load_project\nfrom engine.model import split\n"
              "from engine.reduce import make_inverse\n"
              "import keras\nassert keras.backend.backend() == 'torch'\n"
              "p = load_project('mnist'); s = split(p.model(), 'bottleneck')\n"
              f"x = np.load({str(tmp_path / 'x.npy')!r}); z = s.encode(x)\n"
              f"np.save({str(tmp_path / 'z.npy')!r}, z); np.save({str(tmp_path / 'y.npy')!r}, s.decode(z))\n"
              "e = z.reshape(len(z), -1)[:, :2].astype('float32')\n"
              "inv = make_inverse('mlp', random_state=0, max_epochs=3, epoch_samples=500)\n"
              "inv.fit(e, z.reshape(len(z), -1))\n"
              "assert inv.transform(e).shape == (len(z), z[0].size)\n"
              "assert 'tensorflow' not in [m.split('.')[0] for m, v in sys.modules.items() if v is not None]\n")
    env = {"KERAS_BACKEND": "torch", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parent.parent),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), z, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), s.decode(z), rtol=1e-4, atol=1e-4)


def test_the_bundled_torch_project_optimizes_units_with_its_data_in_another_layout():
    """The data's samples are (28, 28, 1), the model's (1, 28, 28): bounds, start and spatial axes follow the
    model's layout (jitter and blur along rows and columns, not along the channel)."""
    from engine.data.project import load_project
    from engine.explore import featurevis as fv

    project = load_project("mnist_torch")
    for objective in (fv.Objective.unit("embedding", 0), fv.Objective.unit("block1", 3)):
        result = fv.maximize(project, objective, steps=20, seed=0,
                             regularizers=fv.Regularizers(tv=0.5, jitter=2, blur_every=5))
        assert result.input.shape == (1, 28, 28) and result.spatial_axes == (1, 2)
        assert result.activation > result.start_activation
        assert result.input.min() >= 0 and result.input.max() <= 1 + 1e-6  # the data's range (after input_scale)


def test_finetuning_a_torch_project_saves_a_pt2_version_and_onnx_is_refused(tmp_path):
    import re
    import shutil

    from engine.data.generated import GeneratedDataset, Record
    from engine.data.project import load_project
    from engine.model.finetune import decode_with, finetune_suffix, model_versions

    repo = Path(__file__).resolve().parent.parent
    for name in ("mnist_torch", "mnist_onnx"):
        shutil.copytree(repo / "projects" / name, tmp_path / name, ignore=shutil.ignore_patterns("build"))
    project = load_project("mnist_torch", tmp_path)
    s = split(project.model(), "embedding")
    x = project.preprocess()(np.asarray(project.inputs()[:40]))
    z = s.encode(x)
    least = np.argsort(s.decode(z), axis=1)[:, -2]  # the runner-up class: a correction the suffix can learn
    ds = GeneratedDataset(project, "corrections")
    for zi, c in zip(z, least):
        ds.save(Record(project=project.name, model_hash=project.model_hash(), layer="embedding", method="pca",
                       params={}, inverse="exact", xy=(0.0, 0.0), activation=zi, output=np.full(10, 0.1, np.float32),
                       user_label=str(c)))
    original = hashlib.sha256(project.model_path.read_bytes()).hexdigest()
    result = finetune_suffix(project, ds, epochs=10, learning_rate=0.02, batch_size=8)
    assert re.fullmatch(r"classifier-\d{8}T\d{6}(-\d+)?\.pt2", result.path.name)
    assert result.loss_after < result.loss_before and result.accuracy_after > result.accuracy_before
    assert hashlib.sha256(project.model_path.read_bytes()).hexdigest() == original
    assert [v.name for v in model_versions(project)] == ["classifier.pt2", result.path.name]
    tuned = split(load_model(result.path), "embedding")
    np.testing.assert_allclose(tuned.encode(x), z, rtol=1e-5, atol=1e-5)  # the prefix is untouched
    np.testing.assert_allclose(decode_with(project, result.path, "embedding", z), tuned.decode(z), rtol=1e-6)
    assert tuned.decode(z)[np.arange(40), least].mean() > s.decode(z)[np.arange(40), least].mean() + 0.05

    onnx_project = load_project("mnist_onnx", tmp_path)
    layer = onnx_project.default_layer
    ods = GeneratedDataset(onnx_project, "corrections")
    ods.save(Record(project=onnx_project.name, model_hash=onnx_project.model_hash(), layer=layer, method="pca",
                    params={}, inverse="exact", xy=(0.0, 0.0), activation=z[0], output=np.full(10, 0.1, np.float32),
                    user_label="3"))
    with pytest.raises(ModelError, match=r"classifier\.onnx: ONNX files hold an inference graph without training"):
        finetune_suffix(onnx_project, ods, epochs=1)


def test_large_batches_run_in_cache_sized_chunks_with_the_same_result(exported, monkeypatch):
    import engine.model.torch as backend

    module, example, path = exported["residual"]
    model = load_model(path)
    assert backend._cache_rows(split(model, "block1").prefix) > 16  # 4 channels of 14 x 14: far more rows fit
    monkeypatch.setattr(backend, "CPU_CHUNK_BYTES", 1)  # the smallest chunk: 16 rows
    s = backend.TorchSplit(model, "block1")
    assert s._rows[id(s.prefix)] == 16
    x = torch.rand((50, *example.shape[1:])).numpy()
    np.testing.assert_allclose(s.decode(s.encode(x)), _eager(module, x)[0], rtol=1e-5, atol=1e-6)


def test_a_project_whose_framework_is_missing_names_the_extra_to_install(exported, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(ModelError, match=r"sequential\.pt2: PyTorch models need torch, which is not installed here; "
                                         r"install the extra: pip install -e '\.\[torch\]'"):
        load_model(exported["sequential"][2])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ModelError, match=r"m\.onnx: ONNX models need onnxruntime.*pip install -e '\.\[onnx\]'"):
        (exported["sequential"][2].parent / "m.onnx").write_bytes(b"x")
        load_model(exported["sequential"][2].parent / "m.onnx")
