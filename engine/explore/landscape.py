"""The decoded landscape: every cell of a view decoded at once, as map layers drawn under the points.

A tap decodes one point; the inverse map and the suffix are fast enough to decode a whole grid over the view in one
batch. Each layer is one number (or one picture) per cell:

``decision``
    The class the model (a classifier's output) or the probe (an autoencoder's layer) gives the decoded point; the
    confidence (the top probability) is the opacity, from transparent at chance to opaque at certainty.
``uncertainty``
    The prediction's entropy over its classes, normalised to [0, 1] (0: certain, 1: every class equally likely).
``error``
    The inverse map's estimated round-trip error at the cell (:class:`~engine.reduce.Trust`), relative to the
    activations' variance (1: no better than the mean activation).
``distance``
    The distance to the nearest embedded sample, in typical neighbour spacings (about 1 inside the data).
``gradient``
    How fast the decoded point moves per unit of map distance (:func:`engine.reduce.metrics.gradient_norms`), over
    the map's median over the data's box (the verdict's *fold*, :meth:`engine.explore.inspection.Inspection.fold`):
    1 where the map is as smooth as usual, a fold or a tear of the map is a ridge at 10 and more. Relative, because
    the absolute value (spreads of the data per width of the data's box) depends on the layer and the reducer: a
    UMAP map's median is 14 on the MNIST bottleneck, PCA's 3.3, and one fixed scale showed the one all red.
``atlas``
    The decoded output itself, drawn small on a coarser grid (images, series, bars).

An inverse projection only ever produces a 2-D surface in the layer's space: the error, distance and gradient layers
show where that surface follows the data and where it invents.

Example
-------
>>> m = landscape(inspection, "decision", (-3, 3), (-2, 2), cells=(100, 80))   # doctest: +SKIP
>>> m.values.shape, m.alpha.shape, m.names[:3]                                # doctest: +SKIP
((80, 100), (80, 100), ('0', '1', '2'))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.errors import Cancelled, ProbeUnavailable, UsageError

__all__ = ["LAYERS", "Classifier", "LandscapeMap", "cells_for", "classifier_for", "landscape"]

#: The layers, in the order a user meets them, with what their colour means.
LAYERS = {
    "decision": "the class of the decoded point; opacity is the confidence (transparent at chance)",
    "uncertainty": "entropy of the prediction: 0 certain, 1 every class equally likely",
    "error": "estimated round-trip error of the inverse map, relative to the activations' variance "
             "(1: no better than the mean activation)",
    "distance": "distance to the nearest sample, in typical neighbour spacings (about 1 inside the data)",
    "gradient": "how fast the decoded point moves across the map, over the map's median over the data "
                "(1: as smooth as usual; folds and tears are ridges of 10 and more)",
    "atlas": "the decoded output on a grid over the view",
}
#: Layers that need classes (the model's class scores or a probe).
CLASS_LAYERS = ("decision", "uncertainty")
#: Cells of the atlas across the view's longer side.
ATLAS_TILES = 12


@dataclass
class Classifier:
    """Class probabilities of activations at a layer: the model's own scores, or a probe's.

    Attributes
    ----------
    proba : callable(activations (k, ...)) -> (k, c)
    classes : tuple
        The value each column stands for (comparable with the project's labels).
    names : tuple of str
        Display names of the columns.
    source : str
        Where the classes come from, in words.
    """

    proba: Callable
    classes: tuple
    names: tuple
    source: str

    def predict(self, activations) -> np.ndarray:
        """The class (a value of :attr:`classes`) of each activation."""
        return np.asarray(self.classes, dtype=object)[np.asarray(self.proba(activations)).argmax(axis=1)]


def _as_probabilities(scores) -> np.ndarray:
    """Rows of class scores as probabilities: kept when they already are (non-negative, summing to 1), else softmax."""
    s = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    if len(s) and s.min() >= 0 and np.allclose(s.sum(axis=1), 1.0, atol=1e-3):
        return s
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def classifier_for(inspection, head=None, probe=None) -> Classifier:
    """The classes to map: the model's output ``head`` when it is a vector of class scores, else ``probe`` (a
    fitted :class:`~engine.explore.probe.Probe`), else a probe trained here on the layer's labelled activations.

    Raises
    ------
    ProbeUnavailable
        Neither: the message says why (no class scores at the output, no labels to train a probe on).
    """
    scored = inspection.scored_heads()
    name = inspection.heads[inspection.head_index(head)] if head is not None or not scored else scored[0]
    if name in scored:
        names = inspection.head_classes(name)
        labels = inspection.labels
        # the model's classes are the scores' positions; the project's labels are codes of the same classes
        classes = tuple(range(len(names))) if labels is None or np.issubdtype(np.asarray(labels).dtype, np.integer) \
            else tuple(names)
        return Classifier(lambda acts: _as_probabilities(inspection.decode_outputs(_shaped(inspection, acts), name)),
                          classes, tuple(map(str, names)), f"the model's output {name!r}")
    if probe is None:
        try:
            probe = inspection.default_probe
        except ProbeUnavailable as exc:
            raise ProbeUnavailable(
                f"the output {name!r} of project {inspection.project.name!r} is not a vector of class scores, "
                f"and no probe can be trained: {exc}") from None
    flat = int(np.prod(inspection.latent_shape))
    names = tuple(probe.class_names_) if getattr(probe, "class_names_", None) is not None else tuple(
        map(str, probe.classes_))
    return Classifier(lambda acts: probe.predict_proba(np.asarray(acts, np.float32).reshape(len(acts), flat)),
                      tuple(probe.classes_), names, "the probe (logistic regression on the layer's activations)")


def _shaped(inspection, acts):
    return np.asarray(acts, dtype=np.float32).reshape((len(acts), *inspection.latent_shape))


def cells_for(width_px: int, height_px: int, cell_px: int = 8, max_cells: int = 16_384) -> tuple[int, int]:
    """Grid size ``(nx, ny)`` for a view of ``width_px`` x ``height_px`` pixels: cells of ``cell_px`` pixels, fewer
    (larger cells) when that would exceed ``max_cells``. 800 x 800 pixels: 100 x 100 cells."""
    if width_px <= 0 or height_px <= 0:
        raise UsageError(f"a map layer needs a view of positive size; got {width_px} x {height_px} pixels")
    nx, ny = max(2, round(width_px / cell_px)), max(2, round(height_px / cell_px))
    if nx * ny > max_cells:
        f = np.sqrt(max_cells / (nx * ny))
        nx, ny = max(2, int(nx * f)), max(2, int(ny * f))
    return nx, ny


@dataclass
class LandscapeMap:
    """One layer computed over one view.

    Attributes
    ----------
    layer : str
        A key of :data:`LAYERS`.
    x_range, y_range : tuple of float
        The view: the grid covers it exactly, cell centres half a cell inside.
    values : ndarray of shape (ny, nx), float32
        Row 0 at the bottom (lowest y). Decision: the class's column in ``names``; other layers: the measure. For the
        atlas: None.
    alpha : ndarray of shape (ny, nx) or None
        Decision: the confidence (the top probability).
    names : tuple of str or None
        Decision and uncertainty: the classes.
    picture : ndarray of shape (H, W, 3), uint8, or None
        Atlas: the tiles, top row first (as an image is stored).
    legend : str
        What the colours mean (:data:`LAYERS`), with the classes' source.
    seconds : float
        Time to compute it.
    source : str
        Where the classes came from ('' for the other layers).
    """

    layer: str
    x_range: tuple
    y_range: tuple
    values: np.ndarray | None
    alpha: np.ndarray | None = None
    names: tuple | None = None
    picture: np.ndarray | None = None
    legend: str = ""
    seconds: float = 0.0
    source: str = ""
    stats: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape if self.values is not None else self.picture.shape[:2]


def _check_view(x_range, y_range):
    try:
        (x0, x1), (y0, y1) = ((float(a), float(b)) for a, b in (x_range, y_range))
    except (TypeError, ValueError):
        raise UsageError(f"a map layer needs a view (x0, x1), (y0, y1); got {x_range!r}, {y_range!r}") from None
    if not all(np.isfinite([x0, x1, y0, y1])) or x1 <= x0 or y1 <= y0:
        raise UsageError(f"a map layer needs a view with x0 < x1 and y0 < y1, all finite; got x {x0}..{x1}, "
                         f"y {y0}..{y1}")
    return (x0, x1), (y0, y1)


def _in_batches(fn, rows, batch: int, cancel, progress, stage: str):
    """``fn`` over ``rows`` in batches, checking ``cancel`` before each: a list of the results."""
    out = []
    for start in range(0, len(rows), batch):
        if cancel is not None and cancel():
            raise Cancelled("the map layer was cancelled: the view moved on")
        out.append(fn(rows[start:start + batch]))
        if progress is not None:
            progress(stage, min(start + batch, len(rows)), len(rows))
    return out


def landscape(inspection, layer: str, x_range, y_range, *, cells=(100, 100), classifier: Classifier | None = None,
              head=None, probe=None, cancel: Callable[[], bool] | None = None, batch: int = 4096,
              progress=None) -> LandscapeMap:
    """Compute map layer ``layer`` over the view ``x_range`` x ``y_range`` of ``inspection``.

    Parameters
    ----------
    inspection : Inspection
    layer : str
        A key of :data:`LAYERS`.
    x_range, y_range : pair of float
    cells : (nx, ny)
        The grid (:func:`cells_for` picks it from the view's size in pixels). The atlas uses a coarser grid of
        ``ATLAS_TILES`` across.
    classifier : Classifier, optional
        For ``decision`` and ``uncertainty``; default :func:`classifier_for` (``head``, ``probe``).
    cancel : callable() -> bool, optional
        Asked before each batch: True stops the work with :class:`~engine.errors.Cancelled`.
    batch : int
        Cells decoded at once.
    progress : callable(stage, done, total), optional

    Raises
    ------
    UsageError
        An unknown layer, an empty or reversed view.
    ProbeUnavailable
        A class layer with neither class scores nor labels (says why).
    Cancelled
    """
    if layer not in LAYERS:
        raise UsageError(f"no map layer {layer!r}; the layers: {', '.join(LAYERS)}")
    x_range, y_range = _check_view(x_range, y_range)
    t0 = time.perf_counter()
    nx, ny = (int(c) for c in cells)
    if nx < 2 or ny < 2:
        raise UsageError(f"a map layer needs at least 2 x 2 cells; got {nx} x {ny}")
    if layer == "atlas":
        return _atlas(inspection, x_range, y_range, nx, ny, head, cancel, batch, t0)
    if layer in CLASS_LAYERS and classifier is None:
        classifier = classifier_for(inspection, head, probe)
    from engine.reduce.metrics import data_box, gradient_norms, padded_grid

    if layer == "gradient":
        xy, dx, dy = padded_grid(x_range, y_range, nx, ny)
        acts = np.concatenate(_in_batches(inspection.reducer.inverse_transform, xy, batch, cancel, progress,
                                          "decoding the grid"))
        acts = np.asarray(acts, dtype=np.float32).reshape(ny + 2, nx + 2, -1)
        (bx0, bx1), (by0, by1) = data_box(inspection.box_corners)
        spread = float(np.sqrt(inspection.reducer.activation_variance_ * acts.shape[-1])) or 1.0
        values = gradient_norms(acts, dx / (bx1 - bx0), dy / (by1 - by0)) / spread
        median = inspection.median_gradient  # the same units: spreads per width of the data's box
        values = values / median if median > 0 else values
        return _done(LandscapeMap("gradient", x_range, y_range, values.astype(np.float32)), t0)
    xy = padded_grid(x_range, y_range, nx, ny)[0].reshape(ny + 2, nx + 2, 2)[1:-1, 1:-1].reshape(-1, 2)
    if layer in ("error", "distance"):
        trusts = _in_batches(inspection.reducer.trust, xy, batch, cancel, progress, "measuring the grid")
        key = "relative_error" if layer == "error" else "relative_distance"
        values = np.concatenate([getattr(t, key) for t in trusts]).reshape(ny, nx).astype(np.float32)
        return _done(LandscapeMap(layer, x_range, y_range, values), t0)

    def classify(rows):
        return np.asarray(classifier.proba(inspection.reducer.inverse_transform(rows)), dtype=np.float64)

    p = np.concatenate(_in_batches(classify, xy, batch, cancel, progress, "decoding the grid")).reshape(ny, nx, -1)
    c = p.shape[-1]
    if layer == "decision":
        values, alpha = p.argmax(axis=2).astype(np.float32), p.max(axis=2).astype(np.float32)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=2)
        values, alpha = (h / np.log(c) if c > 1 else np.zeros_like(h)).astype(np.float32), None
    return _done(LandscapeMap(layer, x_range, y_range, values, alpha, classifier.names, source=classifier.source), t0)


def _done(m: LandscapeMap, t0: float) -> LandscapeMap:
    m.seconds = time.perf_counter() - t0
    m.legend = LAYERS[m.layer] + (f" (classes from {m.source})" if m.source else "")
    if m.values is not None and m.layer != "decision":
        v = m.values[np.isfinite(m.values)]
        m.stats = {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())} if len(v) else {}
    return m


def _atlas(inspection, x_range, y_range, nx, ny, head, cancel, batch, t0) -> LandscapeMap:
    from engine.reduce.metrics import padded_grid
    from engine.render.samples import sample_picture

    (x0, x1), (y0, y1) = x_range, y_range
    across = ATLAS_TILES
    tx, ty = (across, max(1, round(across * ny / nx))) if nx >= ny else (max(1, round(across * nx / ny)), across)
    xy = padded_grid(x_range, y_range, tx, ty)[0].reshape(ty + 2, tx + 2, 2)[1:-1, 1:-1].reshape(-1, 2)
    name = inspection.heads[inspection.head_index(head)]
    view = inspection.project.output_views()[name]

    def decode(rows):
        return inspection.decode_outputs(_shaped(inspection, inspection.reducer.inverse_transform(rows)), name)

    outputs = np.concatenate(_in_batches(decode, xy, batch, cancel, None, "decoding the atlas"))
    tile = 48
    picture = np.full((ty * tile, tx * tile, 3), 255, dtype=np.uint8)
    for i, out in enumerate(outputs):
        row, col = divmod(i, tx)
        pic = sample_picture(out, view, width=tile - 2, height=tile - 2)
        top = (ty - 1 - row) * tile + 1 + (tile - 2 - pic.shape[0]) // 2  # grid row 0 is the bottom of the view
        left = col * tile + 1 + (tile - 2 - pic.shape[1]) // 2
        picture[top:top + pic.shape[0], left:left + pic.shape[1]] = pic[..., :3]
    m = LandscapeMap("atlas", (x0, x1), (y0, y1), None, picture=picture)
    return _done(m, t0)
