"""Readers on real files of every supported format, good and bad."""

import json

import h5py
import numpy as np
import pytest
import scipy.io

from engine.data.formats import check_finite, list_keys, read_array, write_array
from engine.errors import DataError

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


def test_missing_file_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"missing\.npy: no such file"):
        read_array(tmp_path / "missing.npy")


# Bad files of every format (truncated, corrupt, ragged, text, empty, pickled...) are cases of the bad-inputs corpus,
# tests/bad_inputs.py, each checked in the engine, the CLI and the dashboard by tests/test_bad_inputs.py; random and
# mutated files are fuzzed by tests/test_fuzz.py.


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_finite_names_first_bad_sample(bad):
    x = np.zeros((100, 3), np.float32)
    x[42, 1] = bad
    with pytest.raises(DataError, match="first at sample 42"):
        check_finite(x, "data.npy", chunk=16)
    check_finite(np.zeros((5, 2), np.int32), "ints.npy")  # integers are always finite
