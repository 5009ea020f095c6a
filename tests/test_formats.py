"""Readers on real files of every supported format, good and bad."""

import json

import h5py
import numpy as np
import pytest
import scipy.io

from engine.errors import DataError
from engine.formats import check_finite, list_keys, read_array, write_array

A = np.arange(24, dtype=np.float32).reshape(6, 4) / 7


def write(tmp_path, name, how):
    path = tmp_path / name
    how(path)
    return path


def h5_write(path, **arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v


@pytest.mark.parametrize(
    ("name", "how", "key"),
    [
        ("a.npy", lambda p: np.save(p, A), None),
        ("a.npz", lambda p: np.savez(p, x=A, y=np.arange(6)), "x"),
        ("single.npz", lambda p: np.savez_compressed(p, data=A), None),
        ("a.csv", lambda p: np.savetxt(p, A, delimiter=",", fmt="%.9g"), None),
        ("header.csv", lambda p: p.write_text("a,b,c,d\n" + "\n".join(",".join(map("{:.9g}".format, r)) for r in A)),
         None),
        ("a.json", lambda p: p.write_text(json.dumps(A.tolist())), None),
        ("obj.json", lambda p: p.write_text(json.dumps({"x": A.tolist(), "n": [1, 2]})), "x"),
        ("v5.mat", lambda p: scipy.io.savemat(p, {"x": A}), "x"),
        ("a.h5", lambda p: h5_write(p, **{"group/x": A, "y": np.arange(6)}), "group/x"),
        # MATLAB v7.3 is HDF5 with column-major arrays: what MATLAB calls A is stored as A.T
        ("v73.mat", lambda p: h5_write(p, x=A.T), "x"),
    ],
)
def test_reads_every_format(tmp_path, name, how, key):
    got = read_array(write(tmp_path, name, how), key)
    np.testing.assert_allclose(got, A, rtol=1e-6)


def test_large_npy_is_memory_mapped(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, A)
    assert isinstance(read_array(path, mmap=True), np.memmap)
    assert not isinstance(read_array(path), np.memmap)  # small files are read


def test_write_array_roundtrip_and_atomic(tmp_path):
    write_array(tmp_path / "o.npz", {"x": A, "y": np.arange(6)})
    assert list_keys(tmp_path / "o.npz") == ["x", "y"]
    np.testing.assert_array_equal(read_array(tmp_path / "o.npz", "y"), np.arange(6))
    write_array(tmp_path / "o.npy", A)
    np.testing.assert_array_equal(read_array(tmp_path / "o.npy"), A)
    assert not list(tmp_path.glob("*.tmp"))


def _truncate(src):
    def how(p):
        data = src.read_bytes() if hasattr(src, "read_bytes") else src
        p.write_bytes(data[: len(data) // 2])
    return how


BAD = [
    ("missing.npy", None, None, "no such file"),
    ("a.txt", lambda p: p.write_text("1,2"), None, "unsupported file type '.txt'"),
    ("empty.csv", lambda p: p.write_text(""), None, "empty CSV"),
    ("ragged.csv", lambda p: p.write_text("1,2,3\n4,5\n"), None, "ragged CSV: line 2 has 2 columns, expected 3"),
    ("text.csv", lambda p: p.write_text("1,2\n3,abc\n"), None, "line 2, column 2: 'abc' is not a number"),
    ("header_only.csv", lambda p: p.write_text("a,b\n"), None, "header but no data"),
    ("bad.json", lambda p: p.write_text("{\"x\": [1, 2"), None, "invalid JSON"),
    ("ragged.json", lambda p: p.write_text("[[1, 2], [3]]"), None, "ragged"),
    ("text.json", lambda p: p.write_text('[["a", "b"]]'), None, "text where numbers"),
    ("scalar.json", lambda p: p.write_text("3"), None, "single scalar"),
    ("keys.json", lambda p: p.write_text('{"x": [1], "y": [2]}'), None, "several arrays"),
    ("nokey.npz", lambda p: np.savez(p, x=A), "y", "no array named 'y'; the file holds: 'x'"),
    ("empty.npz", lambda p: np.savez(p), None, "holds no arrays"),
    ("trunc.npz", lambda p: (np.savez(p, x=A), p.write_bytes(p.read_bytes()[:40])), None, "cannot read"),
    ("trunc.npy", lambda p: (np.save(p, A), p.write_bytes(p.read_bytes()[:100])), None, "cannot read"),
    ("garbage.npy", lambda p: p.write_bytes(b"\x00garbage" * 10), None, "cannot read"),
    ("garbage.h5", lambda p: p.write_bytes(b"not hdf5" * 10), None, "cannot read"),
    ("trunc.h5", lambda p: (h5_write(p, x=np.zeros((100, 100))), p.write_bytes(p.read_bytes()[:2000])), None,
     "cannot read"),
    ("garbage.mat", lambda p: p.write_bytes(b"MATLAB 5.0 MAT-file" + b"\xff" * 50), None, "cannot read"),
    ("strings.npy", lambda p: np.save(p, np.array(["a", "b"])), None, "expected numbers"),
    ("objects.npy", lambda p: np.save(p, np.array([1, None], dtype=object), allow_pickle=True), None, "cannot read"),
]


@pytest.mark.parametrize(("name", "how", "key", "match"), BAD, ids=[b[0] for b in BAD])
def test_bad_files_raise_data_error_naming_the_file(tmp_path, name, how, key, match):
    path = tmp_path / name
    if how is not None:
        how(path)
    with pytest.raises(DataError) as info:
        read_array(path, key)
    assert name in str(info.value)
    assert match in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_finite_names_first_bad_sample(bad):
    x = np.zeros((100, 3), np.float32)
    x[42, 1] = bad
    with pytest.raises(DataError, match="first at sample 42"):
        check_finite(x, "data.npy", chunk=16)
    check_finite(np.zeros((5, 2), np.int32), "ints.npy")  # integers are always finite
