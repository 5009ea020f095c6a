"""Decode of a tapped point: server side (inverse map + suffix) and in the browser (tap to decoded image painted).

Server side, for PCA (exact inverse) and UMAP (the learned MLP inverse): ``Inspection.decode`` of points near the
data. Baseline in the same run: umap-learn's native inverse followed by ``model.predict`` (what a naive
composition of the libraries gives; a few points, seconds each).

In the browser: the dashboard served on 127.0.0.1 (``python -m dashboard.serve mnist``) in Chromium; taps at
random places of the latent plot, each timed from the pointer going down to the second animation frame after the
decoded image's data arrived (the frame that paints it), as the UI test ``test_tap_to_decode_latency`` measures.
PCA first, then the UMAP button (the projection is read from the engine's cache when an earlier run fitted it).
"""

from __future__ import annotations

import numpy as np

from benchmarks import browser as bb
from benchmarks.harness import Comparison, Side, latencies
from engine.data.project import load_project
from engine.explore.inspection import Inspection

SERVER_TARGET_S, BROWSER_TARGET_S = 10e-3, 100e-3
LATENT = "latent-figure"


#: A quick run decodes on the PCA projection only: the UMAP one, fitted afresh in a new checkout, takes a minute
#: (self-tuned n_neighbors and the MLP inverse on 10,000 rows) of a run meant to take two.
QUICK_SKIPS_UMAP = "--quick (fitting MNIST's UMAP projection and its MLP inverse takes a minute)"


def _server(quick: bool) -> list[Comparison]:
    project = load_project("mnist")
    rng = np.random.default_rng(1)
    k = 20 if quick else 200
    results = []
    umap = None
    if quick:
        results.append(Comparison("decode (server)", f"umap + mlp inverse + suffix, {k} taps", "ms",
                                  Side("Inspection.decode (umap)"), skipped=QUICK_SKIPS_UMAP))
    for method in ("pca",) if quick else ("pca", "umap"):
        insp = Inspection(project, project.default_layer, method=method, inverse="auto")
        E = insp.embedding
        pts = [tuple(map(float, p)) for p in E[rng.choice(len(E), k)] + rng.normal(0, 0.5, (k, 2))]
        lat = latencies(insp.decode, pts, warmup=5)
        results.append(Comparison(
            "decode (server)", f"{method} + {insp.reducer.inverse_.kind} inverse + suffix, {k} taps", "ms",
            Side(f"Inspection.decode ({method})", lat), None, target=f"< {SERVER_TARGET_S * 1e3:.0f} ms p95",
            met=bool(np.percentile(lat, 95) < SERVER_TARGET_S),
        ))
        if method == "umap":
            umap = insp
    if umap is None:
        return results
    # Baseline: native inverse + predict, on a few points (seconds each).
    from engine.reduce import make_inverse

    native = make_inverse("native").fit(umap.embedding, umap.activations, reducer=umap.reducer)
    n = 1 if quick else 10

    def naive(x, y):
        z = native.transform(np.array([[x, y]], np.float32))
        return umap.split.suffix.predict(z.reshape(1, *umap.latent_shape), verbose=0)

    base = latencies(naive, [tuple(map(float, p)) for p in umap.embedding[:n]], warmup=0 if quick else 1)
    results[-1].baseline = Side("umap-learn inverse_transform + model.predict", base)
    return results


def _taps(page, count: int, rng) -> list[float]:
    """Click ``count`` random places of the latent plot; seconds from each pointerdown to the decode painted."""
    frame = bb.figure(page, LATENT)
    before = len(bb.samples(page, "__latency"))
    for i in range(count):
        fx, fy = rng.uniform(0.1, 0.9, size=2)
        page.mouse.click(frame["left"] + fx * frame["width"], frame["top"] + fy * frame["height"])
        bb.wait_until(lambda i=i: len(bb.samples(page, "__latency")) > before + i, 30, f"the decode of tap {i + 1}")
        page.wait_for_timeout(150)  # a person clicks at most a few times a second
    return [ms / 1e3 for ms in bb.samples(page, "__latency")[before : before + count]]


def _browser(quick: bool) -> list[Comparison]:
    labels = {"pca": "pca + exact inverse", "umap": "umap + mlp inverse"}
    why = bb.unavailable()
    if why:
        return [Comparison("decode (browser)", labels[m], "ms", Side("dashboard"), skipped=why) for m in labels]
    taps = 10 if quick else 50
    rng = np.random.default_rng(0)
    results = []
    if quick:
        results.append(Comparison("decode (browser)", labels["umap"], "ms", Side("dashboard in Chromium"),
                                  skipped=QUICK_SKIPS_UMAP))
    with bb.serve(["-m", "dashboard.serve", "mnist"], "/app?project=mnist", env={"LATENT_INSPECTOR_PROBE": "1"},
                  timeout=600) as base, bb.chromium() as chromium:
        page = chromium.new_page(viewport=bb.VIEWPORT)
        page.goto(f"{base}/app?project=mnist")
        page.wait_for_function(bb.PAINTED_JS, arg=[LATENT, 1], polling="raf", timeout=300_000)
        page.evaluate(bb.TAP_JS)
        for method in ("pca",) if quick else ("pca", "umap"):
            if method == "umap":
                page.get_by_role("button", name="UMAP").click()
                bb.wait_until(lambda: "UMAP" in ((bb.figure(page, LATENT) or {}).get("title") or ""), 900,
                              "the UMAP projection", interval=0.5)
                page.wait_for_function(bb.PAINTED_JS, arg=[LATENT, 1], polling="raf", timeout=60_000)
                page.wait_for_timeout(500)
            _taps(page, 3, rng)  # warm-up
            lat = _taps(page, taps, rng)
            results.append(Comparison(
                "decode (browser)", f"{labels[method]}, tap to decoded image painted, {taps} taps", "ms",
                Side("dashboard in Chromium", lat), target=f"< {BROWSER_TARGET_S * 1e3:.0f} ms p95",
                met=bool(np.percentile(lat, 95) < BROWSER_TARGET_S),
            ))
        page.close()
    return results


def run(quick: bool) -> list[Comparison]:
    return _server(quick) + _browser(quick)
