"""What a model file may make this process allocate, read from its records before any framework reads its weights.

A model file from the wild can declare more than it holds (a Dense of 2,000,000,000 units in a few KiB) or hold
more than it looks (a zip bomb: zeros compress about 1000 to 1). The frameworks allocate what the file declares, or
unpack what it holds, before they fail, so a shared server must refuse both from the file's own records first:

* :func:`check_archive_sizes`: a zip archive (``.keras``, ``.pt2``, ``.pt``/``.pth``) that would unpack to more
  than a model of ``LATENT_INSPECTOR_MAX_PARAMS`` float32 weights takes (plus :data:`ARCHIVE_SLACK`), or whose
  description (a config, a graph, a pickle) unpacks to more than :data:`MAX_CONFIG_BYTES`. The sizes are the
  archive's central directory, read without unpacking; both Python's ``zipfile`` and PyTorch's reader unpack a
  member to its recorded size at most, so the records bound what is allocated.
  An archive of more than :data:`MAX_MEMBERS` files is refused before its central directory is read at all: the
  count is the end record's, and Python's ``zipfile`` builds an object per member (a few hundred bytes each), so a
  200 MB upload of empty members would take gigabytes to list.
* :func:`check_weight_count`: the weights an architecture declares against the same limit.

Each framework's module reads what its format declares (``keras_files``, ``torch``, ``onnx``) and calls these.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

from engine.errors import ModelError
from engine.settings import max_params

__all__ = ["ARCHIVE_SLACK", "MAX_CONFIG_BYTES", "MAX_MEMBERS", "check_archive_sizes", "check_weight_count",
           "declared_members", "file_limit"]

#: The most bytes an archive's description (a config, a graph, a pickle of the weights' layout) may unpack to.
MAX_CONFIG_BYTES = 64 * 2**20
#: Bytes a model file may take beyond its weights' float32 values (the config, the graph, assets, headers).
ARCHIVE_SLACK = 64 * 2**20
#: The most files a model archive may hold (a .keras holds 3, a .pt2 or a state dict one per tensor and a few more).
MAX_MEMBERS = 100_000

_END = b"PK\x05\x06"  # end of central directory record: 22 bytes and a comment of up to 65,535
_END64_LOCATOR = b"PK\x06\x07"  # zip64 end of central directory locator, 20 bytes, just before the end record
_END64 = b"PK\x06\x06"  # zip64 end of central directory record


def declared_members(path: Path) -> int | None:
    """The number of files a zip archive's end record says it holds (its zip64 record's, for a large archive), read
    from the file's last 64 KiB; None when the file has no end record (not a zip archive: ``zipfile`` says so).

    Example
    -------
    >>> import io, zipfile, tempfile, os
    >>> with tempfile.NamedTemporaryFile(suffix=".zip", delete=False) as f:
    ...     with zipfile.ZipFile(f, "w") as z:
    ...         for i in range(3):
    ...             z.writestr(f"m{i}", b"")
    >>> declared_members(Path(f.name)); os.unlink(f.name)
    3
    """
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        tail_start = max(0, size - (22 + 65_535))
        f.seek(tail_start)
        tail = f.read()
        at = tail.rfind(_END)
        if at < 0 or len(tail) - at < 22:
            return None
        count = struct.unpack("<H", tail[at + 10:at + 12])[0]
        locator = at - 20
        if locator >= 0 and tail[locator:locator + 4] == _END64_LOCATOR:
            offset = struct.unpack("<Q", tail[locator + 8:locator + 16])[0]
            if offset + 56 <= size:
                f.seek(offset)
                record = f.read(56)
                if record[:4] == _END64:
                    count = struct.unpack("<Q", record[32:40])[0]
        return int(count)


def file_limit() -> int:
    """The most bytes a model file (unpacked, with its external data) may take: ``LATENT_INSPECTOR_MAX_PARAMS``
    float32 weights and :data:`ARCHIVE_SLACK`."""
    return max_params() * 4 + ARCHIVE_SLACK


def check_archive_sizes(path: Path, is_description: Callable[[str], bool]) -> list[zipfile.ZipInfo]:
    """Refuse a zip archive that would unpack to more than :func:`file_limit`, or one of whose descriptions
    (the members for which ``is_description(name)`` holds) unpacks to more than :data:`MAX_CONFIG_BYTES`; read from
    the archive's records, before unpacking anything.

    Returns
    -------
    list of zipfile.ZipInfo
        The archive's members, for the caller's own checks.

    Raises
    ------
    ModelError
        Not a readable zip archive, one of more than :data:`MAX_MEMBERS` files, or one that unpacks to too much;
        naming the file, the sizes and the limit.
    """
    try:
        count = declared_members(path)
    except OSError as exc:
        raise ModelError(f"{path}: cannot load the model: the file cannot be read ({exc})") from None
    if count is not None and count > MAX_MEMBERS:
        raise ModelError(f"{path}: the archive holds {count:,} files, more than a model file holds ({MAX_MEMBERS:,} at "
                         "most): refused before reading its list of files")
    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot load the model: the zip archive cannot be read ({exc})") from None
    for item in members:
        if is_description(item.filename) and item.file_size > MAX_CONFIG_BYTES:
            raise ModelError(f"{path}: {item.filename} unpacks to {item.file_size:,} bytes, more than a model's "
                             f"description takes ({MAX_CONFIG_BYTES:,} at most): refused before unpacking")
    total = sum(item.file_size for item in members)
    if total > file_limit():
        raise ModelError(f"{path}: the archive unpacks to {total:,} bytes ({len(members)} files), more than a model "
                         f"of the {max_params():,} weights this server loads takes ({file_limit():,} bytes; "
                         "LATENT_INSPECTOR_MAX_PARAMS sets it): refused before unpacking")
    return members


def check_weight_count(path: Path, declared: int, biggest: str) -> None:
    """Refuse a model whose file declares more than ``LATENT_INSPECTOR_MAX_PARAMS`` weight values in all;
    ``biggest`` names the largest (``"weight 'fc.weight' of 100,000 x 100,000"``)."""
    limit = max_params()
    if declared > limit:
        raise ModelError(f"{path}: declares {declared:,} weights ({biggest}), more than this server loads "
                         f"({limit:,}; LATENT_INSPECTOR_MAX_PARAMS sets it): refused before reading them")
