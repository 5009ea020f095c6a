"""Splitting real Keras models, loaded from real files, at every valid layer."""

from pathlib import Path

import numpy as np
import pytest

from engine.errors import CutError, ModelError
from engine.model import list_layers, load_model, split
from engine.model.keras import Split

KINDS = ["sequential", "conv2d", "conv1d", "residual", "nested", "unet"]
KERAS2 = Path(__file__).parent / "data" / "keras2"


@pytest.mark.parametrize("ext", [".keras", ".h5"])
@pytest.mark.parametrize("kind", KINDS)
def test_split_is_exact_at_every_valid_cut(model_files, kind, ext):
    path, x, ref = model_files[kind, ext]
    model = load_model(path)
    valid = [info for info in list_layers(model) if info.valid_cut]
    assert len(valid) >= 3
    for info in valid:
        s = split(model, info.name)
        z = s.encode(x)
        assert z.dtype == np.float32
        assert z.shape == (len(x), *s.latent_shape)
        assert s.latent_shape == tuple(info.output_shape[1:])
        np.testing.assert_allclose(s.decode(z), ref, rtol=1e-5, atol=1e-5, err_msg=f"{kind}{ext} cut at {info.name}")


def test_nested_models_are_flattened(model_files):
    model = load_model(model_files["nested", ".keras"][0])
    names = [info.name for info in list_layers(model)]
    # both sub-models have a layer called "dense": they are qualified, the unique ones keep their name
    assert "encoder/dense" in names and "decoder/dense" in names
    assert "code" in names and "encoder" in names and "decoder" in names
    by_name = {i.name: i for i in list_layers(model)}
    assert by_name["encoder"].output_shape == (None, 3) and by_name["encoder"].valid_cut


@pytest.mark.parametrize(
    ("kind", "layer", "crossing"),
    [("residual", "res_a", "stem"), ("residual", "res_b", "stem"), ("unet", "down2", "down1"),
     ("unet", "up", "down1"), ("unet", "pool", "down1")],
)
def test_cut_inside_a_skip_is_rejected_naming_the_crossing_tensor(model_files, kind, layer, crossing):
    model = load_model(model_files[kind, ".keras"][0])
    info = {i.name: i for i in list_layers(model)}[layer]
    assert not info.valid_cut
    assert repr(crossing) in info.reason
    with pytest.raises(CutError, match=f"'{crossing}'"):
        Split(model, layer)


def test_closing_add_is_a_valid_cut(model_files):
    model = load_model(model_files["residual", ".keras"][0])
    info = {i.name: i for i in list_layers(model)}
    assert info["res_add"].valid_cut and info["stem"].valid_cut


def test_unknown_layer_names_the_layer_and_suggests(model_files):
    model = load_model(model_files["conv2d", ".keras"][0])
    with pytest.raises(CutError, match="no layer 'bottle'.*'bottleneck'"):
        Split(model, "bottle")


def test_shared_layer_is_not_a_cut():
    import keras
    from keras import layers

    shared = layers.Dense(4, name="shared")
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    model = keras.Model([a, b], layers.Add(name="sum")([shared(a), shared(b)]))
    info = {i.name: i for i in list_layers(model)}
    assert not info["shared"].valid_cut and "shared" in info["shared"].reason
    assert not info["a"].valid_cut  # the other input also feeds the output


@pytest.mark.parametrize("name", ["sequential_k2.h5", "residual_k2.h5"])
def test_keras2_h5_files_load_and_split_exactly(name):
    """Files written by Keras 2 (tf_keras 2.21, see tests/data/keras2/make_models.py), compiled with string losses."""
    model = load_model(KERAS2 / name)
    stem = "seq" if name.startswith("sequential") else "res"
    x, ref = np.load(KERAS2 / f"inputs_{stem}.npy"), np.load(KERAS2 / f"outputs_{stem}.npy")
    np.testing.assert_allclose(np.asarray(model(x, training=False)), ref, rtol=1e-5, atol=1e-6)
    layers = list_layers(model)
    for info in layers:
        if info.valid_cut:
            s = split(model, info.name)
            np.testing.assert_allclose(s.decode(s.encode(x)), ref, rtol=1e-5, atol=1e-6)
    if stem == "res":
        assert not {i.name: i for i in layers}["d2"].valid_cut


K2_SAMPLING = """
import keras

class Sampling(keras.layers.Layer):
    def call(self, inputs):
        mean, log_var = inputs
        return mean + 0.0 * keras.ops.exp(0.5 * log_var)
"""


@pytest.mark.parametrize("name, objects, trust", [
    ("lstm_ae", None, False),  # LSTM, RepeatVector, TimeDistributed
    ("nested", None, False),  # Sequential models inside a Functional one
    ("lambda", None, True),  # a Lambda's Keras 2 bytecode, trusted
    ("lambda", {"lambdas": {"double": lambda t: t * 2.0}}, False),  # ... or replaced, without trust
    ("vae", {"custom_objects": "Sampling"}, False),  # a custom layer class the project supplies
    ("two_heads", None, False),  # two softmax outputs
    ("bilstm", None, False),  # Bidirectional(LSTM): Keras 2's time_major inside a wrapper
    ("depthwise", None, False),  # MobileNet's depthwise-separable block: Keras 2's groups=1
])
def test_more_keras2_kinds_split_exactly_on_every_head(name, objects, trust):
    """Keras 2 files of the kinds users bring (tests/data/keras2/make_models.py): every valid cut decodes every output
    as Keras 2 computed it."""
    from engine.model.keras_files import ModelObjects

    if objects and objects.get("custom_objects") == "Sampling":
        namespace = {}
        exec(K2_SAMPLING, namespace)
        objects = {"custom_objects": {"Sampling": namespace["Sampling"]}}
    model = load_model(KERAS2 / f"{name}_k2.h5", trust=trust, objects=ModelObjects(**objects) if objects else None)
    x = np.load(KERAS2 / f"inputs_{name}.npy")
    with np.load(KERAS2 / f"outputs_{name}.npz") as f:
        refs = [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]
    valid = [info for info in list_layers(model) if info.valid_cut]
    assert len(valid) >= 2
    for info in valid:
        s = split(model, info.name)
        heads = s.decode_heads(s.encode(x))
        assert len(heads) == len(refs)
        for got, ref in zip(heads, refs, strict=True):
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=f"{name} cut at {info.name}")


def test_single_sample_decode_matches_batch(model_files):
    path, x, ref = model_files["conv2d", ".keras"]
    s = split(load_model(path), "bottleneck")
    z = s.encode(x)
    one = s.decode(z[2:3])
    np.testing.assert_allclose(one[0], ref[2], rtol=1e-5, atol=1e-5)
    flat = s.decode(z.reshape(len(z), -1))  # flat activations are reshaped to the layer's shape
    np.testing.assert_allclose(flat, ref, rtol=1e-5, atol=1e-5)


def test_decode_rejects_wrong_activation_shape(model_files):
    s = split(load_model(model_files["conv2d", ".keras"][0]), "bottleneck")
    with pytest.raises(ModelError, match=r"'bottleneck' has activations of shape \(5,\)"):
        s.decode(np.zeros((1, 7), np.float32))


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_lambda_layer_refused_unless_trusted(tmp_path, ext):
    import keras
    from keras import layers

    inp = keras.Input((3,))
    model = keras.Model(inp, layers.Lambda(lambda t: t * 2.0, name="double")(inp))
    path = tmp_path / f"lambda{ext}"
    model.save(path)
    with pytest.raises(ModelError, match="trust_model = true"):
        load_model(path)
    trusted = load_model(path, trust=True)
    np.testing.assert_allclose(np.asarray(trusted(np.ones((1, 3), np.float32))), 2.0)


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "cannot load"), (b"not a model at all", "cannot load"), (b"\x89HDF\r\n\x1a\n" + b"\0" * 100, "cannot load")],
)
def test_corrupt_model_files(tmp_path, content, match):
    path = tmp_path / "broken.h5"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=match):
        load_model(path)


def test_truncated_keras_file(model_files, tmp_path):
    src = model_files["conv2d", ".keras"][0].read_bytes()
    path = tmp_path / "trunc.keras"
    path.write_bytes(src[: len(src) // 2])
    with pytest.raises(ModelError, match="trunc.keras"):
        load_model(path)
