"""Server-side decode of one tapped point (inverse map + suffix), for PCA and the learned inverse.

Baseline in the same run: umap-learn's native inverse followed by ``model.predict`` (what a naive composition of
the libraries gives). The in-browser tap-to-paint figure is measured by the dashboard's benchmark.
"""

from __future__ import annotations

import numpy as np

from benchmarks.harness import Comparison, Side, latencies
from engine.inspection import Inspection
from engine.project import load_project


def run(quick: bool) -> list[Comparison]:
    project = load_project("mnist")
    rng = np.random.default_rng(1)
    k = 50 if quick else 200
    results = []
    umap = None
    for method in ("pca", "umap"):
        insp = Inspection(project, project.default_layer, method=method, inverse="auto")
        E = insp.embedding
        pts = [tuple(map(float, p)) for p in E[rng.choice(len(E), k)] + rng.normal(0, 0.5, (k, 2))]
        lat = latencies(insp.decode, pts, warmup=5)
        results.append(Comparison(
            "decode (server)", f"{method} + {insp.reducer.inverse_.kind} inverse + suffix, {k} taps", "ms",
            Side(f"Inspection.decode ({method})", lat), None, target="< 10 ms p95",
            met=bool(np.percentile(lat, 95) < 10e-3),
        ))
        if method == "umap":
            umap = insp
    # Baseline: native inverse + predict, on a few points (seconds each).
    from engine.reducers import make_inverse

    native = make_inverse("native").fit(umap.embedding, umap.activations, reducer=umap.reducer)
    n = 3 if quick else 10

    def naive(x, y):
        z = native.transform(np.array([[x, y]], np.float32))
        return umap.split.suffix.predict(z.reshape(1, *umap.latent_shape), verbose=0)

    base = latencies(naive, [tuple(map(float, p)) for p in umap.embedding[:n]], warmup=1)
    results[-1].baseline = Side("umap-learn inverse_transform + model.predict", base)
    return results
