"""Reducers on the MNIST bottleneck: single-point inverse latency and round-trip error per inverse map; fit time.

Inverse maps compared in one run on the same UMAP embedding: learned MLP, k-NN, umap-learn's native inverse
(few points: seconds each), and PCA's exact inverse on the PCA embedding. Round-trip error is measured on the
maps' held-out rows, relative to the activations' variance.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.harness import Comparison, Side, latencies
from engine.project import load_project
from engine.propagate import activations
from engine.reducers import make_inverse, make_reducer


def run(quick: bool) -> list[Comparison]:
    project = load_project("mnist")
    X = np.asarray(activations(project, project.default_layer)).reshape(10_000, -1)
    results = []

    # -- fit time against rows, each method (numba cache warm after the first UMAP fit of the process) --
    sizes = (10_000,) if quick else (10_000, 100_000)
    for n in sizes:
        Xn = np.resize(X, (n, X.shape[1])) + np.random.default_rng(n).normal(0, 1e-3, (n, X.shape[1])).astype("f4")
        for method, params in (("pca", {}), ("umap", {"n_neighbors": 15}), ("tsne", {"perplexity": 30})):
            if quick and method == "tsne":
                continue
            times = []
            for _ in range(1 if n > 10_000 or method != "pca" else 3):
                t0 = time.perf_counter()
                make_reducer(method, inverse=None, random_state=0, **params).fit(Xn)
                times.append(time.perf_counter() - t0)
            results.append(Comparison("reducer fit", f"{method}, {n:,} rows", "s", Side(method, times)))

    # -- inverse maps on one UMAP embedding --
    umap = make_reducer("umap", n_neighbors=15, inverse=None, random_state=0).fit(X)
    E = umap.embedding_
    rng = np.random.default_rng(0)
    k = 200 if quick else 1000
    queries = [(q[None, :],) for q in (E[rng.choice(len(E), k)] + rng.normal(0, 0.3, (k, 2))).astype("f4")]
    inverses = {}
    for kind in ("mlp", "knn", "native"):
        inv = make_inverse(kind, method="umap", random_state=0) if kind != "knn" else make_inverse("knn")
        t0 = time.perf_counter()
        inverses[kind] = inv.fit(E, X, reducer=umap)
        inverses[kind].fit_seconds = time.perf_counter() - t0
    pca = make_reducer("pca", random_state=0).fit(X)
    variance = float(X.var(axis=0).mean())

    native_n = 5 if quick else 20
    for kind, inv, qs in (("mlp", inverses["mlp"], queries), ("knn", inverses["knn"], queries),
                          ("native", inverses["native"], queries[:native_n])):
        lat = latencies(inv.transform, qs, warmup=1 if kind == "native" else 5)
        results.append(Comparison(
            "inverse latency", f"1 point, {len(qs)} points", "ms", Side(f"{kind} inverse (UMAP)", lat),
            target="< 5 ms p95" if kind == "mlp" else "", met=bool(np.percentile(lat, 95) < 5e-3) if kind == "mlp"
            else None, extra={"round_trip_error_rel": round(inv.round_trip_error() / variance, 4),
                              "fit_s": round(inv.fit_seconds, 1)},
        ))
    lat = latencies(pca.inverse_transform, [(q,) for (q,) in queries], warmup=5)
    results.append(Comparison(
        "inverse latency", f"1 point, {len(queries)} points", "ms", Side("pca exact inverse", lat),
        extra={"round_trip_error_rel": round(pca.inverse_.round_trip_error() / variance, 4)},
    ))
    return results
