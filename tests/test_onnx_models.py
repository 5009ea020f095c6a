"""ONNX models through the model interface: which tensors are valid cuts (and why the others are not), exact splits
at every valid cut against onnxruntime on the whole model, several outputs, ``If`` sub-graphs, recurrent and 1-D
convolutional exports from PyTorch, models exported with a fixed batch size, reading any layer, and bad files."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx_models
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from engine.errors import CutError, ModelError, UnitError  # noqa: E402
from engine.model.onnx import FRAMEWORK  # noqa: E402

HELPER_MODELS = ("mlp", "residual", "two_outputs", "with_if")
TORCH_MODELS = ("cnn", "residual_cnn", "unet", "lstm", "series")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def built(folder):
    """``built(name) -> path``: each model written once per module (the PyTorch exports on first use)."""
    paths = {}

    def get(name):
        if name not in paths:
            if hasattr(onnx_models, name):
                paths[name] = getattr(onnx_models, name)(folder)
            else:
                pytest.importorskip("torch")
                logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" notes
                module, x = onnx_models.torch_modules()[name.removesuffix("_batch1")]
                paths[name] = onnx_models.export(module, x[:1] if name.endswith("_batch1") else x,
                                                 folder / f"{name}.onnx", dynamic_batch=not name.endswith("_batch1"))
        return paths[name]

    return get


def sample(model, n: int = 7, seed: int = 0) -> np.ndarray:
    (_, shape, _), = FRAMEWORK.input_specs(model)
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def whole(path, x, *, one_by_one: bool = False) -> list[np.ndarray]:
    """The model's outputs by onnxruntime on the whole file, for the batch at once or one sample at a time."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    if not one_by_one:
        return session.run(None, {name: x})
    runs = [session.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
    return [np.concatenate(outs) for outs in zip(*runs)]


def cuts(model) -> list[str]:
    return [info.name for info in FRAMEWORK.list_layers(model) if info.valid_cut]


def reasons(model) -> dict[str, str]:
    return {info.name: info.reason for info in FRAMEWORK.list_layers(model) if not info.valid_cut}


# -- exact at every valid cut -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HELPER_MODELS + TORCH_MODELS)
def test_every_valid_cut_reproduces_the_model(built, name):
    path = built(name)
    model = FRAMEWORK.load(path)
    x = sample(model)
    want = whole(path, x)
    valid = cuts(model)
    assert len(valid) >= 3, FRAMEWORK.list_layers(model)
    for layer in valid:
        split = FRAMEWORK.split(model, layer)
        z = split.encode(x)
        assert z.dtype == np.float32 and z.shape == (len(x), *split.latent_shape), layer
        heads = split.decode_heads(z)
        assert len(heads) == len(want), layer
        for got, ref in zip(heads, want):
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=f"{name} cut at {layer}")
        if len(want) == 1:  # flat activations are reshaped to the cut's shape
            np.testing.assert_allclose(split.decode(z.reshape(len(z), -1)), want[0], rtol=1e-5, atol=1e-5)


def test_cut_at_the_input_and_at_the_output_are_identities(built):
    model = FRAMEWORK.load(built("mlp"))
    x = sample(model)
    np.testing.assert_array_equal(FRAMEWORK.split(model, "x").encode(x), x)
    last = FRAMEWORK.split(model, "dec_sigmoid")
    z = last.encode(x)
    np.testing.assert_array_equal(last.decode(z), z)


# -- which cuts are valid, and why not --------------------------------------------------------------------------


def test_helper_graphs_cut_table(built):
    mlp, residual, two, with_if = (FRAMEWORK.load(built(n)) for n in HELPER_MODELS)
    assert cuts(mlp) == ["x", "enc_matmul", "enc", "enc_relu", "bottleneck", "dec", "dec_sigmoid"]
    assert cuts(residual) == ["x", "stem", "stem_relu", "add", "post", "head", "head_softmax"]
    skip = "a skip connection from 'stem_relu' to 'add' crosses it"
    assert reasons(residual) == {"branch1": skip, "branch1_relu": skip, "branch2": skip}
    assert cuts(two) == ["x", "trunk", "trunk_relu"]
    assert reasons(two) == {"class_logits": "the model output 'recon_sigmoid' does not depend on it",
                            "classes": "the model output 'recon_sigmoid' does not depend on it",
                            "recon": "the model output 'classes' does not depend on it",
                            "recon_sigmoid": "the model output 'classes' does not depend on it"}
    # the If branches read 'relu' by name: it crosses every cut between it and the If
    assert cuts(with_if) == ["x", "relu", "if", "sig"]
    assert reasons(with_if) == {
        "sum": "a skip connection from 'relu' to 'if' crosses it",
        "greater": "a skip connection from 'relu' to 'if' crosses it",
        "then_mul": "it is inside the 'then_branch' sub-graph of node 'if'; a cut must be a tensor of the main graph",
        "else_add": "it is inside the 'else_branch' sub-graph of node 'if'; a cut must be a tensor of the main graph",
    }
    shapes = {info.name: info.output_shape for info in FRAMEWORK.list_layers(mlp)}
    assert shapes["x"] == (None, 6) and shapes["bottleneck"] == (None, 2)


def test_refused_cut_names_the_crossing_tensor_and_nearby_cuts(built):
    model = FRAMEWORK.load(built("residual"))
    with pytest.raises(CutError) as err:
        FRAMEWORK.split(model, "branch1_relu")
    assert str(err.value) == (
        "cannot cut model 'residual.onnx' at 'branch1_relu': a skip connection from 'stem_relu' to 'add' crosses it; "
        "cut at a layer that every path from the inputs to the outputs passes through, such as 'stem_relu' or 'add'")
    with pytest.raises(CutError, match=r"has no layer 'brnch1'; did you mean 'branch1'"):
        FRAMEWORK.split(model, "brnch1")
    inner = FRAMEWORK.load(built("with_if"))
    with pytest.raises(CutError, match=r"at 'then_mul': it is inside the 'then_branch' sub-graph of node 'if'.*"
                                       r"such as 'relu' or 'if'"):
        FRAMEWORK.split(inner, "then_mul")


def test_exported_residual_and_unet_refuse_cuts_inside_the_skip(built):
    for name, closing in (("residual_cnn", "Add"), ("unet", "Concat")):
        model = FRAMEWORK.load(built(name))
        layers = FRAMEWORK.list_layers(model)
        close = next(info for info in layers if info.class_name == closing)
        assert close.valid_cut, close
        inside = [info for info in layers if not info.valid_cut]
        # the ReLU after the first convolution feeds both the block and the layer that closes it
        source = next(info.name for info in layers if info.class_name == "Relu")
        assert inside and {info.reason for info in inside} == {
            f"a skip connection from {source!r} to {close.name!r} crosses it"}, inside
        assert [info.class_name for info in inside[:1]] == ["Conv"]
        with pytest.raises(CutError, match=f"such as {source!r} or {close.name!r}"):
            FRAMEWORK.split(model, inside[-1].name)


def test_exported_lstm_cuts_after_the_recurrence(built):
    model = FRAMEWORK.load(built("lstm"))
    layers = FRAMEWORK.list_layers(model)
    lstm = next(info for info in layers if info.class_name == "LSTM")
    assert not lstm.valid_cut and "its first axis is not the batch axis" in lstm.reason
    valid = [info for info in layers if info.valid_cut]
    # the input, the whole sequence of hidden states (batch first again), its last step, the head
    assert [info.output_shape for info in valid] == [(None, 5, 3), (None, 5, 6), (None, 6), (None, 2)]
    assert all(layers.index(info) > layers.index(lstm) for info in valid[1:])
    with pytest.raises(CutError, match="first axis is not the batch axis"):
        FRAMEWORK.split(model, lstm.name)
    assert FRAMEWORK.output_specs(model)[0][1:] == ((2,), "linear")


@pytest.mark.parametrize("source", ["x", "relu"])
def test_flatten_by_the_batch_size(folder, source):
    """``x.view(x.size(0), -1)`` as PyTorch's older exporter writes it: ``Reshape(relu, [Shape(source)[0], -1])``.
    Read from the input, the size crosses the cut at ``relu``; either way the flat tensor has a fixed size per sample
    (which shape inference leaves free) and is a valid cut."""
    from onnx import helper

    path = onnx_models._save(
        [helper.make_node("Relu", ["x"], ["relu"], name="relu"),
         helper.make_node("Shape", [source], ["shape"], name="shape", end=1),
         helper.make_node("Concat", ["shape", "minus_one"], ["target"], name="target", axis=0),
         helper.make_node("Reshape", ["relu", "target"], ["flat"], name="flat"),
         helper.make_node("Gemm", ["flat", "w", "b"], ["head"], name="head")],
        [helper.make_tensor_value_info("x", onnx_models.FLOAT, ["n", 2, 3])],
        [helper.make_tensor_value_info("head", onnx_models.FLOAT, ["n", 2])],
        [helper.make_tensor("minus_one", 7, [1], [-1]), onnx_models._weight("w", 6, 2), onnx_models._weight("b", 2)],
        folder / f"view_{source}.onnx")
    model = FRAMEWORK.load(path)
    if source == "x":
        assert cuts(model) == ["x", "flat", "head"]
        assert reasons(model)["relu"] == "a shape computation from 'target' to 'flat' crosses it"
    else:
        assert cuts(model) == ["x", "relu", "flat", "head"]
    assert FRAMEWORK.layer_shape(model, "flat") == (6,)
    x = sample(model)
    split = FRAMEWORK.split(model, "flat")
    np.testing.assert_allclose(split.decode(split.encode(x)), whole(path, x)[0], rtol=1e-5, atol=1e-5)


def test_conv1d_series_channels_and_shapes(built):
    model = FRAMEWORK.load(built("series"))
    layers = FRAMEWORK.list_layers(model)
    convs = [info for info in layers if info.class_name == "Conv"]
    assert [info.output_shape for info in convs] == [(None, 4, 16), (None, 4, 8)]
    assert {info.name: info.channel_axis for info in layers if info.class_name in ("Conv", "Relu", "Tanh")} == {
        info.name: 0 for info in layers if info.class_name in ("Conv", "Relu", "Tanh")}
    assert [info.channel_axis for info in layers if info.class_name in ("Reshape", "Flatten", "Gemm")] == [-1, -1]
    assert FRAMEWORK.channel_axis(model, convs[0].name) == 0 and FRAMEWORK.channel_axis(model, None) == -1
    assert FRAMEWORK.layer_shape(model, convs[1].name) == (4, 8)


# -- outputs ----------------------------------------------------------------------------------------------------


def test_two_outputs_decode_both_heads(built):
    path = built("two_outputs")
    model = FRAMEWORK.load(path)
    assert FRAMEWORK.output_specs(model) == [("classes", (3,), "softmax"), ("recon_sigmoid", (5,), "sigmoid")]
    split = FRAMEWORK.split(model, "trunk_relu")
    assert split.output_names == ("classes", "recon_sigmoid") and split.output_shapes == ((3,), (5,))
    x = sample(model)
    classes, recon = split.decode(split.encode(x))
    want = whole(path, x)
    np.testing.assert_allclose(classes, want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(recon, want[1], rtol=1e-5, atol=1e-6)
    with pytest.raises(UnitError, match="has 2 outputs"):
        FRAMEWORK.layer_shape(model, None)
    with pytest.raises(CutError, match="the model output 'recon_sigmoid' does not depend on it"):
        FRAMEWORK.split(model, "classes")


def test_specs_of_exported_models(built):
    cnn = FRAMEWORK.load(built("cnn"))
    (name, shape, dtype), = FRAMEWORK.input_specs(cnn)
    assert (shape, dtype) == ((1, 8, 8), "float32") and name in cuts(cnn)
    (out, out_shape, activation), = FRAMEWORK.output_specs(cnn)
    assert (out_shape, activation) == ((5,), "softmax") and out == cuts(cnn)[-1]
    assert FRAMEWORK.output_specs(FRAMEWORK.load(built("mlp")))[0][2] == "sigmoid"
    assert FRAMEWORK.output_specs(FRAMEWORK.load(built("residual_cnn")))[0][2] == "linear"


# -- batch sizes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,batch", [("mlp", 4), ("cnn_batch1", 1)])
def test_fixed_batch_model_runs_any_batch(built, folder, name, batch):
    """A model exported for batches of exactly ``batch`` runs 7 samples (chunks, the last one padded) and none."""
    path = onnx_models.mlp(folder, batch=batch) if name == "mlp" else built(name)
    model = FRAMEWORK.load(path)
    assert model.graph().fixed_batch == batch
    x = sample(model, n=7)
    # the same weights with a free batch; or one sample at a time
    want = whole(built("mlp"), x) if name == "mlp" else whole(path, x, one_by_one=True)
    for layer in cuts(model):
        split = FRAMEWORK.split(model, layer)
        z = split.encode(x)
        assert z.shape == (7, *split.latent_shape)
        np.testing.assert_allclose(split.decode(z), want[0], rtol=1e-5, atol=1e-5, err_msg=layer)
    split = FRAMEWORK.split(model, cuts(model)[1])
    assert split.encode(x[:0]).shape == (0, *split.latent_shape)


def test_concurrent_calls_share_one_split_and_session(built):
    model = FRAMEWORK.load(built("residual"))
    split = FRAMEWORK.split(model, "add")
    assert FRAMEWORK.split(model, "add") is split
    xs = [sample(model, n=5 + i, seed=i) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(split.encode, xs))
    session = split._prefix._session
    for x, z in zip(xs, got):
        np.testing.assert_array_equal(z, split.encode(x))
    assert split._prefix._session is session


# -- reading any layer --------------------------------------------------------------------------------------------


def test_features_of_layers_that_are_not_cuts(built):
    from onnx import numpy_helper

    path = built("residual")
    model = FRAMEWORK.load(path)
    weights = {t.name: numpy_helper.to_array(t) for t in model.proto.graph.initializer}
    x = sample(model)
    stem = np.maximum(x @ weights["stem.w"] + weights["stem.b"], 0)
    branch1 = stem @ weights["branch1.w"] + weights["branch1.b"]
    reader = FRAMEWORK.features(model, ("branch1", "stem_relu", None))
    got = reader(x)
    assert [g.dtype for g in got] == [np.float32] * 3
    np.testing.assert_allclose(got[0], branch1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], stem, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[2], whole(path, x)[0], rtol=1e-5, atol=1e-6)
    assert FRAMEWORK.features(model, ("branch1", "stem_relu", None)) is reader
    assert FRAMEWORK.layer_shape(model, "branch1") == (6,)
    with pytest.raises(UnitError, match="has no layer 'nope'"):
        FRAMEWORK.features(model, ("nope",))
    with pytest.raises(UnitError, match="inside the 'then_branch' sub-graph of node 'if'"):
        FRAMEWORK.features(FRAMEWORK.load(built("with_if")), ("then_mul",))


def test_gradients_and_training_are_refused_in_one_line(built):
    model = FRAMEWORK.load(built("mlp"))
    reader = FRAMEWORK.features(model, ("bottleneck",))
    with pytest.raises(ModelError) as err:
        reader.ascent((), ())
    assert str(err.value) == (
        "activation maximization needs gradients, which ONNX models do not have; use top dataset examples (which "
        "work), or load the PyTorch or Keras model the ONNX file was exported from")
    with pytest.raises(ModelError, match="inference graph without training support"):
        FRAMEWORK.train_suffix(FRAMEWORK.split(model, "bottleneck"), None, None, epochs=1, learning_rate=0.1,
                               batch_size=4, freeze_batchnorm=False)
    with pytest.raises(ModelError, match="inference graph without training support"):
        FRAMEWORK.save(model, "x.onnx")
    assert not FRAMEWORK.gradients and not FRAMEWORK.trainable


def test_several_inputs_are_refused(folder):
    from onnx import helper

    path = onnx_models._save([helper.make_node("Add", ["a", "b"], ["sum"], name="sum")],
                             [helper.make_tensor_value_info(n, onnx_models.FLOAT, ["n", 3]) for n in "ab"],
                             [helper.make_tensor_value_info("sum", onnx_models.FLOAT, ["n", 3])], [],
                             folder / "two_inputs.onnx")
    model = FRAMEWORK.load(path)
    assert cuts(model) == ["sum"]
    with pytest.raises(ModelError, match="has 2 inputs .*models with several inputs are not supported"):
        FRAMEWORK.split(model, "sum")


# -- files ----------------------------------------------------------------------------------------------------------


def test_bad_files_fail_in_one_line_naming_the_file(built, tmp_path):
    real = built("mlp").read_bytes()
    cases = {"truncated.onnx": real[:len(real) // 2], "text.onnx": b"this is not an onnx model\n" * 20,
             "empty.onnx": b""}
    for file_name, data in cases.items():
        (tmp_path / file_name).write_bytes(data)
    expected = {"truncated.onnx": "not a valid ONNX file; it does not parse as an ONNX model",
                "text.onnx": "not a valid ONNX file", "empty.onnx": "not an ONNX model; the file holds no graph"}
    for file_name, fragment in expected.items():
        with pytest.raises(ModelError) as err:
            FRAMEWORK.load(tmp_path / file_name)
        message = str(err.value)
        assert message.startswith(str(tmp_path / file_name) + ": ") and fragment in message and "\n" not in message
    with pytest.raises(ModelError, match="no such model file"):
        FRAMEWORK.load(tmp_path / "missing.onnx")
    (tmp_path / "model.txt").write_bytes(real)
    with pytest.raises(ModelError, match="expected a file ending in .onnx"):
        FRAMEWORK.load(tmp_path / "model.txt")
    with pytest.raises(ModelError, match=r"unsorted.onnx: not a valid ONNX model: .*topologically sorted") as err:
        FRAMEWORK.load(onnx_models.unsorted(tmp_path))
    assert "\n" not in str(err.value)


def test_external_data(tmp_path):
    path = onnx_models.external_data(tmp_path)
    model = FRAMEWORK.load(path)
    x = sample(model)
    np.testing.assert_allclose(FRAMEWORK.split(model, "bottleneck").decode(FRAMEWORK.split(model, "bottleneck")
                                                                          .encode(x)), whole(path, x)[0], rtol=1e-5)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(ModelError, match=r"external.onnx: cannot read the model's external data") as err:
        FRAMEWORK.load(path)
    assert "\n" not in str(err.value)


def test_layer_names_accept_tensor_names(built):
    model = FRAMEWORK.load(built("mlp"))
    assert FRAMEWORK.split(model, "enc_mm").latent_shape == FRAMEWORK.split(model, "enc_matmul").latent_shape == (5,)
    with pytest.raises(UnitError, match="has no layer 'bottle'; did you mean 'bottleneck'"):
        FRAMEWORK.layer_shape(model, "bottle")


def test_a_graph_that_asks_for_a_huge_tensor_at_run_time_is_refused_before_allocating_it(tmp_path):
    """A few hundred bytes of graph whose ``Expand`` wants 20 GB for one sample: ONNX Runtime's CPU arena, bounded by
    LATENT_INSPECTOR_ONNX_MEMORY_GB (half the machine by default), refuses it; the error names the model and the
    bound, and the process has not grown."""
    import resource

    path = onnx_models.blowup(tmp_path)
    assert path.stat().st_size < 1000
    model = FRAMEWORK.load(path)
    x = np.ones((1, 6), np.float32)
    split = FRAMEWORK.split(model, "enc")
    z = split.encode(x)  # the prefix is small
    assert z.shape == (1, 2)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelError, match=r"blowup.*needs a tensor of 20,000,000,000 bytes, more than ONNX Runtime "
                                         r"may hold for this process \([\d,]+ bytes; LATENT_INSPECTOR_ONNX_MEMORY_GB"):
        split.decode_heads(z)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 2**20  # KiB: under 1 GiB more at its peak
    # a graph within the bound runs as before
    (tmp_path / "small").mkdir()
    small = onnx_models.blowup(tmp_path / "small", width=1000)
    out = FRAMEWORK.split(FRAMEWORK.load(small), "enc").decode_heads(z)[0]
    np.testing.assert_allclose(out, z.sum(axis=1, keepdims=True), rtol=1e-5)
