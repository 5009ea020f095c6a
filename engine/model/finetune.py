"""Fine-tune on a generated dataset: the model's suffix (for a classifier) or the probe, saved as new versions.

A generated dataset pairs activations at one layer with the user's labels; it holds no model inputs. So what can
learn from it is what reads that layer:

* :func:`finetune_suffix`, for a model whose output is a vector of class probabilities: the suffix after the layer
  is trained by the model's framework (:meth:`engine.model.Framework.train_suffix`: Keras ``fit``, a PyTorch Adam loop)
  on (activation, user label as class code). The suffix of a :class:`~engine.model.Split` shares the model's own
  weights, so training it updates them inside a freshly loaded copy of the whole model, which is then saved as a new
  version ``<project>/models/<stem>-<YYYYmmddTHHMMSS>.keras`` (``.pt2`` for PyTorch; UTC). ONNX files are refused.
  The prefix is untouched (layers it shares with the suffix are frozen), so the layer's activations, the
  projection and the records stay valid for the new version. The original file is never written.
* :func:`engine.explore.probe.finetune_probe`, for any model (an autoencoder's output is an image, not a class):
  the probe is refit on the project's labelled activations plus the records, new labels such as "not a number"
  included.

:func:`model_versions` lists the original and every saved version; ``project.with_model(version)`` gives the
project loading one of them; :func:`decode_with` runs activations through a version's suffix, to compare decodes
before and after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from engine.data.files import atomic_path
from engine.data.generated import GeneratedDataset
from engine.data.project import load_project
from engine.errors import DataError, ModelError, ProjectError
from engine.model import MODEL_SUFFIXES, framework_for, load_model, load_model_cached, split
from engine.progress import ProgressFn

__all__ = [
    "FineTuneResult",
    "ModelVersion",
    "decode_with",
    "finetune_suffix",
    "model_versions",
]

_STAMP = "%Y%m%dT%H%M%S"
_VERSION = re.compile(r"^(?P<stem>.+?)-(?P<stamp>\d{8}T\d{6})(?:-(?P<n>\d+))?$")


@dataclass(frozen=True)
class FineTuneResult:
    """What :func:`finetune_suffix` did.

    Attributes
    ----------
    path : Path
        The new model version (``<project>/models/<stem>-<YYYYmmddTHHMMSS>.keras``, or ``.pt2``).
    layer : str
        The layer whose suffix was trained.
    classes : tuple of str
        Class name of each model output, in output order.
    history : list of float
        Training loss of each epoch (dropout active).
    loss_before, loss_after : float
        Mean cross-entropy of the records' user labels in inference mode, before and after.
    accuracy_before, accuracy_after : float
        Share of records whose most probable output is their user label, before and after.
    n_records : int
        Records trained on.
    skipped : tuple of str
        Ids of records left out because their label is not one of the model's classes (``unknown_labels="skip"``).
    """

    path: Path
    layer: str
    classes: tuple[str, ...]
    history: list[float]
    loss_before: float
    loss_after: float
    accuracy_before: float
    accuracy_after: float
    n_records: int
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelVersion:
    """One model file of a project.

    Attributes
    ----------
    path : Path
    name : str
        File name.
    original : bool
        The model file the project folder names (``project.toml`` or the only model file), not a saved version.
    created : datetime or None
        For a saved version, the UTC time in its name.
    """

    path: Path
    name: str
    original: bool
    created: datetime | None


def _class_names(project, k: int) -> tuple[str, ...]:
    for names in (project.output_view.class_names, project.class_names):
        if names is not None and len(names) == k:
            return tuple(str(n) for n in names)
    return tuple(str(i) for i in range(k))


def _targets(records, classes, unknown_labels: str, where: str):
    code = {name: i for i, name in enumerate(classes)}
    keep, y, skipped = [], [], []
    for r in records:
        c = code.get(r.user_label)
        if c is None and r.user_label.isdigit() and int(r.user_label) < len(classes):
            c = int(r.user_label)
        if c is None:
            if unknown_labels == "skip":
                skipped.append(r.id)
                continue
            raise DataError(
                f"{where}: record {r.id} is labelled {r.user_label!r}, which is not one of the model's "
                f"{len(classes)} output classes ({', '.join(classes[:12])}{'...' if len(classes) > 12 else ''}); "
                "pass unknown_labels='skip' to leave such records out, or fine-tune the probe (finetune_probe)"
            )
        keep.append(r)
        y.append(c)
    return keep, np.array(y, dtype=np.int64), tuple(skipped)


def _scores(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    return float(-np.mean(np.log(p))), float(np.mean(probs.argmax(axis=1) == y))


def _base_stem(path: Path) -> str:
    m = _VERSION.match(path.stem)
    return m.group("stem") if m else path.stem


def _save_version(model, project, framework) -> Path:
    """Save ``model`` as a new file in ``<project>/models/``, under a name no file has (written whole or not at all;
    a name taken meanwhile, by another session in the same second, moves on to the next)."""
    folder = project.path / "models"
    stem = f"{_base_stem(project.model_path)}-{datetime.now(UTC).strftime(_STAMP)}"
    for n in range(1, 1000):
        ext = framework.version_suffix
        path = folder / (f"{stem}{ext}" if n == 1 else f"{stem}-{n}{ext}")
        if path.exists():
            continue
        try:
            with atomic_path(path, replace=False) as tmp:
                framework.save(model, tmp)
        except FileExistsError:
            continue
        return path
    raise ProjectError(f"{folder}: could not find a free name for {stem}{framework.version_suffix}")


def finetune_suffix(project, dataset, *, epochs: int = 3, learning_rate: float = 1e-3, batch_size: int = 32,
                    unknown_labels: str = "error", freeze_batchnorm: bool = True,
                    progress: ProgressFn | None = None) -> FineTuneResult:
    """Train a classifier's suffix on a generated dataset's (activation, user label) pairs; save a new version.

    Parameters
    ----------
    project : Project
        Its current model (``project.model_path``) is the starting point; the file is only read.
    dataset : GeneratedDataset or str
        The dataset (or its name in the project); its layer is where the model is cut.
    epochs : int
    learning_rate : float
        Adam's learning rate.
    batch_size : int
    unknown_labels : {"error", "skip"}
        What to do with records whose label is not one of the model's classes (matched by class name, or by
        class code written as digits).
    freeze_batchnorm : bool
        Keep BatchNormalization layers of the suffix in inference mode (a handful of records would otherwise
        replace their statistics).
    progress : callable(stage, done_epochs, epochs), optional
        Stage ``"training"``.

    Returns
    -------
    FineTuneResult
        With the new file's path and the records' loss and accuracy before and after.

    Raises
    ------
    ModelError
        The model's output is not a vector of class probabilities (an autoencoder, a regressor): use
        :func:`finetune_probe`.
    DataError
        An empty dataset, or a label outside the model's classes with ``unknown_labels="error"``.

    Example
    -------
    >>> result = finetune_suffix(project, "corrections", epochs=3)    # doctest: +SKIP
    >>> result.path.name, result.loss_before > result.loss_after      # doctest: +SKIP
    ('model-20251124T101500.keras', True)
    """
    if unknown_labels not in ("error", "skip"):
        raise DataError(f"unknown_labels must be 'error' or 'skip', got {unknown_labels!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ModelError(f"fine-tuning: epochs must be a positive integer, got {epochs!r}")
    ds = GeneratedDataset.with_records(project, dataset)
    layer = ds.manifest()["layer"]
    where = f"{ds.path}: dataset {ds.name!r}"
    framework = framework_for(project.model_path)
    if not framework.trainable:
        raise ModelError(f"{project.model_path.name}: {framework.title} files hold an inference graph without training "
                         "support, so the suffix cannot be fine-tuned here; fine-tune the model in the framework that "
                         "exported it, or fine-tune the probe (finetune_probe)")

    # a private copy: the cached one stays as is
    model = load_model(project.model_path, trust=project.trust_model, objects=project.model_objects())
    s = framework.split(model, layer)
    if len(s.output_shape) != 1 or s.output_shape[0] is None or s.output_shape[0] < 2:
        raise ModelError(
            f"project {project.name!r}: the model's output has shape {s.output_shape}, not a vector of class "
            "probabilities, so its suffix cannot learn labels; fine-tune the probe instead (finetune_probe)"
        )
    classes = _class_names(project, s.output_shape[0])
    records, y, skipped = _targets(ds.records(), classes, unknown_labels, where)
    if not records:
        raise DataError(f"{where}: no record is labelled with one of the model's classes ({', '.join(classes)})")
    z = np.stack([r.activation for r in records]).astype(np.float32)
    if z.shape[1:] != s.latent_shape:
        raise DataError(
            f"{where}: activations have shape {z.shape[1:]}, but layer {layer!r} of {project.model_path.name} "
            f"has shape {s.latent_shape}"
        )
    before = s.decode_heads(z)[0]
    if before.min() < -1e-6 or before.max() > 1 + 1e-6 or not np.allclose(before.sum(axis=1), 1.0, atol=1e-3):
        raise ModelError(
            f"project {project.name!r}: the model's outputs do not sum to 1 (not softmax class probabilities), so "
            "its suffix cannot be trained on labels with cross-entropy; fine-tune the probe instead (finetune_probe)"
        )
    loss_before, acc_before = _scores(before, y)
    history = framework.train_suffix(s, z, y, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                                     freeze_batchnorm=freeze_batchnorm, progress=progress)
    after = s.decode_heads(z)[0]
    loss_after, acc_after = _scores(after, y)
    path = _save_version(model, project, framework)
    return FineTuneResult(
        path=path, layer=layer, classes=classes, history=[float(v) for v in history],
        loss_before=loss_before, loss_after=loss_after, accuracy_before=acc_before, accuracy_after=acc_after,
        n_records=len(records), skipped=skipped,
    )


# -- versions -----------------------------------------------------------------------------------------------------


def model_versions(project) -> list[ModelVersion]:
    """The project's original model file, then its saved versions (``models/<stem>-<stamp>.keras`` or ``.pt2``),
    oldest first.

    Example
    -------
    >>> [v.name for v in model_versions(project)]  # doctest: +SKIP
    ['model.keras', 'model-20251124T101500.keras']
    """
    original = load_project(project.name, project.path.parent).model_path
    out = [ModelVersion(original, original.name, True, None)]
    folder = project.path / "models"
    if folder.is_dir():
        versions = []
        for p in folder.iterdir():
            m = _VERSION.match(p.stem)
            if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES and not p.name.startswith(".") and m:
                created = datetime.strptime(m.group("stamp"), _STAMP).replace(tzinfo=UTC)
                versions.append((created, int(m.group("n") or 1), p))
        out += [ModelVersion(p, p.name, False, created) for created, _, p in sorted(versions)]
    return out


def decode_with(project, model_path, layer: str, activations) -> np.ndarray:
    """Outputs of a model version's suffix for activations at ``layer``: compare decodes before and after.

    Parameters
    ----------
    project : Project
    model_path : str or Path or ModelVersion
    layer : str
    activations : array-like of shape (n, *layer_shape) or (n, features)

    Returns
    -------
    numpy.ndarray

    Example
    -------
    >>> d = insp.decode(1.0, 2.0)                                                       # doctest: +SKIP
    >>> after = decode_with(insp.project, versions[-1], insp.layer, d.activation[None])  # doctest: +SKIP
    """
    version = project.with_model(model_path)
    model = load_model_cached(version.model_path, trust=project.trust_model, objects=project.model_objects())
    return split(model, layer).decode(activations)
