"""Generated datasets: decodes that a user labelled and saved, kept on disk so that none is lost or half-written.

A dataset lives in ``projects/<project>/generated/<dataset>/``::

    manifest.json                        project, layer, model hash at creation, class names, shapes, format
    records/00000007-3f2a9c1b0d4e.npz    one file per saved record: its sequence number and a random suffix
    deleted/00000003-9b1e04d2aa31.npz    records removed by delete() or undo(), moved aside (recoverable)
    .lock                                the file lock of writers

The format is append-only: a record file is written once and never changed. Each file is written to a temporary
name in the same folder, flushed and fsynced, renamed into place (``os.replace`` is atomic) and the folder is
fsynced; readers only consider complete names, so a writer killed at any moment leaves either the whole record or
nothing that looks like one. Removing a record is one atomic rename into ``deleted/``. Writers (save, delete,
undo) hold an exclusive ``fcntl.flock`` on ``.lock`` while they allocate the sequence number and write, so two
sessions or processes saving into one dataset neither clobber nor duplicate each other; readers need no lock.
A record file that cannot be read (damaged by something else) is skipped and listed in
:attr:`GeneratedDataset.skipped`, never fatal.

Labels are text: the user may accept the probe's prediction, pick another class or type a new label ("not a
number"). On export, ``y`` holds class codes into ``names``: the project's class names first (so a saved "3" of
MNIST is code 3, as in the project's own labels), then new labels in the order they were first saved.

POSIX only (``fcntl``). Importing this module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import io
import json
import os
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from engine.data.files import atomic_write, cannot_write, fsync_dir, remove_temporaries
from engine.errors import DataError, StorageError

__all__ = [
    "EXPORT_FORMATS",
    "FORMAT_VERSION",
    "GeneratedDataset",
    "Record",
    "list_datasets",
    "record_from_decode",
]

FORMAT_VERSION = 1
EXPORT_FORMATS = ("npz", "csv", "h5")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_RECORD_FILE = re.compile(r"^(\d{8})-([0-9a-f]{12})\.npz$")
_RECORD_ID = re.compile(r"^\d{8}-[0-9a-f]{12}$")


# -- records ------------------------------------------------------------------------------------------------------


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True, eq=False)
class Record:
    """One saved decode.

    Attributes
    ----------
    project : str
        Project name.
    model_hash : str
        Content hash of the model file that decoded it (``Project.model_hash()``).
    layer : str
        The inspected layer.
    method : str
        Reducer (``"pca"``, ``"umap"``, ``"tsne"``).
    params : dict
        The reducer's parameters (JSON values), tuned values resolved.
    inverse : str
        The inverse map's kind (``"exact"``, ``"mlp"``, ``"knn"``, ``"native"``).
    xy : tuple of float
        The decoded 2-D point, in the embedding's coordinates.
    activation : numpy.ndarray
        The inverse map's activation at the layer, in the layer's shape.
    output : numpy.ndarray
        The decoded output (the suffix's output for ``activation``).
    user_label : str
        The label the user gave (accepted prediction, another class, or a new text label).
    probe_label : str or None
        The probe's predicted class name, if a probe was trained.
    probabilities : dict of str to float, or None
        The probe's class probabilities by class name.
    trust : dict
        Trust measures of the point (``Trust.record(0)``: floats and bools).
    timestamp : str or None
        ISO 8601 UTC time of the save; filled by :meth:`GeneratedDataset.save` when None.
    id : str or None
        ``"<8-digit sequence>-<12 hex digits>"``; assigned by :meth:`GeneratedDataset.save`.

    Two records are equal when every field is: arrays with the same dtype, shape and values.
    """

    project: str
    model_hash: str
    layer: str
    method: str
    params: dict
    inverse: str
    xy: tuple[float, float]
    activation: np.ndarray
    output: np.ndarray
    user_label: str
    probe_label: str | None = None
    probabilities: dict[str, float] | None = None
    trust: dict = field(default_factory=dict)
    timestamp: str | None = None
    id: str | None = None

    _ARRAYS = ("activation", "output")

    def meta(self) -> dict:
        """Every field except the arrays, as JSON values."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self._ARRAYS} | {
            "xy": [float(v) for v in self.xy]
        }

    def to_dict(self) -> dict:
        """Every field by name; the arrays stay NumPy arrays (see :meth:`meta` for the JSON part)."""
        return self.meta() | {name: getattr(self, name) for name in self._ARRAYS}

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        """A record from :meth:`to_dict`'s output (lists are accepted for the arrays); unknown keys are refused.

        Raises
        ------
        DataError
            Missing or unknown fields, or values of the wrong kind.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [n for n in required if n not in data]
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unknown {', '.join(unknown)}"] if unknown else []
            )
            raise DataError(f"record fields: {'; '.join(parts)}; expected the fields {', '.join(names)}")
        values = dict(data)
        for name in cls._ARRAYS:
            values[name] = np.asarray(values[name])
        values["xy"] = tuple(float(v) for v in values["xy"])
        values["params"] = dict(values["params"] or {})
        values["trust"] = dict(values.get("trust") or {})
        if values.get("probabilities") is not None:
            values["probabilities"] = {str(k): float(v) for k, v in dict(values["probabilities"]).items()}
        return cls(**values)

    def summary(self) -> dict:
        """A flat row for a table: id, time, point, labels, the probe's confidence and the main trust measures."""
        probs = self.probabilities or {}
        return {
            "id": self.id,
            "timestamp": self.timestamp,
            "x": float(self.xy[0]),
            "y": float(self.xy[1]),
            "user_label": self.user_label,
            "probe_label": self.probe_label,
            "probe_confidence": max(probs.values()) if probs else None,
            "out_of_bounds": self.trust.get("out_of_bounds"),
            "relative_error": self.trust.get("relative_error"),
            "layer": self.layer,
            "method": self.method,
            "model_hash": self.model_hash,
        }

    def matches(self, inspection) -> bool:
        """True when the record was decoded on the same layer, reducer, parameters and inverse map as
        ``inspection``, so that its ``xy`` is a point of that inspection's plot."""
        return (
            self.layer == inspection.layer
            and self.method == inspection.method
            and self.inverse == _inverse_kind(inspection)
            and _canonical(self.params) == _canonical(_reducer_params(inspection))
        )

    def __eq__(self, other):
        if not isinstance(other, Record):
            return NotImplemented
        return _canonical(self.meta()) == _canonical(other.meta()) and all(
            _same_array(getattr(self, n), getattr(other, n)) for n in self._ARRAYS
        )

    __hash__ = object.__hash__


def _same_array(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def _json_value(value):
    """``value`` as plain JSON (tuples to lists, NumPy scalars to Python), or raise TypeError."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _reducer_params(inspection) -> dict:
    """The reducer's parameters that describe the projection (JSON values), with tuned values resolved."""
    reducer = inspection.reducer
    params = {}
    for key, value in reducer.get_params(deep=False).items():
        if key in ("cache_dir", "progress", "inverse", "chunk_size", "n_jobs"):
            continue
        try:
            params[key] = _json_value(value)
        except TypeError:
            continue
    tuning = getattr(reducer, "tuning_", None)
    if tuning is not None:
        params[tuning.param] = _json_value(tuning.chosen)
    return params


def _inverse_kind(inspection) -> str:
    fitted = getattr(inspection.reducer, "inverse_", None)
    return getattr(fitted, "kind", None) or str(inspection.inverse)


def record_from_decode(inspection, decode, user_label, probe=None) -> Record:
    """The record of one decode of ``inspection``, labelled ``user_label``, ready for :meth:`GeneratedDataset.save`.

    Parameters
    ----------
    inspection : Inspection
    decode : Decode
        From ``inspection.decode(x, y)``.
    user_label : str
        The user's label (text; a class name or a new label).
    probe : Probe, optional
        A fitted probe on the same layer: its prediction and class probabilities are recorded.

    Returns
    -------
    Record
        Without ``id`` and ``timestamp`` (the save assigns them).

    Example
    -------
    >>> d = insp.decode(1.0, -2.0)                                              # doctest: +SKIP
    >>> GeneratedDataset(insp.project, "corrections").save(record_from_decode(insp, d, "7", probe))  # doctest: +SKIP
    '00000001-5d1c0e7a9f3b'
    """
    prediction = probe.predict_one(decode.activation) if probe is not None else None
    trust = decode.trust.record(0) if hasattr(decode.trust, "record") else dict(decode.trust or {})
    return Record(
        project=inspection.project.name,
        model_hash=inspection.project.model_hash(),
        layer=inspection.layer,
        method=inspection.method,
        params=_reducer_params(inspection),
        inverse=_inverse_kind(inspection),
        xy=(float(decode.xy[0]), float(decode.xy[1])),
        activation=np.asarray(decode.activation),
        output=np.asarray(decode.output),
        user_label=str(user_label),
        probe_label=None if prediction is None else prediction.name,
        probabilities=None if prediction is None else dict(prediction.probabilities),
        trust={str(k): _json_value(v) for k, v in trust.items()},
    )


# -- files --------------------------------------------------------------------------------------------------------


def _record_bytes(record: Record):
    meta = json.dumps(record.meta() | {"format_version": FORMAT_VERSION})

    def write(fh):
        np.savez(fh, meta=np.array(meta), activation=record.activation, output=record.output)

    return write


def _read_record(path: Path) -> Record:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"][()]))
        activation, output = z["activation"], z["output"]
    version = meta.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise DataError(f"format version {version!r}; this engine reads version {FORMAT_VERSION}")
    record = Record.from_dict(meta | {"activation": activation, "output": output})
    if record.id != path.stem:
        raise DataError(f"holds record {record.id!r}, not the {path.stem!r} its name says")
    return record


# -- datasets -----------------------------------------------------------------------------------------------------


def _generated_dir(project) -> tuple[Path, str, tuple[str, ...] | None]:
    """(``<project>/generated``, project name, class names or None) of a Project or a project folder."""
    if hasattr(project, "path") and hasattr(project, "name"):
        names = project.label_names() if hasattr(project, "label_names") else None
        return Path(project.path) / "generated", project.name, (tuple(names) if names is not None else None)
    path = Path(project)
    if not path.is_dir():
        raise DataError(f"{path}: no such project folder")
    return path / "generated", path.name, None


def list_datasets(project) -> list[str]:
    """Names of the generated datasets of ``project`` (a Project or a project folder), sorted.

    Example
    -------
    >>> list_datasets(load_project("mnist"))  # doctest: +SKIP
    ['corrections', 'not-digits']
    """
    root, _, _ = _generated_dir(project)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _NAME.match(p.name) and (p / "manifest.json").is_file())


class GeneratedDataset:
    """A named dataset of saved decodes in ``<project>/generated/<name>/``.

    Opening one creates nothing: the folder and its manifest appear with the first save, which also fixes the
    dataset's project, layer and shapes (later records must match them).

    Parameters
    ----------
    project : Project or str or Path
        The project (its folder holds ``generated/``), or the project folder itself.
    name : str
        Dataset name: letters, digits, ``_``, ``-`` and ``.``, starting with a letter or digit (no path).

    Attributes
    ----------
    path : Path
        The dataset folder.
    skipped : list of (Path, str)
        Record files the last read could not load, with the reason.

    Raises
    ------
    DataError
        An invalid dataset name (naming it), or a project folder that does not exist.

    Example
    -------
    >>> ds = GeneratedDataset(load_project("mnist"), "corrections")   # doctest: +SKIP
    >>> rid = ds.save(record_from_decode(insp, insp.decode(0.5, 1.0), "not a number"))  # doctest: +SKIP
    >>> ds.export("corrections.npz")                                   # doctest: +SKIP
    """

    def __init__(self, project, name: str):
        if not isinstance(name, str) or not _NAME.match(name):
            raise DataError(
                f"invalid dataset name {name!r}: use up to 100 letters, digits, '_', '-' and '.', starting with a "
                "letter or digit (a name, not a path)"
            )
        root, self.project_name, self._class_names = _generated_dir(project)
        self.name = name
        self.path = root / name
        self.skipped: list[tuple[Path, str]] = []
        self._history: list[str] = []
        self._cache: dict[str, Record] = {}

    @classmethod
    def with_records(cls, project, dataset) -> GeneratedDataset:
        """``dataset`` (a GeneratedDataset, or a name in ``project``), checked to hold at least one record.

        Raises
        ------
        DataError
            The dataset holds no records.
        """
        ds = dataset if isinstance(dataset, GeneratedDataset) else cls(project, dataset)
        manifest = ds.manifest()
        if manifest is None or not len(ds):
            raise DataError(f"{ds.path}: dataset {ds.name!r} holds no records; save some labelled decodes first")
        return ds

    def __repr__(self) -> str:
        return f"GeneratedDataset({self.project_name!r}, {self.name!r})"

    @property
    def records_dir(self) -> Path:
        return self.path / "records"

    @property
    def deleted_dir(self) -> Path:
        return self.path / "deleted"

    @property
    def exists(self) -> bool:
        """True once a record has been saved (the manifest exists)."""
        return (self.path / "manifest.json").is_file()

    # -- writing --------------------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self):
        """Exclusive lock of the dataset's writers (released by the kernel if the process dies)."""
        self.records_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._sweep()
            yield
        finally:
            os.close(fd)

    def _sweep(self) -> None:
        """Remove temporaries left by a writer that died mid-write (no live writer has one: we hold the lock)."""
        for folder in (self.path, self.records_dir, self.deleted_dir):
            remove_temporaries(folder)

    def _record_files(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if _RECORD_FILE.match(p.name))

    def manifest(self) -> dict | None:
        """The dataset's manifest (project, layer, model hash at creation, class names, shapes), or None before the
        first save."""
        path = self.path / "manifest.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable manifest ({exc})") from None

    def _manifest_for(self, record: Record) -> dict:
        manifest = self.manifest()
        if manifest is None:
            manifest = {
                "format_version": FORMAT_VERSION,
                "dataset": self.name,
                "project": record.project,
                "layer": record.layer,
                "model_hash": record.model_hash,
                "class_names": list(self._class_names) if self._class_names is not None else None,
                "activation_shape": list(record.activation.shape),
                "output_shape": list(record.output.shape),
                "created": record.timestamp,
            }
            data = json.dumps(manifest, indent=2).encode()
            atomic_write(self.path / "manifest.json", lambda fh: fh.write(data))
            return manifest
        where = f"{self.path}: dataset {self.name!r}"
        if manifest.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{where} has format version {manifest.get('format_version')!r}; expected {FORMAT_VERSION}")
        if record.project != manifest["project"] or record.layer != manifest["layer"]:
            raise DataError(
                f"{where} holds decodes of project {manifest['project']!r} at layer {manifest['layer']!r}; this "
                f"record is of project {record.project!r} at layer {record.layer!r}: save it into another dataset"
            )
        for what in ("activation", "output"):
            want, have = tuple(manifest[f"{what}_shape"]), getattr(record, what).shape
            if have != want:
                raise DataError(f"{where} holds {what}s of shape {want}; this record's {what} has shape {have}")
        return manifest

    def _check(self, record: Record) -> Record:
        if not isinstance(record, Record):
            raise TypeError(f"save() takes a Record, got {type(record).__name__}")
        label = str(record.user_label).strip() if record.user_label is not None else ""
        if not label:
            raise DataError("the record has no user label; give it a class name or a new label before saving")
        for what in Record._ARRAYS:
            a = np.asarray(getattr(record, what))
            if a.dtype.kind not in "biuf":
                raise DataError(f"the record's {what} holds {a.dtype} values; expected numbers")
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                raise DataError(f"the record's {what} contains NaN or inf; expected finite numbers")
        if len(record.xy) != 2 or not np.isfinite(np.asarray(record.xy, dtype=float)).all():
            raise DataError(f"the record's xy is {record.xy!r}; expected two finite coordinates")
        try:
            meta = {k: _json_value(record.meta()[k]) for k in ("params", "trust", "probabilities")}
        except TypeError as exc:
            raise DataError(f"the record's params, trust and probabilities must be JSON values ({exc})") from None
        return dataclasses.replace(
            record,
            user_label=label,
            activation=np.asarray(record.activation),
            output=np.asarray(record.output),
            xy=(float(record.xy[0]), float(record.xy[1])),
            timestamp=record.timestamp or datetime.now(UTC).isoformat(timespec="microseconds"),
            **meta,
        )

    def save(self, record: Record) -> str:
        """Append ``record`` (atomically, under the dataset's lock) and return its new id.

        Parameters
        ----------
        record : Record
            Its ``id`` is replaced by a new one; a missing ``timestamp`` is set to now (UTC).

        Returns
        -------
        str
            The record id, ``"<sequence>-<random>"``; sequence numbers grow with every save.

        Raises
        ------
        DataError
            No user label, non-finite arrays, or a record that does not match the dataset's project, layer or
            shapes (the message names both).
        StorageError
            The disk is full, over quota or read-only: nothing of the record is left, the earlier records are kept.
        """
        record = self._check(record)
        first = False
        try:
            with self._locked():
                first = self.manifest() is None
                self._manifest_for(record)
                taken = [int(_RECORD_FILE.match(p.name).group(1))
                         for p in self._record_files(self.records_dir) + self._record_files(self.deleted_dir)]
                seq = max(taken, default=0) + 1
                rid = f"{seq:08d}-{uuid.uuid4().hex[:12]}"
                record = dataclasses.replace(record, id=rid)
                atomic_write(self.records_dir / f"{rid}.npz", _record_bytes(record))
        except OSError as exc:
            if not cannot_write(exc):
                raise
            if first:  # the dataset this save was creating: no manifest of a dataset without records
                (self.path / "manifest.json").unlink(missing_ok=True)
            raise StorageError(f"{self.path}: the record was not saved to dataset {self.name!r}: "
                               f"{exc.strerror or exc} ({exc.filename or self.path}); nothing of it was written, "
                               "and the dataset's earlier records are as they were. Free some space (or make the "
                               "folder writable) and save it again") from None
        self._cache[rid] = record
        self._history.append(rid)
        return rid

    def delete(self, record_id: str) -> Record:
        """Remove one record (an atomic move into ``deleted/``, where it can be recovered by hand).

        Returns
        -------
        Record
            The removed record.

        Raises
        ------
        DataError
            No such record in the dataset.
        """
        if not isinstance(record_id, str) or not _RECORD_ID.match(record_id):
            raise DataError(f"invalid record id {record_id!r}; expected '<8 digits>-<12 hex digits>'")
        with self._locked():
            src = self.records_dir / f"{record_id}.npz"
            if not src.is_file():
                raise DataError(f"{self.path}: dataset {self.name!r} has no record {record_id!r}")
            record = self._load_file(src)
            self.deleted_dir.mkdir(exist_ok=True)
            os.replace(src, self.deleted_dir / src.name)
            fsync_dir(self.deleted_dir)
            fsync_dir(self.records_dir)
        self._cache.pop(record_id, None)
        if record_id in self._history:
            self._history.remove(record_id)
        return record

    def undo(self) -> Record | None:
        """Remove the newest record saved through this object; a fresh object (after a restart) has saved nothing
        and removes the dataset's newest record. Returns the removed record, or None if there is none."""
        while self._history:
            rid = self._history[-1]
            if (self.records_dir / f"{rid}.npz").is_file():
                try:
                    return self.delete(rid)
                except DataError:  # deleted meanwhile by another session
                    pass
            self._history.pop()
        files = self._record_files(self.records_dir)
        return self.delete(files[-1].stem) if files else None

    # -- reading --------------------------------------------------------------------------------------------------

    def _load_file(self, path: Path) -> Record:
        hit = self._cache.get(path.stem)
        if hit is None:
            hit = self._cache[path.stem] = _read_record(path)
        return hit

    def ids(self) -> list[str]:
        """Ids of the records present, oldest first."""
        return [p.stem for p in self._record_files(self.records_dir)]

    def records(self) -> list[Record]:
        """Every readable record, oldest first; unreadable files are skipped and listed in :attr:`skipped`."""
        out, skipped = [], []
        for path in self._record_files(self.records_dir):
            try:
                out.append(self._load_file(path))
            except FileNotFoundError:  # deleted by another session while we listed
                continue
            except Exception as exc:  # a file damaged by something else: never fatal to reading the others
                skipped.append((path, f"{type(exc).__name__}: {exc}"))
        self.skipped = skipped
        return out

    def load(self, record_id: str) -> Record:
        """One record by id.

        Raises
        ------
        DataError
            No such record, or its file is unreadable.
        """
        path = self.records_dir / f"{record_id}.npz"
        if not isinstance(record_id, str) or not _RECORD_ID.match(record_id) or not path.is_file():
            raise DataError(f"{self.path}: dataset {self.name!r} has no record {record_id!r}")
        try:
            return self._load_file(path)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
        except Exception as exc:
            raise DataError(f"{path}: unreadable record ({type(exc).__name__}: {exc})") from exc

    def __len__(self) -> int:
        return len(self.ids())

    def __iter__(self):
        return iter(self.records())

    def table(self) -> list[dict]:
        """One :meth:`Record.summary` row per record, oldest first (for a table view)."""
        return [r.summary() for r in self.records()]

    def label_names(self, records=None) -> list[str]:
        """The export's class names: the project's class names, then new user labels in order of first save."""
        manifest = self.manifest() or {}
        names = list(manifest.get("class_names") or self._class_names or [])
        for r in self.records() if records is None else records:
            if r.user_label not in names:
                names.append(r.user_label)
        return names

    def arrays(self) -> dict[str, np.ndarray]:
        """The records as arrays, ready to train on.

        Returns
        -------
        dict
            ``x`` (n, *output_shape) decoded outputs; ``y`` (n,) int64 codes into ``names``; ``names`` (str);
            ``labels`` (n,) the user labels as text; ``activation`` (n, *layer_shape); ``xy`` (n, 2);
            ``ids`` (n,) record ids.

        Raises
        ------
        DataError
            The dataset holds no records.
        """
        records = self.records()
        if not records:
            raise DataError(f"{self.path}: dataset {self.name!r} holds no records; save some decodes first")
        names = self.label_names(records)
        code = {n: i for i, n in enumerate(names)}
        return {
            "x": np.stack([r.output for r in records]),
            "y": np.array([code[r.user_label] for r in records], dtype=np.int64),
            "names": np.array(names, dtype=str),
            "labels": np.array([r.user_label for r in records], dtype=str),
            "activation": np.stack([r.activation for r in records]),
            "xy": np.array([r.xy for r in records], dtype=np.float64),
            "ids": np.array([r.id for r in records], dtype=str),
        }

    def export(self, path, format: str | None = None) -> Path:
        """Write the dataset as one training file, atomically.

        Parameters
        ----------
        path : str or Path
        format : {"npz", "csv", "h5"}, optional
            Default: from the file's suffix.

            * ``npz``: the arrays of :meth:`arrays` (``x``, ``y``, ``names``, ``labels``, ``activation``, ``xy``,
              ``ids``); load with ``np.load(path)``.
            * ``h5``: the same, as HDF5 datasets (text as UTF-8 strings), plus attributes ``project``, ``layer``.
            * ``csv``: a header ``id,y,label,x_0,...`` then one row per record, ``x`` flattened in C order, floats
              written so that they read back exactly.

        Returns
        -------
        Path

        Raises
        ------
        DataError
            No records, or an unknown format.
        StorageError
            The disk is full, over quota or read-only: nothing is written.

        Example
        -------
        >>> ds.export("corrections.h5"); ds.export("corrections.csv")  # doctest: +SKIP
        """
        path = Path(path)
        fmt = (format or path.suffix.lstrip(".")).lower()
        fmt = "h5" if fmt == "hdf5" else fmt
        if fmt not in EXPORT_FORMATS:
            raise DataError(f"{path}: cannot export as {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
        data = self.arrays()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if fmt == "npz":
                atomic_write(path, lambda fh: np.savez(fh, **data))
            elif fmt == "csv":
                atomic_write(path, lambda fh: fh.write(_csv_text(data).encode("utf-8")))
            else:
                self._write_h5(path, data)
        except OSError as exc:
            if not cannot_write(exc):
                raise
            raise StorageError(f"{path}: dataset {self.name!r} was not exported: {exc.strerror or exc}; nothing was "
                               "written there (a file of that name before is as it was)") from None
        return path

    def _write_h5(self, path: Path, data: dict) -> None:
        import h5py

        manifest = self.manifest() or {}
        text = h5py.string_dtype("utf-8")

        def write(fh):
            with h5py.File(fh, "w") as f:
                for key, value in data.items():
                    if value.dtype.kind == "U":
                        f.create_dataset(key, data=value.astype(object), dtype=text)
                    else:
                        f.create_dataset(key, data=value)
                f.attrs["project"] = manifest.get("project", self.project_name)
                f.attrs["layer"] = manifest.get("layer", "")
                f.attrs["dataset"] = self.name

        atomic_write(path, write)


def _csv_text(data: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    x = data["x"].reshape(len(data["x"]), -1)
    writer.writerow(["id", "y", "label", *(f"x_{j}" for j in range(x.shape[1]))])
    for rid, code, label, row in zip(data["ids"], data["y"], data["labels"], x):
        writer.writerow([rid, int(code), label, *(repr(v.item()) for v in row)])
    return out.getvalue()
