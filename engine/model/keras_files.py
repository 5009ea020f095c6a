"""Keras model files: what a file holds before Keras reads it, the project's own objects, loading it, and load
errors in the user's terms. TensorFlow and Keras are imported here, on first use, with TensorFlow's C++ start-up
chatter silenced.

A model from the wild fails to load for reasons Keras reports in its own words ("Could not locate class
'SamplingLayer'", "bad marshal data", "No model config found"). This module reads the file's architecture (the
``model_config`` attribute of an ``.h5``, ``config.json`` of a ``.keras`` archive) without building anything, so an
error can name the layer, the class or the function and say what to write in the project's ``hooks.py``:

* ``custom_objects = {"SamplingLayer": SamplingLayer, "my_loss": my_loss}``: classes and functions the model uses
  (custom layers, activations, functions named by a ``Lambda``); a class registered with
  ``@keras.saving.register_keras_serializable(package="pkg")`` may be listed under its plain name, and is found
  under ``"pkg>SamplingLayer"`` as Keras saved it.
* ``lambdas = {"layer_name": function}``: a replacement for the Python function of a ``Lambda`` layer. The file's
  bytecode is then never read, which is how a Lambda saved by another Python version (whose bytecode this Python
  cannot read) loads, and why a replaced Lambda needs no ``trust_model``.

A file written by Keras 2 gets what Keras 3 reads differently fixed (:func:`keras2_fixes`: arguments Keras 3 no
longer takes, node numbering of nested models). Replacements and fixes are written into a temporary copy of the file
(the project folder is never modified).
"""

from __future__ import annotations

import base64
import importlib
import json
import marshal
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from engine.errors import ModelError
from engine.model.archives import check_archive_sizes
from engine.model.base import ModelObjects
from engine.settings import max_params

__all__ = ["MODEL_SUFFIXES", "FileConfig", "ModelObjects", "backend", "check_container", "check_declared_size",
           "declared_weights", "explain_load_error", "held_weights", "keras", "keras2_fixes", "keras_objects",
           "load_model", "model_label", "read_config", "tensorflow", "with_replacements"]

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")

#: Prefix of the names under which replaced Lambda functions are handed to Keras.
_REPLACED = "latent_inspector_lambda__"


@dataclass
class _Lambda:
    name: str
    kind: str  # "bytecode" (a Python lambda saved as marshalled code) or "function" (a named function)
    function: str | None = None  # the function's name, for kind "function"
    code: str | None = None  # base64 of the marshalled code, for kind "bytecode"


@dataclass
class FileConfig:
    """The architecture a model file declares, read without Keras: ``layers`` ((name, class name, registered name)
    of every layer, nested models included), ``lambdas`` and the ``keras_version`` that wrote it."""

    path: Path
    config: dict
    keras_version: str | None = None
    layers: list = field(default_factory=list)
    lambdas: list = field(default_factory=list)

    def layer_of_class(self, name: str) -> str | None:
        """The first layer whose class (or registered name) is ``name``."""
        for layer, class_name, registered in self.layers:
            if name in (class_name, registered) or (registered and registered.split(">")[-1] == name):
                return layer
        return None

    def registered_name(self, name: str) -> str | None:
        """The registered name (``"pkg>Name"``) under which the file refers to class or function ``name``."""
        for _, class_name, registered in self.layers:
            if registered and registered != class_name and registered.split(">")[-1] == name:
                return registered
        return None

    def lambda_using(self, function: str) -> str | None:
        for lam in self.lambdas:
            if lam.function == function:
                return lam.name
        return None

    def unreadable_lambdas(self) -> list[str]:
        """Lambda layers whose bytecode this Python cannot unmarshal (saved by another Python version). Only the
        unmarshalling is tried: nothing is run."""
        bad = []
        for lam in self.lambdas:
            if lam.kind != "bytecode":
                continue
            try:
                code = marshal.loads(base64.decodebytes(lam.code.encode("ascii")))
                if not hasattr(code, "co_code"):
                    raise TypeError("not a code object")
            except Exception:  # noqa: BLE001 - ValueError, EOFError, TypeError, SystemError: all mean "cannot read"
                bad.append(lam.name)
        return bad


def check_container(path: Path) -> None:
    """Refuse a file that is not the container its suffix says, or an ``.h5`` holding weights but no architecture
    (Keras then reports "File not found" or "No model config found")."""
    suffix = path.suffix.lower()
    if suffix == ".keras":
        if not zipfile.is_zipfile(path):
            raise ModelError(f"{path}: cannot load the model: not a zip archive, which a .keras model is (the file "
                             "is truncated, corrupt or of another format)")
        _check_archive_sizes(path)
        return
    import h5py

    if not h5py.is_hdf5(path):
        raise ModelError(f"{path}: cannot load the model: not an HDF5 file, which an {suffix} model is (the "
                         "file is truncated, corrupt or of another format)")
    try:
        with h5py.File(path, "r") as f:
            has_config = "model_config" in f.attrs
            # save_weights writes layer_names (Keras 2) or the groups layers and vars (Keras 3), no architecture
            weights_only = "layer_names" in f.attrs or "model_weights" in f or {"layers", "vars"} <= set(f)
            held = ", ".join(list(f)[:5])
    except OSError as exc:
        raise ModelError(f"{path}: cannot load the model: the HDF5 file cannot be read ({exc})") from None
    if has_config:
        return
    if weights_only:
        raise ModelError(
            f"{path}: holds a model's weights but not its architecture (it was written by save_weights); save the "
            "whole model instead, with model.save('model.keras') (or model.save('model.h5') in Keras 2)")
    raise ModelError(f"{path}: cannot load the model: an HDF5 file with no Keras model in it (no model_config; it "
                     f"holds {held or 'nothing'}); save the model with model.save('model.keras')")


def _check_archive_sizes(path: Path) -> None:
    """Refuse a ``.keras`` zip bomb before Keras extracts it (it unpacks the archive before building): more than a
    model of ``LATENT_INSPECTOR_MAX_PARAMS`` float32 weights takes, or a config.json or metadata.json larger than a
    description takes (:func:`engine.model.archives.check_archive_sizes`)."""
    check_archive_sizes(path, lambda name: name in ("config.json", "metadata.json"))


def read_config(path: Path) -> FileConfig | None:
    """The architecture of a ``.h5`` or ``.keras`` file, or None where it cannot be read (Keras will say why)."""
    try:
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as z:
                config = json.loads(z.read("config.json"))
                try:
                    version = json.loads(z.read("metadata.json")).get("keras_version")
                except (KeyError, ValueError):
                    version = None
        else:
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
                version = f.attrs.get("keras_version")
            if raw is None:
                return None
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            version = version.decode() if isinstance(version, bytes) else version
    except Exception:  # noqa: BLE001 - a file Keras cannot read either: its own error is reported
        return None
    found = FileConfig(path, config, str(version) if version else None)
    for layer in _layers(config):
        cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        name = str(cfg.get("name", layer.get("name", "?")))
        found.layers.append((name, str(layer.get("class_name")), layer.get("registered_name")))
        if layer.get("class_name") == "Lambda":
            found.lambdas.append(_lambda(name, cfg.get("function")))
    return found


#: Weights a layer class declares at least, from its config alone (the input's size unknown, taken as 1): the
#: kernel and bias of Dense and plain convolutions, an Embedding's table, a recurrent layer's recurrent kernel.
_RECURRENT_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}
_CONVOLUTIONS = {f"Conv{d}D{t}" for d in (1, 2, 3) for t in ("", "Transpose")} | {"Convolution1D", "Convolution2D",
                                                                                  "Convolution3D"}


def _whole(value) -> int | None:
    """``value`` as a whole number of at least 0, or None (a hostile or odd config holds anything)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def declared_weights(config: FileConfig) -> list[tuple[str, str, int]]:
    """``(layer, what it declares, weights at least)`` for each layer of ``config`` whose config alone bounds its
    weights from below, largest first."""
    found = []
    for layer in _layers(config.config):
        cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        cls, name = str(layer.get("class_name")), str(cfg.get("name", "?"))
        units, filters = _whole(cfg.get("units")), _whole(cfg.get("filters"))
        if cls == "Dense" and units is not None:
            found.append((name, f"Dense with {units:,} units", units * (2 if cfg.get("use_bias", True) else 1)))
        elif cls in _CONVOLUTIONS and filters is not None:
            kernel = cfg.get("kernel_size")
            sizes = [_whole(k) for k in (kernel if isinstance(kernel, list) else [kernel])]
            area = math.prod(k for k in sizes if k) if all(k is not None for k in sizes) else 1
            found.append((name, f"{cls} with {filters:,} filters", filters * (area + (1 if cfg.get("use_bias", True)
                                                                                    else 0))))
        elif cls == "Embedding" and None not in (_whole(cfg.get("input_dim")), _whole(cfg.get("output_dim"))):
            rows, width = cfg["input_dim"], cfg["output_dim"]
            found.append((name, f"Embedding of {rows:,} x {width:,}", rows * width))
        elif cls in _RECURRENT_GATES and units is not None:
            found.append((name, f"{cls} with {units:,} units", _RECURRENT_GATES[cls] * units * units))
    return sorted(found, key=lambda f: -f[2])


def held_weights(path: Path) -> int | None:
    """Number of weight values the file holds (its HDF5 datasets' sizes, read from their shapes alone), or None
    where they cannot be counted."""
    import h5py

    def count(group) -> int:
        total = 0

        def visit(_name, obj):
            nonlocal total
            if isinstance(obj, h5py.Dataset):
                total += int(math.prod(obj.shape)) if obj.shape else 1

        group.visititems(visit)
        return total

    try:
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as z:
                if "model.weights.h5" not in z.namelist():
                    return None
                with z.open("model.weights.h5") as raw, h5py.File(raw, "r") as f:
                    return count(f)
        with h5py.File(path, "r") as f:
            return count(f["model_weights"]) if "model_weights" in f else count(f)
    except Exception:  # noqa: BLE001 - unreadable weights: Keras reports its own error when it loads them
        return None


def check_declared_size(path: Path, config: FileConfig | None, limit: int) -> None:
    """Refuse, before Keras builds anything, a model whose architecture declares more weights than the file holds,
    or more than ``limit``: building it would allocate them (a Dense of 2,000,000,000 units is 16 GB), enough to take
    a shared server down before the load fails.

    Raises
    ------
    ModelError
        Naming the layer, what it declares, the weights the file holds and the limit.
    """
    if config is None:
        return
    declared = declared_weights(config)
    if not declared:
        return
    at_least = sum(n for _, _, n in declared)
    name, what, n = declared[0]
    biggest = f"layer {name!r}, {what}, declares at least {n:,} weights"
    if at_least > limit:
        raise ModelError(f"{path}: its architecture declares at least {at_least:,} weights ({biggest}), more than "
                         f"this server loads ({limit:,}; LATENT_INSPECTOR_MAX_PARAMS sets it): refused before "
                         f"building it")
    held = held_weights(path)
    if held is not None and at_least > held:
        raise ModelError(f"{path}: its architecture declares at least {at_least:,} weights ({biggest}) but the file "
                         f"holds {held:,}: the file does not match its own architecture (edited, truncated or "
                         "hostile); refused before building it")


def _layers(config) -> Iterator[dict]:
    """Every layer config in a model config, nested models included."""
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config.get("config"), dict):
            inner = config["config"].get("layers")
            if config["class_name"] not in ("Functional", "Sequential", "Model") or inner is None:
                yield config
            if isinstance(inner, list):
                for layer in inner:
                    yield from _layers(layer)
        elif isinstance(config.get("layers"), list):
            for layer in config["layers"]:
                yield from _layers(layer)


def _lambda(name: str, fn) -> _Lambda:
    if isinstance(fn, list) and fn:  # Keras 2: [code, defaults, closure] with function_type "lambda"
        return _Lambda(name, "bytecode", code=str(fn[0]))
    if isinstance(fn, dict):
        if fn.get("class_name") == "__lambda__":
            return _Lambda(name, "bytecode", code=str(fn.get("config", {}).get("code", "")))
        config = fn.get("config")
        return _Lambda(name, "function", function=str(config) if isinstance(config, str) else None)
    if isinstance(fn, str):  # Keras 2: a named function (function_type "function")
        return _Lambda(name, "function", function=fn)
    return _Lambda(name, "function")


# -- replacements ---------------------------------------------------------------------------------------------------


def keras_objects(objects: ModelObjects | None, config: FileConfig | None) -> dict:
    """The ``custom_objects`` mapping to give Keras: the project's, each class also under the registered name the
    file uses for it, and the Lambda replacements under their private names."""
    out = dict(objects.custom_objects) if objects else {}
    if config is not None:
        for name, obj in list(out.items()):
            registered = config.registered_name(name)
            if registered and registered not in out:
                out[registered] = obj
    if objects:
        for layer, fn in objects.lambdas.items():
            out[_REPLACED + layer] = fn
    return out


@contextmanager
def with_replacements(path: Path, config: FileConfig | None, objects: ModelObjects | None):
    """``path``, or a temporary copy of it whose architecture Keras 3 can read: Lambda layers named in
    ``objects.lambdas`` refer to the replacement function by name instead of holding bytecode, and a file written by
    Keras 2 has what Keras 3 reads differently fixed (:func:`keras2_fixes`). Raises :class:`ModelError` for a
    replacement that names no Lambda layer of the file."""
    lambdas = dict(objects.lambdas) if objects else {}
    names = [lam.name for lam in config.lambdas] if config is not None else []
    unknown = sorted(set(lambdas) - set(names))
    if unknown:
        known = ", ".join(map(repr, names)) or "none"
        raise ModelError(f"{objects.origin}: lambdas names {', '.join(map(repr, unknown))}, not a Lambda layer of "
                         f"{path.name}; its Lambda layers: {known}")
    if config is None:
        yield path
        return
    patched = json.loads(json.dumps(config.config))
    changed = keras2_fixes(patched) if (config.keras_version or "").startswith(("1.", "2.")) else False
    for layer in _layers(patched):
        cfg = layer.get("config", {})
        if layer.get("class_name") == "Lambda" and cfg.get("name") in lambdas:
            changed = True
            cfg["function"] = {"module": "builtins", "class_name": "function", "config": _REPLACED + cfg["name"],
                               "registered_name": "function"}
            for key in ("function_type", "module"):
                cfg.pop(key, None)
            if cfg.get("output_shape_type") == "lambda" or (isinstance(cfg.get("output_shape"), dict)
                                                           and cfg["output_shape"].get("class_name") == "__lambda__"):
                cfg.pop("output_shape", None)  # traced from the replacement instead
                cfg.pop("output_shape_type", None)
    if not changed:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="latent-inspector-model-") as tmp:
        copy = Path(tmp) / path.name
        text = json.dumps(patched)
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as src, zipfile.ZipFile(copy, "w", zipfile.ZIP_DEFLATED) as dst:
                for item in src.infolist():
                    dst.writestr(item, text if item.filename == "config.json" else src.read(item.filename))
        else:
            import h5py

            shutil.copyfile(path, copy)
            with h5py.File(copy, "r+") as f:
                f.attrs["model_config"] = text
        yield copy


#: Arguments Keras 2 layers saved that Keras 3 refuses ("Unrecognized keyword arguments"), by layer class.
_KERAS2_ONLY = {"LSTM": ("time_major",), "GRU": ("time_major",), "SimpleRNN": ("time_major",),
                "RNN": ("time_major",), "ConvLSTM2D": ("time_major",), "DepthwiseConv2D": ("groups",),
                "DepthwiseConv1D": ("groups",)}
_MODELS = ("Sequential", "Functional", "Model")


def keras2_fixes(config: dict) -> bool:
    """Fix, in place, what a Keras 2 architecture says that Keras 3 reads differently; True when anything changed.

    * arguments Keras 3 no longer takes (``time_major`` of recurrent layers, also inside ``Bidirectional`` and
      ``TimeDistributed``; ``groups`` of depthwise convolutions, which MobileNet's have);
    * node indices of nested models: Keras 2 gave a nested model built on its own ``Input`` a node 0 of its own,
      so the outer graph calls it as node 1, 2...; Keras 3 numbers its calls from 0. The references of every
      functional graph (inbound nodes, input and output layers) to a nested model are shifted so that its first
      call is node 0.
    """
    changed = False
    for layer in _all_configs(config):
        cfg = layer.get("config")
        for key in _KERAS2_ONLY.get(layer.get("class_name"), ()):
            if isinstance(cfg, dict) and key in cfg:
                del cfg[key]
                changed = True
    for graph in _all_configs(config):
        if graph.get("class_name") in _MODELS and isinstance(graph.get("config"), dict):
            changed |= _renumber_nested_calls(graph["config"])
    return changed


def _all_configs(obj) -> Iterator[dict]:
    """Every dict with a ``class_name`` in a config, at any depth (wrapped layers and nested models included)."""
    if isinstance(obj, dict):
        if "class_name" in obj:
            yield obj
        for value in obj.values():
            yield from _all_configs(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _all_configs(value)


def _renumber_nested_calls(graph: dict) -> bool:
    layers = graph.get("layers")
    if not isinstance(layers, list):
        return False
    nested = {layer.get("name") or layer.get("config", {}).get("name") for layer in layers
              if layer.get("class_name") in _MODELS}
    refs = []  # every [name, node_index, tensor_index, ...] list that points at a nested model

    def collect(obj):
        if isinstance(obj, list):
            if len(obj) >= 3 and isinstance(obj[0], str) and obj[0] in nested and isinstance(obj[1], int):
                refs.append(obj)
            else:
                for value in obj:
                    collect(value)

    for layer in layers:
        collect(layer.get("inbound_nodes"))
    collect(graph.get("input_layers"))
    collect(graph.get("output_layers"))
    first = {}
    for ref in refs:
        first[ref[0]] = min(first.get(ref[0], ref[1]), ref[1])
    changed = False
    for ref in refs:
        if first[ref[0]]:
            ref[1] -= first[ref[0]]
            changed = True
    return changed


# -- errors -----------------------------------------------------------------------------------------------------------

_UNKNOWN = [
    re.compile(r"Could not locate (class|function) '([^']+)'"),
    re.compile(r"Unknown (layer|object|activation|loss|metric|initializer|regularizer|constraint|optimizer)"
               r"(?: function)?: '?([A-Za-z_][\w.>]*)'?"),
    re.compile(r"Unable to restore custom object of (?:class|type) \"?'?([A-Za-z_][\w.>]*)"),
]


def explain_load_error(path: Path, exc: BaseException, config: FileConfig | None, trust: bool,
                       objects: ModelObjects | None) -> str:
    """One line saying why Keras could not load ``path``: the layer, class or function concerned and what to
    write in ``hooks.py`` or ``project.toml``."""
    text = str(exc)
    origin = objects.origin if objects else "the project's hooks.py"
    replaced = set(objects.lambdas) if objects else set()
    lambdas = [lam for lam in (config.lambdas if config else []) if lam.name not in replaced]
    bytecode = [lam.name for lam in lambdas if lam.kind == "bytecode"]

    if bytecode and not trust and ("safe_mode" in text or "Lambda" in text or "unsafe" in text.lower()):
        names = ", ".join(map(repr, bytecode))
        return (f"{path}: Lambda layer(s) {names} hold Python bytecode, and loading it runs code from the file, "
                "which is refused by default. If you trust this file, set trust_model = true in the project's "
                f"project.toml; or give each a replacement function in {origin}: lambdas = "
                f"{{{bytecode[0]!r}: my_function}}")
    unreadable = config.unreadable_lambdas() if (config and trust) else []
    unreadable = [n for n in unreadable if n not in replaced]
    if unreadable or (trust and bytecode and _is_marshal_error(exc)):
        names = unreadable or bytecode
        return (f"{path}: the Python bytecode of Lambda layer(s) {', '.join(map(repr, names))} cannot be read by "
                f"this Python {sys.version_info.major}.{sys.version_info.minor}: it was saved by another Python "
                f"version{_written_by(config)}. Write the function again in {origin}: lambdas = "
                f"{{{names[0]!r}: lambda x: ...}} (the same computation), and it loads without the bytecode")
    for pattern in _UNKNOWN:
        m = pattern.search(text)
        if not m:
            continue
        what, name = (m.group(1), m.group(2)) if m.lastindex == 2 else ("class", m.group(1))
        plain = name.split(">")[-1]
        layer = config.layer_of_class(plain) if config else None
        using = config.lambda_using(plain) if config else None
        if what == "function" or using or what in ("activation", "loss", "metric", "initializer",
                                                    "regularizer", "constraint"):
            where = f" (in Lambda layer {using!r})" if using else ""
            kind = "function" if what in ("function", "object", "layer", "class") else f"{what} function"
            return (f"{path}: the model uses a {kind} {name!r}{where} that is not registered; define it in "
                    f"{origin} and list it there: custom_objects = {{{plain!r}: {plain}}}")
        where = f" (layer {layer!r})" if layer else ""
        return (f"{path}: the model uses a layer class {name!r}{where} that is not registered; define it in "
                f"{origin} and list it there: custom_objects = {{{plain!r}: {plain}}}")
    if "No model config found" in text:
        return (f"{path}: holds a model's weights but not its architecture; save the whole model with "
                "model.save('model.keras')")
    first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
    return f"{path}: cannot load the model ({type(exc).__name__}: {first})"


def _is_marshal_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, EOFError) or "marshal" in text or "code() argument" in text or "code expected" in text


def _written_by(config: FileConfig | None) -> str:
    return f" (the file was written by Keras {config.keras_version})" if config and config.keras_version else ""


# -- TensorFlow and Keras, imported on first use ------------------------------------------------------------------
# TensorFlow's C++ runtime writes start-up chatter straight to file descriptor 2 while it is imported ("Could not
# find cuda drivers...") whatever TF_CPP_MIN_LOG_LEVEL says; a CLI user should see one clear line on error, so the
# import runs with descriptor 2 pointed at /dev/null. Python exceptions raised by the import still show.

_import_lock = threading.Lock()


def _quiet_import(name: str, then=None) -> ModuleType:
    """Import ``name`` (and run ``then(module)``) with file descriptor 2 silenced."""
    if name in sys.modules:
        return sys.modules[name]
    with _import_lock:
        try:
            sys.stderr.flush()
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # no real stderr (notebook, captured): nothing to silence
            return importlib.import_module(name)
        saved, devnull = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        try:
            module = importlib.import_module(name)
            if then is not None:
                then(module)
            return module
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            os.close(devnull)


def _init_devices(tf) -> None:
    # Device discovery (cuInit on a machine without a GPU) logs at the first operation, not at import.
    tf.config.list_logical_devices()


def backend() -> str:
    """Keras' backend: ``tensorflow`` (the default), or ``torch`` or ``jax`` as ``KERAS_BACKEND`` sets it."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def keras() -> ModuleType:
    """The ``keras`` module, imported on first use: Keras 3 on the TensorFlow backend, or on the backend
    ``KERAS_BACKEND`` names (``torch`` runs the bundled Keras models where only PyTorch is installed, on its GPU)."""
    if backend() == "tensorflow":
        tensorflow()
    return _quiet_import("keras")


def tensorflow() -> ModuleType:
    """The ``tensorflow`` module, imported (and its devices discovered) on first use."""
    return _quiet_import("tensorflow", then=_init_devices)


# -- loading --------------------------------------------------------------------------------------------------------


def load_model(path, *, trust: bool = False, objects: ModelObjects | None = None):
    """Load a ``.keras`` or ``.h5`` model for inference.

    Parameters
    ----------
    path : str or Path
    trust : bool
        Allow Lambda layers that hold Python bytecode. Never set this for a file you did not write or check: it
        runs code from the file.
    objects : ModelObjects, optional
        The project's ``custom_objects`` (classes and functions the model uses) and ``lambdas`` (replacement
        functions of Lambda layers, which then need no ``trust``), from its ``hooks.py``.

    Returns
    -------
    keras.Model
        Its ``latent_inspector_file`` attribute is the file's name, which messages use instead of Keras' model
        name (``'functional_13'``).

    Raises
    ------
    ModelError
        The file is missing, not a Keras model, holds weights only, is corrupt, needs ``trust``, or uses a class,
        a function or Lambda bytecode this process cannot load; the message names the layer and what to write in
        ``hooks.py``.

    Example
    -------
    >>> model = load_model("projects/mnist/autoencoder.h5")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelError(f"{path}: not a Keras model file; expected one of {', '.join(MODEL_SUFFIXES)}")
    check_container(path)
    config = read_config(path)
    check_declared_size(path, config, max_params())
    keras_ = keras()
    custom = keras_objects(objects, config)
    try:
        with with_replacements(path, config, objects) as readable, warnings.catch_warnings():
            # Keras warns about what inference does not use (an optimizer's or metrics' state left unbuilt)
            warnings.simplefilter("ignore", UserWarning)
            model = keras_.models.load_model(readable, compile=False, safe_mode=not trust,
                                             custom_objects=custom or None)
    except ModelError:
        raise
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError, KeyError, EOFError... for bad files
        raise ModelError(explain_load_error(path, exc, config, trust, objects)) from exc
    if not isinstance(model, keras_.Model):
        raise ModelError(f"{path}: holds a {type(model).__name__}, expected a keras Model")
    if not getattr(model, "inputs", None):
        raise ModelError(f"{path}: the model has no defined inputs (a subclassed model); save a Functional model")
    model.latent_inspector_file = path.name
    return model


def model_label(model) -> str:
    """How messages name a model: its file (``'ae.keras'``), else Keras' name of it."""
    return getattr(model, "latent_inspector_file", None) or model.name
