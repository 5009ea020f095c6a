"""Files the engine writes, written whole or not at all; and files identified by their content.

Every file the engine writes (activation caches, fitted projections, generated records, exported datasets, id lists,
fine-tuned models, Zarr stores) goes through :func:`atomic_path`: the writer fills a temporary name in the target's
folder, which is flushed to disk and renamed onto the target only once complete, and the folder is flushed after
the rename. A crash or kill at any moment leaves the old state or the complete new file, never a partial one, and a
reader never sees half a file. Temporaries are named ``.tmp-<name>.<pid>-<random><suffix>`` (a folder being replaced,
``.tmp-<name>.<pid>-old-<random>``): a writer that died leaves only such names, which :func:`remove_temporaries`
sweeps (all of a folder's, while no writer works there) and :func:`remove_dead_temporaries` (a target's, whose
writer is dead).

:func:`file_hash` identifies a file by its content: the key of every cache derived from a model or data file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["SAMPLE_ABOVE", "TMP_PREFIX", "atomic_path", "atomic_write", "cannot_write", "file_hash", "fsync_dir",
           "remove_dead_temporaries", "remove_temporaries"]

#: Names of temporaries start with this.
TMP_PREFIX = ".tmp-"

#: Files above this size are hashed by sampling (size, mtime and 64 blocks of 1 MiB) instead of read whole, so a
#: cache lookup on a 100 GB input stays instant.
SAMPLE_ABOVE = 256 * 2**20


#: Why a write fails for want of room or permission rather than by a bug: the disk full, over quota, a file too
#: large for the file system, a read-only file system, a folder not writable.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


def cannot_write(exc: BaseException) -> bool:
    """Whether ``exc`` is a write refused for want of room or permission (disk full, quota, read-only), which a
    cache survives by not caching and a save reports as a :class:`~engine.errors.StorageError`."""
    return isinstance(exc, OSError) and exc.errno in _NO_ROOM


def fsync_dir(path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    if path.is_dir():
        for root, _, files in os.walk(path):
            for name in files:
                with open(os.path.join(root, name), "rb") as fh:
                    os.fsync(fh.fileno())
        fsync_dir(path)
    elif path.exists():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _claim(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` onto ``path`` only if no file has that name (``FileExistsError`` otherwise)."""
    try:
        os.link(tmp, path)  # fails rather than overwrite
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: claim the name exclusively, then rename onto it
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        os.replace(tmp, path)
        return
    tmp.unlink()


@contextmanager
def atomic_path(path, *, replace: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` to write a file or a folder at; renamed onto ``path`` when the block ends.

    Parameters
    ----------
    path : str or Path
        The target. Its folder is created.
    replace : bool, default=True
        Replace an existing target (a folder in two renames: the old one stays complete until the new one is in
        place). ``False``: take the name only if no file has it, else raise :class:`FileExistsError` (files only).

    Yields
    ------
    Path
        Named ``.tmp-<name>.<pid>-<random><suffix>`` in the target's folder (the suffix kept, for writers that
        choose a format by it). Whatever the block writes there is flushed to disk before the rename; if the block
        raises, it is removed and the target is untouched.

    Example
    -------
    >>> with atomic_path(folder / "acts.npy") as tmp:           # doctest: +SKIP
    ...     np.save(tmp, activations)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield tmp
        _fsync_tree(tmp)
        if not replace:
            _claim(tmp, path)
        elif tmp.is_dir() and path.exists():
            old = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}-old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    finally:
        _remove_settled(tmp)
    fsync_dir(path.parent)


def _remove_settled(tmp: Path, patience: float = 2.0) -> None:
    """Remove ``tmp`` until it stays gone: a writer's last requests may land after the error that ended its block
    (Zarr writes chunks concurrently; after a full disk, CI saw a pyramid's temporary folder made again after its
    removal). Gone at two looks 50 ms apart, or ``patience`` seconds spent."""
    if not (tmp.exists() or tmp.is_symlink()):  # renamed into place: nothing to wait for
        return
    deadline = time.monotonic() + patience
    while True:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)
        time.sleep(0.05)
        if not (tmp.exists() or tmp.is_symlink()) or time.monotonic() > deadline:
            return


def atomic_write(path, write: Callable, *, replace: bool = True) -> Path:
    """Write ``path`` through ``write(fh)`` (a binary file object), atomically: see :func:`atomic_path`.

    Example
    -------
    >>> atomic_write(folder / "ids.txt", lambda fh: fh.write(b"3\\n17\\n"))   # doctest: +SKIP
    """
    path = Path(path)
    with atomic_path(path, replace=replace) as tmp:
        with open(tmp, "w+b") as fh:  # readable too: h5py writes through a file object it also reads
            write(fh)
    return path


def remove_temporaries(folder) -> None:
    """Remove what writers that died mid-write left in ``folder`` (call it while no live writer works there)."""
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(TMP_PREFIX):
                _remove(p)


def remove_dead_temporaries(path) -> None:
    """Remove the temporaries of target ``path`` whose writer process has died (a kill mid-write leaves its
    temporary, which may be as large as the entry): those of a live writer, or of one whose process id cannot be
    read from the name, are kept. For folders of one machine (a cache), where process ids mean the same process."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    start = f"{TMP_PREFIX}{path.name}."
    for p in path.parent.iterdir():
        if not p.name.startswith(start):
            continue
        try:
            pid = int(p.name[len(start):].split("-", 1)[0])
            os.kill(pid, 0)
        except ValueError:
            continue  # not a name atomic_path gives
        except ProcessLookupError:
            _remove(p)
        except PermissionError:
            continue  # a live process of another user


def file_hash(path, n: int = 16) -> str:
    """First ``n`` hex digits of the SHA-256 of a file's content (sampled for files above 256 MiB).

    Example
    -------
    >>> file_hash("projects/mnist/autoencoder.h5")   # doctest: +SKIP
    '5d1c4b0e2b3f9a77'
    """
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
