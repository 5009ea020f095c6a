"""Read and write numeric arrays in the formats users bring: .npy, .npz, .csv, .json, .mat, .h5.

Every failure raises :class:`~engine.errors.DataError` naming the file and what was wrong. Large ``.npy`` files
are memory-mapped rather than loaded whole, so a dataset larger than memory can still be propagated.

MATLAB files up to v7 are parsed by SciPy in a child process: a corrupt one can crash SciPy's compiled reader (a
segmentation fault, not an exception), which would otherwise take the whole process, a dashboard server and every
session it serves, down with it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from engine.data.files import atomic_write
from engine.errors import DataError

__all__ = ["MMAP_THRESHOLD", "READABLE", "WRITABLE", "check_finite", "list_keys", "read_array", "write_array"]

READABLE = (".npy", ".npz", ".csv", ".json", ".mat", ".h5", ".hdf5")
WRITABLE = (".npy", ".npz")

#: ``.npy`` files above this size are memory-mapped instead of read into memory.
MMAP_THRESHOLD = 64 * 2**20


def read_array(path, key: str | None = None, *, mmap: bool | None = None) -> np.ndarray:
    """Read one numeric array from a file.

    Parameters
    ----------
    path : str or Path
        A ``.npy``, ``.npz``, ``.csv``, ``.json``, ``.mat`` (v5 through SciPy, v7.3 through h5py) or ``.h5`` file.
    key : str, optional
        Name of the array inside a container (``.npz``, ``.json`` object, ``.mat``, ``.h5``). Needed when the
        container holds more than one array.
    mmap : bool, optional
        Memory-map a ``.npy`` file instead of reading it. Default: only files above 64 MiB.

    Returns
    -------
    numpy.ndarray
        A numeric (bool, integer or floating) array with at least one dimension.

    Raises
    ------
    DataError
        The file is missing, truncated or corrupt, has no array under ``key``, or holds non-numeric values.

    Example
    -------
    >>> x = read_array("projects/mnist/digits.npz", "x")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise DataError(f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(READABLE)}")
    try:
        arr = reader(path, key, mmap)
    except DataError:
        raise
    except Exception as exc:  # parsers of untrusted files fail in library-specific ways (IndexError, struct.error...)
        raise DataError(f"{path}: cannot read {suffix} file ({type(exc).__name__}: {_reason(exc)})") from exc
    return _check_numeric(arr, path, key)


def write_array(path, arrays, *, compressed: bool = True) -> Path:
    """Write arrays atomically: to a temporary file in the same folder, fsync, then rename.

    Parameters
    ----------
    path : str or Path
        Target ``.npy`` (``arrays`` is one array) or ``.npz`` (``arrays`` is a mapping of names to arrays).
    arrays : numpy.ndarray or Mapping[str, numpy.ndarray]
    compressed : bool
        Compress ``.npz`` members.

    Returns
    -------
    Path
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE:
        raise DataError(f"{path}: cannot write {suffix!r}; expected one of {', '.join(WRITABLE)}")

    def write(fh):
        if suffix == ".npy":
            np.save(fh, np.asarray(arrays))
        elif compressed:
            np.savez_compressed(fh, **dict(arrays))
        else:
            np.savez(fh, **dict(arrays))

    atomic_write(path, write)
    return path


def list_keys(path) -> list[str]:
    """Names of the arrays inside a container file (empty for single-array files)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return list(z.files)
        if suffix in (".h5", ".hdf5") or (suffix == ".mat" and _is_hdf5(path)):
            return _h5_datasets(path)
        if suffix == ".mat":
            return _mat_isolated(path, None, "keys")
        if suffix == ".json":
            data = _load_json(path)
            return list(data) if isinstance(data, dict) else []
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot read {suffix} file ({type(exc).__name__}: {_reason(exc)})") from exc
    return []


def check_finite(x: np.ndarray, path, what: str = "inputs", chunk: int = 1 << 16) -> None:
    """Raise :class:`DataError` if a floating array holds NaN or inf; scans memmaps chunk by chunk."""
    if not np.issubdtype(x.dtype, np.floating):
        return
    for start in range(0, len(x), chunk):
        block = np.asarray(x[start : start + chunk])
        if not np.isfinite(block).all():
            bad = np.argwhere(~np.isfinite(block))[0]
            row = start + int(bad[0])
            kind = "NaN" if np.isnan(block[tuple(bad)]) else "inf"
            raise DataError(f"{path}: {what} contain {kind} (first at sample {row}); expected finite numbers")


# -- readers ------------------------------------------------------------------------------------------------------


def _read_npy(path, key, mmap):
    if mmap is None:
        mmap = path.stat().st_size > MMAP_THRESHOLD
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def _read_npz(path, key, mmap):
    with np.load(path, allow_pickle=False) as z:
        name = _pick(path, key, list(z.files))
        return z[name]


def _read_csv(path, key, mmap):
    import csv

    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            rows.append((lineno, row))
    if not rows:
        raise DataError(f"{path}: empty CSV file; expected rows of numbers")
    # A first row of non-numbers is a header.
    if not all(_is_number(c) for c in rows[0][1]):
        rows = rows[1:]
        if not rows:
            raise DataError(f"{path}: CSV has a header but no data rows")
    width = len(rows[0][1])
    out = np.empty((len(rows), width), dtype=np.float64)
    for i, (lineno, row) in enumerate(rows):
        if len(row) != width:
            raise DataError(f"{path}: ragged CSV: line {lineno} has {len(row)} columns, expected {width}")
        for j, cell in enumerate(row):
            try:
                out[i, j] = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}: line {lineno}, column {j + 1}: {cell.strip()[:40]!r} is not a number"
                ) from None
    return out


def _load_json(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def _read_json(path, key, mmap):
    data = _load_json(path)
    if isinstance(data, dict):
        data = data[_pick(path, key, list(data))]
    try:
        arr = np.asarray(data)
    except ValueError:
        raise DataError(f"{path}: JSON arrays are ragged; expected nested lists of equal length") from None
    if arr.dtype == object:
        raise DataError(f"{path}: JSON arrays are ragged or mixed; expected nested lists of numbers")
    if arr.dtype.kind in "USO":
        raise DataError(f"{path}: JSON holds text where numbers were expected")
    return arr


def _is_hdf5(path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(520)
    return b"\x89HDF\r\n\x1a\n" in (head[:8], head[512:520])


def _h5_datasets(path) -> list[str]:
    import h5py

    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _read_h5(path, key, mmap):
    import h5py

    with h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        name = _pick(path, key, names)
        return f[name][()]


def _read_mat(path, key, mmap):
    if _is_hdf5(path):  # MATLAB v7.3 files are HDF5; MATLAB stores arrays transposed (column-major).
        names = [n for n in _h5_datasets(path) if not n.startswith("#")]
        import h5py

        with h5py.File(path, "r") as f:
            arr = f[_pick(path, key, names)][()]
        return arr.T
    return _mat_isolated(path, key, "read")


#: Seconds a child process may spend on a MAT file: a minute, plus a second per 10 MB.
MAT_TIMEOUT = 60.0
_MAT_CHILD = "import sys; from engine.data.formats import _mat_child; sys.exit(_mat_child(*sys.argv[1:]))"


def _mat_isolated(path: Path, key, mode: str):
    """Read a MAT v4-v7 file (``mode="read"``: the array; ``"keys"``: the names) with SciPy in a child process."""
    import subprocess
    import sys

    from scipy.io.matlab import matfile_version

    matfile_version(path)  # pure Python: rejects a file that is no MAT file at all without starting a process
    timeout = MAT_TIMEOUT + path.stat().st_size / 10e6
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="latent-inspector-mat-") as tmp:
        out = Path(tmp) / "out"
        argv = [sys.executable, "-c", _MAT_CHILD, str(path), "" if key is None else key, str(out), mode]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise DataError(f"{path}: cannot read .mat file (SciPy's reader took more than {timeout:.0f} s)") from None
        if proc.returncode < 0:
            raise DataError(f"{path}: cannot read .mat file (SciPy's MAT reader crashed on it, signal "
                            f"{-proc.returncode}: the file is corrupt)")
        error = out.with_suffix(".error")
        if error.is_file():
            raise DataError(error.read_text(encoding="utf-8"))
        if proc.returncode != 0 or not out.with_suffix(".npy").is_file():
            last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            raise DataError(f"{path}: cannot read .mat file (the reading process failed: {last[:200]})")
        if mode == "keys":
            return [str(k) for k in np.load(out.with_suffix(".npy"), allow_pickle=False)]
        return np.load(out.with_suffix(".npy"), allow_pickle=False)


def _mat_child(path: str, key: str, out: str, mode: str) -> int:
    """The child process of :func:`_mat_isolated`: read with SciPy, write the array (or the names) as ``.npy``, or
    the error's message as ``.error``."""
    import warnings

    from scipy.io import loadmat, whosmat

    warnings.simplefilter("ignore")  # SciPy warns about odd but readable files; the parent reads no stderr
    path, out = Path(path), Path(out)
    try:
        if mode == "keys":
            result = np.array([name for name, _, _ in whosmat(path)], dtype=str)
        else:
            try:
                data = loadmat(path)
            except NotImplementedError as exc:
                raise DataError(f"{path}: unsupported MAT version ({exc})") from None
            names = [n for n in data if not n.startswith("__")]
            result = _check_numeric(np.asarray(data[_pick(path, key or None, names)]), path, key or None)
    except DataError as exc:
        message = str(exc)
    except Exception as exc:
        message = f"{path}: cannot read .mat file ({type(exc).__name__}: {_reason(exc)})"
    else:
        np.save(out.with_suffix(".npy"), result, allow_pickle=False)
        return 0
    out.with_suffix(".error").write_text(message, encoding="utf-8")
    return 0


_READERS = {
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".csv": _read_csv,
    ".json": _read_json,
    ".mat": _read_mat,
    ".h5": _read_h5,
    ".hdf5": _read_h5,
}


# -- checks -------------------------------------------------------------------------------------------------------


def _pick(path, key, names):
    if key is not None:
        if key not in names:
            listed = ", ".join(map(repr, names)) or "none"
            raise DataError(f"{path}: no array named {key!r}; the file holds: {listed}")
        return key
    if len(names) == 1:
        return names[0]
    if not names:
        raise DataError(f"{path}: the file holds no arrays")
    raise DataError(f"{path}: holds several arrays ({', '.join(map(repr, names))}); say which one with a key")


def _check_numeric(arr, path, key):
    arr = arr if isinstance(arr, np.ndarray) else np.asarray(arr)
    where = f"{path}" + (f" [{key}]" if key else "")
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{where}: holds {arr.dtype} values; expected numbers")
    if arr.ndim == 0:
        raise DataError(f"{where}: holds a single scalar; expected an array of samples")
    return arr


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
