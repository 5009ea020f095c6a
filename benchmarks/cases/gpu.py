"""GPU cases: cuML UMAP fit, the MLP inverse on CuPy arrays, datashader on a cuDF frame, the pyramid of counts
built and read with CuPy; each against the CPU.

Marked ``[GPU]``. Without a CUDA device every comparison is reported as ``skipped: no GPU``; each of the others is
skipped, with the module it lacks, where its own stack is missing (cuML for the UMAP fit, cuDF for the render,
umap-learn and Keras for the inverse; the pyramid needs CuPy alone): no figure is made up.
"""

from __future__ import annotations

import functools
import time
import traceback

import numpy as np

from benchmarks import synthetic
from benchmarks.harness import Comparison, Side, latencies

LABELS = ("[GPU] umap fit (cuML vs umap-learn)", "[GPU] mlp inverse, 1 point (CuPy vs NumPy)",
          "[GPU] render 800x800, count_cat + shade (cuDF vs our CPU path)",
          "[GPU] pyramid of counts (CuPy vs NumPy and numba)")


def _missing(*modules: str) -> str:
    """Why a case needing ``modules`` cannot run ("" when it can): each GPU comparison needs its own stack, so a
    machine with CuPy but no RAPIDS still measures the CuPy cases."""
    for name in modules:
        try:
            __import__(name)
        except Exception as exc:  # a broken CUDA install fails in many ways
            return f"no {name} ({type(exc).__name__}: {exc}); pip install latent-inspector[gpu]"
    return ""


def measured(label: str, compare) -> list[Comparison]:
    """``compare()``'s comparisons (one or a list); if it raises, one comparison marked ``failed: ...`` with the
    error, its traceback printed: the figures of the comparisons measured before it are kept (the GPU machine is
    lent for minutes, and a late failure used to lose every figure of the case)."""
    try:
        got = compare()
    except Exception as exc:
        traceback.print_exc()
        why = f"failed: {type(exc).__name__}: {exc}"
        print(f"{label}: {why}", flush=True)
        return [Comparison("gpu", label, "ms", Side("GPU"), skipped=why)]
    return got if isinstance(got, list) else [got]


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


def _pyramid(n: int) -> list[Comparison]:
    """Build the pyramid of ``n`` points and read a zoomed-out 800 x 800 view, on the GPU and on the CPU; the
    counts are checked equal."""
    import cupy

    from engine.render import aggregate_pyramid, build_pyramid

    E, labels = synthetic.embedding(n, dtype=np.float32)
    args = {"cpu": (E[:, 0].copy(), E[:, 1].copy(), labels), "gpu": tuple(cupy.asarray(a) for a in
                                                                          (E[:, 0], E[:, 1], labels))}
    built, times = {}, {}
    for side, xp in (("gpu", cupy), ("cpu", np)):
        build_pyramid(*(a[:1000] for a in args[side]), synthetic.CLASSES, xp=xp)  # kernels compiled
        cupy.cuda.Device().synchronize()
        t0 = time.perf_counter()
        built[side] = build_pyramid(*args[side], synthetic.CLASSES, xp=xp)
        cupy.cuda.Device().synchronize()
        times[side] = [time.perf_counter() - t0]
    for a, b in zip(built["gpu"].levels, built["cpu"].levels):
        if not np.array_equal(a.get(), b):
            raise AssertionError("the GPU pyramid's counts differ from the CPU's")
    view = built["cpu"].snap((-15.0, 15.0), (-15.0, 15.0), 800, 800)

    def gpu():
        aggregate_pyramid(built["gpu"], view, xp=cupy)

    def cpu():
        aggregate_pyramid(built["cpu"], view)

    return [Comparison("gpu", f"{LABELS[3]}, build, {n:,} points", "s", Side("CuPy (scatter_add)", times["gpu"]),
                       Side("NumPy + numba", times["cpu"])),
            Comparison("gpu", f"{LABELS[3]}, zoomed-out view 800x800, {n:,} points", "ms",
                       Side("CuPy", latencies(gpu, [()] * 10, warmup=2)),
                       Side("NumPy + numba", latencies(cpu, [()] * 10, warmup=2)))]


def run(quick: bool) -> list[Comparison]:
    from engine.backends.cupy import gpu_available

    if not gpu_available():
        for label in LABELS:
            print(f"{label}: skipped: no GPU")
        return [Comparison("gpu", label, "ms", Side("GPU"), skipped="no GPU") for label in LABELS]
    results = measured(LABELS[3], lambda: _pyramid(1_000_000 if quick else 10_000_000))

    @functools.cache
    def digits():
        # the embedding layer of the bundled PyTorch digits classifier (PyTorch runs on the GPU machine, where
        # TensorFlow may be missing), propagated once for the cases that need it
        from engine.data.project import load_project
        from engine.propagate import activations

        project = load_project("mnist_torch")
        return project, np.asarray(activations(project, project.default_layer)).reshape(10_000, -1)

    cases = [(LABELS[0], ("cuml",), lambda: _umap_fit(*digits(), 10_000 if quick else 100_000)),
             (LABELS[1], ("umap", "keras"), lambda: _mlp_inverse(digits()[1], 50 if quick else 500)),
             (LABELS[2], ("cudf",), lambda: _render(1_000_000 if quick else 10_000_000))]
    for label, needs, case in cases:
        why = _missing(*needs)
        if why:
            print(f"{label}: skipped: {why}")
            results.append(Comparison("gpu", label, "ms", Side("GPU"), skipped=why))
        else:
            results.extend(measured(label, case))
    return results
