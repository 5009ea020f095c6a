"""A project checked in seconds, as ``latent-inspector doctor`` prints it: the model loads, the data fits it, one
batch runs through it, and what was inferred, with a finding for each and the fix where something is off.

Each check that fails becomes an ``error`` finding (its one-line message, as every command would print it); the
checks after it that need what failed are skipped. Nothing is written anywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from engine.errors import InspectorError

__all__ = ["Finding", "check_project"]

#: Layer classes that rescale raw inputs inside a model (so 0..255 data is what it expects).
_RESCALING = ("Rescaling", "Normalization", "Lambda", "CenterCrop", "Resizing")


@dataclass(frozen=True)
class Finding:
    """One result of :func:`check_project`: ``level`` is ``"ok"``, ``"info"``, ``"warning"`` or ``"error"``;
    ``topic`` what was checked (``model``, ``inputs``...); ``text`` what was found and, if needed, what to do."""

    level: str
    topic: str
    text: str


def check_project(project, rows: int = 32) -> list[Finding]:
    """Check ``project`` as a new user's first run would use it.

    Parameters
    ----------
    project : Project
    rows : int
        Samples run through the model.

    Returns
    -------
    list of Finding

    Example
    -------
    >>> [f.level for f in check_project(load_project("mnist"))]   # doctest: +SKIP
    ['ok', 'ok', 'ok', 'ok', 'info', 'ok']
    """
    from engine.model import input_specs, list_layers, output_specs

    found: list[Finding] = []
    try:
        model = project.model()
    except InspectorError as exc:
        return [Finding("error", "model", str(exc))]
    (name, want, dtype), = input_specs(model)
    outputs = output_specs(model)
    layers = list_layers(model)
    cuts = [info.name for info in layers if info.valid_cut]
    found.append(Finding("ok", "model", f"{project.model_path.name}: input {name!r} of samples {want} {dtype}; "
                         f"{len(outputs)} output{'s' if len(outputs) > 1 else ''} "
                         f"({', '.join(f'{n!r} {s}' for n, s, _ in outputs)}); {len(cuts)} of {len(layers)} layers "
                         "are valid cuts"))
    if project.default_layer is None:
        try:
            inferred = project.inferred_layer()
        except InspectorError as exc:
            return found + [Finding("error", "layer", str(exc))]
        found.append(Finding("info", "layer", f"no default_layer in project.toml: {inferred!r} is used (the valid "
                             f"cut with the fewest units); valid cuts: {', '.join(cuts[:12])}"
                             f"{' ...' if len(cuts) > 12 else ''}"))
    else:
        found.append(Finding("ok", "layer", f"default_layer {project.default_layer!r} is a valid cut"))

    hooks = project.hooks_path
    if hooks is not None:
        from engine.data.project import HOOK_NAMES

        used = project.hooks_defined()
        what = ", ".join(used) if used else "none of " + ", ".join(HOOK_NAMES)
        found.append(Finding("info", "hooks", f"{hooks.name} defines {what}"))
    if project.input_scale is not None:
        found.append(Finding("info", "inputs", f"input_scale = {project.input_scale:g}: inputs are divided by it "
                             "before the model"))

    try:
        x = project.inputs()
    except InspectorError as exc:
        found.append(Finding("error", "inputs", str(exc)))
        return found
    have = tuple(x.shape[1:])
    size_have, size_want = int(np.prod(have)), int(np.prod([d for d in want if d is not None]))
    if have == want or None in want:
        found.append(Finding("ok", "inputs", f"{project.inputs_path.name}: {x.shape} {x.dtype}"))
    elif size_have == size_want:
        found.append(Finding("ok", "inputs", f"{project.inputs_path.name}: {x.shape} {x.dtype}, each sample "
                             f"reshaped from {have} to the model's {want}"))
    else:
        found.append(Finding("error", "inputs", f"{project.inputs_path.name}: samples of shape {have} "
                             f"({size_have:,} values) do not fit the model's input {want} ({size_want:,} values)"))
        return found
    try:
        y = project.labels()
        found.append(Finding("ok", "labels", "none (the plot is coloured by density or by the model's predictions)"
                             if y is None else f"{len(y):,} labels in {len(project.label_names())} classes"))
    except InspectorError as exc:
        found.append(Finding("error", "labels", str(exc)))

    scale = _scale_warning(project, model, x, layers)
    if scale:
        found.append(Finding("warning", "inputs", scale))

    found.append(_one_batch(project, model, project.choose_layer(), x[:rows]))
    try:
        views = project.output_views()
        found.append(Finding("info", "views", f"input: {project.input_view.describe()}; "
                             + "; ".join(f"output {n!r}: {v.describe()}" for n, v in views.items())))
    except InspectorError as exc:
        found.append(Finding("error", "views", str(exc)))
    found.extend(Finding("warning", "views", w) for w in project.warnings)
    return found


def _scale_warning(project, model, x, layers) -> str | None:
    """Data in 0..255 into a model with no rescaling layer and no preprocessing: likely trained on 0..1."""
    if project.preprocess() is not None:
        return None
    sample = np.asarray(x[: min(len(x), 256)], dtype=np.float64)
    lo, hi = float(sample.min()), float(sample.max())
    if not (lo >= 0 and 2.0 < hi <= 255.0):
        return None
    first = [info.class_name for info in layers[:4]]
    if any(c in _RESCALING for c in first):
        return None
    return (f"{project.inputs_path.name} holds values {lo:g}..{hi:g}, and the model has no Rescaling or "
            "Normalization layer at its input: if it was trained on 0..1 inputs, add input_scale = 255 to "
            "project.toml (or a preprocess function to hooks.py)")


def _one_batch(project, model, cut: str, rows) -> Finding:
    from engine.model import split
    from engine.propagate import propagate

    try:
        t0 = time.perf_counter()
        s = split(model, cut)
        z = np.asarray(propagate(s, np.asarray(rows), preprocess=project.preprocess()))
        heads = s.decode_heads(z)
        seconds = time.perf_counter() - t0
    except InspectorError as exc:
        return Finding("error", "run", str(exc))
    bad = [n for n, h in zip(s.output_names, heads, strict=True) if not np.isfinite(h).all()]
    if not np.isfinite(z).all() or bad:
        where = f"outputs {', '.join(map(repr, bad))}" if bad else f"activations at {cut!r}"
        return Finding("error", "run", f"{len(rows)} samples through the model give NaN or infinite {where}; check "
                       "the inputs' scale and preprocessing")
    try:
        kinds = {n: v.kind for n, v in project.output_views().items()}
    except InspectorError:
        kinds = {}
    saturated = [n for n, h in zip(s.output_names, heads, strict=True)  # a confident classifier is not saturated
                 if kinds.get(n) != "probabilities" and h.size and 0 <= h.min() and h.max() <= 1
                 and np.mean((h <= 1e-3) | (h >= 1 - 1e-3)) > 0.9]
    text = (f"{len(rows)} samples through the model, cut at {cut!r}: activations {z.shape[1:]}, in "
            f"{seconds:.2f} s (load and compile included)")
    if saturated:
        return Finding("warning", "run", text + f"; output(s) {', '.join(map(repr, saturated))} are saturated (over "
                       "90% of the values at 0 or 1), as when inputs are on another scale than in training")
    return Finding("ok", "run", text)
