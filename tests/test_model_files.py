"""A user's own Keras files: custom layer classes, registered and unregistered functions, Lambda layers (as
bytecode, as a named function, and saved by another Python), weights-only files. Each loads once the project's
``hooks.py`` supplies what it needs, and otherwise fails with one line naming the layer, the class or the
function and what to write.

The models are real Keras models saved to real files by the tests; the project folders are never modified.
"""

from __future__ import annotations

import base64
import marshal
import shutil

import numpy as np
import pytest
from corpus import as_keras2_lambda, foreign_bytecode

from engine.data.project import load_project
from engine.errors import ModelError
from engine.model import load_model, split
from engine.model.keras_files import ModelObjects

keras = pytest.importorskip("keras")


class Sampling(keras.layers.Layer):
    """A VAE's sampling layer as users write it: a custom class, not registered with Keras."""

    def call(self, inputs):
        mean, log_var = inputs
        return mean + keras.ops.exp(0.5 * log_var) * 0.0  # deterministic, so decodes can be compared


def shifted_tanh(x):
    """A function a Lambda layer names (saved by name, not as bytecode)."""
    return keras.ops.tanh(x) + 1.0


HOOKS_SAMPLING = '''
import keras

class Sampling(keras.layers.Layer):
    def call(self, inputs):
        mean, log_var = inputs
        return mean + keras.ops.exp(0.5 * log_var) * 0.0

custom_objects = {"Sampling": Sampling}
'''

HOOKS_SHIFTED = '''
import keras

def shifted_tanh(x):
    return keras.ops.tanh(x) + 1.0

custom_objects = {"shifted_tanh": shifted_tanh}
'''

HOOKS_DOUBLE = '''
lambdas = {"double": lambda t: t * 2.0}
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Model files of each kind, and the outputs of the models that wrote them on the same inputs."""
    from keras import layers

    keras.utils.set_random_seed(3)
    root = tmp_path_factory.mktemp("model_files")
    x = np.random.default_rng(0).normal(size=(6, 8)).astype("float32")
    out = {"x": x, "root": root}

    inp = keras.Input((8,), name="x")
    h = layers.Dense(6, activation="relu", name="enc")(inp)
    mean, log_var = layers.Dense(3, name="z_mean")(h), layers.Dense(3, name="z_log_var")(h)
    z = Sampling(name="z")([mean, log_var])
    vae = keras.Model(inp, layers.Dense(8, name="recon")(layers.Dense(6, activation="relu", name="dec")(z)))
    out["sampling"] = _save(vae, root / "sampling", x)

    inp = keras.Input((8,), name="x")
    h = layers.Dense(4, name="d")(inp)
    h = layers.Lambda(lambda t: t * 2.0, name="double")(h)
    lam = keras.Model(inp, layers.Dense(5, name="out")(layers.Dense(3, name="code")(h)))
    out["lambda"] = _save(lam, root / "lambda", x)

    inp = keras.Input((8,), name="x")
    h = layers.Lambda(shifted_tanh, name="shift")(layers.Dense(4, name="d")(inp))
    named = keras.Model(inp, layers.Dense(5, name="out")(layers.Dense(3, name="code")(h)))
    out["named"] = _save(named, root / "named", x)

    weights = root / "weights_only.weights.h5"
    named.save_weights(weights)
    out["weights_only"] = root / "weights_only.h5"
    shutil.copyfile(weights, out["weights_only"])
    return out


def _save(model, stem, x):
    stem.mkdir(parents=True)
    paths = {suffix: stem / f"model{suffix}" for suffix in (".keras", ".h5")}
    for path in paths.values():
        model.save(path)
    return {"paths": paths, "y": np.asarray(model(x))}


def _project(root, name, model_path, x, hooks=None, manifest=None):
    folder = root / name
    folder.mkdir()
    shutil.copyfile(model_path, folder / model_path.name)
    np.save(folder / "x.npy", x)
    if hooks is not None:
        (folder / "hooks.py").write_text(hooks)
    if manifest is not None:
        (folder / "project.toml").write_text(manifest)
    return folder


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_an_unregistered_custom_layer_is_named_and_loads_from_the_hooks(files, suffix, tmp_path):
    path = files["sampling"]["paths"][suffix]
    with pytest.raises(ModelError, match=rf"model{suffix}: the model uses a layer class 'Sampling' \(layer 'z'\) "
                       r"that is not registered; define it in .* custom_objects = \{'Sampling': Sampling\}"):
        load_model(path)
    folder = _project(tmp_path, "vae", path, files["x"], hooks=HOOKS_SAMPLING, manifest='default_layer = "z"\n')
    before = _snapshot(folder)
    project = load_project("vae", root=tmp_path)
    s = split(project.model(), "z")
    np.testing.assert_allclose(s.decode(s.encode(files["x"])), files["sampling"]["y"], rtol=1e-5, atol=1e-5)
    assert _snapshot(folder) == before


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_lambda_replaced_in_the_hooks_loads_without_trust(files, suffix, tmp_path):
    path = files["lambda"]["paths"][suffix]
    folder = _project(tmp_path, "lam", path, files["x"], hooks=HOOKS_DOUBLE)
    before = _snapshot(folder)
    project = load_project("lam", root=tmp_path)
    assert not project.trust_model
    s = split(project.model(), "code")
    np.testing.assert_allclose(s.decode(s.encode(files["x"])), files["lambda"]["y"], rtol=1e-5, atol=1e-5)
    assert _snapshot(folder) == before  # the replacement went into a temporary copy


def test_a_replacement_for_a_layer_that_is_no_lambda_is_named(files):
    objects = ModelObjects(lambdas={"dubble": lambda t: t}, origin="hooks.py")
    with pytest.raises(ModelError, match=r"hooks\.py: lambdas names 'dubble', not a Lambda layer of model\.keras; "
                       r"its Lambda layers: 'double'"):
        load_model(files["lambda"]["paths"][".keras"], objects=objects)


def _keras2_lambda(src, dst, code: str):
    """``src`` (an .h5 with Lambda 'double') copied to ``dst``, its Lambda as Keras 2 wrote it."""
    shutil.copyfile(src, dst)
    return as_keras2_lambda(dst, code)


def test_a_keras2_lambda_from_another_python_is_explained_then_replaced(files, tmp_path):
    path = _keras2_lambda(files["lambda"]["paths"][".h5"], tmp_path / "k2_lambda.h5", foreign_bytecode())
    with pytest.raises(ModelError, match=r"k2_lambda\.h5: the Python bytecode of Lambda layer\(s\) 'double' cannot "
                       r"be read by this Python 3\.\d+: it was saved by another Python version \(the file was "
                       r"written by Keras 2\.4\.0\)\. Write the function again in .*lambdas = \{'double': "):
        load_model(path, trust=True)
    with pytest.raises(ModelError, match=r"Lambda layer\(s\) 'double' hold Python bytecode.*trust_model = true"):
        load_model(path)
    objects = ModelObjects(lambdas={"double": lambda t: t * 2.0})
    s = split(load_model(path, objects=objects), "code")
    np.testing.assert_allclose(s.decode(s.encode(files["x"])), files["lambda"]["y"], rtol=1e-5, atol=1e-5)


def test_a_readable_keras2_lambda_loads_under_trust(files, tmp_path):
    code = base64.encodebytes(marshal.dumps((lambda t: t * 2.0).__code__)).decode("ascii")
    path = _keras2_lambda(files["lambda"]["paths"][".h5"], tmp_path / "k2_ok.h5", code)
    s = split(load_model(path, trust=True), "code")
    np.testing.assert_allclose(s.decode(s.encode(files["x"])), files["lambda"]["y"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("trust", [False, True])
def test_an_unregistered_function_is_named_whatever_the_trust(files, suffix, trust, tmp_path):
    path = files["named"]["paths"][suffix]
    with pytest.raises(ModelError) as info:
        load_model(path, trust=trust)
    message = str(info.value)
    assert "the model uses a function 'shifted_tanh' (in Lambda layer 'shift') that is not registered" in message
    assert "custom_objects = {'shifted_tanh': shifted_tanh}" in message
    assert "trust_model" not in message  # trust is not what is missing
    _project(tmp_path, "named", path, files["x"], hooks=HOOKS_SHIFTED)
    s = split(load_project("named", root=tmp_path).model(), "code")
    np.testing.assert_allclose(s.decode(s.encode(files["x"])), files["named"]["y"], rtol=1e-5, atol=1e-5)


def test_a_registered_class_is_found_under_its_plain_name(tmp_path):
    from keras import layers

    @keras.saving.register_keras_serializable(package="li_test_pkg")
    class Scale(layers.Layer):
        def call(self, x):
            return x * 3.0

    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, layers.Dense(2, name="out")(Scale(name="scale")(layers.Dense(4, name="d")(inp))))
    x = np.ones((2, 4), np.float32)
    model.save(tmp_path / "reg.keras")
    keras.saving.get_custom_objects().pop("li_test_pkg>Scale")  # a new process, which has not registered it
    with pytest.raises(ModelError, match=r"layer class 'Scale' \(layer 'scale'\) that is not "
                       r"registered.*custom_objects = \{'Scale': Scale\}"):
        load_model(tmp_path / "reg.keras")
    loaded = load_model(tmp_path / "reg.keras", objects=ModelObjects({"Scale": Scale}))
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6)


def test_a_weights_only_file_says_how_to_save_a_whole_model(files):
    with pytest.raises(ModelError, match=r"weights_only\.h5: holds a model's weights but not its architecture "
                       r"\(it was written by save_weights\); save the whole model instead, with model\.save"):
        load_model(files["weights_only"])


def test_messages_name_the_file_not_keras_internal_model_name(files):
    model = load_model(files["lambda"]["paths"][".keras"], objects=ModelObjects(lambdas={"double": lambda t: t}))
    assert model.name != "model.keras"
    with pytest.raises(Exception, match=r"model 'model\.keras' has no layer 'nope'"):
        split(model, "nope")


@pytest.mark.parametrize("hooks, expected", [
    ("custom_objects = ['Sampling']\n", r"custom_objects must be a dict of names to classes or functions"),
    ("lambdas = {'double': 2.0}\n", r"lambdas must be a dict of names to classes or functions"),
])
def test_malformed_hooks_objects_are_refused_naming_the_file(files, tmp_path, hooks, expected):
    from engine.errors import ProjectError

    _project(tmp_path, "bad", files["lambda"]["paths"][".keras"], files["x"], hooks=hooks)
    with pytest.raises(ProjectError, match=r"hooks\.py: " + expected):
        load_project("bad", root=tmp_path).model()
