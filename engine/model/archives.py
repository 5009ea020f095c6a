"""What a model file may make this process allocate, read from its records before any framework reads its weights.

A model file from the wild can declare more than it holds (a Dense of 2,000,000,000 units in a few KiB) or hold
more than it looks (a zip bomb: zeros compress about 1000 to 1). The frameworks allocate what the file declares, or
unpack what it holds, before they fail, so a shared server must refuse both from the file's own records first:

* :func:`check_archive_sizes`: a zip archive (``.keras``, ``.pt2``, ``.pt``/``.pth``) that would unpack to more
  than a model of ``LATENT_INSPECTOR_MAX_PARAMS`` float32 weights takes (plus :data:`ARCHIVE_SLACK`), or whose
  description (a config, a graph, a pickle) unpacks to more than :data:`MAX_CONFIG_BYTES`. The sizes are the
  archive's central directory, read without unpacking; both Python's ``zipfile`` and PyTorch's reader unpack a
  member to its recorded size at most, so the records bound what is allocated.
* :func:`check_weight_count`: the weights an architecture declares against the same limit.

Each framework's module reads what its format declares (``keras_files``, ``torch``, ``onnx``) and calls these.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from engine.errors import ModelError
from engine.settings import max_params

__all__ = ["ARCHIVE_SLACK", "MAX_CONFIG_BYTES", "check_archive_sizes", "check_weight_count", "file_limit"]

#: The most bytes an archive's description (a config, a graph, a pickle of the weights' layout) may unpack to.
MAX_CONFIG_BYTES = 64 * 2**20
#: Bytes a model file may take beyond its weights' float32 values (the config, the graph, assets, headers).
ARCHIVE_SLACK = 64 * 2**20


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
        Not a readable zip archive, or one that unpacks to too much; naming the file, the sizes and the limit.
    """
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
