"""Property-based fuzzing (Hypothesis) of the file readers and the manifest parser.

Whatever the bytes or the manifest, reading either succeeds or raises one of our typed errors
(:class:`~engine.errors.InspectorError` subclasses); any other exception is a bug, and Hypothesis shrinks it to a
minimal file. Inputs: random bytes under every supported suffix, valid files of every format truncated, flipped
and spliced, random CSV and JSON text, random TOML-like manifests and random manifests of well-formed TOML with
values of every type, including paths that try to leave the project folder.

The runs are derandomized (the same examples on every run, so CI is reproducible) and sized to take well under a
minute together; ``--hypothesis-show-statistics`` prints the number of examples each test ran.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.data import formats
from engine.data.manifest import MANIFEST_KEYS, VIEW_KEYS
from engine.data.project import load_project
from engine.errors import InspectorError

FUZZ = settings(deadline=None, derandomize=True, database=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A scratch folder reused by every example (Hypothesis runs many examples per test call)."""
    return tmp_path_factory.mktemp("fuzz")


def _read(path: Path, key=None):
    """Read ``path`` the way a project does: the array, then its keys; only typed errors may escape."""
    try:
        arr = formats.read_array(path, key)
    except InspectorError as exc:
        event(f"read: {type(exc).__name__}")
        arr = None
    else:
        event("read: an array")
        assert isinstance(arr, np.ndarray) and arr.ndim >= 1 and arr.dtype.kind in "biuf"
        try:
            formats.check_finite(arr, path)
        except InspectorError:
            pass
    try:
        keys = formats.list_keys(path)
    except InspectorError:
        return arr
    assert isinstance(keys, list) and all(isinstance(k, str) for k in keys)
    return arr


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- random bytes -------------------------------------------------------------------------------------------------


#: Suffixes read in this process; ``.mat`` files up to v7 are read in a child process and fuzzed on their own below.
IN_PROCESS = tuple(s for s in formats.READABLE if s != ".mat")


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(IN_PROCESS),
       key=st.one_of(st.none(), st.sampled_from(["x", "data", "", "#refs#", "a/b"])))
def test_random_bytes_under_every_suffix(work, data, suffix, key):
    _read(_write(work / f"random{suffix}", data), key)


@FUZZ
@given(suffix=st.sampled_from([".npy", ".npz", ".h5"]), body=st.binary(max_size=1024))
def test_a_valid_signature_then_random_bytes(work, suffix, body):
    """Past the first check: each format's magic bytes, then noise."""
    magic = {".npy": b"\x93NUMPY\x01\x00", ".npz": b"PK\x03\x04", ".h5": b"\x89HDF\r\n\x1a\n"}[suffix]
    _read(_write(work / f"magic{suffix}", magic + body))


# -- mutated valid files ------------------------------------------------------------------------------------------

X = (np.arange(60, dtype=np.float32).reshape(12, 5) - 20) / 3


def _valid_files() -> dict[str, bytes]:
    """One valid file of each format holding X (and labels where a container can hold two arrays)."""
    out = {}

    def grab(suffix, write):
        buf = io.BytesIO()
        write(buf)
        out[suffix] = buf.getvalue()

    grab(".npy", lambda b: np.save(b, X))
    grab(".npz", lambda b: np.savez(b, x=X, y=np.arange(12)))
    grab(".npz-compressed", lambda b: np.savez_compressed(b, x=X, y=np.arange(12)))
    grab(".mat", lambda b: scipy.io.savemat(b, {"x": X, "y": np.arange(12)}))
    grab(".mat-compressed", lambda b: scipy.io.savemat(b, {"x": X}, do_compression=True))

    def h5(b):
        with h5py.File(b, "w") as f:
            f["group/x"] = X
            f["y"] = np.arange(12)
    grab(".h5", h5)

    def h5_chunked(b):
        with h5py.File(b, "w") as f:
            f.create_dataset("x", data=X, chunks=(4, 5), compression="gzip")
    grab(".h5-chunked", h5_chunked)
    out[".csv"] = "\n".join(",".join(f"{v:.6g}" for v in row) for row in X).encode()
    out[".json"] = json.dumps({"x": X.tolist(), "y": list(range(12))}).encode()
    return out


VALID = _valid_files()


@st.composite
def mutated(draw, kinds=None):
    kind = draw(st.sampled_from(sorted(kinds or VALID)))
    data = bytearray(VALID[kind])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "splice", "zero"]))
        n = len(data)
        if n == 0:
            break
        at = draw(st.integers(0, n - 1))
        if op == "truncate":
            del data[at:]
        elif op == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif op == "zero":
            end = min(n, at + draw(st.integers(1, 64)))
            data[at:end] = bytes(end - at)
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
    return kind.split("-")[0], bytes(data)


@settings(FUZZ, max_examples=1000)
@given(case=mutated([k for k in VALID if not k.startswith(".mat")]), key=st.sampled_from([None, "x", "group/x"]))
def test_mutated_valid_files(work, case, key):
    suffix, data = case
    _read(_write(work / f"mutated{suffix}", data), key)


MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: GLNXA64".ljust(116) + bytes(8) + b"\x00\x01IM"


@settings(FUZZ, max_examples=25)
@given(data=st.one_of(mutated([".mat", ".mat-compressed"]).map(lambda case: case[1]),
                      st.binary(max_size=512).map(lambda body: MAT_HEADER + body), st.binary(max_size=512)),
       key=st.sampled_from([None, "x"]))
def test_mutated_and_random_mat_files(work, data, key):
    """MAT files: each example starts a child process (SciPy's reader can crash on them: see engine.data.formats), so
    fewer examples; about 1 in 100 mutations of a valid file crashes SciPy 1.17's reader."""
    _read(_write(work / "fuzzed.mat", data), key)


def test_the_valid_files_read_back(work):
    """The seeds of the mutations are themselves readable: the fuzzing starts from real files."""
    for kind, data in VALID.items():
        suffix = kind.split("-")[0]
        key = {".npz": "x", ".mat": "x", ".h5": "group/x" if kind == ".h5" else "x", ".json": "x"}.get(suffix)
        path = _write(work / f"valid{suffix}", data)
        np.testing.assert_allclose(formats.read_array(path, key), X, rtol=1e-5, err_msg=kind)
        expected = {".npz": ["x", "y"], ".mat": ["x", "y"] if kind == ".mat" else ["x"], ".json": ["x", "y"],
                    ".h5": ["group/x", "y"] if kind == ".h5" else ["x"]}.get(suffix, [])
        assert formats.list_keys(path) == expected, kind


# -- text formats -------------------------------------------------------------------------------------------------

CSV_CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e999", "0x10", "1_000", "+-1", "1,5", '"1"', '"a,b"', "abc",
                     "\x00", "\ufeff1", "١٢٣"]),
    st.text(max_size=6),
)


@FUZZ
@given(rows=st.lists(st.lists(CSV_CELLS, max_size=6), max_size=8),
       sep=st.sampled_from([",", ";", "\t"]), newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_random_csv(work, rows, sep, newline):
    text = newline.join(sep.join(row) for row in rows)
    arr = _read(_write(work / "random.csv", text.encode("utf-8", "surrogatepass")))
    if arr is not None:
        assert arr.ndim == 2 and arr.dtype == np.float64


@FUZZ
@given(text=st.text(max_size=300))
def test_random_text_as_csv_and_json(work, text):
    data = text.encode("utf-8", "surrogatepass")
    _read(_write(work / "text.csv", data))
    _read(_write(work / "text.json", data))


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=30,
)


@FUZZ
@given(value=JSON, key=st.one_of(st.none(), st.text(max_size=3)))
def test_random_json(work, value, key):
    _read(_write(work / "random.json", json.dumps(value).encode()), key)


@FUZZ
@given(depth=st.integers(1, 5000))
def test_deeply_nested_json(work, depth):
    _read(_write(work / "deep.json", ("[" * depth + "1" + "]" * depth).encode()))


# -- manifests ----------------------------------------------------------------------------------------------------

#: Values aimed at the path checks: traversal, absolute paths, the home folder, a null byte, a very long name, a
#: link inside the project that points out, and the project's own files.
PATHS = st.sampled_from([
    "x.npy", "y.npy", "model.keras", "project.toml", "hooks.py", "../x.npy", "../../etc/passwd", "/etc/passwd",
    "~/x.npy", "~", ".", "..", "", "sub/../x.npy", "sub/../../x.npy", "x.npy\x00", "a" * 300, "link_out",
    "link_out/x.npy", "dir_link/x.npy", "x.npy/", "./x.npy", "\\..\\x.npy", "%2e%2e/x.npy",
])


def _toml_string(s: str) -> str:
    """A TOML basic string: JSON's escapes, plus the characters TOML wants escaped and JSON leaves alone."""
    body = json.dumps(s, ensure_ascii=False)[1:-1].replace("\x7f", "\\u007f")
    return '"' + "".join(c if not 0xD800 <= ord(c) <= 0xDFFF else "\ufffd" for c in body) + '"'


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


SCALARS = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=8), PATHS)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=10)
VIEW = st.dictionaries(
    st.one_of(st.sampled_from(sorted(VIEW_KEYS)), st.text(max_size=6)),
    st.one_of(st.sampled_from(["image", "series", "vector", "probabilities", "hologram"]),
              st.lists(st.integers(-3, 40), max_size=4), st.lists(st.text(max_size=3), max_size=4), VALUES),
    max_size=4,
)


@st.composite
def manifests(draw):
    """A manifest as a dict: known and unknown keys with values of any type, and maybe view tables."""
    manifest = draw(st.dictionaries(
        st.one_of(st.sampled_from(sorted(MANIFEST_KEYS)), st.text(max_size=8)),
        st.one_of(VALUES, PATHS, st.lists(st.sampled_from(["a", "b", "c"]), max_size=5)),
        max_size=6,
    ))
    for view in ("input_view", "output_view"):
        if draw(st.booleans()):
            manifest[view] = draw(VIEW)
    return manifest


@pytest.fixture(scope="module")
def fuzz_project(work):
    """A projects root with one project folder (model file, inputs, labels, links out) the manifests point at,
    and an ``outside`` folder the links lead to."""
    root = work / "root"
    folder = root / "p"
    (folder / "sub").mkdir(parents=True)
    outside = work / "outside"
    outside.mkdir()
    np.save(outside / "x.npy", X)
    np.save(folder / "x.npy", X)
    np.save(folder / "y.npy", np.arange(12) % 3)
    (folder / "model.keras").write_bytes(b"not read: the manifest is what is fuzzed")
    os.symlink(outside / "x.npy", folder / "link_out")
    os.symlink(outside, folder / "dir_link")
    return root, folder


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _load_manifest(root: Path, folder: Path, toml: bytes) -> None:
    """Write the manifest, load the project and read its data: only typed errors, nothing written anywhere, and a
    project that loads reads only files inside its folder."""
    (folder / "project.toml").write_bytes(toml)
    before = _listing(root.parent)
    try:
        project = load_project("p", root)
    except InspectorError as exc:
        event(f"load: {type(exc).__name__}")
        project = None
    else:
        event("load: a project")
    if project is not None:
        for path in (project.model_path, project.inputs_path, project.labels_path):
            if path is not None:
                assert folder.resolve() in Path(path).resolve().parents, path
        for read in (project.inputs, project.labels, project.label_names):
            try:
                read()
            except InspectorError as exc:
                event(f"{read.__name__}: {type(exc).__name__}")
    assert _listing(root.parent) == before


@settings(FUZZ, max_examples=500)
@given(manifest=manifests())
def test_random_manifests_of_valid_toml(fuzz_project, manifest):
    root, folder = fuzz_project
    lines = [f"{_toml_string(k)} = {_toml_value(v)}" for k, v in manifest.items() if not isinstance(v, dict)]
    tables = [f"[{_toml_string(k)}]\n" + "\n".join(f"{_toml_string(a)} = {_toml_value(b)}" for a, b in v.items())
              for k, v in manifest.items() if isinstance(v, dict)]
    _load_manifest(root, folder, ("\n".join(lines) + "\n" + "\n".join(tables) + "\n").encode())


@FUZZ
@given(manifest=st.dictionaries(st.sampled_from(["model", "inputs", "labels", "inputs_key", "labels_key"]),
                                st.one_of(PATHS, st.text(max_size=12), st.lists(PATHS, max_size=2)), min_size=1))
def test_random_paths_in_manifests(fuzz_project, manifest):
    """The manifest's file names, aimed at the folder's edges: confined, or refused with a typed error."""
    root, folder = fuzz_project
    lines = [f"{_toml_string(k)} = {_toml_value(v)}" for k, v in manifest.items()]
    _load_manifest(root, folder, ("\n".join(lines) + "\n").encode())


TOML_PIECES = st.sampled_from([
    "title", "model", "inputs", "labels", "class_names", "default_layer", "trust_model", "input_view", "[input_view]",
    "[output_view]", "[[input_view]]", "kind", "shape", "channels", " = ", "=", '"', "'", "'''", '"""', "[", "]",
    "{", "}", ",", ".", "\n", "\r\n", "#", "\\", "\\u0000", "\\x", "true", "false", "1", "-1", "1e400", "nan",
    "inf", "1979-05-27T07:32:00Z", "07:32:00", '"image"', '"x.npy"', '"../x.npy"', '"/etc/passwd"', "0x1F", "0b2",
    "\x00", "\ufeff", "é", "\x7f",
])


@settings(FUZZ, max_examples=500)
@given(pieces=st.lists(st.one_of(TOML_PIECES, st.text(max_size=4)), max_size=40))
def test_random_toml_like_text(fuzz_project, pieces):
    root, folder = fuzz_project
    _load_manifest(root, folder, "".join(pieces).encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_as_manifest(fuzz_project, data):
    root, folder = fuzz_project
    _load_manifest(root, folder, data)

