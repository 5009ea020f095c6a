"""A corpus of the models users bring, each a project folder written by the tests (small, real, seconds to build).

Every kind the issue of real users' files named: Keras 2 ``.h5`` (the committed fixtures), Keras 3 ``.h5`` and
``.keras``; Sequential and Functional; nested; conv, dense and recurrent (LSTM, GRU, Conv1D, RepeatVector,
TimeDistributed, Bidirectional); BatchNorm and Dropout; residual and U-Net; VAEs whose sampling is a custom class
or a Lambda; several outputs; several inputs; custom layers registered and not; functions named by a Lambda or used
as an activation; flat data into image models and the reverse; data on the 0..255 scale.

``CORPUS`` lists ``Case(name, kind, build, expect)``: ``build(folder)`` writes the project, ``expect`` is
``"works"`` or the start of the one-line refusal every command must give. A plain module beside the tests.
"""

from __future__ import annotations

import base64
import json
import marshal
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N = 48  # samples per project


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    build: object
    expect: str = "works"
    layer: str | None = None


def _keras():
    import keras

    keras.utils.set_random_seed(0)
    return keras, keras.layers


def _write(folder: Path, model, x, *, suffix=".keras", y=None, manifest="", hooks=None):
    folder.mkdir(parents=True)
    model.save(folder / f"model{suffix}")
    np.save(folder / "x.npy", np.asarray(x))
    if y is not None:
        np.save(folder / "y.npy", np.asarray(y))
    if manifest:
        (folder / "project.toml").write_text(manifest)
    if hooks:
        (folder / "hooks.py").write_text(hooks)


def _rng():
    return np.random.default_rng(0)


def _labels(k=3):
    return np.arange(N) % k


# -- dense and convolutional -------------------------------------------------------------------------------------


def dense_ae(suffix):
    def build(folder):
        keras, L = _keras()
        model = keras.Sequential([keras.Input((20,)), L.Dense(12, activation="relu", name="enc"),
                                  L.Dense(3, name="code"), L.Dense(12, activation="relu", name="dec"),
                                  L.Dense(20, name="out")])
        _write(folder, model, _rng().normal(size=(N, 20)).astype("f4"), suffix=suffix, y=_labels(),
               manifest='default_layer = "code"\n')
    return build


def conv_ae(suffix):
    def build(folder):
        keras, L = _keras()
        inp = keras.Input((16, 16, 1), name="image")
        h = L.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv1")(inp)
        h = L.BatchNormalization(name="bn")(h)
        h = L.Flatten(name="flat")(h)
        z = L.Dense(4, name="code")(h)
        h = L.Reshape((8, 8, 2), name="unflat")(L.Dense(128, activation="relu", name="dec")(z))
        out = L.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid", name="recon")(h)
        _write(folder, keras.Model(inp, out), _rng().random((N, 16, 16, 1)).astype("f4"), suffix=suffix,
               y=_labels(), manifest='default_layer = "code"\n')
    return build


def cnn_classifier(folder):
    keras, L = _keras()
    model = keras.Sequential([keras.Input((12, 12, 1)), L.Conv2D(4, 3, activation="relu", name="c1"),
                              L.MaxPooling2D(name="pool"), L.Dropout(0.3, name="drop"), L.Flatten(name="flat"),
                              L.Dense(8, activation="relu", name="feat"), L.BatchNormalization(name="bn"),
                              L.Dense(4, activation="softmax", name="probs")])
    _write(folder, model, _rng().random((N, 12, 12, 1)).astype("f4"), y=_labels(4),
           manifest='default_layer = "feat"\nclass_names = ["a", "b", "c", "d"]\n')


def softmax_layer_classifier(folder):
    keras, L = _keras()
    inp = keras.Input((10,), name="x")
    h = L.Dense(6, activation="relu", name="feat")(inp)
    out = L.Softmax(name="softmax")(L.Dense(3, name="logits")(h))
    _write(folder, keras.Model(inp, out), _rng().normal(size=(N, 10)).astype("f4"), suffix=".h5", y=_labels())


def residual_mlp(folder):
    keras, L = _keras()
    inp = keras.Input((10,), name="x")
    h = L.Dense(8, activation="relu", name="stem")(inp)
    r = L.Dense(8, name="res_b")(L.Dense(8, activation="relu", name="res_a")(h))
    h = L.Add(name="res_add")([h, r])
    out = L.Dense(10, name="out")(L.Dense(4, name="code")(h))
    _write(folder, keras.Model(inp, out), _rng().normal(size=(N, 10)).astype("f4"),
           manifest='default_layer = "res_add"\n')


def resnet_blocks(folder):
    keras, L = _keras()
    inp = keras.Input((16, 16, 3), name="rgb")
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inp)
    for i in range(2):
        r = L.Conv2D(8, 3, padding="same", activation="relu", name=f"b{i}_c1")(h)
        r = L.BatchNormalization(name=f"b{i}_bn")(L.Conv2D(8, 3, padding="same", name=f"b{i}_c2")(r))
        h = L.Activation("relu", name=f"b{i}_out")(L.Add(name=f"b{i}_add")([h, r]))
    out = L.Dense(5, activation="softmax", name="probs")(L.GlobalAveragePooling2D(name="gap")(h))
    _write(folder, keras.Model(inp, out), _rng().random((N, 16, 16, 3)).astype("f4"), y=_labels(5),
           manifest='default_layer = "gap"\n')


def unet(folder):
    keras, L = _keras()
    inp = keras.Input((16, 16, 1), name="image")
    d1 = L.Conv2D(4, 3, padding="same", activation="relu", name="down1")(inp)
    p = L.MaxPooling2D(name="pool")(d1)
    d2 = L.Conv2D(8, 3, padding="same", activation="relu", name="down2")(p)
    u = L.UpSampling2D(name="up")(d2)
    c = L.Concatenate(name="skip")([u, d1])
    out = L.Conv2D(1, 1, activation="sigmoid", name="mask")(c)
    _write(folder, keras.Model(inp, out), _rng().random((N, 16, 16, 1)).astype("f4"),
           manifest='default_layer = "skip"\n')


def nested(suffix):
    def build(folder):
        keras, L = _keras()
        encoder = keras.Sequential([keras.Input((12,)), L.Dense(8, activation="relu", name="e1"),
                                    L.Dense(3, name="z")], name="encoder")
        decoder = keras.Sequential([keras.Input((3,)), L.Dense(8, activation="relu", name="d1"),
                                    L.Dense(12, name="d2")], name="decoder")
        inp = keras.Input((12,), name="x")
        _write(folder, keras.Model(inp, decoder(encoder(inp))), _rng().normal(size=(N, 12)).astype("f4"),
               suffix=suffix, manifest='default_layer = "encoder"\n')
    return build


# -- recurrent and series ------------------------------------------------------------------------------------------


def lstm_ae(folder):
    keras, L = _keras()
    inp = keras.Input((10, 2), name="series")
    z = L.LSTM(4, name="enc")(inp)
    h = L.LSTM(4, return_sequences=True, name="dec")(L.RepeatVector(10, name="repeat")(z))
    out = L.TimeDistributed(L.Dense(2), name="recon")(h)
    _write(folder, keras.Model(inp, out), _rng().normal(size=(N, 10, 2)).astype("f4"), y=_labels(),
           manifest='default_layer = "enc"\n')


def gru_classifier(folder):
    keras, L = _keras()
    model = keras.Sequential([keras.Input((12, 3)), L.GRU(6, name="gru"), L.Dropout(0.2, name="drop"),
                              L.Dense(4, activation="softmax", name="activity")])
    _write(folder, model, _rng().normal(size=(N, 12, 3)).astype("f4"), y=_labels(4),
           manifest='default_layer = "gru"\nclass_names = ["walk", "run", "sit", "lie"]\n')


def bilstm_classifier(folder):
    keras, L = _keras()
    inp = keras.Input((8, 3), name="series")
    h = L.Bidirectional(L.LSTM(4), name="bilstm")(inp)
    out = L.Dense(3, activation="softmax", name="probs")(L.Dense(6, activation="relu", name="feat")(h))
    _write(folder, keras.Model(inp, out), _rng().normal(size=(N, 8, 3)).astype("f4"), suffix=".h5",
           y=_labels(), manifest='default_layer = "feat"\n')


def conv1d_ae(folder):
    keras, L = _keras()
    inp = keras.Input((32, 3), name="signal")
    h = L.MaxPooling1D(2, name="pool")(L.Conv1D(6, 5, padding="same", activation="relu", name="c1")(inp))
    z = L.Conv1D(2, 3, padding="same", name="code")(h)
    out = L.Conv1D(3, 3, padding="same", name="recon")(L.UpSampling1D(2, name="up")(z))
    _write(folder, keras.Model(inp, out), _rng().normal(size=(N, 32, 3)).astype("f4"), suffix=".h5",
           y=_labels(), manifest='default_layer = "code"\n')


def time_distributed(folder):
    keras, L = _keras()
    model = keras.Sequential([keras.Input((6, 4)), L.TimeDistributed(L.Dense(3, activation="tanh"), name="td"),
                              L.Flatten(name="flat"), L.Dense(5, name="code"), L.Dense(24, name="out"),
                              L.Reshape((6, 4), name="series")])
    _write(folder, model, _rng().normal(size=(N, 6, 4)).astype("f4"), suffix=".h5", manifest='default_layer = "code"\n')


# -- VAEs, custom layers, Lambdas and functions --------------------------------------------------------------------

SAMPLING_HOOKS = '''
import keras

class Sampling(keras.layers.Layer):
    def call(self, inputs):
        mean, log_var = inputs
        return mean + 0.0 * keras.ops.exp(0.5 * log_var)

custom_objects = {"Sampling": Sampling}
'''


def _vae(sampling):
    keras, L = _keras()
    inp = keras.Input((16,), name="x")
    h = L.Dense(8, activation="relu", name="enc")(inp)
    mean, log_var = L.Dense(2, name="z_mean")(h), L.Dense(2, name="z_log_var")(h)
    z = sampling([mean, log_var])
    out = L.Dense(16, activation="sigmoid", name="recon")(L.Dense(8, activation="relu", name="dec")(z))
    return keras.Model(inp, out)


def vae_custom_class(suffix):
    def build(folder):
        keras, _ = _keras()
        namespace = {}
        exec(SAMPLING_HOOKS, namespace)  # the class as the user wrote it, not registered with Keras
        model = _vae(namespace["Sampling"](name="z"))
        _write(folder, model, _rng().random((N, 16)).astype("f4"), suffix=suffix, hooks=SAMPLING_HOOKS,
               manifest='default_layer = "z"\n')
    return build


def vae_lambda(suffix, how):
    def build(folder):
        keras, L = _keras()
        model = _vae(L.Lambda(lambda t: t[0] + 0.0 * t[1], name="z"))
        manifest = 'default_layer = "z"\n' + ("trust_model = true\n" if how == "trust" else "")
        hooks = 'lambdas = {"z": lambda t: t[0] + 0.0 * t[1]}\n' if how == "hooks" else None
        _write(folder, model, _rng().random((N, 16)).astype("f4"), suffix=suffix, manifest=manifest, hooks=hooks)
    return build


def as_keras2_lambda(path: Path, code: str) -> Path:
    """Rewrite the .h5 at ``path`` as Keras 2 wrote Lambdas: ``function = [code, defaults, closure]`` with
    ``function_type = "lambda"`` and ``code`` the base64 of the marshalled bytecode, written by "Keras 2.4.0"."""
    import h5py

    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Lambda":
                layer["config"].update(function=[code, None, None], function_type="lambda", module="__main__",
                                       output_shape=None, output_shape_type="raw", output_shape_module=None)
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.4.0"
    return path


def foreign_bytecode() -> str:
    """Bytecode as another Python's reads here: truncated marshal data (this Python's, cut short)."""
    good = marshal.dumps((lambda t: t).__code__)
    return base64.encodebytes(good[: len(good) // 2]).decode("ascii")


def keras2_lambda_other_python(folder):
    """A Keras 2 style .h5 whose Lambda holds bytecode this Python cannot read, replaced in hooks.py."""
    vae_lambda(".h5", "none")(folder)
    as_keras2_lambda(folder / "model.h5", foreign_bytecode())
    (folder / "hooks.py").write_text('lambdas = {"z": lambda t: t[0] + 0.0 * t[1]}\n')
    (folder / "project.toml").write_text('default_layer = "z"\ntrust_model = true\n')


SHIFT_HOOKS = '''
import keras

def shifted_tanh(x):
    return keras.ops.tanh(x) + 1.0

custom_objects = {"shifted_tanh": shifted_tanh}
'''


def named_function(folder):
    keras, L = _keras()
    namespace = {}
    exec(SHIFT_HOOKS, namespace)
    inp = keras.Input((10,), name="x")
    h = L.Lambda(namespace["shifted_tanh"], name="shift")(L.Dense(6, name="d")(inp))
    out = L.Dense(10, name="out")(L.Dense(3, name="code")(h))
    _write(folder, keras.Model(inp, out), _rng().normal(size=(N, 10)).astype("f4"), hooks=SHIFT_HOOKS,
           manifest='default_layer = "code"\n')


def custom_activation(folder):
    keras, L = _keras()
    namespace = {}
    exec(SHIFT_HOOKS, namespace)
    inp = keras.Input((10,), name="x")
    h = L.Dense(6, activation=namespace["shifted_tanh"], name="d")(inp)
    out = L.Dense(10, name="out")(L.Dense(3, name="code")(h))
    _write(folder, keras.Model(inp, out), _rng().normal(size=(N, 10)).astype("f4"), suffix=".h5",
           hooks=SHIFT_HOOKS, manifest='default_layer = "code"\n')


def registered_layer(folder):
    keras, L = _keras()

    @keras.saving.register_keras_serializable(package="corpus")
    class Scale(L.Layer):
        def call(self, x):
            return x * 3.0

    inp = keras.Input((8,), name="x")
    h = Scale(name="scale")(L.Dense(6, name="d")(inp))
    out = L.Dense(8, name="out")(L.Dense(3, name="code")(h))
    _write(folder, keras.Model(inp, out), _rng().normal(size=(N, 8)).astype("f4"),
           manifest='default_layer = "code"\n', hooks='''
import keras

class Scale(keras.layers.Layer):
    def call(self, x):
        return x * 3.0

custom_objects = {"Scale": Scale}
''')


def unregistered_layer_without_hooks(folder):
    vae_custom_class(".keras")(folder)
    (folder / "hooks.py").unlink()


def lambda_untrusted(folder):
    vae_lambda(".keras", "none")(folder)


# -- several outputs, several inputs, shapes and scales ------------------------------------------------------------


def multi_output(suffix):
    def build(folder):
        keras, L = _keras()
        inp = keras.Input((10, 2), name="signal")
        shared = L.LSTM(5, name="shared_lstm")(inp)
        a = L.Dense(3, activation="softmax", name="activity")(shared)
        b = L.Dense(2, activation="softmax", name="intensity")(shared)
        r = L.Reshape((10, 2), name="recon")(L.Dense(20, name="recon_dense")(shared))
        _write(folder, keras.Model(inp, [a, b, r]), _rng().normal(size=(N, 10, 2)).astype("f4"), suffix=suffix,
               y=_labels(), manifest='default_layer = "shared_lstm"\n')
    return build


def siamese(folder):
    keras, L = _keras()
    encoder = keras.Sequential([keras.Input((6,)), L.Dense(3, name="code")], name="encoder")
    a, b = keras.Input((6,), name="left"), keras.Input((6,), name="right")
    out = L.Dense(1, activation="sigmoid", name="same")(L.Subtract(name="diff")([encoder(a), encoder(b)]))
    _write(folder, keras.Model([a, b], out), _rng().normal(size=(N, 6)).astype("f4"))


def flat_data_image_model(folder):
    conv_ae(".keras")(folder)
    x = np.load(folder / "x.npy")
    np.save(folder / "x.npy", x.reshape(len(x), -1))


def image_data_flat_model(folder):
    keras, L = _keras()
    model = keras.Sequential([keras.Input((64,)), L.Dense(4, name="code"), L.Dense(64, activation="sigmoid",
                                                                                     name="recon")])
    _write(folder, model, _rng().random((N, 8, 8)).astype("f4"), suffix=".h5", manifest='default_layer = "code"\n')


def uint8_with_input_scale(folder):
    keras, L = _keras()
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(name="flat"), L.Dense(4, name="code"),
                              L.Dense(64, activation="sigmoid", name="dec"), L.Reshape((8, 8, 1), name="image")])
    _write(folder, model, _rng().integers(0, 256, size=(N, 8, 8, 1)).astype("uint8"),
           manifest='default_layer = "code"\ninput_scale = 255\n')


def rescaling_model_uint8(folder):
    keras, L = _keras()
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Rescaling(1 / 255.0, name="rescale"),
                              L.Flatten(name="flat"), L.Dense(4, name="code"), L.Dense(64, name="dec")])
    _write(folder, model, _rng().integers(0, 256, size=(N, 8, 8, 1)).astype("uint8"), suffix=".h5",
           manifest='default_layer = "code"\n')


def keras2(name, layer, manifest="", hooks=None):
    def build(folder):
        folder.mkdir(parents=True)
        shutil.copyfile(HERE / "data" / "keras2" / f"{name}_k2.h5", folder / "model.h5")
        stem = {"sequential": "seq", "residual": "res"}.get(name, name)
        x = np.load(HERE / "data" / "keras2" / f"inputs_{stem}.npy")
        np.save(folder / "x.npy", np.concatenate([x] * 4))
        (folder / "project.toml").write_text(f'default_layer = "{layer}"\n' + manifest)
        if hooks:
            (folder / "hooks.py").write_text(hooks)
    return build


def weights_only(folder):
    keras, L = _keras()
    model = keras.Sequential([keras.Input((4,)), L.Dense(2, name="d")])
    folder.mkdir(parents=True)
    model.save_weights(folder / "w.weights.h5")
    (folder / "w.weights.h5").rename(folder / "model.h5")
    np.save(folder / "x.npy", np.zeros((N, 4), "f4"))


CORPUS = [
    Case("dense_ae_keras", "Sequential dense autoencoder, .keras", dense_ae(".keras")),
    Case("dense_ae_h5", "Sequential dense autoencoder, Keras 3 .h5", dense_ae(".h5")),
    Case("conv_ae_keras", "Functional conv autoencoder, BatchNorm, Conv2DTranspose, .keras", conv_ae(".keras")),
    Case("conv_ae_h5", "Functional conv autoencoder, Keras 3 .h5", conv_ae(".h5")),
    Case("cnn_classifier", "Sequential CNN classifier, Dropout/BatchNorm, softmax", cnn_classifier),
    Case("softmax_layer", "classifier ending in a Softmax layer, .h5", softmax_layer_classifier),
    Case("residual_mlp", "residual MLP (cut at the closing Add)", residual_mlp),
    Case("resnet_blocks", "ResNet-style conv blocks with Add, GAP, softmax", resnet_blocks),
    Case("unet", "U-Net with a skip Concatenate", unet),
    Case("nested_keras", "nested encoder and decoder models, .keras", nested(".keras")),
    Case("nested_h5", "nested encoder and decoder models, .h5", nested(".h5")),
    Case("lstm_ae", "LSTM autoencoder: RepeatVector, TimeDistributed", lstm_ae),
    Case("gru_classifier", "GRU activity classifier", gru_classifier),
    Case("bilstm", "Bidirectional LSTM classifier, .h5", bilstm_classifier),
    Case("conv1d_ae", "Conv1D series autoencoder, .h5", conv1d_ae),
    Case("time_distributed", "TimeDistributed Dense series model, .h5", time_distributed),
    Case("vae_class_keras", "VAE, sampling as a custom class from hooks.py, .keras", vae_custom_class(".keras")),
    Case("vae_class_h5", "VAE, sampling as a custom class from hooks.py, .h5", vae_custom_class(".h5")),
    Case("vae_lambda_trusted", "VAE, sampling as a Lambda, trust_model = true", vae_lambda(".keras", "trust")),
    Case("vae_lambda_hooks", "VAE, sampling Lambda replaced in hooks.py (no trust), .h5", vae_lambda(".h5", "hooks")),
    Case("keras2_lambda", "Keras 2 .h5 Lambda saved by another Python, replaced in hooks.py",
         keras2_lambda_other_python),
    Case("named_function", "Lambda naming a function, from hooks.py custom_objects", named_function),
    Case("custom_activation", "custom activation function from hooks.py, .h5", custom_activation),
    Case("registered_layer", "custom layer registered with a package name", registered_layer),
    Case("multi_output_keras", "shared LSTM with 3 heads, .keras", multi_output(".keras")),
    Case("multi_output_h5", "shared LSTM with 3 heads, .h5", multi_output(".h5")),
    Case("flat_data_image_model", "flat 256-value data into a 16x16x1 model", flat_data_image_model),
    Case("image_data_flat_model", "8x8 image data into a flat 64-input model", image_data_flat_model),
    Case("uint8_input_scale", "uint8 0..255 data with input_scale = 255", uint8_with_input_scale),
    Case("rescaling_uint8", "uint8 data into a model with a Rescaling layer, .h5", rescaling_model_uint8),
    Case("keras2_sequential", "Keras 2 .h5, Sequential conv autoencoder (committed)",
         keras2("sequential", "bottleneck")),
    Case("keras2_residual", "Keras 2 .h5, residual Functional (committed)", keras2("residual", "res_add")),
    Case("keras2_lstm_ae", "Keras 2 .h5, LSTM autoencoder, RepeatVector, TimeDistributed", keras2("lstm_ae", "enc")),
    Case("keras2_nested", "Keras 2 .h5, nested Sequential encoder and decoder", keras2("nested", "encoder")),
    Case("keras2_lambda_trusted", "Keras 2 .h5, Lambda bytecode, trust_model = true",
         keras2("lambda", "code", "trust_model = true\n")),
    Case("keras2_vae_hooks", "Keras 2 .h5, custom Sampling class from hooks.py",
         keras2("vae", "z", hooks=SAMPLING_HOOKS)),
    Case("keras2_two_heads", "Keras 2 .h5, two softmax heads", keras2("two_heads", "shared")),
    Case("keras2_bilstm", "Keras 2 .h5, Bidirectional LSTM classifier", keras2("bilstm", "feat")),
    Case("keras2_depthwise", "Keras 2 .h5, depthwise-separable conv block (MobileNet's)", keras2("depthwise", "gap")),
    Case("unregistered_layer", "custom layer class, no hooks.py", unregistered_layer_without_hooks,
         "the model uses a layer class 'Sampling' (layer 'z') that is not registered"),
    Case("lambda_untrusted", "Lambda with bytecode, no trust, no replacement", lambda_untrusted,
         "Lambda layer(s) 'z' hold Python bytecode"),
    Case("siamese", "two inputs sharing an encoder (siamese)", siamese, "has 2 inputs"),
    Case("weights_only", "weights-only .h5 (save_weights)", weights_only,
         "holds a model's weights but not its architecture"),
]
