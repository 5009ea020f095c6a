"""GPU cases: cuML UMAP fit, the MLP inverse on CuPy arrays, datashader on a cuDF frame; each against the CPU.

Marked ``[GPU]``. Without a CUDA device (or without CuPy, cuML or cuDF) every comparison is reported as
``skipped: no GPU``: no figure is made up.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import synthetic
from benchmarks.harness import Comparison, Side, latencies

LABELS = ("[GPU] umap fit (cuML vs umap-learn)", "[GPU] mlp inverse, 1 point (CuPy vs NumPy)",
          "[GPU] render 800x800, count_cat + shade (cuDF vs our CPU path)")


def _available() -> str:
    """Why the GPU cases cannot run ("" when they can)."""
    from engine.backends.cupy import gpu_available

    if not gpu_available():
        return "no GPU"
    try:
        import cudf  # noqa: F401
        import cuml  # noqa: F401
    except Exception as exc:  # a broken CUDA install fails in many ways
        return f"no GPU stack ({type(exc).__name__}: {exc}); pip install latent-inspector[gpu]"
    return ""


def _umap_fit(project, X, n: int) -> Comparison:
    from benchmarks.cases.reducers import activation_rows
    from engine.reduce import make_reducer

    Xn = activation_rows(project, X, n)
    times = {}
    for backend in ("gpu", "cpu"):
        make_reducer("umap", backend=backend, inverse=None, n_neighbors=15, random_state=0).fit(Xn[:1000])
        t0 = time.perf_counter()
        make_reducer("umap", backend=backend, inverse=None, n_neighbors=15, random_state=0).fit(Xn)
        times[backend] = [time.perf_counter() - t0]
    return Comparison("gpu", f"{LABELS[0]}, {n:,} rows", "s", Side("cuML UMAP", times["gpu"]),
                      Side("umap-learn", times["cpu"]))


def _mlp_inverse(X, k: int) -> Comparison:
    import cupy

    from engine.reduce import make_inverse, make_reducer

    umap = make_reducer("umap", n_neighbors=15, inverse=None, random_state=0).fit(X)
    inv = make_inverse("mlp", method="umap", random_state=0).fit(umap.embedding_, X, reducer=umap)
    qs = (umap.embedding_[:k] + 0.1).astype("f4")
    gpu = latencies(lambda q: cupy.asnumpy(inv.transform(cupy.asarray(q[None]))), [(q,) for q in qs])
    cpu = latencies(lambda q: inv.transform(q[None]), [(q,) for q in qs])
    return Comparison("gpu", f"{LABELS[1]}, {k} points", "ms", Side("CuPy", gpu), Side("NumPy", cpu))


def _render(n: int) -> Comparison:
    import cudf
    import datashader as ds
    import datashader.transfer_functions as tf

    from engine.render import aggregate_colors, color_key, index_frame, make_canvas, shade_colors

    frame = synthetic.frame(n)
    colors = color_key(synthetic.CLASSES)
    gdf = cudf.DataFrame({"x": frame["x"].to_numpy(), "y": frame["y"].to_numpy()})
    gdf["label"] = cudf.Series(frame["label"].to_numpy()).astype("category")
    canvas = make_canvas(width=800, height=800, x_range=(-15.0, 15.0), y_range=(-15.0, 15.0))
    index = index_frame(frame)

    def gpu():
        tf.shade(canvas.points(gdf, "x", "y", agg=ds.count_cat("label")), color_key=colors, min_alpha=90)

    def cpu():
        shade_colors(aggregate_colors(index, canvas=canvas, colors=colors), min_alpha=90)

    a = latencies(gpu, [()] * 10, warmup=2)
    b = latencies(cpu, [()] * 10, warmup=2)
    return Comparison("gpu", f"{LABELS[2]}, {n:,} points", "ms", Side("datashader on cuDF", a),
                      Side("PointIndex + colour aggregate (CPU)", b))


def run(quick: bool) -> list[Comparison]:
    why = _available()
    if why:
        for label in LABELS:
            print(f"{label}: skipped: {why}")
        return [Comparison("gpu", label, "ms", Side("GPU"), skipped=why) for label in LABELS]
    from engine.data.project import load_project
    from engine.propagate import activations

    project = load_project("mnist")
    X = np.asarray(activations(project, project.default_layer)).reshape(10_000, -1)
    return [_umap_fit(project, X, 10_000 if quick else 100_000), _mlp_inverse(X, 50 if quick else 500),
            _render(1_000_000 if quick else 10_000_000)]
