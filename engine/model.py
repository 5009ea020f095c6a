"""Load Keras models safely and identify them by content.

Models load with ``compile=False`` (an ``.h5`` compiled with a string loss fails otherwise, and we never train
through the saved optimizer) and ``safe_mode=True``: a Lambda layer or custom object can run arbitrary code, so it is
refused unless the project sets ``trust_model = true``.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from . import backend
from .errors import ModelError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")

_lock = threading.Lock()
_loaded: dict[tuple, object] = {}


#: Files above this size are hashed by sampling (size, mtime and 64 blocks of 1 MiB) instead of read whole, so a
#: cache lookup on a 100 GB input stays instant.
SAMPLE_ABOVE = 256 * 2**20


def file_hash(path, n: int = 16) -> str:
    """First ``n`` hex digits of the SHA-256 of a file's content (sampled for files above 256 MiB)."""
    digest = hashlib.sha256()
    size = Path(path).stat().st_size
    with open(path, "rb") as fh:
        if size <= SAMPLE_ABOVE:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(f"{size}:{Path(path).stat().st_mtime_ns}".encode())
            for i in range(64):
                fh.seek(i * (size - (1 << 20)) // 63)
                digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:n]


def model_hash(path) -> str:
    """Content hash of a model file: the key of every cache derived from it."""
    return file_hash(path)


def load_model(path, *, trust: bool = False):
    """Load a ``.keras`` or ``.h5`` model for inference.

    Parameters
    ----------
    path : str or Path
    trust : bool
        Allow layers that deserialize code (``Lambda``, custom objects). Never set this for a file you did not
        write or check: it runs code from the file.

    Returns
    -------
    keras.Model

    Raises
    ------
    ModelError
        The file is missing, not a Keras model, corrupt, or needs ``trust``.

    Example
    -------
    >>> model = load_model("projects/mnist/autoencoder.h5")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelError(f"{path}: not a Keras model file; expected one of {', '.join(MODEL_SUFFIXES)}")
    _check_container(path)
    keras = backend.keras()

    try:
        model = keras.models.load_model(path, compile=False, safe_mode=not trust)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError, KeyError... for bad files
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text or "unsafe" in text.lower():
            raise ModelError(
                f"{path}: the model contains a Lambda layer or custom code, which is refused by default because "
                "loading it runs code from the file. If you trust this file, set `trust_model = true` in the "
                "project's project.toml."
            ) from None
        first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
        raise ModelError(f"{path}: cannot load the model ({type(exc).__name__}: {first})") from exc
    if not isinstance(model, keras.Model):
        raise ModelError(f"{path}: holds a {type(model).__name__}, expected a keras Model")
    if not getattr(model, "inputs", None):
        raise ModelError(f"{path}: the model has no defined inputs (a subclassed model); save a Functional model")
    return model


def _check_container(path: Path) -> None:
    """Refuse a file that is not even the container its suffix says (Keras then reports a ``.keras`` file that is
    not a zip archive as "File not found")."""
    suffix = path.suffix.lower()
    if suffix == ".keras":
        import zipfile

        if not zipfile.is_zipfile(path):
            raise ModelError(f"{path}: cannot load the model: not a zip archive, which a .keras model is (the file "
                             "is truncated, corrupt or of another format)")
    else:
        import h5py

        if not h5py.is_hdf5(path):
            raise ModelError(f"{path}: cannot load the model: not an HDF5 file, which an {suffix} model is (the "
                             "file is truncated, corrupt or of another format)")


def load_model_cached(path, *, trust: bool = False):
    """:func:`load_model`, once per process for a given file content and trust setting."""
    path = Path(path).resolve()
    stat = path.stat() if path.exists() else None
    key = (str(path), stat.st_mtime_ns if stat else None, stat.st_size if stat else None, trust)
    with _lock:
        if key not in _loaded:
            _loaded[key] = load_model(path, trust=trust)
        return _loaded[key]
