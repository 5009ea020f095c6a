"""PyTorch and ONNX models through the engine: propagation and single-sample decode against each framework's own call.

On the bundled ``mnist_torch`` (``.pt2``) and ``mnist_onnx`` (the same network exported to ONNX) projects, cut at their
default layer:

* propagation rows/s: the engine's ``propagate`` (NumPy in, batches of 2048, reshape and dtype handled; a PyTorch
  split runs each batch in cache-sized chunks on a CPU) against the framework's plain batched call written by hand
  (``prefix(torch.from_numpy(batch))`` per batch of 2048; ``session.run`` per batch) and against the raw call on
  batches already held as the framework's tensors (no conversion, no copy; PyTorch in the engine's chunk size, the
  fastest here): the ceiling the engine's wrapper can reach (goal >= 90 % of it);
* single-sample decode latency: the engine's ``decode`` of one point against the raw suffix call (goal < 1 ms
  median);
* ONNX Runtime against PyTorch eager on the same network, for both.

PyTorch runs the exported graph eagerly (``torch.compile`` is not used: on a CPU its compile time is not repaid at
these sizes).
"""

from __future__ import annotations

import numpy as np

from benchmarks.harness import Comparison, Side, alternate, latencies
from engine.data.project import load_project
from engine.errors import ModelError
from engine.model import split
from engine.propagate import DEFAULT_BATCH, propagate


def _inputs(project, n: int) -> np.ndarray:
    x0 = np.asarray(project.inputs())
    scale = project.preprocess()
    x = np.resize(x0, (n, *x0.shape[1:]))
    return np.asarray(scale(x) if scale is not None else x, dtype=np.float32)


def _batches(s, x):
    want = (len(x), *s.input_shape)
    x = np.ascontiguousarray(x.reshape(want))
    return [x[i : i + DEFAULT_BATCH] for i in range(0, len(x), DEFAULT_BATCH)]


def _torch_calls(s, x):
    import torch

    batches = _batches(s, x)
    # the raw ceiling: preloaded tensors in the chunks the engine runs on a CPU (the fastest size for this model here)
    rows = s._rows[id(s.prefix)]
    flat = np.ascontiguousarray(x.reshape((len(x), *s.input_shape)))
    preloaded = [torch.from_numpy(flat[i : i + rows]) for i in range(0, len(flat), rows)]

    def plain():
        with torch.inference_mode():
            for b in batches:
                s.prefix(torch.from_numpy(b))[0].numpy()

    def raw():
        with torch.inference_mode():
            for b in preloaded:
                s.prefix(b)

    def raw_decode(z1):
        with torch.inference_mode():
            return s.suffix(z1)

    return plain, raw, raw_decode, lambda z: torch.from_numpy(z)


def _onnx_calls(s, x):
    batches = _batches(s, x)
    session = s._prefix._get()  # the engine's own ONNX Runtime sessions, called directly
    name = session.get_inputs()[0].name
    suffix = s._suffix._get()
    zname = suffix.get_inputs()[0].name

    def plain():
        for b in batches:
            session.run(None, {name: b})

    def raw_decode(z1):
        return suffix.run(None, {zname: z1})

    return plain, plain, raw_decode, lambda z: np.ascontiguousarray(z)


def run(quick: bool) -> list[Comparison]:
    results = []
    n = 2_000 if quick else 100_000
    k = 20 if quick else 300
    repeats = 2 if quick else 5
    splits, inputs = {}, {}
    for kind, name in (("PyTorch", "mnist_torch"), ("ONNX Runtime", "mnist_onnx")):
        try:
            project = load_project(name)
            s = split(project.model(), project.default_layer)
        except (ModelError, ImportError) as exc:
            results.append(Comparison("frameworks", f"{kind}: {name}", "rows/s", Side("engine propagate"),
                                      skipped=f"{type(exc).__name__}: {exc}"))
            continue
        x = _inputs(project, n)
        splits[kind], inputs[kind] = s, x
        plain, raw, raw_decode, as_tensor = (_torch_calls if kind == "PyTorch" else _onnx_calls)(s, x)

        def ours(s=s, x=x):
            propagate(s, x)

        a, b = alternate(ours, plain, repeats=repeats, warmup=1)
        results.append(Comparison(
            "frameworks", f"{kind} propagate {n:,} rows to {project.default_layer!r}", "rows/s",
            Side("engine propagate (batch 2048)", [n / t for t in a]),
            Side(f"plain {kind} batched call", [n / t for t in b]),
        ))
        if raw is not plain:
            a, c = alternate(ours, raw, repeats=repeats, warmup=1)
            ratio = np.median([n / t for t in a]) / np.median([n / t for t in c])
            results.append(Comparison(
                "frameworks", f"{kind} propagate vs raw on preloaded tensors", "rows/s",
                Side("engine propagate (batch 2048)", [n / t for t in a]),
                Side(f"raw {kind} prefix on preloaded tensors", [n / t for t in c]),
                target=">= 90% of raw", met=bool(ratio >= 0.9), extra={"share_of_raw": round(float(ratio), 3)},
            ))
        else:
            results.append(Comparison(
                "frameworks", f"{kind} propagate vs raw on preloaded tensors", "rows/s",
                Side("engine propagate (batch 2048)", [n / t for t in a]),
                Side(f"raw {kind} session.run on preloaded contiguous arrays", [n / t for t in b]),
                target=">= 90% of raw",
                met=bool(np.median([n / t for t in a]) >= 0.9 * np.median([n / t for t in b])),
            ))
        z = propagate(s, x[:k])
        ours_lat = latencies(lambda i, s=s, z=z: s.decode(z[i : i + 1]), [(i,) for i in range(k)], warmup=10)
        raw_lat = latencies(lambda i, z=z, f=raw_decode, t=as_tensor: f(t(z[i : i + 1])), [(i,) for i in range(k)],
                            warmup=10)
        results.append(Comparison(
            "frameworks", f"{kind} decode 1 sample from {project.default_layer!r}, median of {k}", "ms",
            Side("engine decode", ours_lat), Side(f"raw {kind} suffix call", raw_lat),
            target="< 1 ms median", met=bool(np.median(ours_lat) < 1e-3),
        ))
    if len(splits) == 2:
        t, o = splits["PyTorch"], splits["ONNX Runtime"]
        x = inputs["PyTorch"]
        a, b = alternate(lambda: propagate(o, x), lambda: propagate(t, x), repeats=repeats, warmup=1)
        results.append(Comparison(
            "frameworks", f"same network: propagate {n:,} rows", "rows/s",
            Side("ONNX Runtime (engine)", [n / t_ for t_ in a]), Side("PyTorch eager (engine)", [n / t_ for t_ in b]),
        ))
        zt, zo = propagate(t, x[:k]), propagate(o, x[:k])
        np.testing.assert_allclose(zo, zt, rtol=1e-4, atol=1e-4)  # the same network, so the same activations
        lo = latencies(lambda i: o.decode(zo[i : i + 1]), [(i,) for i in range(k)], warmup=10)
        lt = latencies(lambda i: t.decode(zt[i : i + 1]), [(i,) for i in range(k)], warmup=10)
        results.append(Comparison(
            "frameworks", f"same network: decode 1 sample, median of {k}", "ms",
            Side("ONNX Runtime (engine)", lo), Side("PyTorch eager (engine)", lt),
        ))
    return results
