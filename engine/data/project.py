"""Projects: one folder per inspected model under the projects root.

A project folder holds a model file (``.h5`` or ``.keras``), input data, optional labels, an optional
``project.toml`` manifest and an optional ``hooks.py``. Without a manifest the obvious is inferred (the only model
file; an ``x*``/``data*``/``input*`` file for inputs; a ``y*``/``label*`` file for labels) and every inference is
recorded in :attr:`Project.inferred`.

Paths from a manifest or a caller are confined to the projects root: a name such as ``../x``, an absolute path or
a symlink that leads outside is refused. The manifest's keys and types, and the confinement of the files it names,
are :mod:`engine.data.manifest`'s.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data import formats
from engine.data.files import file_hash
from engine.data.manifest import (
    confined,
    guess,
    input_scale,
    inside,
    read_manifest,
    short_repr,
    stem_starts,
    view_spec,
)
from engine.data.views import VIEW_KINDS, ViewSpec, check_view, infer_view
from engine.errors import DataError, InspectorError, ProjectError
from engine.memo import Memo
from engine.model import MODEL_SUFFIXES, load_model_cached, model_hash, model_in_memory, require_single_input
from engine.model.base import ModelObjects

__all__ = ["HOOK_NAMES", "VIEW_KINDS", "Project", "ViewSpec", "list_projects", "load_project", "project_dir",
           "projects_root"]

#: Projects' inputs, read (or mapped) and checked once per file (its size and time): see :meth:`Project.inputs`.
INPUTS = Memo(max_items=4, name="inputs of projects")
#: Projects' labels, read and checked once per file (and its size, time and the project's classes): every session of a
#: server opens its own :class:`Project`, and at 100 million samples one copy of the labels is 200 MB.
LABELS = Memo(max_items=4, name="labels of projects")

#: A project name: one folder name (no separator, no leading dot), at most 255 characters as file systems allow.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")

#: The names a project's ``hooks.py`` may define (:meth:`Project.hooks`).
HOOK_NAMES = ("preprocess", "custom_objects", "lambdas", "views", "build_model", "example_input")



def projects_root() -> Path:
    """The projects root: ``LATENT_INSPECTOR_PROJECTS``, else ``projects/`` of this checkout, else ``./projects``."""
    env = os.environ.get("LATENT_INSPECTOR_PROJECTS")
    if env:
        return Path(env).resolve()
    repo = Path(__file__).resolve().parent.parent / "projects"
    return repo if repo.is_dir() else (Path.cwd() / "projects").resolve()


def list_projects(root=None) -> list[str]:
    """Names of the project folders (those holding a model file or a manifest), sorted."""
    root = Path(root) if root is not None else projects_root()
    if not root.is_dir():
        return []
    real_root = root.resolve()
    names = []
    for p in sorted(root.iterdir()):
        if not (p.is_dir() and not p.name.startswith((".", "_")) and _NAME.fullmatch(p.name)):
            continue
        if p.resolve().parent != real_root:  # a symlink leading out: not a project, and not looked into
            continue
        try:
            if (p / "project.toml").is_file() or any(f.suffix.lower() in MODEL_SUFFIXES for f in p.iterdir()):
                names.append(p.name)
        except OSError:  # an unreadable folder is not a project
            continue
    return names


def project_dir(name: str, root=None) -> Path:
    """The folder of project ``name``, refusing names and symlinks that lead outside the projects root."""
    root = (Path(root) if root is not None else projects_root()).resolve()
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ProjectError(
            f"invalid project name {short_repr(name)}: use up to 255 letters, digits, '_', '-' and '.', naming a "
            f"folder in {root}"
        )
    path = (root / name).resolve()
    if path.parent != root:
        raise ProjectError(f"project {name!r} resolves to {path}, outside the projects root {root}; refused")
    if not path.is_dir():
        known = ", ".join(list_projects(root)) or "none"
        raise ProjectError(f"no project {name!r} in {root}; projects there: {known}")
    return path


@dataclass
class Project:
    """A project folder, resolved: which model, which inputs and labels, how to draw them.

    Build one with :func:`load_project`. Arrays and the model are read on first use and kept.
    """

    name: str
    path: Path
    model_path: Path
    inputs_path: Path | None
    inputs_key: str | None = None
    labels_path: Path | None = None
    labels_key: str | None = None
    class_names: tuple[str, ...] | None = None
    input_view_given: ViewSpec | None = None
    output_view_given: ViewSpec | None = None
    head_views_given: dict[str, ViewSpec] = field(default_factory=dict)
    default_layer: str | None = None
    input_scale: float | None = None
    trust_model: bool = False
    title: str = ""
    description: str = ""
    metadata_path: Path | None = None  # one row per sample (engine.data.metadata)
    inferred: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._inputs = self._labels = self._hooks = self._views = None
        self._layer_checked = False
        self.warnings = list(self.warnings)  # a copy (with_model) gathers its own

    # -- views ----------------------------------------------------------------------------------------------------

    @property
    def input_view(self) -> ViewSpec:
        """How an input sample is drawn: the manifest's ``[input_view]``, else inferred (:meth:`views`)."""
        return self.views()[0]

    @property
    def output_view(self) -> ViewSpec:
        """How a decoded output is drawn: the manifest's ``[output_view]``, else inferred (:meth:`views`)."""
        return self.views()[1]

    def views(self) -> tuple[ViewSpec, ViewSpec]:
        """``(input view, output view)``: the manifest's, checked against the model, else inferred from the model's
        shapes and final activation (:func:`engine.data.views.infer_view`); once per project object. For a model
        with several outputs, the output view is the first output's (:meth:`output_views` has each).

        Raises
        ------
        ProjectError
            A manifest view whose ``shape`` holds another number of values than the model's input or output, or a
            ``[output_view.NAME]`` naming no output of the model.
        """
        source, heads = self._all_views()
        return source, next(iter(heads.values()))

    def output_views(self) -> dict[str, ViewSpec]:
        """The view of each output of the model, by output name, in the model's order: ``[output_view.NAME]`` of
        the manifest (``[output_view]`` for the first or only output), else inferred."""
        return dict(self._all_views()[1])

    def _all_views(self):
        if self._views is None:
            self._views = self._resolve_views()
        return self._views

    def _resolve_views(self) -> tuple[ViewSpec, dict[str, ViewSpec]]:
        from engine.model import input_specs, output_specs

        model = self.model()
        toml = self.path / "project.toml"
        in_shape = input_specs(model)[0][1]
        if None in in_shape and self.inputs_path is not None:  # a free dimension: the data's own shape says it
            in_shape = tuple(self.inputs().shape[1:])
        if self.input_view_given is not None:
            problem = check_view(self.input_view_given, in_shape, f"{toml}: [input_view]", "the model's input")
            if problem:
                raise ProjectError(problem)
            source = self.input_view_given
        else:
            source = infer_view(in_shape)
        outputs = output_specs(model)
        names = [name for name, _, _ in outputs]
        unknown = sorted(set(self.head_views_given) - set(names))
        if unknown:
            raise ProjectError(f"{toml}: [output_view.{unknown[0]}] names no output of the model "
                               f"{self.model_path.name}; its outputs: {', '.join(map(repr, names))}")
        heads = {}
        for i, (name, shape, activation) in enumerate(outputs):
            given = self.head_views_given.get(name) or (self.output_view_given if i == 0 else None)
            section = f"[output_view{'.' + name if name in self.head_views_given else ''}]"
            if given is not None:
                problem = check_view(given, shape, f"{toml}: {section}", f"the model's output {name!r}")
                if problem:
                    raise ProjectError(problem)
                view = given if given.shape else dataclasses.replace(given, shape=_drawn_shape(given.kind, shape))
            else:
                view = infer_view(shape, activation=activation, like=source if len(outputs) == 1 else None)
            if view.class_names is None and view.kind == "probabilities":
                view = dataclasses.replace(view, class_names=self._names_for(name, shape))
            size = int(np.prod([d for d in shape if d is not None]))
            if view.class_names is not None and len(view.class_names) != size:
                self.warnings.append(f"{section} class_names lists {len(view.class_names)} names for the {size} "
                                     f"values of output {name!r}, so its bars are numbered")
                view = dataclasses.replace(view, class_names=None)
            heads[name] = view
        return source, heads

    def _names_for(self, output: str, shape) -> tuple[str, ...] | None:
        """The project's ``class_names`` for an output of probabilities, when their count matches its values; a
        warning naming both counts when it does not."""
        if self.class_names is None:
            return None
        n = int(np.prod([d for d in shape if d is not None]))
        if len(self.class_names) == n:
            return self.class_names
        self.warnings.append(f"class_names lists {len(self.class_names)} names but output {output!r} has {n} "
                             f"values, so its bars are numbered; name them with [output_view] class_names")
        return None

    # -- data -----------------------------------------------------------------------------------------------------

    def inputs(self) -> np.ndarray:
        """The input array (memory-mapped for large ``.npy``), checked: at least one sample, all finite. Read-only,
        and read and checked once per file in a process (:data:`INPUTS`): every dashboard session opens its own
        :class:`Project`, and the check reads every value (6.4 GB at 100 million samples of the scale benchmark)."""
        if self._inputs is None:
            if self.inputs_path is None:
                raise ProjectError(f"{self.path}: no inputs file in the project folder; add the data as x.npy (one "
                                   f"sample per row, in the model's input shape: `latent-inspector info "
                                   f"{self.name}` prints it) or name it with inputs = \"...\" in project.toml")
            self._inputs = INPUTS.get(self._inputs_memo_key(), self._read_inputs)
        return self._inputs

    def _inputs_memo_key(self) -> tuple:
        stat = self.inputs_path.stat()
        return (str(self.inputs_path.resolve()), self.inputs_key, stat.st_mtime_ns, stat.st_size)

    def _read_inputs(self) -> np.ndarray:
        x = formats.read_array(self.inputs_path, self.inputs_key)
        where = f"{self.inputs_path}" + (f" [{self.inputs_key}]" if self.inputs_key else "")
        if x.ndim < 2:
            raise DataError(f"{where}: inputs have shape {x.shape}; expected (samples, features...)")
        if len(x) == 0:
            raise DataError(f"{where}: holds zero samples; expected at least one")
        formats.check_finite(x, where)
        if x.flags.writeable:  # (a memory map is opened read-only)
            x.flags.writeable = False
        return x

    def labels(self) -> np.ndarray | None:
        """Integer class codes, one per input sample (int16 unless more classes need a wider type), or None for a
        project without labels. Read-only: the array is shared by every :class:`Project` of the same labels file
        (:data:`LABELS`), one per dashboard session among them."""
        if self.labels_path is None:
            return None
        if self._labels is None:
            n = len(self.inputs())
            self._labels = LABELS.get(self._labels_memo_key(n), lambda: self._read_labels(n))
        return self._labels

    def _labels_memo_key(self, n: int) -> tuple:
        stat = self.labels_path.stat()
        return (str(self.labels_path.resolve()), self.labels_key, stat.st_mtime_ns, stat.st_size, n,
                None if self.class_names is None else tuple(self.class_names))

    def in_memory(self) -> bool:
        """True when this process holds the project's model, inputs and labels (their files as they are now, read
        and checked by another :class:`Project` of the same folder): opening it then reads and checks nothing, so a
        dashboard session can open it at once rather than in the background."""
        if self.inputs_path is None or not self.model_path.is_file():
            return False
        try:
            inputs = INPUTS.peek(self._inputs_memo_key())
            if inputs is None:
                return False
            if self.labels_path is not None and self._labels_memo_key(len(inputs)) not in LABELS:
                return False
            return model_in_memory(self.model_path, trust=self.trust_model, objects=self.model_objects())
        except (OSError, InspectorError):  # a file gone or a hooks.py that fails: the opening says what
            return False

    def _read_labels(self, n: int) -> np.ndarray:
        y = formats.read_array(self.labels_path, self.labels_key)
        where = f"{self.labels_path}" + (f" [{self.labels_key}]" if self.labels_key else "")
        y = np.asarray(y)
        if y.ndim > 1 and 0 in y.shape[1:]:
            raise DataError(f"{where}: labels have shape {y.shape}; expected one class code per sample")
        if y.ndim == 2 and y.shape[1] > 1:  # one-hot
            y = y.argmax(axis=1)
        y = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
        if len(y) != n:
            raise DataError(f"{where}: {len(y)} labels for {n} input samples; expected one label per sample")
        if y.dtype.kind == "f":
            if not np.isfinite(y).all() or not np.all(y == np.round(y)):
                raise DataError(f"{where}: labels must be whole numbers (class codes), found fractions or NaN")
        if y.dtype.kind not in "iu":
            y = y.astype(np.int64)
        if y.min() < 0:
            raise DataError(f"{where}: negative label {int(y.min())}; expected class codes 0..K-1")
        if self.class_names is not None and y.max() >= len(self.class_names):
            raise DataError(
                f"{where}: label {int(y.max())} has no name; class_names lists {len(self.class_names)} classes"
            )
        # the smallest of int16, int32, int64 that holds every code (800 MB at 100 million samples as int64, 200 MB
        # as int16), in memory (not a view of a mapped file), read-only since shared
        y = y.astype(np.int16 if y.max() < 2**15 else np.int32 if y.max() < 2**31 else np.int64)
        y.flags.writeable = False
        return y

    # -- metadata (engine.data.metadata) ----------------------------------------------------------------------------

    def metadata(self):
        """The project's metadata table (``metadata.csv`` / ``metadata.parquet``, or the manifest's ``metadata``):
        a pandas DataFrame of one row per sample, read and checked once (:func:`engine.data.metadata.read_metadata`);
        None for a project without one.

        Raises
        ------
        DataError
            An unreadable or malformed table, or one whose row count is not the number of samples.
        """
        if self.metadata_path is None:
            return None
        if self.__dict__.get("_metadata") is None:
            from engine.data.metadata import read_metadata

            self._metadata = read_metadata(self.metadata_path, len(self.inputs()))
        return self._metadata

    def label_names(self) -> tuple[str, ...] | None:
        """Display name of every class code (the manifest's names, else the codes as text)."""
        y = self.labels()
        if y is None:
            return None
        if self.class_names is not None:
            return self.class_names
        return tuple(str(i) for i in range(int(y.max()) + 1))

    # -- model ----------------------------------------------------------------------------------------------------

    def model(self):
        """The model (of whichever framework its file is), loaded once per process. The manifest's
        ``default_layer`` is checked against it: a layer that does not exist, or where the model cannot be cut, raises
        :class:`ProjectError` naming the valid layers, rather than another layer being shown in its place."""
        model = load_model_cached(self.model_path, trust=self.trust_model, objects=self.model_objects())
        require_single_input(model)
        if self.default_layer is not None and not getattr(self, "_layer_checked", False):
            self._check_default_layer(model)
            self._layer_checked = True
        return model

    def _check_default_layer(self, model) -> None:
        from engine.model import list_layers

        layers = list_layers(model)
        where = f"{self.path / 'project.toml'}: default_layer = {short_repr(self.default_layer)}"
        valid = ", ".join(info.name for info in layers if info.valid_cut)
        found = [info for info in layers if info.name == self.default_layer]
        if not found:
            raise ProjectError(f"{where} is not a layer of the model {self.model_path.name}; layers where it can be "
                               f"cut: {valid}")
        if not found[-1].valid_cut:
            raise ProjectError(f"{where}: the model cannot be cut there ({found[-1].reason}); layers where it can "
                               f"be cut: {valid}")

    def choose_layer(self, layer: str | None = None) -> str:
        """The layer to inspect: ``layer`` when given, else the manifest's ``default_layer``, else the one inferred
        from the model (:meth:`inferred_layer`).

        Raises
        ------
        ProjectError
            The model has no valid cut between its inputs and outputs.
        """
        return layer or self.default_layer or self.inferred_layer()

    def inferred_layer(self) -> str:
        """The layer a project without ``default_layer`` opens at: of the valid cuts strictly between the inputs
        and the outputs, the one with the fewest units (an autoencoder's bottleneck, a classifier's last hidden
        features), the later one on a tie."""
        from engine.model import input_specs, list_layers, output_specs

        model = self.model()
        ends = {name for name, _, _ in input_specs(model)} | {name for name, _, _ in output_specs(model)}
        inner = [info for info in list_layers(model) if info.valid_cut and info.name not in ends]
        if not inner:
            raise ProjectError(f"{self.model_path}: the model has no layer between its inputs and outputs where it "
                               "can be cut; `latent-inspector info` says why for each layer")
        return min(reversed(inner), key=lambda info: info.units).name

    def model_hash(self) -> str:
        return model_hash(self.model_path)

    def model_files(self) -> list[Path]:
        """The model files of the project folder itself (not its ``models/`` versions), sorted by name.

        Example
        -------
        >>> [p.name for p in load_project("ae").model_files()]   # doctest: +SKIP
        ['ae10.keras', 'ae16.keras']
        """
        return sorted(f for f in self.path.iterdir()
                      if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in MODEL_SUFFIXES)

    def with_model(self, path) -> Project:
        """The same project (inputs, labels, views, hooks) loading another model file of its folder: a second
        model kept beside the first (a 16-D bottleneck beside a 10-D one), or a fine-tuned version in ``models/``.

        Parameters
        ----------
        path : str, Path, or anything with a ``path`` (a model version)
            Relative to the project folder, or absolute.

        Returns
        -------
        Project
            A copy whose ``model_path`` is ``path``; caches keyed by the model hash (activations, projections) tell
            the models apart.

        Raises
        ------
        ProjectError
            ``path`` is outside the project folder, missing, or not a model file.

        Example
        -------
        >>> other = load_project("ae").with_model("ae16.keras")   # doctest: +SKIP
        """
        given = getattr(path, "path", path)
        folder = self.path.resolve()
        resolved = (Path(given) if Path(given).is_absolute() else self.path / given).resolve()
        if folder not in resolved.parents:
            raise ProjectError(f"{self.path}: no model file {str(given)!r}: not inside the folder of project "
                               f"{self.name!r} ({self.path}); refused")
        if not resolved.is_file() or resolved.suffix.lower() not in MODEL_SUFFIXES:
            choices = ", ".join(f.name for f in self.model_files()) or "none"
            raise ProjectError(f"{self.path}: no model file {str(given)!r} in the project folder; model files "
                               f"there: {choices}")
        return dataclasses.replace(self, model_path=resolved)

    # -- hooks ----------------------------------------------------------------------------------------------------

    @property
    def hooks_path(self) -> Path | None:
        """The project's ``hooks.py``, or None; :class:`ProjectError` if it is a link that leads out of the folder."""
        path = self.path / "hooks.py"
        if not path.is_file():
            return None
        real = path.resolve()
        if self.path.resolve() not in real.parents:
            raise ProjectError(f"{path}: hooks.py resolves to {real}, outside the project folder; refused")
        return path

    def hooks(self):
        """The project's ``hooks.py`` as a module, or None. It is the project's own code, loaded on purpose: only
        from a project folder inside the projects root (symlinks that lead out are refused), once per process.

        Recognised names: ``preprocess(batch) -> batch`` applied to every input batch before the model;
        ``custom_objects`` and ``lambdas`` to load the model (:meth:`model_objects`); ``views``, a mapping of view
        kind to ``draw(sample) -> Panel/HoloViews object`` for the dashboard.
        """
        path = self.hooks_path  # refuses a hooks.py that leads out of the project folder
        if path is None:
            return None
        real = path.resolve()
        if getattr(self, "_hooks", None) is None:
            import importlib.util

            spec = importlib.util.spec_from_file_location(f"latent_inspector_hooks_{self.name}", real)
            module = importlib.util.module_from_spec(spec)
            import sys

            written = sys.dont_write_bytecode
            sys.dont_write_bytecode = True  # no __pycache__ in the user's project folder
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                raise ProjectError(f"{path}: the project's hooks failed to load ({type(exc).__name__}: {exc})") from exc
            finally:
                sys.dont_write_bytecode = written
            self._hooks = module
        return self._hooks

    def model_objects(self) -> ModelObjects | None:
        """What the project's ``hooks.py`` supplies to load its model, or None: ``custom_objects`` (a dict of name
        to class or function: custom layers, activations, functions a Lambda names) and ``lambdas`` (a dict of
        Lambda layer name to a replacement function, used instead of the bytecode in the file) for Keras;
        ``build_model()`` (the ``torch.nn.Module`` a state dict is loaded into) and ``example_input()`` (a batch to
        trace it with; default: the project's first samples after ``preprocess``) for PyTorch.

        Raises
        ------
        ProjectError
            A dict that is not of names to classes or functions, or a hook that is not a function.
        """
        hooks = self.hooks()
        if hooks is None:
            return None
        found = {}
        for name in ("custom_objects", "lambdas"):
            value = getattr(hooks, name, None)
            if value is None:
                continue
            if not isinstance(value, dict) or not all(isinstance(k, str) and callable(v) for k, v in value.items()):
                example = "{'SamplingLayer': SamplingLayer}" if name == "custom_objects" else "{'layer_name': fn}"
                raise ProjectError(f"{self.hooks_path}: {name} must be a dict of names to classes or functions, "
                                   f"such as {name} = {example}; got {short_repr(value)}")
            found[name] = dict(value)
        for name in ("build_model", "example_input"):
            value = getattr(hooks, name, None)
            if value is None:
                continue
            if not callable(value):
                raise ProjectError(f"{self.hooks_path}: {name} must be a function of no arguments; "
                                   f"got {short_repr(value)}")
            found[name] = value
        if not found:
            return None
        if "build_model" in found and "example_input" not in found and self.inputs_path is not None:
            found["example_input"] = self._example_input
        return ModelObjects(found.get("custom_objects", {}), found.get("lambdas", {}), found.get("build_model"),
                            found.get("example_input"), origin=str(self.hooks_path),
                            key=file_hash(self.hooks_path, 16))

    def _example_input(self):
        """The project's first two samples as the model takes them (after ``preprocess``): a batch to trace with."""
        batch = np.asarray(self.inputs()[:2])
        fn = self.preprocess()
        return np.asarray(fn(batch)) if fn is not None else batch

    def hooks_defined(self) -> list[str]:
        """Which of the names Latent Inspector reads (:data:`HOOK_NAMES`) the project's ``hooks.py`` defines."""
        hooks = self.hooks()
        return [] if hooks is None else [name for name in HOOK_NAMES if getattr(hooks, name, None) is not None]

    def preprocess(self):
        """What every input batch goes through before the model, or None: division by the manifest's
        ``input_scale`` (``input_scale = 255`` for 0..255 data into a model trained on 0..1), then the hooks'
        ``preprocess(batch) -> batch``."""
        hooks = self.hooks()
        fn = getattr(hooks, "preprocess", None) if hooks is not None else None
        if fn is not None and not callable(fn):
            raise ProjectError(f"{self.hooks_path}: preprocess must be a function of one batch")
        if self.input_scale is None:
            return fn
        return _Scaled(self.input_scale, fn)

    def data_hash(self) -> str:
        """Hash of the inputs file (content), for cache keys."""
        if self.inputs_path is None:
            self.inputs()  # says that there is none
        key = file_hash(self.inputs_path) + (f"-{self.inputs_key}" if self.inputs_key else "")
        if self.hooks_path is not None:  # preprocessing changes what reaches the model
            key += "-h" + file_hash(self.hooks_path, 8)
        if self.input_scale is not None:
            key += f"-s{self.input_scale:g}"
        return key


class _Scaled:
    """A batch divided by ``scale`` (as float32), then passed to ``then``: a project's preprocessing with
    ``input_scale``; picklable, for Dask workers."""

    def __init__(self, scale: float, then=None):
        self.scale, self.then = float(scale), then

    def __call__(self, batch):
        out = np.asarray(batch, dtype=np.float32) / np.float32(self.scale)
        return out if self.then is None else self.then(out)


def load_project(name, root=None) -> Project:
    """Resolve project ``name`` under the projects root.

    Parameters
    ----------
    name : str
        Folder name under the root (not a path).
    root : str or Path, optional
        Projects root; default :func:`projects_root`.

    Returns
    -------
    Project

    Raises
    ------
    ProjectError
        Unknown or invalid name, unreadable manifest, unknown manifest keys or values of the wrong type, or no
        model / no inputs to be found.

    Example
    -------
    >>> p = load_project("mnist"); p.inputs().shape  # doctest: +SKIP
    (10000, 28, 28, 1)
    """
    path = project_dir(name, root)
    manifest = read_manifest(path)
    inferred: list[str] = []
    files = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))

    if "model" in manifest:
        model_path = inside(path, manifest["model"], "model")
    else:
        models = [f for f in files if f.suffix.lower() in MODEL_SUFFIXES]
        if not models:
            raise ProjectError(f"{path}: no model file (.keras or .h5) in the project folder")
        if len(models) > 1:
            raise ProjectError(
                f"{path}: several model files ({', '.join(f.name for f in models)}); name one with "
                "model = \"...\" in project.toml"
            )
        model_path = confined(path, models[0], "model")
        inferred.append(f"model: {model_path.name} (the only model file)")

    # the metadata table: the manifest's, else metadata.csv / metadata.parquet (never taken for inputs or labels)
    if "metadata" in manifest:
        metadata_path = inside(path, manifest["metadata"], "metadata")
    else:
        from engine.data.metadata import find_metadata

        found = find_metadata(path)
        metadata_path = confined(path, found, "metadata") if found is not None else None
    data_files = [f for f in files if f.suffix.lower() in formats.READABLE and f not in (model_path, metadata_path)]
    if "inputs" in manifest:
        inputs_path = inside(path, manifest["inputs"], "inputs")
    elif not data_files:  # a model alone: its layers can be listed; reading inputs says what to add
        inputs_path = None
        inferred.append("inputs: none (no data file in the folder)")
    else:
        inputs_path = confined(path, guess(data_files, ("x", "data", "input"), path, "inputs"), "inputs")
        inferred.append(f"inputs: {inputs_path.name}")
    inputs_key = manifest.get("inputs_key")

    labels_path = None
    labels_key = manifest.get("labels_key")
    if "labels" in manifest:
        labels_path = inside(path, manifest["labels"], "labels")
    else:
        candidates = [f for f in data_files if f != inputs_path and stem_starts(f, ("y", "label"))]
        if len(candidates) == 1:
            labels_path = confined(path, candidates[0], "labels")
            inferred.append(f"labels: {labels_path.name}")
        elif inputs_path is not None and inputs_path.suffix.lower() == ".npz" and inputs_key is None:
            keys = formats.list_keys(inputs_path)
            xk = [k for k in keys if k.lower().startswith(("x", "data", "input"))]
            yk = [k for k in keys if k.lower().startswith(("y", "label"))]
            if len(xk) == 1:
                inputs_key = xk[0]
                inferred.append(f"inputs key: {inputs_key!r} in {inputs_path.name}")
                if len(yk) == 1:
                    labels_path, labels_key = inputs_path, yk[0]
                    inferred.append(f"labels: key {labels_key!r} in {inputs_path.name}")
        if labels_path is None:
            inferred.append("labels: none found (no y*/label* file)")

    class_names = manifest.get("class_names")
    if class_names is not None:
        class_names = tuple(str(c) for c in class_names)
    # [output_view] is a view (of the first or only output) and may hold [output_view.NAME] views of named outputs
    output_view = dict(manifest.get("output_view") or {})
    head_views = {k: output_view.pop(k) for k in list(output_view) if isinstance(output_view[k], dict)}
    plain_output = output_view or None

    return Project(
        name=path.name,
        path=path,
        model_path=model_path,
        inputs_path=inputs_path,
        inputs_key=inputs_key,
        labels_path=labels_path,
        labels_key=labels_key,
        class_names=class_names,
        input_view_given=view_spec(manifest.get("input_view"), path, "input_view", class_names),
        output_view_given=view_spec(plain_output, path, "output_view", None),
        head_views_given={head: view_spec(spec, path, f"output_view.{head}", None)
                          for head, spec in head_views.items()},
        default_layer=manifest.get("default_layer"),
        input_scale=input_scale(manifest.get("input_scale"), path),
        trust_model=bool(manifest.get("trust_model", False)),
        title=manifest.get("title", path.name),
        description=manifest.get("description", ""),
        metadata_path=metadata_path,
        inferred=inferred,
    )


def _drawn_shape(kind: str, shape) -> tuple[int, ...]:
    """The shape a view without one draws samples of per-sample ``shape`` with: bars of every value, or the
    output's own image or series shape."""
    shape = tuple(int(d) for d in shape if d is not None)
    if kind in ("probabilities", "vector"):
        return (int(np.prod(shape)),)
    return tuple(d for d in shape if d != 1) if kind == "series" else shape
