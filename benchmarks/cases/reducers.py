"""Reducers on the MNIST bottleneck: fit time against rows, cold vs warm numba cache, inverse latency per inverse map.

- Fit time: PCA, UMAP and t-SNE (the engine's reducers, no inverse) on bottleneck activations: the 10,000 digits'
  own, and beyond that digits shifted by up to 2 pixels and propagated through the encoder (real activations, no
  duplicates: tiling rows with a little noise makes each point's neighbours its own copies, a k-NN graph of small
  cliques that UMAP's spectral initialisation takes minutes over). In this process, after a warm-up fit of each
  on 5,000 rows (numba code compiled or loaded, for the code paths that large inputs take). Above 50,000 rows the
  engine fits a sample and embeds the rest.
- Cold vs warm numba cache: the same fit in a fresh process (:mod:`benchmarks.coldstart`), once with an empty
  temporary ``NUMBA_CACHE_DIR`` (a first run: everything compiled) and once with the project's ``.cache/numba``.
- Inverse maps on one UMAP embedding: learned MLP, k-NN, umap-learn's native inverse (few points: seconds each)
  and PCA's exact inverse on the PCA embedding; single-point latency and round-trip error (held-out rows, relative
  to the activations' variance).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.coldstart import fit_in_fresh_process
from benchmarks.harness import Comparison, Side, latencies
from engine.data.project import load_project
from engine.propagate import activations
from engine.reduce import make_inverse, make_reducer

PARAMS = {"pca": {}, "umap": {"n_neighbors": 15}, "tsne": {"perplexity": 30}}
NUMBA_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "numba"


def activation_rows(project, X, n: int) -> np.ndarray:
    """``n`` rows of bottleneck activations: the digits' own, then shifted digits propagated through the encoder."""
    if n <= len(X):
        return X[:n]
    from engine.model import split
    from engine.propagate import propagate

    x = np.asarray(project.inputs())
    rng = np.random.default_rng(n)
    idx = rng.integers(0, len(x), n - len(X))
    shifts = rng.integers(-2, 3, size=(len(idx), 2))
    shifts[np.all(shifts == 0, axis=1)] = (1, 0)  # every extra row differs from the digit it comes from
    moved = np.empty((len(idx), *x.shape[1:]), x.dtype)
    for dy, dx in {tuple(v) for v in shifts}:
        rows = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
        moved[rows] = np.roll(x[idx[rows]], (dy, dx), axis=(1, 2))
    z = np.asarray(propagate(split(project.model(), project.default_layer), moved)).reshape(len(idx), -1)
    return np.concatenate([X, z.astype(X.dtype)])


def _fit_times(project, X, quick: bool) -> list[Comparison]:
    for method, params in PARAMS.items():  # warm-up: numba code compiled or loaded, libraries imported
        make_reducer(method, inverse=None, random_state=0, **params).fit(X[: 1_000 if quick else 5_000])
    results = []
    for n in (1_000,) if quick else (10_000, 30_000, 100_000):
        Xn = activation_rows(project, X, n)
        for method, params in PARAMS.items():
            times = []
            for _ in range(3 if method == "pca" else 1):
                t0 = time.perf_counter()
                make_reducer(method, inverse=None, random_state=0, **params).fit(Xn)
                times.append(time.perf_counter() - t0)
            results.append(Comparison("reducer fit", f"{method}, {n:,} rows", "s", Side(method, times),
                                      extra={"data": "MNIST bottleneck" + (" + shifted digits" if n > len(X)
                                                                          else "")}))
    return results


def _cold_vs_warm(X, quick: bool) -> list[Comparison]:
    rows = 1_000 if quick else 10_000
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp:
        data = Path(tmp) / "x.npy"
        np.save(data, X[:rows])
        for method in ("umap", "tsne"):
            label = f"{method}, {rows:,} rows, fresh process: library import + fit"
            if quick and method == "umap":
                results.append(Comparison("numba cache", label, "s", Side("warm"),
                                          skipped="--quick (a cold cache compiles umap-learn for ~40 s)"))
                continue
            if not quick:  # fill the project's cache first (a quick run trusts it is filled)
                fit_in_fresh_process(method, data, NUMBA_CACHE, PARAMS[method])
            warm = fit_in_fresh_process(method, data, NUMBA_CACHE, PARAMS[method])
            cold = None
            if not quick:
                cold = fit_in_fresh_process(method, data, Path(tmp) / f"numba-{method}", PARAMS[method])
            results.append(Comparison(
                "numba cache", label, "s", Side("warm: project .cache/numba", [warm["import_s"] + warm["fit_s"]]),
                Side("cold: empty NUMBA_CACHE_DIR", [cold["import_s"] + cold["fit_s"]]) if cold else None,
                extra={"warm_import_s": round(warm["import_s"], 1), "warm_fit_s": round(warm["fit_s"], 1),
                       **({"cold_import_s": round(cold["import_s"], 1), "cold_fit_s": round(cold["fit_s"], 1)}
                          if cold else {"cold": "skipped in --quick"})},
            ))
    return results


def _inverses(X, quick: bool) -> list[Comparison]:
    if quick:
        X = X[:2_000]
    umap = make_reducer("umap", n_neighbors=15, inverse=None, random_state=0).fit(X)
    E = umap.embedding_
    rng = np.random.default_rng(0)
    k = 50 if quick else 1000
    queries = [(q[None, :],) for q in (E[rng.choice(len(E), k)] + rng.normal(0, 0.3, (k, 2))).astype("f4")]
    inverses = {}
    # a quick run trains the MLP for 5 epochs, not 50: its latency (what is measured) is the same network's; the
    # round-trip error it reports is then not the default's
    short = {"max_epochs": 5, "patience": 5} if quick else {}
    for kind in ("mlp", "knn", "native"):
        inv = (make_inverse("knn") if kind == "knn" else
               make_inverse(kind, method="umap", random_state=0, **(short if kind == "mlp" else {})))
        t0 = time.perf_counter()
        inverses[kind] = inv.fit(E, X, reducer=umap)
        inverses[kind].fit_seconds = time.perf_counter() - t0
    pca = make_reducer("pca", random_state=0).fit(X)
    variance = float(X.var(axis=0).mean())
    results = []
    native_n = 1 if quick else 20
    for kind, inv, qs in (("mlp", inverses["mlp"], queries), ("knn", inverses["knn"], queries),
                          ("native", inverses["native"], queries[:native_n])):
        lat = latencies(inv.transform, qs, warmup=(0 if quick else 1) if kind == "native" else 5)
        results.append(Comparison(
            "inverse latency", f"{kind} inverse of UMAP, one point per call, {len(qs)} calls", "ms",
            Side(f"{kind} inverse (UMAP)", lat),
            target="< 5 ms p95" if kind == "mlp" else "", met=bool(np.percentile(lat, 95) < 5e-3) if kind == "mlp"
            else None, extra={"round_trip_error_rel": round(inv.round_trip_error() / variance, 4),
                              "fit_s": round(inv.fit_seconds, 1), "rows": len(X),
                              **({"epochs": inv.n_epochs_} if kind == "mlp" else {})},
        ))
    lat = latencies(pca.inverse_transform, [(q,) for (q,) in queries], warmup=5)
    results.append(Comparison(
        "inverse latency", f"exact inverse of PCA, one point per call, {len(queries)} calls", "ms",
        Side("pca exact inverse", lat),
        extra={"round_trip_error_rel": round(pca.inverse_.round_trip_error() / variance, 4), "rows": len(X)},
    ))
    return results


def run(quick: bool) -> list[Comparison]:
    project = load_project("mnist")
    X = np.asarray(activations(project, project.default_layer)).reshape(10_000, -1)
    return _fit_times(project, X, quick) + _cold_vs_warm(X, quick) + _inverses(X, quick)
