"""Refine a model by moving samples on the map: fine-tune the layers before the cut until the layer agrees.

The user selects samples on the 2-D map of an :class:`~engine.explore.inspection.Inspection` and moves them (a
:class:`Move`: the selection is translated so that its centroid lands on a destination). :func:`refine` turns the
moves into training targets in the layer's space, trains the layers *before* the cut on a private copy of the model,
re-propagates the dataset and re-projects it with the inspection's fitted reducer (``transform``, never a refit, so
the map does not reshuffle), and saves the result as a new model version beside a JSON sidecar of the moves.

Targets
-------
Each moved sample keeps its own activation ``z`` and is displaced by ``dz``, a blend of two estimates of the
displacement that the move means in the layer::

    dz = (1 - pull) * (inverse(new_xy) - inverse(old_xy))               # the inverse map's
       +      pull  * (mean_k(new_xy) - mean_k(old_xy))                 # the data's

``inverse`` is the reducer's fitted inverse map; ``mean_k(p)`` is the mean activation of the ``neighbours`` unmoved
samples nearest to ``p`` on the map. The first term is exact for PCA (the sample moves within the plane, keeping its
components off the plane); a learned inverse can leave the data, so the second term pulls towards the activations
that really lie around the destination (a form of the pull towards the destination cluster of SpaceEditing). Both are
displacements: a move to where the samples already are gives ``dz == 0`` exactly, targets equal to the current
activations, a zero loss and zero gradients, so nothing changes.

Anchors (a random subset of the unmoved samples, seeded) keep their current activation as their target: the
regularizer that keeps the rest of the map in place. Their total weight is ``anchor_weight`` times the moved samples'.

Versions
--------
Each refinement is a new file in ``<project>/models/`` named as :func:`engine.model.finetune.model_versions` lists
them (never overwriting), with ``<version>.refine.json`` beside it: the parent version, the layer, the reducer
(method, inverse, parameters, seed), every move (sample ids, from and to positions), the hyper-parameters and seed, and
the measured drift. :func:`undo_refinement` removes a refinement's file and sidecar and returns its parent, which was
never written. ONNX models are refused (:class:`~engine.errors.ModelError`).

Example
-------
>>> insp = Inspection(load_project("mnist_confused"), "features")          # doctest: +SKIP
>>> result = refine(insp, [Move(ids=(12, 40, 41), to=(1.5, -0.3))])        # doctest: +SKIP
>>> result.path.name, result.map_drift                                     # doctest: +SKIP
('model-20261204T231500.keras', 0.012)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from engine.data.files import atomic_path
from engine.errors import ModelError, SelectionError, UsageError
from engine.model import framework_for, load_model, split
from engine.model.finetune import _save_version, model_versions
from engine.progress import ProgressFn, report
from engine.propagate.batches import conform, propagate_batches

__all__ = ["NEIGHBOURS", "SIDECAR_SUFFIX", "Move", "RefineResult", "Refinement", "load_moves", "move_targets",
           "neighbour_labels", "refine", "refined_inspection", "refinements", "transition", "undo_refinement"]

#: Appended to a version's file name for the JSON record of the moves that made it.
SIDECAR_SUFFIX = ".refine.json"


@dataclass(frozen=True)
class Move:
    """One drag: the samples ``ids`` translated together so that their centroid lands on ``to``.

    Attributes
    ----------
    ids : tuple of int
        Row numbers of the samples in the inspection (0-based).
    to : tuple of float
        The destination of their centroid, in the map's coordinates.
    """

    ids: tuple[int, ...]
    to: tuple[float, float]


@dataclass(frozen=True)
class Targets:
    """The training set :func:`move_targets` makes: rows, their activations and the displacements the moves ask of
    them, their weights; ``current + displacement`` is the target."""

    ids: np.ndarray  # sample rows: the moved ones first, then the anchors
    current: np.ndarray  # (n, features) activations now
    displacement: np.ndarray  # (n, features): target minus current (zero for the anchors)
    weights: np.ndarray  # (n,)
    n_moved: int
    old_xy: np.ndarray  # (n_moved, 2)
    new_xy: np.ndarray  # (n_moved, 2)


@dataclass(frozen=True)
class RefineResult:
    """What :func:`refine` did.

    Attributes
    ----------
    path : Path
        The new model version.
    sidecar : Path
        Its JSON record of the moves (``<version>.refine.json``).
    parent : Path
        The version it started from (what :func:`undo_refinement` returns to).
    layer : str
    moved : numpy.ndarray of int
        The moved samples' rows.
    wanted_xy : numpy.ndarray, shape (n_moved, 2)
        Where the moves put them.
    xy_before, xy_after : numpy.ndarray, shape (n, 2)
        Every sample on the map before and after, by the same fitted reducer (``transform``).
    activations_after : numpy.ndarray, shape (n, features)
        Every sample's activation at the layer under the new version.
    map_drift, layer_drift : float
        Mean displacement of the unmoved samples on the map and in the layer (Euclidean).
    moved_shift : float
        Mean displacement of the moved samples on the map.
    moved_gap_before, moved_gap_after : float
        Mean map distance of the moved samples to where they were moved, before and after.
    history : list of float
        Training loss of each step.
    seconds : float
        Wall time of the whole refinement (targets, training, re-propagation, re-projection, saving).
    outputs_before, outputs_after : numpy.ndarray
        The suffix's (first) output for the moved samples before and after (the suffix itself is not trained).
    neighbours_before, neighbours_after : numpy.ndarray or None
        For each moved sample, the most common label among its :data:`NEIGHBOURS` nearest unmoved samples in the
        layer, before and after: which class it sits among (None without labels).
    """

    path: Path
    sidecar: Path
    parent: Path
    layer: str
    moved: np.ndarray
    wanted_xy: np.ndarray
    xy_before: np.ndarray
    xy_after: np.ndarray
    activations_after: np.ndarray
    map_drift: float
    layer_drift: float
    moved_shift: float
    moved_gap_before: float
    moved_gap_after: float
    history: list[float]
    seconds: float
    outputs_before: np.ndarray
    outputs_after: np.ndarray
    neighbours_before: np.ndarray | None = None
    neighbours_after: np.ndarray | None = None


#: Unmoved samples around a moved one whose labels say which class it sits among (RefineResult.neighbours_*).
NEIGHBOURS = 10


def neighbour_labels(activations, rows, labels, k: int = NEIGHBOURS) -> np.ndarray:
    """For each of ``rows``, the most common label among its ``k`` nearest other samples not in ``rows`` (Euclidean,
    in ``activations``' space; a tie goes to the label seen first among the nearest).

    Example
    -------
    >>> acts = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [0.05]])
    >>> neighbour_labels(acts, [5], np.array([0, 0, 0, 1, 1, 1]), k=3).tolist()
    [0]
    """
    from sklearn.neighbors import NearestNeighbors

    acts = np.asarray(activations, np.float32).reshape(len(activations), -1)
    rows, labels = np.asarray(rows, np.int64), np.asarray(labels)
    others = np.setdiff1d(np.arange(len(acts)), rows)
    k = int(min(k, len(others)))
    if k < 1 or not len(rows):
        return labels[:0]
    _, idx = NearestNeighbors(n_neighbors=k).fit(acts[others]).kneighbors(acts[rows])
    near = labels[others][idx]
    out = []
    for row in near:
        values, first, counts = np.unique(row, return_index=True, return_counts=True)
        best = np.flatnonzero(counts == counts.max())
        out.append(values[best[np.argmin(first[best])]])
    return np.asarray(out, dtype=labels.dtype)


@dataclass(frozen=True)
class Refinement:
    """A saved refinement: a model version and the moves that made it (from its sidecar)."""

    path: Path
    sidecar: Path
    parent: str
    layer: str
    moves: list = field(default_factory=list)
    created: str = ""


# -- validation -----------------------------------------------------------------------------------------------------


def _moves(moves, n: int) -> list[Move]:
    if isinstance(moves, Move):
        moves = [moves]
    out = []
    for k, m in enumerate(moves):
        if not isinstance(m, Move):
            raise SelectionError(f"move {k}: expected a Move(ids, to), got {type(m).__name__}")
        ids = np.asarray(m.ids)
        if ids.ndim != 1 or len(ids) == 0:
            raise SelectionError(f"move {k}: no samples selected; select the samples to move first")
        if ids.dtype.kind not in "iu" and not (ids.dtype.kind == "f" and np.all(ids == np.round(ids))):
            raise SelectionError(f"move {k}: sample ids must be whole numbers, got {ids[:5].tolist()}")
        ids = ids.astype(np.int64)
        bad = ids[(ids < 0) | (ids >= n)]
        if len(bad):
            raise SelectionError(f"move {k}: sample {int(bad[0])} is not one of the {n:,} samples (ids 0..{n - 1})")
        to = np.asarray(m.to, dtype=np.float64).reshape(-1)
        if to.shape != (2,) or not np.isfinite(to).all():
            raise SelectionError(f"move {k}: the destination must be two finite map coordinates, got {m.to!r}")
        out.append(Move(tuple(int(i) for i in np.unique(ids)), (float(to[0]), float(to[1]))))
    if not out:
        raise SelectionError("no move given: drag a selection of samples to a new place first")
    seen = np.concatenate([m.ids for m in out])
    if len(np.unique(seen)) != len(seen):
        dup = int(next(i for i in seen if np.sum(seen == i) > 1))
        raise SelectionError(f"sample {dup} is in two moves; each sample can be moved once per refinement")
    return out


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UsageError(f"refine: {name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise UsageError(f"refine: {name} must be a number in [0, 1], got {value!r}")
    return float(value)


# -- targets --------------------------------------------------------------------------------------------------------


def _neighbour_means(acts: np.ndarray, embedding: np.ndarray, keep: np.ndarray, points: np.ndarray,
                     k: int) -> np.ndarray:
    """Mean activation of the ``k`` samples among rows ``keep`` nearest to each of ``points`` on the map."""
    from scipy.spatial import cKDTree

    k = min(k, len(keep))
    _, nn = cKDTree(embedding[keep]).query(points, k=k)
    nn = np.asarray(nn).reshape(len(points), k)
    return np.stack([acts[keep[row]].mean(axis=0) for row in nn])


def move_targets(inspection, moves, *, pull: float = 0.5, neighbours: int = 15, anchors: int = 256,
                 anchor_weight: float = 4.0, seed: int = 0) -> Targets:
    """The training targets of ``moves`` in the layer's space, with anchors (see the module's docstring).

    Parameters
    ----------
    inspection : Inspection
    moves : Move or sequence of Move
    pull : float in [0, 1]
        Weight of the data's displacement (neighbourhood means) against the inverse map's.
    neighbours : int
        Unmoved samples whose mean activation stands for a place on the map.
    anchors : int
        Unmoved samples drawn (seeded) to keep their activations; all of them when there are fewer.
    anchor_weight : float
        Total weight of the anchors, relative to the moved samples' total (4: keeping the map in place counts four
        times as much as the move; lower it to move further at the cost of more drift of the rest).
    seed : int

    Returns
    -------
    Targets

    Raises
    ------
    SelectionError
        A move without samples, an id outside the samples, a destination that is not two finite numbers, a sample in
        two moves.
    UsageError
        A parameter out of range.
    """
    pull = _fraction("pull", pull)
    neighbours = _positive_int("neighbours", neighbours)
    anchors = _positive_int("anchors", anchors, 0)
    if isinstance(anchor_weight, bool) or not isinstance(anchor_weight, (int, float)) or not (
            math.isfinite(anchor_weight) and anchor_weight >= 0):
        raise UsageError(f"refine: anchor_weight must be a finite number >= 0, got {anchor_weight!r}")
    acts = np.asarray(inspection.activations, dtype=np.float32)
    emb = np.asarray(inspection.embedding, dtype=np.float64)
    n = len(acts)
    moves = _moves(moves, n)
    moved = np.concatenate([np.asarray(m.ids, np.int64) for m in moves])
    old_xy = emb[moved]
    new_xy = np.concatenate([emb[list(m.ids)] + _shift(m, emb) for m in moves])
    unmoved = np.setdiff1d(np.arange(n), moved)
    if len(unmoved) == 0:
        raise SelectionError(f"every one of the {n:,} samples is selected; leave some unmoved to keep the map in place")

    reducer = inspection.reducer
    inv = np.asarray(reducer.inverse_transform(new_xy.astype(np.float32)), np.float32) - np.asarray(
        reducer.inverse_transform(old_xy.astype(np.float32)), np.float32)
    dz = (1 - pull) * inv
    if pull > 0:
        dz = dz + pull * (_neighbour_means(acts, emb, unmoved, new_xy, neighbours)
                          - _neighbour_means(acts, emb, unmoved, old_xy, neighbours))
    rng = np.random.default_rng(int(seed))
    anchor_ids = unmoved if len(unmoved) <= anchors else np.sort(rng.choice(unmoved, anchors, replace=False))
    ids = np.concatenate([moved, anchor_ids])
    displacement = np.zeros((len(ids), acts.shape[1]), np.float32)
    displacement[: len(moved)] = dz
    w = np.ones(len(ids), np.float32)
    if len(anchor_ids):
        w[len(moved):] = anchor_weight * len(moved) / len(anchor_ids)
    return Targets(ids, acts[ids], displacement, w, len(moved), old_xy, new_xy)


def _shift(move: Move, emb: np.ndarray) -> np.ndarray:
    """How far ``move`` translates its samples on the map; none when shorter than a millionth of the map's extent
    (a destination read back from the samples' own centroid in float32 lands within that of it)."""
    shift = np.asarray(move.to, np.float64) - emb[list(move.ids)].mean(axis=0)
    extent = float(np.ptp(emb, axis=0).max()) or 1.0
    return np.zeros(2) if np.abs(shift).max() <= 1e-6 * extent else shift


# -- refining -------------------------------------------------------------------------------------------------------


def refine(inspection, moves, *, steps: int = 100, learning_rate: float = 1e-3, batch_size: int = 512,
           last_layers: int | None = None, pull: float = 0.5, neighbours: int = 15, anchors: int = 256,
           anchor_weight: float = 4.0, seed: int = 0, progress: ProgressFn | None = None,
           cancel: Callable[[], bool] | None = None) -> RefineResult:
    """Move samples on the map and fine-tune the layers before the cut to agree; save a new model version.

    Parameters
    ----------
    inspection : Inspection
        Its project's current model (``project.model_path``) is the starting point (only read); its fitted reducer
        places the samples before and after.
    moves : Move or sequence of Move
    steps : int
        Adam steps (bounded work: each step is one minibatch).
    learning_rate : float
    batch_size : int
        Rows per step (the moved samples and the anchors together; all of them when there are no more).
    last_layers : int, optional
        Train only the last ``last_layers`` layers with weights before the cut (default: all of them).
    pull, neighbours, anchors, anchor_weight, seed
        See :func:`move_targets`; ``seed`` also draws the minibatches.
    progress : callable(stage, done, total), optional
        Stages ``"refining"`` (steps), ``"propagate"`` (rows), ``"reduce"`` (rows).
    cancel : callable() -> bool, optional
        Asked between steps; true stops the refinement with :class:`~engine.errors.Cancelled` and nothing is saved.

    Returns
    -------
    RefineResult

    Raises
    ------
    ModelError
        An ONNX model (no training support), or a layer with no weights before it.
    SelectionError, UsageError
        Bad moves or parameters (see :func:`move_targets`).

    Example
    -------
    >>> r = refine(insp, Move(ids=tuple(wrong_fours), to=centroid_of_fours), steps=60)   # doctest: +SKIP
    >>> r.moved_gap_after < r.moved_gap_before                                           # doctest: +SKIP
    True
    """
    t0 = time.perf_counter()
    project, layer = inspection.project, inspection.layer
    framework = framework_for(project.model_path)
    if not framework.trainable:
        raise ModelError(f"{project.model_path.name}: {framework.title} files hold an inference graph without "
                         "training support, so the layers before the cut cannot be refined here; refine the model "
                         "in the framework that exported it, or fine-tune the probe (finetune_probe)")
    steps = _positive_int("steps", steps)
    batch_size = _positive_int("batch_size", batch_size)
    if last_layers is not None:
        last_layers = _positive_int("last_layers", last_layers)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not (
            math.isfinite(learning_rate) and learning_rate > 0):
        raise UsageError(f"refine: learning_rate must be a positive number, got {learning_rate!r}")
    targets = move_targets(inspection, moves, pull=pull, neighbours=neighbours, anchors=anchors,
                           anchor_weight=anchor_weight, seed=seed)
    moves = _moves(moves, len(inspection.activations))

    # a private copy: the cached model (and every inspection on it) stays as is
    model = load_model(project.model_path, trust=project.trust_model, objects=project.model_objects())
    s = split(model, layer)
    x_all = project.inputs()
    preprocess = project.preprocess()
    x = np.asarray(x_all[targets.ids])
    x = conform(s, np.asarray(preprocess(x)) if preprocess is not None else x)
    history = framework.train_prefix(s, x, targets.displacement, targets.weights, steps=steps,
                                     learning_rate=learning_rate, batch_size=batch_size, last_layers=last_layers,
                                     relative=True, seed=seed, progress=progress, cancel=cancel)

    after = propagate_batches(s, x_all, progress=progress, preprocess=preprocess).reshape(len(x_all), -1)
    before = np.asarray(inspection.activations, np.float32)
    xy_before = np.asarray(inspection.embedding, np.float64)
    xy_after = np.asarray(inspection.reducer.transform(after), np.float64)
    report(progress, "reduce", len(after), len(after))
    moved = targets.ids[: targets.n_moved]
    unmoved = np.ones(len(after), bool)
    unmoved[moved] = False
    map_drift = float(np.linalg.norm(xy_after[unmoved] - xy_before[unmoved], axis=1).mean())
    layer_drift = float(np.linalg.norm(after[unmoved] - before[unmoved], axis=1).mean())
    wanted = targets.new_xy
    figures = {
        "map_drift": map_drift,
        "layer_drift": layer_drift,
        "moved_shift": float(np.linalg.norm(xy_after[moved] - xy_before[moved], axis=1).mean()),
        "moved_gap_before": float(np.linalg.norm(xy_before[moved] - wanted, axis=1).mean()),
        "moved_gap_after": float(np.linalg.norm(xy_after[moved] - wanted, axis=1).mean()),
    }
    labels = inspection.labels
    among = {} if labels is None else {"neighbours_before": neighbour_labels(before, moved, labels),
                                       "neighbours_after": neighbour_labels(after, moved, labels)}
    shape = (-1, *s.latent_shape)
    outputs_before = s.decode_heads(before[moved].reshape(shape))[0]
    outputs_after = s.decode_heads(after[moved].reshape(shape))[0]

    path = _save_version(model, project, framework)
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    record = {
        "kind": "refinement",
        "parent": _relative(project, project.model_path),
        "version": _relative(project, path),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "project": project.name,
        "layer": layer,
        "reducer": {"method": inspection.method, "inverse": inspection.inverse, "params": inspection.params,
                    "seed": inspection.seed},
        "moves": [{"ids": list(m.ids), "to": list(m.to),
                   "from": inspection.embedding[list(m.ids)].astype(float).round(6).tolist()} for m in moves],
        "hyper": {"steps": steps, "learning_rate": learning_rate, "batch_size": batch_size, "last_layers": last_layers,
                  "pull": pull, "neighbours": neighbours, "anchors": anchors, "anchor_weight": anchor_weight},
        "seed": seed,
        "figures": figures,
        "loss": {"first": history[0], "last": history[-1]},
    }
    try:
        with atomic_path(sidecar) as tmp:
            Path(tmp).write_text(json.dumps(record, indent=1, default=_plain))
    except BaseException:
        path.unlink(missing_ok=True)  # a version without its moves could not be reproduced
        raise
    return RefineResult(
        path=path, sidecar=sidecar, parent=project.model_path, layer=layer, moved=moved, wanted_xy=wanted,
        xy_before=xy_before, xy_after=xy_after, activations_after=after, history=history,
        seconds=time.perf_counter() - t0, outputs_before=outputs_before, outputs_after=outputs_after, **figures,
        **among,
    )


def refined_inspection(inspection, result: RefineResult, *, progress: ProgressFn | None = None):
    """The inspection of the version ``result`` saved, on the map of ``inspection`` (the one it was refined from):
    every sample where :attr:`RefineResult.xy_after` puts it, decoded through the refined model with an inverse map
    fitted again on its activations (:meth:`Inspection.on_map`). The map does not reshuffle, so the before and after
    pictures can be compared point by point.

    Example
    -------
    >>> r = refine(insp, move); after = refined_inspection(insp, r)                      # doctest: +SKIP
    >>> after.project.model_path == r.path                                               # doctest: +SKIP
    True
    """
    from engine.explore.inspection import Inspection

    if result.layer != inspection.layer or len(result.xy_after) != len(inspection.embedding):
        raise UsageError(f"refined_inspection: the refinement {result.path.name} was made at layer {result.layer!r} "
                         f"on {len(result.xy_after):,} samples, not at {inspection.layer!r} on "
                         f"{len(inspection.embedding):,}")
    project = inspection.project.with_model(result.path)
    return Inspection.on_map(inspection, project, result.activations_after, embedding=result.xy_after,
                             progress=progress)


def transition(xy_before, xy_after, frames: int = 8) -> list[np.ndarray]:
    """The places of every point on the way from ``xy_before`` to ``xy_after`` (n, 2), ``frames`` of them, eased in
    and out (a smoothstep in time), the last one ``xy_after`` itself: what the plot draws to show the points move.

    Example
    -------
    >>> [f.tolist() for f in transition(np.zeros((1, 2)), np.ones((1, 2)), frames=3)]
    [[[0.25925925925925924, 0.25925925925925924]], [[0.7407407407407407, 0.7407407407407407]], [[1.0, 1.0]]]
    """
    a, b = np.asarray(xy_before, np.float64), np.asarray(xy_after, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise UsageError(f"transition: the places before {a.shape} and after {b.shape} must be two (n, 2) arrays of "
                         "the same shape")
    frames = _positive_int("frames", frames)
    out = []
    for k in range(1, frames + 1):
        t = k / frames
        t = t * t * (3 - 2 * t)
        out.append(b.copy() if k == frames else a + (b - a) * t)
    return out


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _relative(project, path: Path) -> str:
    path = Path(path)
    try:
        return path.resolve().relative_to(project.path.resolve()).as_posix()
    except ValueError:
        return str(path)


# -- versions -------------------------------------------------------------------------------------------------------


def load_moves(version) -> dict:
    """The JSON record of the refinement that made ``version`` (a path or a :class:`ModelVersion`).

    Raises
    ------
    ModelError
        The version was not made by :func:`refine` (no sidecar), or its sidecar is not readable JSON.
    """
    path = Path(getattr(version, "path", version))
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.is_file():
        raise ModelError(f"{path.name}: not a refinement (no {sidecar.name} beside it); only versions made by "
                         "dragging samples carry their moves")
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{sidecar}: unreadable record of the moves ({exc})") from exc
    if not isinstance(record, dict) or record.get("kind") != "refinement":
        raise ModelError(f"{sidecar}: not a record of a refinement")
    return record


def refinements(project) -> list[Refinement]:
    """The project's model versions made by :func:`refine`, oldest first, with their moves."""
    out = []
    for v in model_versions(project):
        sidecar = v.path.with_name(v.name + SIDECAR_SUFFIX)
        if v.original or not sidecar.is_file():
            continue
        record = load_moves(v.path)
        out.append(Refinement(v.path, sidecar, str(record.get("parent", "")), str(record.get("layer", "")),
                              list(record.get("moves", [])), str(record.get("created", ""))))
    return out


def undo_refinement(project, version=None) -> Path:
    """Drop a refinement: remove its model file and its record of moves, and return the version it started from
    (never written by :func:`refine`, so it is restored exactly).

    Parameters
    ----------
    project : Project
    version : path or ModelVersion, optional
        The refinement to drop; default the project's current model (``project.model_path``).

    Returns
    -------
    Path
        The parent version.

    Raises
    ------
    ModelError
        The version is not a refinement (the original file, or a fine-tuned version without moves), or its parent
        is gone.
    """
    path = Path(getattr(version, "path", version)) if version is not None else Path(project.model_path)
    record = load_moves(path)
    parent = Path(record["parent"])
    parent = parent if parent.is_absolute() else project.path / parent
    if not parent.is_file():
        raise ModelError(f"{path.name}: its parent version {record['parent']!r} is gone, so undoing it would leave "
                         "no model to return to; switch to another version instead")
    path.unlink(missing_ok=True)  # the model first: a sidecar left alone lists nothing
    path.with_name(path.name + SIDECAR_SUFFIX).unlink(missing_ok=True)
    return parent
