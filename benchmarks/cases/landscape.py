"""Map layers over an 800 x 800 view (100 x 100 cells): each layer in one batch, against decoding its cells one tap
at a time (Inspection.decode per cell centre, the only way to see a map before), in the same run.

Projects: MNIST (autoencoder: the decision and uncertainty layers use the probe) and MNIST as a PyTorch classifier
(the model's own class scores); PCA with its exact inverse and UMAP with the learned MLP inverse. The view is the
embedding's box with the plot's 8 % padding, as the dashboard opens. The one-tap-at-a-time baseline decodes a random
sample of the cells and is scaled to the whole grid (per-cell time x cells).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.harness import Comparison, Side
from engine.data.project import load_project
from engine.explore.inspection import Inspection
from engine.explore.landscape import LAYERS

TARGET_S = 1.0
VIEW_PX = 800
QUICK_SKIPS = "--quick (UMAP and the PyTorch project: a minute of fitting in a fresh checkout)"


def _view(insp):
    E = insp.embedding
    (x0, y0), (x1, y1) = E.min(axis=0), E.max(axis=0)
    px, py = 0.08 * (x1 - x0), 0.08 * (y1 - y0)
    return (float(x0 - px), float(x1 + px)), (float(y0 - py), float(y1 + py))


def _one_by_one(insp, xr, yr, cells, k, rng) -> float:
    """Seconds to decode the grid one tap at a time: ``k`` random cell centres timed, scaled to every cell."""
    nx, ny = cells
    xs = xr[0] + (np.arange(nx) + 0.5) * (xr[1] - xr[0]) / nx
    ys = yr[0] + (np.arange(ny) + 0.5) * (yr[1] - yr[0]) / ny
    picks = [(float(xs[i % nx]), float(ys[i // nx])) for i in rng.choice(nx * ny, k, replace=False)]
    insp.decode(*picks[0])  # warm
    t0 = time.perf_counter()
    for x, y in picks:
        insp.decode(x, y)
    return (time.perf_counter() - t0) / k * nx * ny


def run(quick: bool) -> list[Comparison]:
    rng = np.random.default_rng(0)
    cells = (40, 40) if quick else (VIEW_PX // 8, VIEW_PX // 8)
    repeats = 2 if quick else 5
    out = []
    setups = [("mnist", "pca")] if quick else [("mnist", "pca"), ("mnist", "umap"), ("mnist_torch", "pca")]
    if quick:
        out.append(Comparison("landscape", "mnist_torch / umap layers", "ms", Side("landscape"), skipped=QUICK_SKIPS))
    for name, method in setups:
        project = load_project(name)
        insp = Inspection(project, project.default_layer, method=method)
        xr, yr = _view(insp)
        insp.classifier()  # a probe is trained once per inspection (about a second): not a layer's cost
        baseline = _one_by_one(insp, xr, yr, cells, 20 if quick else 200, rng)
        for layer in LAYERS:
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                insp.landscape(layer, xr, yr, cells=cells)
                times.append(time.perf_counter() - t0)
            label = (f"{name} {method}+{insp.reducer.inverse_.kind}: {layer}, {cells[0]} x {cells[1]} cells"
                     + (" (12 x 12 decoded tiles)" if layer == "atlas" else ""))
            base = None if layer == "atlas" else Side("one Inspection.decode per cell (scaled from 200)", [baseline])
            out.append(Comparison("landscape", label, "ms", Side("Inspection.landscape", times), base,
                                  target=f"< {TARGET_S:g} s", met=bool(np.median(times) < TARGET_S)))
    return out
