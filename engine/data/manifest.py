"""A project folder's manifest, ``project.toml``, and the files it names: read, typed and confined to the folder.

Every key of the manifest has one type (:data:`MANIFEST_KEYS`; a view table, :data:`VIEW_KEYS`), and an unknown
key or a value of another type is a :class:`~engine.errors.ProjectError` naming the file, the key and what was
expected. A file named by the manifest, or found in the folder, is refused when it leads outside the folder (an
absolute path, ``..``, a symlink). :func:`engine.data.project.load_project` resolves a project with these.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

from engine.data.views import VIEW_KINDS, ViewSpec
from engine.errors import ProjectError

__all__ = ["MANIFEST_KEYS", "VIEW_KEYS", "confined", "guess", "input_scale", "inside", "read_manifest", "short_repr",
           "stem_starts", "view_spec"]

#: The manifest's keys and the type of each.
MANIFEST_KEYS = {
    "title": str,
    "description": str,
    "model": str,
    "trust_model": bool,
    "inputs": str,
    "inputs_key": str,
    "labels": str,
    "labels_key": str,
    "class_names": list,
    "default_layer": str,
    "input_view": dict,
    "output_view": dict,
    "input_scale": (int, float),
    "metadata": str,  # the metadata table (engine.data.metadata)
}
#: The keys of a view table (``[input_view]``, ``[output_view]``, ``[output_view.NAME]``) and their types.
VIEW_KEYS = {"kind": str, "shape": list, "channels": list, "class_names": list}

def inside(base: Path, rel: str, what: str) -> Path:
    """``base / rel``, refusing absolute paths, ``..`` and symlinks that leave ``base``."""
    toml = base / "project.toml"
    if not isinstance(rel, str) or not rel or "\0" in rel or Path(rel).is_absolute():
        raise ProjectError(f"{toml}: {what} = {short_repr(rel)} must be a file name inside the project folder")
    try:
        path = (base / rel).resolve()
        exists = path.is_file()
    except (OSError, ValueError) as exc:  # a name too long for the file system, a loop of symlinks
        reason = getattr(exc, "strerror", None) or exc
        raise ProjectError(f"{toml}: {what} = {short_repr(rel)} is not a usable file name ({reason})") from None
    if base.resolve() not in path.parents:
        raise ProjectError(f"{toml}: {what} = {short_repr(rel)} points outside the project folder; refused")
    if not exists:
        raise ProjectError(f"{base}: {what} file {short_repr(rel)} does not exist")
    return path


def confined(base: Path, path: Path, what: str) -> Path:
    """``path``, a file found in ``base``, unless it is a symlink that leads outside ``base``."""
    real = path.resolve()
    if base.resolve() not in real.parents:
        raise ProjectError(f"{path}: the {what} file is a link to {real}, outside the project folder; refused")
    return path


def short_repr(value, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message names the value without repeating a huge one."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"

def read_manifest(path: Path) -> dict:
    """The manifest of the project folder ``path``, its keys and their types checked; ``{}`` without one."""
    toml = path / "project.toml"
    if not toml.is_file():
        return {}
    confined(path, toml, "manifest")
    try:
        with open(toml, "rb") as fh:
            data = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{toml}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(MANIFEST_KEYS))
    if unknown:
        raise ProjectError(
            f"{toml}: unknown key(s) {', '.join(map(repr, unknown))}; known keys: {', '.join(MANIFEST_KEYS)}"
        )
    for key, typ in MANIFEST_KEYS.items():
        if key in data and not isinstance(data[key], typ):
            raise ProjectError(
                f"{toml}: {key} must be a {'number' if isinstance(typ, tuple) else typ.__name__}, got "
                f"{type(data[key]).__name__} {data[key]!r}"
            )
    if "class_names" in data and not all(isinstance(c, (str, int)) for c in data["class_names"]):
        raise ProjectError(f"{toml}: class_names must be a list of strings")
    return data


def view_spec(spec, path: Path, where: str, class_names) -> ViewSpec | None:
    """The view a manifest's table ``[where]`` describes (``None`` without one), its keys and values checked."""
    if spec is None:
        return None
    toml = path / "project.toml"
    unknown = sorted(set(spec) - set(VIEW_KEYS))
    if unknown:
        raise ProjectError(f"{toml}: [{where}] has unknown key(s) {', '.join(map(repr, unknown))}")
    for key, typ in VIEW_KEYS.items():
        if key in spec and not isinstance(spec[key], typ):
            raise ProjectError(f"{toml}: [{where}] {key} must be a {typ.__name__}, got {spec[key]!r}")
    kind = spec.get("kind", "vector")
    if kind not in VIEW_KINDS:
        raise ProjectError(f"{toml}: [{where}] kind = {kind!r}; expected one of {', '.join(VIEW_KINDS)}")
    shape = spec.get("shape")
    if shape is not None:
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise ProjectError(f"{toml}: [{where}] shape = {shape!r}; expected a list of positive integers")
        shape = tuple(shape)
        if kind == "image" and len(shape) not in (2, 3):
            raise ProjectError(f"{toml}: [{where}] an image shape is [H, W] or [H, W, C], got {list(shape)}")
        if kind == "series" and len(shape) != 2:
            raise ProjectError(f"{toml}: [{where}] a series shape is [T, C], got {list(shape)}")
    channels = tuple(str(c) for c in spec["channels"]) if "channels" in spec else None
    names = tuple(str(c) for c in spec["class_names"]) if "class_names" in spec else class_names
    return ViewSpec(kind, shape, channels, names)


def input_scale(value, path: Path) -> float | None:
    """The manifest's ``input_scale``: a positive number, or ``None``."""
    if value is None:
        return None
    if isinstance(value, bool) or not np.isfinite(value) or value <= 0:
        raise ProjectError(f"{path / 'project.toml'}: input_scale = {value!r}; expected a positive number, such as "
                           "255 for 0..255 data into a model trained on 0..1")
    return float(value)

def stem_starts(f: Path, prefixes) -> bool:
    """Whether the name of ``f`` (without its suffix) starts with one of ``prefixes``, in any case."""
    return f.stem.lower().startswith(prefixes)


def guess(files, prefixes, path: Path, what: str) -> Path:
    """The one file of ``files`` whose name starts with one of ``prefixes`` (or the only file): the ``what`` of
    a project without a manifest that names it."""
    hits = [f for f in files if stem_starts(f, prefixes)]
    if len(hits) == 1:
        return hits[0]
    if not hits and len(files) == 1:
        return files[0]
    found = ", ".join(f.name for f in (hits or files)) or "no data files"
    raise ProjectError(
        f"{path}: cannot tell which file holds the {what} ({found}); name it with {what} = \"...\" in project.toml"
    )
