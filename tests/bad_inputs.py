"""A corpus of bad inputs: every kind of broken project a user can bring, and the typed error each must give.

Each :class:`BadInput` is one project folder, written by its ``make`` from real files (a real Keras model saved by
Keras, arrays saved by NumPy, SciPy and h5py, then cut, flipped or mislabelled), with the
:class:`~engine.errors.InspectorError` subclass it must raise, a regex its message must match (naming the file,
layer or value at fault and what was expected), and the first stage that must fail:

``info``
    load the project, read its inputs and labels, load the model and list its layers (``latent-inspector info``);
``propagate``
    split the model at the layer and propagate the inputs (``latent-inspector propagate``);
``reduce``
    fit the 2-D map and measure it (``latent-inspector reduce``).

Every stage before that one must succeed. :func:`build_corpus` writes every case, plus a good project
(:data:`GOOD`), under one projects root; :func:`run_stage` runs a stage through the engine the way the CLI does.

A plain module rather than ``conftest`` (see ``builders.py``), so that tests and scripts import it by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import CutError, DataError, InspectorError, ModelError, ProjectError, ReducerError

#: Samples and features of the good inputs; the model maps (n, D) to (n, D) through a 4-unit bottleneck.
N, D = 40, 12
CLASSES = ("a", "b", "c")
#: The good project of the corpus root: opened after each bad one, to show the dashboard still works.
GOOD = "good"
STAGES = ("info", "propagate", "reduce")
LAYER = "bottleneck"


class Assets:
    """The real files every case starts from, made once: a small dense autoencoder saved as ``.keras`` and
    ``.h5``, the same with a ``Lambda`` layer, and good inputs and labels.

    Parameters
    ----------
    folder : Path
        Where the model files are written (outside the projects root).
    """

    def __init__(self, folder: Path):
        import keras
        from keras import layers

        folder.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((D,), name="x"), layers.Dense(8, activation="tanh", name="enc"),
             layers.Dense(4, name=LAYER), layers.Dense(D, name="out")],
            name="dense_ae",
        )
        self.keras_model, self.h5_model = folder / "model.keras", folder / "model.h5"
        model.save(self.keras_model)
        model.save(self.h5_model)
        inp = keras.Input((D,), name="x")
        doubled = layers.Lambda(lambda t: t * 2.0, name="doubled")(inp)
        lam = keras.Model(inp, layers.Dense(D, name="out")(layers.Dense(4, name=LAYER)(doubled)), name="with_lambda")
        self.lambda_keras, self.lambda_h5 = folder / "lambda.keras", folder / "lambda.h5"
        lam.save(self.lambda_keras)
        lam.save(self.lambda_h5)
        rng = np.random.default_rng(0)
        self.y = np.arange(N) % len(CLASSES)
        centres = rng.normal(scale=3.0, size=(len(CLASSES), D))
        self.x = (centres[self.y] + rng.normal(scale=0.5, size=(N, D))).astype(np.float32)


@dataclass(frozen=True)
class BadInput:
    """One bad project.

    Attributes
    ----------
    name : str
        The project folder's name, and the test id.
    doc : str
        What is wrong, in a sentence.
    make : callable(folder: Path, assets: Assets)
        Writes the project's files into ``folder`` (which exists and is empty).
    error : type
        The :class:`~engine.errors.InspectorError` subclass expected.
    match : str
        A regex the message must match (``re.search``): it names the file, layer or value at fault.
    stage : {"info", "propagate", "reduce"}
        The first stage that must fail; those before it must succeed.
    layer : str, optional
        The layer asked for at ``propagate`` and ``reduce`` (default: ``bottleneck``, which exists). A case whose
        layer comes from the command line has no dashboard counterpart: there the layer is picked from the model's
        own list.
    kind : str
        The group the case belongs to, for the counts.
    """

    name: str
    doc: str
    make: Callable[[Path, Assets], None]
    error: type[InspectorError]
    match: str
    stage: str = "info"
    layer: str | None = None
    kind: str = ""

    @property
    def layer_asked(self) -> str:
        return self.layer or LAYER


# -- writers ------------------------------------------------------------------------------------------------------


def _copy(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())


def _model(folder: Path, a: Assets, suffix: str = ".keras") -> None:
    _copy(a.keras_model if suffix == ".keras" else a.h5_model, folder / f"model{suffix}")


def _toml(folder: Path, text: str) -> None:
    (folder / "project.toml").write_text(text)


def _with_inputs(filename: str, write: Callable[[Path], None], *, key: str | None = None):
    """A project: the good model, inputs in ``filename`` written by ``write``, named in the manifest."""

    def make(folder: Path, a: Assets) -> None:
        _model(folder, a)
        write(folder / filename)
        _toml(folder, f'model = "model.keras"\ninputs = "{filename}"\n' + (f'inputs_key = "{key}"\n' if key else ""))

    return make


def _with_labels(labels, manifest: str = "", write: Callable[[Path], None] | None = None):
    """A project: the good model and inputs, with bad ``labels`` (or a labels file written by ``write``)."""

    def make(folder: Path, a: Assets) -> None:
        _model(folder, a)
        np.save(folder / "x.npy", a.x)
        if write is not None:
            write(folder / "y.npy")
        else:
            np.save(folder / "y.npy", labels)
        if manifest:
            _toml(folder, manifest)

    return make


def _with_x(x, manifest: str = ""):
    """A project: the good model and labels, with inputs ``x`` in ``x.npy`` (labels only when they fit)."""

    def make(folder: Path, a: Assets) -> None:
        _model(folder, a)
        np.save(folder / "x.npy", x)
        if manifest:
            _toml(folder, manifest)

    return make


def _with_manifest(text: str):
    """A project: the good model, inputs and labels, and ``text`` as its project.toml."""

    def make(folder: Path, a: Assets) -> None:
        _model(folder, a)
        np.save(folder / "x.npy", a.x)
        np.save(folder / "y.npy", a.y)
        (folder / "project.toml").write_bytes(text.encode() if isinstance(text, str) else text)

    return make


def _bytes_of(write: Callable[[Path], None], path: Path) -> bytes:
    write(path)
    data = path.read_bytes()
    path.unlink()
    return data


def _truncated(write: Callable[[Path], None], keep: float | int):
    """``write``, then cut the file to ``keep`` bytes (an int) or that fraction of its length (a float)."""

    def how(path: Path) -> None:
        data = _bytes_of(write, path)
        n = keep if isinstance(keep, int) else int(len(data) * keep)
        path.write_bytes(data[:n])

    return how


def _garbage(prefix: bytes = b"", size: int = 600, seed: int = 0):
    def how(path: Path) -> None:
        path.write_bytes(prefix + np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())

    return how


def _h5(**arrays):
    def how(path: Path) -> None:
        import h5py

        with h5py.File(path, "w") as f:
            for name, value in arrays.items():
                if value is None:
                    f.create_group(name)
                else:
                    f[name] = value

    return how


def _mat(**arrays):
    def how(path: Path) -> None:
        import scipy.io

        scipy.io.savemat(path, arrays)

    return how


def _mat_zeroed_data_tag(path: Path) -> None:
    """A MAT v5 file whose matrix has its data element's tag zeroed (type 0, 0 bytes). SciPy's compiled reader
    (scipy 1.17) dies of a segmentation fault on it: read in the test process itself, it would kill pytest."""
    _mat(x=SMALL)(path)
    data = bytearray(path.read_bytes())
    tag = struct.pack("<II", 7, SMALL.nbytes)  # miSINGLE, the array's size in bytes
    assert data.count(tag) == 1, "the layout of SciPy's MAT writer changed"
    at = data.index(tag)
    data[at : at + 8] = bytes(8)
    path.write_bytes(bytes(data))


def _npz(**arrays):
    return lambda path: np.savez(path, **arrays)


def _text(text: str):
    return lambda path: path.write_text(text)


def _csv_rows(x) -> str:
    return "\n".join(",".join(f"{v:.6g}" for v in row) for row in x) + "\n"


def _model_bytes(transform: Callable[[bytes], bytes], suffix: str = ".keras", name: str = "model"):
    def make(folder: Path, a: Assets) -> None:
        src = a.keras_model if suffix == ".keras" else a.h5_model
        (folder / f"{name}{suffix}").write_bytes(transform(src.read_bytes()))
        np.save(folder / "x.npy", a.x)

    return make


def _hostile_keras(folder: Path, a: Assets) -> None:
    """A .keras file whose config names ``os.system`` as the class of a layer: the classic deserialization attack."""

    def point_at_os(obj):
        if isinstance(obj, dict):
            if obj.get("class_name") == "Dense":
                obj.update(module="os", class_name="system", registered_name=None)
            for value in obj.values():
                point_at_os(value)
        elif isinstance(obj, list):
            for value in obj:
                point_at_os(value)

    with zipfile.ZipFile(a.keras_model) as src, zipfile.ZipFile(folder / "model.keras", "w") as dst:
        for member in src.namelist():
            data = src.read(member)
            if member == "config.json":
                config = json.loads(data)
                point_at_os(config)
                data = json.dumps(config).encode()
            dst.writestr(member, data)
    np.save(folder / "x.npy", a.x)


def _lambda(suffix: str):
    def make(folder: Path, a: Assets) -> None:
        _copy(a.lambda_keras if suffix == ".keras" else a.lambda_h5, folder / f"model{suffix}")
        np.save(folder / "x.npy", a.x)

    return make


def _nan_at(x, row: int, col: int, value: float):
    x = np.array(x, copy=True)
    x[row, col] = value
    return x


def _no_model(folder: Path, a: Assets) -> None:
    np.save(folder / "x.npy", a.x)
    _toml(folder, 'title = "data without a model"\n')


def _two_models(folder: Path, a: Assets) -> None:
    _model(folder, a, ".keras")
    _model(folder, a, ".h5")
    np.save(folder / "x.npy", a.x)


def _two_inputs(folder: Path, a: Assets) -> None:
    _model(folder, a)
    np.save(folder / "x.npy", a.x)
    (folder / "data.csv").write_text(_csv_rows(a.x))


def _npz_several(folder: Path, a: Assets) -> None:
    _model(folder, a)
    np.savez(folder / "data.npz", first=a.x, second=a.x)


def _inputs_missing(folder: Path, a: Assets) -> None:
    _model(folder, a)
    _toml(folder, 'inputs = "x.npy"\n')


def _model_is_data(folder: Path, a: Assets) -> None:
    np.save(folder / "x.npy", a.x)
    np.save(folder / "weights.npy", a.x[:4])
    _toml(folder, 'model = "weights.npy"\n')


def _zip_member_cut(data: bytes, member: str) -> bytes:
    """A zip archive (as bytes) with ``member`` rewritten to its first half: a valid zip holding a broken file."""
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            content = src.read(name)
            dst.writestr(name, content[: len(content) // 2] if name == member else content)
    return out.getvalue()


def _model_missing(folder: Path, a: Assets) -> None:
    np.save(folder / "x.npy", a.x)
    _toml(folder, 'model = "missing.h5"\n')


def _h5_data_as_model(folder: Path, a: Assets) -> None:
    _h5(weights=a.x)(folder / "model.h5")
    np.save(folder / "x.npy", a.x)


def _flip(data: bytes, start: int, stop: int) -> bytes:
    """The bytes with ``[start:stop)`` inverted (every bit flipped)."""
    middle = bytes(b ^ 0xFF for b in data[start:stop])
    return data[:start] + middle + data[stop:]


# -- the corpus ---------------------------------------------------------------------------------------------------

def _x_of(fn):
    """A make that derives its inputs from the good ones: ``fn(a.x)`` saved as ``x.npy`` with the good model."""

    def make(folder: Path, a: Assets) -> None:
        _model(folder, a)
        np.save(folder / "x.npy", fn(a.x))
        _toml(folder, f'default_layer = "{LAYER}"\n')

    return make


def _x_text(filename: str, fn):
    """Like :func:`_x_of` for a text format: ``fn(a.x)`` is the file's text."""

    def make(folder: Path, a: Assets) -> None:
        _model(folder, a)
        (folder / filename).write_text(fn(a.x))
        _toml(folder, f'inputs = "{filename}"\n')

    return make


SMALL = np.arange(2 * D, dtype=np.float32).reshape(2, D)  # a tiny valid array, for formats that need content

CASES: list[BadInput] = [
    # -- .npy ---------------------------------------------------------------------------------------------------
    BadInput("npy_truncated_header", ".npy cut inside its header",
             _with_inputs("x.npy", _truncated(lambda p: np.save(p, SMALL), 60)), DataError,
             r"x\.npy: cannot read \.npy file", kind="npy"),
    BadInput("npy_truncated_data", ".npy with a whole header and half its data", _with_inputs(
        "x.npy", _truncated(lambda p: np.save(p, np.ones((N, D), np.float32)), 0.6)), DataError,
        r"x\.npy: cannot read \.npy file", kind="npy"),
    BadInput("npy_garbage", "random bytes named .npy", _with_inputs("x.npy", _garbage()), DataError,
             r"x\.npy: cannot read \.npy file", kind="npy"),
    BadInput("npy_text", ".npy of strings", _with_inputs("x.npy", lambda p: np.save(p, np.array([["a", "b"]]))),
             DataError, r"x\.npy: holds <U1 values; expected numbers", kind="npy"),
    BadInput("npy_pickled_objects", ".npy of Python objects (a pickle: refused, never unpickled)", _with_inputs(
        "x.npy", lambda p: np.save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)), DataError,
        r"x\.npy: cannot read \.npy file \(ValueError: Object arrays cannot be loaded when allow_pickle=False",
        kind="npy"),
    # -- .npz ---------------------------------------------------------------------------------------------------
    BadInput("npz_truncated", ".npz cut in half", _with_inputs("x.npz", _truncated(_npz(x=SMALL), 0.5)), DataError,
             r"x\.npz: cannot read \.npz file", kind="npz"),
    BadInput("npz_garbage", "a zip signature then random bytes, named .npz",
             _with_inputs("x.npz", _garbage(b"PK\x03\x04")), DataError, r"x\.npz: cannot read \.npz file",
             kind="npz"),
    BadInput("npz_empty", ".npz holding no arrays", _with_inputs("x.npz", _npz()), DataError,
             r"x\.npz: the file holds no arrays", kind="npz"),
    BadInput("npz_wrong_key", "inputs_key names an array the .npz does not hold",
             _with_inputs("x.npz", _npz(x=SMALL), key="images"), DataError,
             r"x\.npz: no array named 'images'; the file holds: 'x'", kind="npz"),
    BadInput("npz_several_arrays", ".npz of two arrays, neither named like inputs, no inputs_key", _npz_several,
             DataError, r"data\.npz: holds several arrays \('first', 'second'\); say which one", kind="npz"),
    # -- .csv ---------------------------------------------------------------------------------------------------
    BadInput("csv_empty", "an empty .csv", _with_inputs("x.csv", _text("")), DataError,
             r"x\.csv: empty CSV file; expected rows of numbers", kind="csv"),
    BadInput("csv_header_only", "a .csv with a header and no rows", _with_inputs("x.csv", _text("a,b,c\n")),
             DataError, r"x\.csv: CSV has a header but no data rows", kind="csv"),
    BadInput("csv_ragged", "a .csv whose third line lacks a cell",
             _x_text("x.csv", lambda x: _csv_rows(x[:2]) + ",".join(["1"] * (D - 1)) + "\n"), DataError,
             rf"x\.csv: ragged CSV: line 3 has {D - 1} columns, expected {D}", kind="csv"),
    BadInput("csv_text_cell", "a .csv with a word among the numbers",
             _x_text("x.csv", lambda x: _csv_rows(x[:1]) + "1,2,3,4,oops" + ",0" * (D - 5) + "\n"), DataError,
             r"x\.csv: line 2, column 5: 'oops' is not a number", kind="csv"),
    BadInput("csv_not_utf8", "a .csv of Latin-1 bytes that are not UTF-8",
             _with_inputs("x.csv", lambda p: p.write_bytes("1,2\n\xe9t\xe9,3\n".encode("latin-1"))), DataError,
             r"x\.csv: cannot read \.csv file \(UnicodeDecodeError", kind="csv"),
    BadInput("csv_nan", "a .csv with a 'nan' cell (parsed as a number, refused as not finite)",
             _x_text("x.csv", lambda x: _csv_rows(x[:3]) + "nan" + ",1" * (D - 1) + "\n"), DataError,
             r"x\.csv: inputs contain NaN \(first at sample 3\); expected finite numbers", kind="csv"),
    # -- .json --------------------------------------------------------------------------------------------------
    BadInput("json_invalid", "JSON cut in the middle", _with_inputs("x.json", _text('{"x": [[1, 2], [3')), DataError,
             r"x\.json: invalid JSON \(line 1, column \d+", kind="json"),
    BadInput("json_ragged", "JSON rows of different lengths", _with_inputs("x.json", _text("[[1, 2, 3], [4, 5]]")),
             DataError, r"x\.json: JSON arrays are ragged", kind="json"),
    BadInput("json_text", "JSON of strings", _with_inputs("x.json", _text('[["a", "b"], ["c", "d"]]')), DataError,
             r"x\.json: JSON holds text where numbers were expected", kind="json"),
    BadInput("json_scalar", "JSON holding one number", _with_inputs("x.json", _text("3.5")), DataError,
             r"x\.json: holds a single scalar; expected an array of samples", kind="json"),
    BadInput("json_flat_list", "JSON holding a flat list: one dimension, no samples axis",
             _with_inputs("x.json", _text("[1, 2, 3]")), DataError,
             r"x\.json: inputs have shape \(3,\); expected \(samples, features", kind="json"),
    BadInput("json_objects", "JSON of objects where arrays were expected (wrong shape)",
             _with_inputs("x.json", _text('[{"a": 1}, {"a": 2}]')), DataError,
             r"x\.json: JSON arrays are ragged or mixed", kind="json"),
    BadInput("json_several_keys", "a JSON object of two arrays and no inputs_key",
             _with_inputs("x.json", _text('{"x": [[1]], "y": [0]}')), DataError,
             r"x\.json: holds several arrays \('x', 'y'\)", kind="json"),
    # -- .mat ---------------------------------------------------------------------------------------------------
    BadInput("mat_garbage", "a MATLAB header then random bytes",
             _with_inputs("x.mat", _garbage(b"MATLAB 5.0 MAT-file, Platform: GLNXA64".ljust(116) + bytes(8) +
                                            b"\x00\x01IM")), DataError, r"x\.mat: cannot read \.mat file",
             kind="mat"),
    BadInput("mat_truncated", "a MATLAB v5 file cut in half", _with_inputs("x.mat", _truncated(_mat(x=SMALL), 0.5)),
             DataError, r"x\.mat: cannot read \.mat file", kind="mat"),
    BadInput("mat_v73_truncated", "a MATLAB v7.3 (HDF5) file cut after its superblock",
             _with_inputs("x.mat", _truncated(_h5(x=np.ones((N, D))), 1200)), DataError,
             r"x\.mat: cannot read \.mat file", kind="mat"),
    BadInput("mat_crashes_scipy", "a MAT v5 file on which SciPy's reader segfaults (a zeroed data tag)",
             _with_inputs("x.mat", _mat_zeroed_data_tag), DataError,
             r"x\.mat: cannot read \.mat file \(SciPy's MAT reader crashed on it, signal 11", kind="mat"),
    BadInput("mat_text", "a MATLAB file holding a string", _with_inputs("x.mat", _mat(x="not numbers")), DataError,
             r"x\.mat: holds <U11 values; expected numbers", kind="mat"),
    # -- .h5 data -----------------------------------------------------------------------------------------------
    BadInput("h5_data_truncated", "an HDF5 data file cut in half",
             _with_inputs("x.h5", _truncated(_h5(x=np.ones((N, D))), 0.5)), DataError,
             r"x\.h5: cannot read \.h5 file", kind="h5 data"),
    BadInput("h5_data_garbage", "random bytes named .h5, given as inputs", _with_inputs("x.h5", _garbage()),
             DataError, r"x\.h5: cannot read \.h5 file", kind="h5 data"),
    BadInput("h5_data_no_arrays", "an HDF5 file holding only an empty group",
             _with_inputs("x.h5", _h5(empty=None)), DataError, r"x\.h5: the file holds no arrays", kind="h5 data"),
    BadInput("h5_data_bytes", "an HDF5 dataset of byte strings",
             _with_inputs("x.h5", _h5(x=np.array([b"ab", b"cd"]))), DataError, r"x\.h5: holds \|S2 values",
             kind="h5 data"),
    # -- files and folders --------------------------------------------------------------------------------------
    BadInput("unsupported_format", "inputs in a .txt file", _with_inputs("x.txt", _text("1,2\n")), DataError,
             r"x\.txt: unsupported file type '\.txt'; expected one of \.npy", kind="folder"),
    BadInput("inputs_missing", "the manifest names an inputs file that is not there", _inputs_missing, ProjectError,
             r"inputs_missing: inputs file 'x\.npy' does not exist", kind="folder"),
    BadInput("inputs_ambiguous", "two data files and no manifest to say which holds the inputs", _two_inputs,
             ProjectError, r"inputs_ambiguous: cannot tell which file holds the inputs \(data\.csv, x\.npy\)",
             kind="folder"),
    BadInput("no_model", "a project folder with a manifest and data but no model", _no_model, ProjectError,
             r"no_model: no model file \(\.keras or \.h5\) in the project folder", kind="folder"),
    BadInput("two_models", "two model files and no manifest to say which", _two_models, ProjectError,
             r"two_models: several model files \(model\.h5, model\.keras\); name one", kind="folder"),
    BadInput("model_missing", "the manifest names a model file that is not there", _model_missing, ProjectError,
             r"model_missing: model file 'missing\.h5' does not exist", kind="folder"),
    # -- values -------------------------------------------------------------------------------------------------
    BadInput("inputs_nan", "a NaN in the inputs", _x_of(lambda x: _nan_at(x, 7, 3, np.nan)), DataError,
             r"x\.npy: inputs contain NaN \(first at sample 7\)", kind="values"),
    BadInput("inputs_inf", "an inf in the inputs", _x_of(lambda x: _nan_at(x, 12, 0, np.inf)), DataError,
             r"x\.npy: inputs contain inf \(first at sample 12\)", kind="values"),
    BadInput("inputs_minus_inf", "a -inf in the inputs", _x_of(lambda x: _nan_at(x, 39, 11, -np.inf)), DataError,
             r"x\.npy: inputs contain inf \(first at sample 39\)", kind="values"),
    BadInput("zero_samples", "inputs of shape (0, 12)", _with_x(np.zeros((0, D), np.float32)), DataError,
             r"x\.npy: holds zero samples; expected at least one", kind="values"),
    BadInput("one_sample", "one sample: it propagates, but no 2-D map can be fitted to one point",
             _x_of(lambda x: x[:1]), ReducerError, r"needs at least 3 samples.*got n_samples = 1",
             stage="reduce", kind="values"),
    BadInput("two_samples", "two samples: they propagate, but a map of two points cannot be measured",
             _x_of(lambda x: x[:2]), ReducerError, r"needs at least 3 samples.*got n_samples = 2",
             stage="reduce", kind="values"),
    BadInput("inputs_one_dimensional", "inputs of shape (12,): no samples axis", _with_x(np.zeros(D, np.float32)),
             DataError, r"x\.npy: inputs have shape \(12,\); expected \(samples, features", kind="values"),
    BadInput("inputs_complex", "complex-valued inputs", _with_x(np.ones((N, D), np.complex64)), DataError,
             r"x\.npy: holds complex64 values; expected numbers", kind="values"),
    # -- labels -------------------------------------------------------------------------------------------------
    BadInput("labels_too_few", "one label short", _with_labels(np.arange(N - 1) % 3), DataError,
             rf"y\.npy: {N - 1} labels for {N} input samples; expected one label per sample", kind="labels"),
    BadInput("labels_too_many", "ten labels too many", _with_labels(np.arange(N + 10) % 3), DataError,
             rf"y\.npy: {N + 10} labels for {N} input samples", kind="labels"),
    BadInput("labels_fractional", "labels 0.5, 1.5, ...", _with_labels(np.arange(N) % 3 + 0.5), DataError,
             r"y\.npy: labels must be whole numbers \(class codes\)", kind="labels"),
    BadInput("labels_nan", "a NaN label", _with_labels(np.where(np.arange(N) == 5, np.nan, np.arange(N) % 3)),
             DataError, r"y\.npy: labels must be whole numbers \(class codes\), found fractions or NaN",
             kind="labels"),
    BadInput("labels_negative", "a label of -1", _with_labels(np.where(np.arange(N) == 9, -1, np.arange(N) % 3)),
             DataError, r"y\.npy: negative label -1; expected class codes 0\.\.K-1", kind="labels"),
    BadInput("labels_without_name", "label 3 where class_names lists three classes",
             _with_labels(np.arange(N) % 4, 'class_names = ["a", "b", "c"]\n'), DataError,
             r"y\.npy: label 3 has no name; class_names lists 3 classes", kind="labels"),
    BadInput("labels_no_columns", "labels of shape (40, 0)", _with_labels(np.zeros((N, 0))), DataError,
             rf"y\.npy: labels have shape \({N}, 0\); expected one class code per sample", kind="labels"),
    BadInput("labels_truncated", "a labels .npy cut in half",
             _with_labels(None, write=_truncated(lambda p: np.save(p, np.arange(N)), 0.5)), DataError,
             r"y\.npy: cannot read \.npy file", kind="labels"),
    BadInput("labels_text", "labels as strings (class names belong in class_names)",
             _with_labels(np.array(list("abcd") * (N // 4))), DataError, r"y\.npy: holds <U1 values; expected numbers",
             kind="labels"),
    # -- model files --------------------------------------------------------------------------------------------
    BadInput("model_h5_truncated", "an .h5 model cut in half", _model_bytes(lambda b: b[: len(b) // 2], ".h5"),
             ModelError, r"model\.h5: cannot load the model", kind="model"),
    BadInput("model_h5_corrupt", "an .h5 model with 2 KiB of its middle inverted",
             _model_bytes(lambda b: _flip(b, len(b) // 3, len(b) // 3 + 2048), ".h5"), ModelError,
             r"model\.h5: cannot load the model", kind="model"),
    BadInput("model_h5_garbage", "random bytes named .h5, as the model",
             _model_bytes(lambda b: np.random.default_rng(1).bytes(len(b)), ".h5"), ModelError,
             r"model\.h5: cannot load the model: not an HDF5 file, which an \.h5 model is", kind="model"),
    BadInput("model_h5_not_a_model", "an HDF5 file of data named model.h5", _h5_data_as_model, ModelError,
             r"model\.h5: cannot load the model", kind="model"),
    BadInput("model_keras_truncated", "a .keras model cut in half", _model_bytes(lambda b: b[: len(b) // 2]),
             ModelError, r"model\.keras: cannot load the model: not a zip archive, which a \.keras model is",
             kind="model"),
    BadInput("model_keras_garbage", "random bytes named .keras",
             _model_bytes(lambda b: np.random.default_rng(2).bytes(len(b))), ModelError,
             r"model\.keras: cannot load the model: not a zip archive", kind="model"),
    BadInput("model_keras_corrupt_member", "a .keras zip whose weights member is cut short",
             _model_bytes(lambda b: _zip_member_cut(b, "model.weights.h5")), ModelError,
             r"model\.keras: cannot load the model", kind="model"),
    BadInput("model_is_data", "the manifest names a .npy file as the model", _model_is_data, ModelError,
             r"weights\.npy: not a model file this tool reads; expected one of: Keras \.keras, \.h5.*PyTorch "
             r"\.pt2.*ONNX \.onnx", kind="model"),
    BadInput("model_lambda_keras", "a .keras model with a Lambda layer and no trust_model", _lambda(".keras"),
             ModelError, r"model\.keras: Lambda layer\(s\) 'doubled' hold Python bytecode.* set trust_model = "
             r"true.*lambdas = ",
             kind="model"),
    BadInput("model_lambda_h5", "an .h5 model with a Lambda layer and no trust_model", _lambda(".h5"), ModelError,
             r"model\.h5: Lambda layer\(s\) 'doubled' hold Python bytecode.* set trust_model = true.*lambdas = ",
             kind="model"),
    BadInput("model_names_os_system", "a .keras config naming os.system as a layer class", _hostile_keras,
             ModelError, r"model\.keras: the model uses a layer class 'system' \(layer 'enc'\) that is not "
             r"registered", kind="model"),
    BadInput("model_input_mismatch", "inputs of 7 features for a model of 12",
             _x_of(lambda x: x[:, :7]), ModelError,
             r"model 'model\.keras' expects samples of shape \(12,\) \(12 values\); the data's samples have "
             r"shape \(7,\)", stage="propagate", kind="model"),
    # -- layers -------------------------------------------------------------------------------------------------
    BadInput("default_layer_missing", "the manifest's default_layer is not a layer of the model",
             _with_manifest('default_layer = "bottlenek"\n'), ProjectError,
             r"project\.toml: default_layer = 'bottlenek' is not a layer of the model model\.keras; layers where "
             r"it can be cut: .*bottleneck", kind="layer"),
    BadInput("layer_missing", "a layer asked for by name that the model does not have",
             _with_manifest(""), CutError, r"model 'model\.keras' has no layer 'decoder'", stage="propagate",
             layer="decoder", kind="layer"),
    # -- manifests ----------------------------------------------------------------------------------------------
    BadInput("manifest_unknown_key", "a key the manifest does not know", _with_manifest('colour = "red"\n'),
             ProjectError, r"project\.toml: unknown key\(s\) 'colour'; known keys: title", kind="manifest"),
    BadInput("manifest_bool_as_text", 'trust_model = "yes"', _with_manifest('trust_model = "yes"\n'), ProjectError,
             r"project\.toml: trust_model must be a bool, got str 'yes'", kind="manifest"),
    BadInput("manifest_title_number", "title = 3", _with_manifest("title = 3\n"), ProjectError,
             r"project\.toml: title must be a str, got int 3", kind="manifest"),
    BadInput("manifest_class_names_number", "class_names = 3", _with_manifest("class_names = 3\n"), ProjectError,
             r"project\.toml: class_names must be a list, got int 3", kind="manifest"),
    BadInput("manifest_class_names_tables", "class_names holding tables",
             _with_manifest("class_names = [{a = 1}]\n"), ProjectError,
             r"project\.toml: class_names must be a list of strings", kind="manifest"),
    BadInput("manifest_not_toml", "a manifest that is not TOML", _with_manifest("this is = not toml [\n"),
             ProjectError, r"project\.toml: not valid TOML", kind="manifest"),
    BadInput("manifest_not_utf8", "a manifest in Latin-1", _with_manifest('title = "caf\xe9"\n'.encode("latin-1")),
             ProjectError, r"project\.toml: not valid TOML", kind="manifest"),
    BadInput("manifest_view_kind", "an input_view kind that does not exist",
             _with_manifest('[input_view]\nkind = "hologram"\n'), ProjectError,
             r"project\.toml: \[input_view\] kind = 'hologram'; expected one of image, series", kind="manifest"),
    BadInput("manifest_view_shape", "an image shape of one dimension",
             _with_manifest('[output_view]\nkind = "image"\nshape = [28]\n'), ProjectError,
             r"project\.toml: \[output_view\] an image shape is \[H, W\] or \[H, W, C\], got \[28\]",
             kind="manifest"),
    BadInput("manifest_view_negative", "an image shape with a negative size",
             _with_manifest('[input_view]\nkind = "image"\nshape = [-3, 4]\n'), ProjectError,
             r"project\.toml: \[input_view\] shape = \[-3, 4\]; expected a list of positive integers",
             kind="manifest"),
    BadInput("manifest_view_unknown_key", "an unknown key in a view table",
             _with_manifest('[output_view]\nsize = 3\n'), ProjectError,
             r"project\.toml: \[output_view\] has unknown key\(s\) 'size'", kind="manifest"),
    BadInput("manifest_view_not_table", "input_view given as a string", _with_manifest('input_view = "image"\n'),
             ProjectError, r"project\.toml: input_view must be a dict, got str 'image'", kind="manifest"),
    BadInput("manifest_inputs_empty", 'inputs = ""', _with_manifest('inputs = ""\n'), ProjectError,
             r"project\.toml: inputs = '' must be a file name inside the project folder", kind="manifest"),
    BadInput("manifest_inputs_list", 'inputs given as a list', _with_manifest('inputs = ["x.npy"]\n'), ProjectError,
             r"project\.toml: inputs must be a str, got list \['x\.npy'\]", kind="manifest"),
]

CASES_BY_NAME = {case.name: case for case in CASES}
assert len(CASES_BY_NAME) == len(CASES), "case names must be unique"
assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", case.name) for case in CASES), "names are folder names"


# -- building and running -----------------------------------------------------------------------------------------


def write_good(root: Path, a: Assets) -> Path:
    """The good project: labelled inputs, the good model, default layer ``bottleneck``."""
    folder = root / GOOD
    folder.mkdir(parents=True)
    _model(folder, a)
    np.save(folder / "x.npy", a.x)
    np.save(folder / "y.npy", a.y)
    _toml(folder, f'title = "Good"\ndefault_layer = "{LAYER}"\nclass_names = ["a", "b", "c"]\n')
    return folder


def build_corpus(root: Path, assets: Assets, cases=CASES) -> Path:
    """Write the good project and every case's project folder under ``root``; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    write_good(root, assets)
    for case in cases:
        folder = root / case.name
        folder.mkdir()
        case.make(folder, assets)
    return root


def run_stage(stage: str, name: str, root, cache_dir, layer: str = LAYER):
    """Run one stage on project ``name`` through the engine, as the CLI command of that name does.

    Returns what the stage produced (the layers, the activations, the inspection); raises what the engine raises.
    """
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection
    from engine.model import list_layers
    from engine.propagate import activations

    project = load_project(name, root)
    if stage == "info":
        project.inputs()
        project.labels()
        return list_layers(project.model())
    if stage == "propagate":
        return activations(project, layer, cache_dir=cache_dir)
    if stage == "reduce":
        inspection = Inspection(project, layer, cache_dir=cache_dir)
        inspection.quality  # noqa: B018  (the report `reduce` prints)
        return inspection
    raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")


def cli_args(case: BadInput, root, cache_dir, out_dir) -> list[str]:
    """The ``latent-inspector`` arguments that run the case's failing stage."""
    args = ["--root", str(root), "--cache-dir", str(cache_dir), case.stage, case.name]
    if case.stage != "info":
        args += ["--layer", case.layer_asked]
    if case.stage == "reduce":
        args += ["-o", str(Path(out_dir) / f"{case.name}.npz")]
    return args


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: file content hashes, symlink targets and folders, by relative path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
