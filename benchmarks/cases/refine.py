"""Refinement by dragging samples on the map, against plain fine-tuning on the same corrected labels (confused MNIST).

The case (``benchmarks/confused.py``): an MNIST MLP classifier trained with 40 % of its training 4s labelled 9 and as
many 9s labelled 4, mapped at its 16-unit ``features`` layer by PCA. A scripted user, seeing the true digits'
colours, drags in each round two selections: up to ``PER_DRAG`` training 4s that the model calls 9, past the
centroid of the 4s it gets right, away from the 9s (``BEYOND``), and the same for the 9s (two drags a round, one
:func:`engine.explore.refine.refine` of ``STEPS`` steps on the layers before the cut). Each round starts from the
previous round's version, on a fresh map of it; rounds stop when no such sample is left or after ``ROUNDS``, and
a round after which the model gets as many training 4s and 9s wrong as before it or more (what the map shows the
user) is undone (:func:`engine.explore.refine.undo_refinement`) and ends the session.

Baseline in the same run: the tool's plain fine-tuning (:func:`engine.model.finetune.finetune_suffix`) on records of
the same samples with their corrected (true) labels, from the original model: it trains the layers after the cut,
so it moves nothing on the map.

Measured, before and after each side: the error of a probe (logistic regression on the layer's activations, fitted
on the 9,000 training digits' true labels) on the 1,000 held-out digits; the model's own held-out error, overall and
on the held-out 4s and 9s; the time of each refinement; the drift of the unmoved samples (mean displacement on the
map, as a share of its extent, and in the layer).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.confused import NAME, build
from benchmarks.harness import Comparison, Side

CASE = "refine"
ROUNDS, QUICK_ROUNDS = 3, 1
PER_DRAG = 40
#: Where a drag ends: past the centroid of the digit's right answers, away from the other digit's, by this share of
#: the distance between the two centroids (on this layer the two digits overlap on the map: a drag onto the
#: centroid alone moves the samples by 2 % of the map).
BEYOND = 3.0
STEPS, LEARNING_RATE = 150, 3e-3
FINETUNE_EPOCHS = 10
SEED = 0


def _figures(project, version, holdout, train) -> dict:
    """Probe and model held-out errors (per 1,000) of ``version``, and its activations."""
    from engine.explore.probe import Probe
    from engine.model import load_model, split
    from engine.propagate.batches import propagate_batches

    s = split(load_model(version), project.default_layer)
    x, y = project.inputs(), np.asarray(project.labels())
    acts = propagate_batches(s, x, preprocess=project.preprocess()).reshape(len(x), -1)
    pred = s.decode(acts[holdout]).argmax(axis=1)
    probe = Probe(random_state=SEED).fit(acts[train], y[train])
    four_nine = np.isin(y[holdout], (4, 9))
    return {
        "probe_errors": 1000 * (1 - probe.score(acts[holdout], y[holdout])),
        "model_errors": 1000 * float(np.mean(pred != y[holdout])),
        "model_errors_4_9": 1000 * float(np.mean(pred[four_nine] != y[holdout][four_nine])),
        "activations": acts,
    }


def _drags(insp, train, per_drag: int, rng):
    """The round's moves: per class pair, training samples of one digit that the model calls the other, onto the
    centroid of the training samples of their digit that it gets right."""
    from engine.explore.refine import Move

    y = np.asarray(insp.labels)
    pred = insp.predictions()
    moves = []
    for digit, called in ((4, 9), (9, 4)):
        wrong = np.flatnonzero(train & (y == digit) & (pred == called))
        right = train & (y == digit) & (pred == digit)
        other = train & (y == called) & (pred == called)
        if len(wrong) == 0 or not right.any() or not other.any():
            continue
        pick = np.sort(rng.choice(wrong, min(per_drag, len(wrong)), replace=False))
        own, theirs = insp.embedding[right].mean(axis=0), insp.embedding[other].mean(axis=0)
        to = own + BEYOND * (own - theirs)
        moves.append(Move(tuple(int(i) for i in pick), tuple(float(v) for v in to)))
    return moves


def _wrong(insp, train) -> int:
    """What the user sees on the map: training 4s and 9s that the model calls something else."""
    y = np.asarray(insp.labels)
    four_nine = train & np.isin(y, (4, 9))
    return int(np.sum(insp.predictions()[four_nine] != y[four_nine]))


def _finetune_suffix(project, ids, cache_dir):
    """The baseline: records of the samples ``ids`` with their true labels, the suffix fine-tuned on them."""
    from engine.data.generated import GeneratedDataset, Record
    from engine.model import split
    from engine.model.finetune import finetune_suffix

    s = split(project.model(), project.default_layer)
    pre = project.preprocess()
    x = np.asarray(project.inputs()[ids])
    z = s.encode(pre(x) if pre is not None else x)
    y = np.asarray(project.labels())[ids]
    ds = GeneratedDataset(project, "corrected")
    for zi, label in zip(z, y, strict=True):
        ds.save(Record(project=project.name, model_hash=project.model_hash(), layer=project.default_layer,
                       method="pca", params={}, inverse="exact", xy=(0.0, 0.0), activation=zi,
                       output=np.full(10, 0.1, np.float32), user_label=str(int(label))))
    t0 = time.perf_counter()
    result = finetune_suffix(project, ds, epochs=FINETUNE_EPOCHS, learning_rate=1e-3, batch_size=32)
    return result, time.perf_counter() - t0


def run(quick: bool) -> list[Comparison]:
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection
    from engine.explore.refine import refine, undo_refinement

    built = build()
    rounds = QUICK_ROUNDS if quick else ROUNDS
    with tempfile.TemporaryDirectory(prefix="refine-bench-") as tmp:
        tmp = Path(tmp)
        shutil.copytree(built, tmp / NAME)
        project = load_project(NAME, tmp)
        n = len(project.inputs())
        holdout = np.load(project.path / "holdout.npy")
        train = np.ones(n, bool)
        train[holdout] = False
        before = _figures(project, project.model_path, holdout, train)

        rng = np.random.default_rng(SEED)
        current, seconds, drags, moved = project, [], 0, []
        map_drift, layer_drift, gaps, after, best = [], [], [], before, None
        undone, previous, previous_figures = 0, project, before
        for done in range(rounds + 1):
            insp = Inspection(current, project.default_layer, method="pca", seed=SEED, cache_dir=tmp / "cache")
            wrong = _wrong(insp, train)
            if best is not None and wrong >= best:  # the last round made it worse: the user undoes it and stops
                undo_refinement(current)
                current, after, undone = previous, previous_figures, undone + 1
                seconds, map_drift, layer_drift, gaps = seconds[:-1], map_drift[:-1], layer_drift[:-1], gaps[:-1]
                break
            best = wrong
            moves = _drags(insp, train, PER_DRAG, rng) if done < rounds else []
            if not moves:
                break
            previous, previous_figures = current, after
            result = refine(insp, moves, steps=STEPS, learning_rate=LEARNING_RATE, seed=SEED)
            extent = float(np.ptp(insp.embedding, axis=0).max())
            seconds.append(result.seconds)
            drags += len(moves)
            moved += [i for m in moves for i in m.ids]
            map_drift.append(result.map_drift / extent)
            layer_drift.append(result.layer_drift)
            gaps.append((result.moved_gap_before / extent, result.moved_gap_after / extent))
            current = project.with_model(result.path)
            after = _figures(project, result.path, holdout, train)

        moved = np.asarray(sorted(set(moved)), np.int64)
        tuned, tune_s = _finetune_suffix(project, moved, tmp / "cache")
        suffix = _figures(project, tuned.path, holdout, train)

    context = {"drags": drags, "rounds": len(seconds), "undone": undone, "moved_samples": len(moved), "steps": STEPS,
               "learning_rate": LEARNING_RATE, "finetune_epochs": FINETUNE_EPOCHS}
    label_tail = (f"({drags} drags in {len(seconds) + undone} rounds, {undone} undone; {len(moved)} samples "
                  "moved)")
    rows = []
    for key, what in (("probe_errors", "probe held-out errors per 1,000"),
                      ("model_errors", "model held-out errors per 1,000"),
                      ("model_errors_4_9", "model held-out errors per 1,000 on the 4s and 9s")):
        rows.append(Comparison(
            CASE, f"{what}, after {label_tail}; before {before[key]:.0f}", "per 1,000",
            Side("refine (drag)", [after[key]]), Side("fine-tune suffix, same labels", [suffix[key]]),
            extra={"before": round(before[key], 1), **context}))
    rows.append(Comparison(
        CASE, f"time per refinement {label_tail}", "s", Side("refine (drag)", seconds,
                                                             note=f"{STEPS} steps, re-propagation, re-projection"),
        Side("fine-tune suffix, same labels", [tune_s], note=f"{FINETUNE_EPOCHS} epochs"), extra=context))
    rows.append(Comparison(
        CASE, "drift of the unmoved samples on the map, per 1,000 of its extent (suffix fine-tuning: 0, the layer is "
        "untouched)", "per 1,000", Side("refine (drag)", [1000 * d for d in map_drift]),
        extra={"layer_drift": [round(d, 4) for d in layer_drift],
               "moved_gap_share_before_after": [[round(a, 3), round(b, 3)] for a, b in gaps], **context}))
    return rows
