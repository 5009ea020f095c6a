"""Propagation throughput of the MNIST encoder: engine vs model.predict vs a per-sample predict loop.

Also the single-sample suffix latency: the engine's compiled decode against ``suffix.predict``.
"""

from __future__ import annotations

import numpy as np

from benchmarks.harness import Comparison, Side, alternate, latencies, peak_rss_mb, reset_peak_rss
from engine.data.project import load_project
from engine.model import split
from engine.propagate import DEFAULT_BATCH, propagate


def run(quick: bool) -> list[Comparison]:
    project = load_project("mnist")
    s = split(project.model(), project.default_layer)
    x0 = np.asarray(project.inputs())
    results = []
    sizes = (2_000, 10_000) if quick else (10_000, 100_000, 1_000_000)
    for n in sizes:
        x = np.resize(x0, (n, *x0.shape[1:]))  # tile the 10,000 digits
        repeats = 3 if n <= 100_000 else 2

        def ours(x=x):
            propagate(s, x)

        def predict(x=x):
            s.prefix.predict(x, batch_size=DEFAULT_BATCH, verbose=0)

        reset_peak_rss()
        a, b = alternate(ours, predict, repeats=repeats, warmup=1)
        results.append(Comparison(
            "propagation", f"{n:,} rows", "rows/s",
            Side("engine propagate (compiled, batch 2048)", [n / t for t in a]),
            Side("prefix.predict (batch 2048)", [n / t for t in b]),
            extra={"peak_rss_mib": round(peak_rss_mb()), "input_mib": round(x.nbytes / 2**20)},
        ))
    # A per-sample predict loop (the original tool's path), expressed as rows/s.
    m = 20 if quick else 100
    loop = latencies(lambda i: s.prefix.predict(x0[i : i + 1], verbose=0), [(i,) for i in range(m)], warmup=3)
    one = latencies(lambda i: propagate(s, x0[i : i + 1]), [(i,) for i in range(m)], warmup=3)
    results.append(Comparison(
        "propagation", f"per-sample loop, {m} rows", "rows/s",
        Side("engine propagate, one row per call", [1 / t for t in one]),
        Side("prefix.predict, one row per call", [1 / t for t in loop]),
    ))
    # Single-sample suffix latency: what every click costs.
    z = propagate(s, x0[:200])
    k = 20 if quick else 200
    ours = latencies(lambda i: s.decode(z[i : i + 1]), [(i,) for i in range(k)], warmup=5)
    base = latencies(lambda i: s.suffix.predict(z[i : i + 1], verbose=0), [(i,) for i in range(k)], warmup=5)
    results.append(Comparison(
        "suffix latency", f"1 sample, median of {k}", "ms",
        Side("engine decode (tf.function, fixed signature)", ours),
        Side("suffix.predict", base),
        target="< 1 ms median", met=bool(np.median(ours) < 1e-3),
    ))
    return results
