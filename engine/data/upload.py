"""New projects from uploaded files: a model, its input data and, optionally, labels, written into a new folder of
the projects root only once they load and run as a project.

This is what the dashboard's *New project* form calls (:mod:`dashboard.upload`); nothing here knows a browser. Every
file is hostile until checked:

* **The name** is one folder name: 1 to 64 letters, digits, ``-`` and ``_``, starting with a letter or a digit (so
  no separator, no ``..``, no leading dot). A name that exists, as a project or as anything else, is refused.
* **The user's file names never reach the file system.** A file is stored under its role's name with its suffix,
  chosen from a fixed list (``model.keras``, ``x.npy``, ``y.csv``); the name it was sent under is only shown back in
  messages and kept in the project's description.
* **Sizes.** Each file and all of them together are counted against :class:`UploadLimits`, before a byte is
  written when the size is known and again while copying.
* **Archives before any reader opens them.** A zip file (``.keras``, ``.npz``, ``.pt2``, ``.pt``) is refused when its
  members would unpack to more than the limit, when a large member is compressed more than ``ratio`` times (a zip
  bomb), when it holds too many members, a member named with ``..``, an absolute path or a drive, a duplicated name,
  or a symbolic link. The arrays of ``.npy`` and ``.h5`` files are refused when they declare more than the limit.
  Nothing is extracted here; a symbolic link is never created or followed.
* **The model is never trusted.** The project's manifest says ``trust_model = false``: a Keras ``Lambda`` holding
  bytecode and a pickled PyTorch module are refused with the engine's own message, and a project made here has no
  ``hooks.py``, so no code from the upload ever runs.
* **Whole or nothing.** The name is claimed first with ``mkdir`` (atomic: of two uploads of one name at once,
  exactly one gets it, the other is told the name exists); the files are written into a hidden staging folder of the
  root (``.tmp-upload-<name>-<random>/<name>``), checked as ``latent-inspector doctor`` checks a project (the model
  loads, the data fits it, one batch runs through it: :func:`engine.data.checkup.check_project`), then renamed onto
  the claimed name. On any failure the staging folder and the claim are removed: nothing is left.
* **The model is first loaded in a process of its own** (:mod:`engine.data.isolated`), limited in memory
  (``LATENT_INSPECTOR_UPLOAD_MEMORY_GB``, 8 GiB) and time (``LATENT_INSPECTOR_UPLOAD_CHECK_S``, 300 s): a file that
  asks for more, or crashes its framework's loader, is refused and the server never loaded it.

Example
-------
>>> from engine.data.upload import create_project
>>> files = {"model": ("ae.keras", model_bytes), "inputs": ("digits.npy", x_bytes)}   # doctest: +SKIP
>>> create_project(projects_root(), "my-digits", files).project.inputs().shape        # doctest: +SKIP
(1000, 28, 28, 1)
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath

import numpy as np

from engine.data import formats
from engine.data.files import TMP_PREFIX, atomic_write, fsync_dir
from engine.data.manifest import short_repr
from engine.data.project import Project, load_project
from engine.errors import InspectorError, UploadError, UsageError
from engine.model import MODEL_SUFFIXES

__all__ = ["DATA_SUFFIXES", "LIMIT_ENV", "MODEL_SUFFIXES", "ROLES", "NewProject", "UploadLimits", "check_file_name",
           "check_name", "create_project", "format_size", "parse_size"]

#: The files of a new project, by role: the stem each is stored under (its suffix is the sent file's).
ROLES = {"model": "model", "inputs": "x", "labels": "y"}
#: Roles a new project cannot do without.
REQUIRED = ("model", "inputs")
#: Data files taken from an upload: those the engine reads, but MATLAB files, whose compressed variables cannot be
#: sized before SciPy unpacks them.
DATA_SUFFIXES = tuple(s for s in formats.READABLE if s != ".mat")
_SUFFIXES = {"model": MODEL_SUFFIXES, "inputs": DATA_SUFFIXES, "labels": DATA_SUFFIXES}
_WHAT = {"model": "model file", "inputs": "data file", "labels": "labels file"}
#: A new project's name.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
NAME_RULE = "1 to 64 letters, digits, '-' and '_', starting with a letter or a digit"

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20,
          "GIB": 2**30, "TIB": 2**40}

#: Environment variables that set :class:`UploadLimits` (sizes such as ``512MB``, ``2GB`` or a number of bytes).
LIMIT_ENV = {
    "model": "LATENT_INSPECTOR_UPLOAD_MAX_MODEL",
    "data": "LATENT_INSPECTOR_UPLOAD_MAX_DATA",
    "total": "LATENT_INSPECTOR_UPLOAD_MAX_TOTAL",
    "unpacked": "LATENT_INSPECTOR_UPLOAD_MAX_UNPACKED",
}


def parse_size(text: str) -> int:
    """A size in bytes from ``"512MB"``, ``"2 GB"``, ``"1.5GB"``, ``"300KiB"`` or ``"1048576"`` (KB, MB, GB are
    powers of 1000; KiB, MiB, GiB of 1024).

    Raises
    ------
    UsageError
        Not a positive number with one of those units.

    Example
    -------
    >>> parse_size("512MB"), parse_size("2 KiB")
    (512000000, 2048)
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = found.group(2).upper() if found else None
    if found is None or unit not in _UNITS or float(found.group(1)) <= 0:
        raise UsageError(f"size {short_repr(text)}: expected a positive number of bytes, or one with a unit such as "
                         "300KB, 512MB or 2GB")
    return int(float(found.group(1)) * _UNITS[unit])


def format_size(n: int) -> str:
    """A size in words, as the browser's file picker shows it (powers of 1000): ``'512 MB'``, ``'1.5 GB'``.

    Example
    -------
    >>> format_size(512_000_000), format_size(1_500_000_000), format_size(900)
    ('512 MB', '1.5 GB', '900 bytes')
    """
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class UploadLimits:
    """How much an upload may hold.

    Parameters
    ----------
    model : int
        Bytes of the model file (default 512 MB).
    data : int
        Bytes of each data file, inputs and labels (default 2 GB).
    total : int
        Bytes of all the files together (default 2.5 GB).
    unpacked : int
        Bytes that the members of one archive (``.keras``, ``.npz``, ``.pt2``), or the arrays one ``.npy`` or ``.h5``
        file declares, may add up to once unpacked (default 4 GB).
    ratio : float
        Largest compression ratio of an archive member of ``ratio_from`` bytes or more (default 100).
    ratio_from : int
        Members smaller than this are not judged by their ratio (default 1 MB: a small, very regular file may
        compress well).
    members : int
        Most members in one archive (default 10,000).

    Example
    -------
    >>> UploadLimits(model=parse_size("10MB")).model
    10000000
    """

    model: int = 512 * 10**6
    data: int = 2 * 10**9
    total: int = 2_500 * 10**6
    unpacked: int = 4 * 10**9
    ratio: float = 100.0
    ratio_from: int = 10**6
    members: int = 10_000

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise UsageError(f"UploadLimits: {f.name} = {short_repr(value)}; expected a positive number")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> UploadLimits:
        """The limits the environment sets (:data:`LIMIT_ENV`), the defaults for those it does not.

        Raises
        ------
        UsageError
            A variable set to something that is not a size.

        Example
        -------
        >>> UploadLimits.from_environ({"LATENT_INSPECTOR_UPLOAD_MAX_MODEL": "64MB"}).model
        64000000
        """
        environ = os.environ if environ is None else environ
        given = {}
        for field, name in LIMIT_ENV.items():
            text = environ.get(name, "").strip()
            if text:
                try:
                    given[field] = parse_size(text)
                except UsageError as exc:
                    raise UsageError(f"{name}={text!r}: {exc}") from None
        return cls(**given)

    def for_role(self, role: str) -> int:
        """The size limit of one file of ``role``."""
        return self.model if role == "model" else self.data


@dataclass(frozen=True)
class NewProject:
    """What :func:`create_project` made: the project (loaded from its final folder), the stored file of each role,
    and what the project's check warned about (as ``latent-inspector doctor`` would)."""

    project: Project
    files: dict[str, Path]
    warnings: tuple[str, ...] = ()


def check_name(name, root=None) -> str:
    """``name`` if it can name a new project, else :class:`UploadError` (``field="name"``) saying why.

    Parameters
    ----------
    name : str
    root : str or Path, optional
        Also refuse a name that exists in this projects root (as a project or anything else). A hint only: two
        uploads racing for one name are told apart by :func:`create_project`.

    Example
    -------
    >>> check_name("my-digits_2")
    'my-digits_2'
    """
    if not isinstance(name, str) or not name:
        raise UploadError(f"the new project needs a name: {NAME_RULE}", "name")
    if not _NAME.fullmatch(name):
        shown = short_repr(name, 80)
        if len(name) > 64:
            why = f"has {len(name)} characters, more than 64"
        elif "/" in name or "\\" in name:
            why = "holds a path separator; a project is named by one folder name"
        elif ".." in name:
            why = "holds '..'"
        elif name.startswith("."):
            why = "starts with a dot"
        elif not name[0].isascii() or not name[0].isalnum():
            why = f"starts with {name[0]!r}"
        else:
            bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "-_"))})
            why = f"holds {', '.join(map(repr, bad))}"
        raise UploadError(f"project name {shown} {why}; use {NAME_RULE}", "name")
    if root is not None:
        path = Path(root) / name
        if path.exists() or path.is_symlink():
            raise UploadError(f"a project named {name!r} already exists; choose another name", "name")
    return name


def check_file_name(role: str, filename) -> str:
    """The suffix a file sent as ``role`` is stored with (lower case, from the accepted list), from the name it was
    sent under; :class:`UploadError` (``field=role``) for a role or a kind of file that is not taken.

    Only the suffix of the name's last part is looked at: ``../../x.NPY`` is stored as ``x.npy``.

    Example
    -------
    >>> check_file_name("model", "C:\\\\Users\\\\ada\\\\AE.Keras"), check_file_name("inputs", "../../x.npy")
    ('.keras', '.npy')
    """
    if role not in ROLES:
        raise UploadError(f"unknown file role {short_repr(role)}; expected one of {', '.join(ROLES)}")
    accepted = _SUFFIXES[role]
    if not isinstance(filename, str) or not filename.strip():
        raise UploadError(f"the {_WHAT[role]} has no name; expected a name ending in {', '.join(accepted)}", role)
    base = re.split(r"[/\\]", filename)[-1]
    suffix = "." + base.rsplit(".", 1)[-1].lower() if "." in base.strip(".") else ""
    if suffix not in accepted:
        hint = ""
        if role != "model" and suffix == ".mat":
            hint = " (MATLAB files are not taken from an upload: save the array as .npy or .h5)"
        elif role == "model" and suffix in DATA_SUFFIXES:
            hint = " (this looks like a data file: send it as the data)"
        elif role != "model" and suffix in MODEL_SUFFIXES:
            hint = " (this looks like a model file: send it as the model)"
        raise UploadError(f"{short_repr(filename, 80)} is not a {_WHAT[role]} this tool reads{hint}; expected a name "
                          f"ending in {', '.join(accepted)}", role)
    return next(s for s in accepted if s == suffix)  # the constant, never the sent text


def create_project(root, name: str, files: Mapping[str, tuple], *, limits: UploadLimits | None = None,
                   progress=None) -> NewProject:
    """Make project ``name`` under ``root`` from uploaded files, whole or not at all.

    Parameters
    ----------
    root : str or Path
        The projects root (:func:`engine.data.project.projects_root`); created if missing.
    name : str
        The new project's folder name (see :func:`check_name`).
    files : mapping of role to (file name, content)
        ``"model"`` and ``"inputs"`` required, ``"labels"`` optional. The file name is the one the file was sent
        under (only its suffix is used, see :func:`check_file_name`); the content is ``bytes`` (or any buffer) or
        a binary file object, read from its start.
    limits : UploadLimits, optional
        Default: :meth:`UploadLimits.from_environ`.
    progress : callable(stage, done, total), optional

    Returns
    -------
    NewProject

    Raises
    ------
    UploadError
        Anything refused, with ``field`` naming the name or the file at fault: a bad or taken name, a missing,
        unknown, empty or too large file, an archive or array that would unpack to too much, or files that do not
        make a working project (the model does not load without trust, the data does not fit it, the labels do not
        match the samples...). Nothing is left in ``root`` then.

    Example
    -------
    >>> made = create_project(root, "ae", {"model": ("ae.keras", open("ae.keras", "rb")),   # doctest: +SKIP
    ...                                    "inputs": ("x.npy", x_bytes)})
    >>> made.project.model_path.name                                                       # doctest: +SKIP
    'model.keras'
    """
    report = progress or (lambda stage, done, total: None)
    name = check_name(name)
    limits = limits if limits is not None else UploadLimits.from_environ()
    plan = _plan(files, limits)
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        root = root.resolve()
    except OSError as exc:
        raise UploadError(f"cannot use the projects root: {exc.strerror or exc}") from None
    target = root / name
    try:
        os.mkdir(target)  # the claim: atomic, exactly one of two uploads of this name gets past it
    except FileExistsError:
        raise UploadError(f"a project named {name!r} already exists; choose another name", "name") from None
    except OSError as exc:
        raise UploadError(f"cannot create project {name!r} in the projects root: {exc.strerror or exc}") from None
    staging = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}upload-{name}-", dir=root))
        folder = staging / name
        folder.mkdir()
        stored = {}
        budget = limits.total
        for i, (role, (suffix, sent, content)) in enumerate(plan.items()):
            report("writing the files", i, len(plan))
            path = folder / f"{ROLES[role]}{suffix}"
            budget -= _store(content, path, role, sent, limits, budget)
            stored[role] = path
        report("checking the files", 0, 1)
        for role, path in stored.items():
            _check_unpacked(path, role, plan[role][1], limits)
        sent = {role: plan[role][1] for role in stored}
        _write_manifest(folder, name, stored, sent)
        report("loading the model and running a batch", 0, 1)
        warnings = _check(name, staging, folder, stored, sent)
        os.rename(folder, target)  # onto the claimed, still empty folder: the project appears whole
    except BaseException as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        try:
            os.rmdir(target)  # the claim, if nothing was put in it
        except OSError:
            pass
        _forget_models(staging)
        if isinstance(exc, OSError):
            raise UploadError(f"project {name!r} could not be written: {exc.strerror or exc}") from exc
        raise
    _forget_models(staging)
    shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(root)
    report("done", 1, 1)
    project = load_project(name, root)
    return NewProject(project, {role: target / path.name for role, path in stored.items()}, warnings)


# -- the files ---------------------------------------------------------------------------------------------------------


def _plan(files, limits: UploadLimits) -> dict[str, tuple[str, str, object]]:
    """``{role: (suffix, sent name, content)}`` of the files, checked for role, kind and (where known) size."""
    if not isinstance(files, Mapping):
        raise UploadError("files must map a role (model, inputs, labels) to (file name, content)")
    for role in files:
        if role not in ROLES:
            raise UploadError(f"unknown file role {short_repr(role)}; expected one of {', '.join(ROLES)}")
    for role in REQUIRED:
        if files.get(role) is None:
            accepted = ", ".join(_SUFFIXES[role])
            raise UploadError(f"no {_WHAT[role]}: a new project needs a model and its input data (the {_WHAT[role]} "
                              f"ends in {accepted})", role)
    plan, total = {}, 0
    for role in ROLES:
        entry = files.get(role)
        if entry is None:
            continue
        if not (isinstance(entry, tuple) and len(entry) == 2):
            raise UploadError(f"the {_WHAT[role]} must be given as (file name, content)", role)
        sent, content = entry
        suffix = check_file_name(role, sent)
        size = _size_of(content)
        limit = limits.for_role(role)
        if size is not None:
            _check_size(size, role, sent, limit)
            total += size
        plan[role] = (suffix, sent, content)
    if total > limits.total:
        raise UploadError(f"the files add up to {format_size(total)}, more than the {format_size(limits.total)} an "
                          "upload may hold")
    return plan


def _size_of(content) -> int | None:
    if isinstance(content, (bytes, bytearray, memoryview)):
        return memoryview(content).nbytes
    if not hasattr(content, "read"):
        raise UploadError(f"a file's content must be bytes or a binary file object, not {type(content).__name__}")
    try:
        if content.seekable():
            content.seek(0, os.SEEK_END)
            size = content.tell()
            content.seek(0)
            return size
    except (OSError, ValueError):
        pass
    return None


def _check_size(size: int, role: str, sent, limit: int) -> None:
    if size == 0:
        raise UploadError(f"{short_repr(sent, 80)} is empty; expected a {_WHAT[role]}", role)
    if size > limit:
        raise UploadError(f"{short_repr(sent, 80)} holds {format_size(size)}, more than the {format_size(limit)} a "
                          f"{_WHAT[role]} may hold", role)


def _blocks(content, block: int = 1 << 20):
    if isinstance(content, (bytes, bytearray, memoryview)):
        view = memoryview(content).cast("B")
        for start in range(0, len(view), block):
            yield view[start:start + block]
        return
    while chunk := content.read(block):
        yield chunk


def _store(content, path: Path, role: str, sent, limits: UploadLimits, budget: int) -> int:
    """Copy ``content`` to ``path`` (never replacing a file), counting it against the role's limit and what is left
    of the total; returns the bytes written."""
    limit = limits.for_role(role)
    written = 0

    def write(fh):
        nonlocal written
        for chunk in _blocks(content):
            written += len(chunk)
            if written > limit:
                _check_size(written, role, sent, limit)
            if written > budget:
                raise UploadError(f"the files add up to more than the {format_size(limits.total)} an upload may "
                                  "hold")
            fh.write(chunk)
        _check_size(written, role, sent, limit)  # empty

    atomic_write(path, write, replace=False)
    return written


# -- what the files would unpack to ------------------------------------------------------------------------------------


def _check_unpacked(path: Path, role: str, sent, limits: UploadLimits) -> None:
    """Refuse an archive, array or text file that would unpack to more than the limit, a hostile archive, or an HDF5
    file that reads from other files."""
    shown = short_repr(sent, 80)
    suffix = path.suffix.lower()
    declared = None
    if zipfile.is_zipfile(path):
        _check_zip(path, role, shown, limits)
        declared = _zip_contents(path, role, shown, limits)
    elif suffix == ".npy":
        with open(path, "rb") as fh:
            declared = _npy_bytes(fh)
    elif suffix in (".h5", ".hdf5"):
        declared = _h5_bytes(path, role, shown)
    elif suffix in (".csv", ".json"):
        declared = TEXT_FACTOR * path.stat().st_size
        if declared > limits.unpacked:
            raise UploadError(f"{shown} is {format_size(path.stat().st_size)} of text, which is read whole into "
                              f"memory (about {TEXT_FACTOR} times its size): more than the "
                              f"{format_size(limits.unpacked)} an uploaded file may unpack to; send the data as .npy",
                              role)
    if declared is not None and declared > limits.unpacked:
        raise UploadError(f"{shown} declares arrays of {format_size(declared)}, more than the "
                          f"{format_size(limits.unpacked)} an uploaded file may unpack to", role)


#: Memory a ``.csv`` or ``.json`` file takes while it is parsed, per byte of text (Python's strings and floats).
TEXT_FACTOR = 10


def _check_zip(path: Path, role: str, shown: str, limits: UploadLimits) -> None:
    """The members of a zip archive, from its directory, before anything reads them."""
    refused = f"{shown} is refused: the archive"
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise UploadError(f"{shown} is not a readable zip archive ({exc}); is it complete?", role) from None
    if len(members) > limits.members:
        raise UploadError(f"{refused} holds {len(members):,} members, more than {limits.members:,}", role)
    seen, total = set(), 0
    for info in members:
        member = info.filename
        parts = PurePosixPath(member.replace("\\", "/")).parts
        if member.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", member) or ".." in parts or "\0" in member:
            raise UploadError(f"{refused} holds a member named {short_repr(member, 80)}, outside the archive's folder",
                              role)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UploadError(f"{refused} holds a symbolic link, {short_repr(member, 80)}", role)
        if member in seen:
            raise UploadError(f"{refused} holds two members named {short_repr(member, 80)}", role)
        seen.add(member)
        size, packed = info.file_size, info.compress_size
        if size >= limits.ratio_from and size > limits.ratio * max(packed, 1):
            raise UploadError(f"{refused}'s member {short_repr(member, 80)} unpacks {format_size(packed)} into "
                              f"{format_size(size)}, {size / max(packed, 1):,.0f} times; more than "
                              f"{limits.ratio:g} times is taken for a zip bomb", role)
        total += size
    if total > limits.unpacked:
        raise UploadError(f"{refused} would unpack to {format_size(total)}, more than the "
                          f"{format_size(limits.unpacked)} an uploaded file may unpack to", role)


def _zip_contents(path: Path, role: str, shown: str, limits: UploadLimits) -> int | None:
    """What the arrays and HDF5 files inside a zip archive declare (an ``.npz``'s arrays, a ``.keras`` file's
    weights), read from the members' headers; the archive's directory was checked first (:func:`_check_zip`).
    An HDF5 member is copied beside the archive for h5py, never past its declared size, and removed."""
    total, found = 0, False
    with zipfile.ZipFile(path) as archive:
        for i, info in enumerate(archive.infolist()):
            name = info.filename.lower()
            if name.endswith(".npy"):
                with archive.open(info) as fh:
                    declared = _npy_bytes(fh)
            elif name.endswith((".h5", ".hdf5")):
                copy = path.with_name(f"{TMP_PREFIX}member-{i}-{os.getpid()}.h5")
                try:
                    with archive.open(info) as src, open(copy, "xb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    declared = _h5_bytes(copy, role, f"{shown}'s member {short_repr(info.filename, 80)}")
                finally:
                    copy.unlink(missing_ok=True)
            else:
                continue
            if declared is not None:
                total, found = total + declared, True
    return total if found else None


def _npy_bytes(fh) -> int | None:
    """Bytes of the array a ``.npy`` file (an open binary file) declares in its header; None if it has no readable
    header (the reader then says what is wrong)."""
    try:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fh)
    except Exception:  # not a .npy header: the reader refuses it with its own message
        return None
    return int(np.prod(shape, dtype=object)) * dtype.itemsize


def _h5_bytes(path: Path, role: str, shown: str) -> int | None:
    """Bytes of all the datasets an HDF5 file declares (their shapes, not their compressed storage); refuses a file
    whose data would be read from other files (external storage, virtual datasets, external links), which could
    be any file of the server. None if it is not HDF5 (the reader then says what is wrong)."""
    import h5py

    total, elsewhere = 0, []

    def visit(name, link):
        nonlocal total
        if isinstance(link, h5py.ExternalLink):
            elsewhere.append(f"{name!r} links to {link.filename!r}")
            return
        if isinstance(link, h5py.SoftLink):
            return
        obj = f.get(name)
        if isinstance(obj, h5py.Dataset):
            if obj.external or obj.is_virtual:
                elsewhere.append(f"dataset {name!r} is stored in other files")
            elif obj.shape is not None:
                total += int(np.prod(obj.shape, dtype=object)) * obj.dtype.itemsize

    try:
        f = h5py.File(path, "r")
    except Exception:  # not HDF5: the reader refuses it with its own message
        return None
    with f:
        f.visititems_links(visit)
    if elsewhere:
        raise UploadError(f"{shown} is refused: {elsewhere[0]}; an uploaded HDF5 file must hold its data itself",
                          role)
    return total


# -- the project -------------------------------------------------------------------------------------------------------


def _toml_text(text: str) -> str:
    """Text for a TOML basic string: characters that need no escape only."""
    return re.sub(r"[^A-Za-z0-9 ._()+,-]", "_", text)[:100]


def _write_manifest(folder: Path, name: str, stored: dict[str, Path], sent: dict[str, str]) -> None:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    what = "; ".join(f"{role} from {_toml_text(str(sent[role]).replace(chr(92), '/').split('/')[-1])}"
                     for role in stored)
    lines = [f'title = "{name}"',
             f'description = "Made in the browser on {when}: {what}."',
             f'model = "{stored["model"].name}"',
             f'inputs = "{stored["inputs"].name}"',
             "trust_model = false"]
    if "labels" in stored:
        lines.append(f'labels = "{stored["labels"].name}"')
        key = _inputs_key(stored["inputs"])
        if key is not None:  # (without labels, the project finds the keys of an .npz itself)
            lines.append(f'inputs_key = "{key}"')
    text = "\n".join(lines) + "\n"
    atomic_write(folder / "project.toml", lambda fh: fh.write(text.encode("utf-8")), replace=False)


def _inputs_key(path: Path) -> str | None:
    """The array of an ``.npz`` of several that holds the inputs, by its name (``x*``, ``data*``, ``input*``), as a
    project without a manifest finds it; None for another file, or when the name does not say."""
    if path.suffix.lower() != ".npz":
        return None
    try:
        keys = formats.list_keys(path)
    except InspectorError:  # unreadable: reading the inputs says why
        return None
    found = [k for k in keys if k.lower().startswith(("x", "data", "input"))]
    return found[0] if len(keys) > 1 and len(found) == 1 and re.fullmatch(r"[\w.-]+", found[0]) else None


#: The form's field that a finding of ``check_project`` is about, by its topic.
_FIELD = {"model": "model", "layer": "model", "views": "model", "inputs": "inputs", "labels": "labels"}


def _check(name: str, staging: Path, folder: Path, stored: dict[str, Path], sent: dict[str, str]) -> tuple[str, ...]:
    """Load the staged project and check it as ``doctor`` does, in a separate process limited in memory and time
    (:func:`engine.data.isolated.check_isolated`); raise the first error, return the warnings."""
    from engine.data.isolated import check_isolated

    def words(text: str) -> str:  # the user's names for the staged paths, which mean nothing to them
        for role, path in stored.items():
            text = text.replace(str(path), short_repr(sent[role], 80))
            text = re.sub(rf"(?<![\w./-]){re.escape(path.name)}(?![\w])", lambda _m, r=role: short_repr(sent[r], 80),
                          text)
        return text.replace(str(folder), f"project {name!r}").replace(str(staging), "the projects root")

    def refused(text: str, field: str | None) -> UploadError:
        text = words(text)
        if field == "model" and "trust_model" in text:
            text += ("; a project made in the browser is never trusted and has no hooks.py, so this model cannot "
                     "be sent as it is")
        elif field == "model" and "build_model" in text:
            text += "; a project made in the browser has no hooks.py: send a torch.export program (.pt2)"
        return UploadError(f"{text} (project {name!r} was not created)", field)

    try:
        findings = check_isolated(name, staging)  # in a process of its own: a model cannot take the server down
    except InspectorError as exc:
        raise refused(str(exc), _field_of(exc, stored)) from exc
    for finding in findings:
        if finding.level == "error":
            raise refused(finding.text, _FIELD.get(finding.topic))
    return tuple(words(f.text) for f in findings if f.level == "warning")


def _field_of(exc: InspectorError, stored: dict[str, Path]) -> str | None:
    from engine.errors import ModelError

    if isinstance(exc, ModelError):
        return "model"
    found = [role for role, path in stored.items() if str(path) in str(exc)]
    return found[0] if len(found) == 1 else None


def _forget_models(staging: Path | None) -> None:
    """Drop the models loaded from the staging folder from the process's memo: their files are gone."""
    if staging is None:
        return
    from engine.model import LOADED_MODELS

    prefix = str(staging) + os.sep
    for key in LOADED_MODELS.keys():
        if isinstance(key, tuple) and key and str(key[0]).startswith(prefix):
            LOADED_MODELS.pop(key)
