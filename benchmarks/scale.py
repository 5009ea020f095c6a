"""Scale-out: 100 million rows end to end on a Dask LocalCluster of 2 workers, against one process at 10 million.

Each side runs the same three stages on synthetic data written to disk first (16 float32 features per row: ten
Gaussian classes, the labels beside them as uint8) through a small dense encoder saved as a real ``.keras`` file
(16 -> 32 -> 8 -> 32 -> 16, cut at the 8-unit code):

* Dask (:mod:`engine.backends.dask`): propagate the ``.npy`` in chunks of 64 MiB into a Zarr store; fit PCA on every
  row (each worker reduces its chunks to moments, added up in a tree) and embed the chunks on the workers into a
  second store; render one 800 x 800 datashader frame from a Dask DataFrame over the embedding.
* One process: :func:`engine.propagate.propagate` over the memory-mapped ``.npy`` into memory; scikit-learn's
  ``PCA`` (as :class:`engine.reduce.PCAReducer` fits it, without its inverse map and trust model); the frame from a
  pandas DataFrame (:mod:`engine.render`).

Both sides call the model with batches of 65,536 rows (the engine's default of 2,048 is tuned for convolutional
encoders; this model is so small that per-call overhead dominates). Reported per stage: wall time, throughput, and
peak resident memory (VmHWM, reset before each stage) of the client process and of each worker process.

``python -m benchmarks --only scale`` runs it (``--quick``: 1,000,000 and 100,000 rows); ``python -m
benchmarks.scale --rows N --single-rows M --png frame.png`` for other sizes and to keep the frame.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import Comparison, Side, peak_rss_mb, reset_peak_rss

ROWS, SINGLE_ROWS = 100_000_000, 10_000_000
QUICK_ROWS, QUICK_SINGLE_ROWS = 1_000_000, 100_000
FEATURES, BATCH = 16, 65_536
CLASSES = tuple(f"class {i}" for i in range(10))


def write_inputs(folder: Path, n: int, seed: int = 0, chunk: int = 4_000_000) -> tuple[Path, Path]:
    """``x.npy`` (n, 16) float32 and ``y.npy`` (n,) uint8: ten Gaussian classes, written in chunks."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-4, 4, size=(len(CLASSES), FEATURES)).astype(np.float32)
    x = np.lib.format.open_memmap(folder / "x.npy", mode="w+", dtype=np.float32, shape=(n, FEATURES))
    y = np.lib.format.open_memmap(folder / "y.npy", mode="w+", dtype=np.uint8, shape=(n,))
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        r = np.random.default_rng([seed, lo])
        labels = r.integers(0, len(CLASSES), size=m).astype(np.uint8)
        x[lo : lo + m] = centres[labels] + r.standard_normal((m, FEATURES), dtype=np.float32)
        y[lo : lo + m] = labels
    x.flush()
    y.flush()
    del x, y
    return folder / "x.npy", folder / "y.npy"


def build_model(path: Path) -> Path:
    """A small dense autoencoder (untrained, seeded), saved as ``.keras``; the cut is its layer ``code``."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((FEATURES,), name="x")
    h = keras.layers.Dense(32, activation="relu", name="enc")(inp)
    code = keras.layers.Dense(8, name="code")(h)
    h = keras.layers.Dense(32, activation="relu", name="dec")(code)
    keras.Model(inp, keras.layers.Dense(FEATURES, name="recon")(h), name="dense_ae").save(path)
    return path


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


class _Stage:
    """Wall time and peak memory (client, and each worker when a client is given) of one stage."""

    def __init__(self, name: str, rows: int, client=None):
        self.name, self.rows, self.client = name, rows, client

    def __enter__(self):
        reset_peak_rss()
        if self.client is not None:
            self.client.run(reset_peak_rss)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.client_mib = round(peak_rss_mb())
        self.worker_mib = sorted(round(v) for v in self.client.run(peak_rss_mb).values()) if self.client else []
        who = f"client {self.client_mib} MiB" + (f", workers {self.worker_mib} MiB" if self.client else "")
        print(f"  {self.name}: {self.rows:,} rows in {self.seconds:.1f} s ({self.rows / self.seconds:,.0f} rows/s); "
              f"peak {who}", flush=True)
        return False


def dask_pipeline(folder: Path, x_path: Path, y_path: Path, model: Path, n: int, png: Path | None = None):
    """The three stages on a LocalCluster of 2 workers; returns ``{stage: _Stage}`` and the cluster start time."""
    from engine.backends.cluster import connect, describe
    from engine.backends.dask import ModelRef, preload
    from engine.data.chunked import open_chunked
    from engine.propagate import propagate
    from engine.reduce import PrincipalDirections, embed
    from engine.render import aggregate, make_canvas, points_frame, shade

    def picture(emb, labels, size):
        return shade(aggregate(points_frame(emb, labels, CLASSES), canvas=make_canvas(emb, width=size, height=size)))

    t0 = time.perf_counter()
    stages = {}
    with connect("local:2") as client:
        start = time.perf_counter() - t0
        print(f"  cluster {describe(client)} started in {start:.1f} s", flush=True)
        ref = ModelRef.from_file(model, "code")
        # warm-up, untimed: the model on every worker, and datashader's compiled code in them (from a small store)
        preload(client, ref)
        k = min(n, 200_000)
        small = propagate(ref, open_chunked(x_path, chunk_rows=25_000)[:k], out=folder / "warm.zarr",
                          batch_size=BATCH)
        warm = embed(PrincipalDirections(2, fit_sample=None).fit(small), small, folder / "warm-emb.zarr")
        picture(warm, np.zeros(k, np.uint8), 80)
        with _Stage("propagate", n, client) as s:
            acts = propagate(ref, open_chunked(x_path), out=folder / "acts.zarr", batch_size=BATCH)
        stages["propagate"] = s
        with _Stage("pca fit (exact, every chunk on the workers)", n, client) as s:
            pca = PrincipalDirections(2, fit_sample=None).fit(acts)
        stages["pca fit"] = s
        with _Stage("pca embed (on the workers)", n, client) as s:
            emb = embed(pca, acts, folder / "emb.zarr")
        stages["pca embed"] = s
        with _Stage("render one frame (dask.dataframe)", n, client) as s:
            img = picture(emb, y_path, 800)
        stages["render"] = s
        if png is not None:
            img.to_pil().save(png)
        stages["_chunks"] = len(acts.bounds())
    return stages, start


def single_pipeline(x_path: Path, y_path: Path, model: Path, n: int):
    """The same stages in this process on the first ``n`` rows: propagate, PCA, render from pandas."""
    from sklearn.decomposition import PCA

    from engine.model import load_model, split
    from engine.propagate import propagate
    from engine.render import aggregate, make_canvas, points_frame, shade

    s_ = split(load_model(model), "code")
    x = np.load(x_path, mmap_mode="r")[:n]
    labels = np.load(y_path, mmap_mode="r")[:n]
    s_.encode(np.asarray(x[:BATCH]))  # warm-up, untimed: the compiled model and datashader's compiled code
    warm = np.random.default_rng(0).normal(size=(10_000, 2))
    shade(aggregate(points_frame(warm, np.arange(10_000) % 10, CLASSES), canvas=make_canvas(warm, width=80, height=80)))
    stages = {}
    with _Stage("propagate", n) as s:
        z = propagate(s_, x, batch_size=BATCH)
    stages["propagate"] = s
    with _Stage("pca fit (sklearn PCA, all rows in memory)", n) as s:
        pca = PCA(2, random_state=0).fit(z)
    stages["pca fit"] = s
    with _Stage("pca embed", n) as s:
        E = ((z.astype(np.float64) - pca.mean_) @ pca.components_.T).astype(np.float32)
    stages["pca embed"] = s
    del z
    with _Stage("render one frame (pandas)", n) as s:
        frame = points_frame(E, np.asarray(labels), CLASSES)
        shade(aggregate(frame, canvas=make_canvas(E, width=800, height=800)))
    stages["render"] = s
    return stages


def run(quick: bool, *, rows: int | None = None, single_rows: int | None = None, png=None,
        workdir=None) -> list[Comparison]:
    n = rows or (QUICK_ROWS if quick else ROWS)
    m = single_rows or (QUICK_SINGLE_ROWS if quick else SINGLE_ROWS)
    if m > n:
        raise ValueError(f"the single-process side ({m:,} rows) reads a part of the Dask side's data ({n:,} rows)")
    load_before = _uptime()
    print(f"  {load_before}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="li-scale-", dir=workdir))
    try:
        t0 = time.perf_counter()
        x_path, y_path = write_inputs(folder, n)
        model = build_model(folder / "dense_ae.keras")
        made = time.perf_counter() - t0
        print(f"  wrote {n:,} x {FEATURES} float32 ({x_path.stat().st_size / 2**30:.1f} GiB) in {made:.0f} s",
              flush=True)
        dask_stages, start = dask_pipeline(folder, x_path, y_path, model, n, png=Path(png) if png else None)
        single_stages = single_pipeline(x_path, y_path, model, m)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    load_after = _uptime()
    print(f"  {load_after}", flush=True)
    chunks = dask_stages.pop("_chunks")
    results = []
    for key in ("propagate", "pca fit", "pca embed", "render"):
        d, s = dask_stages[key], single_stages[key]
        results.append(Comparison(
            "scale", f"{key}: {n:,} rows on Dask vs {m:,} in one process", "rows/s",
            Side("Dask LocalCluster, 2 workers x 1 thread, 64 MiB chunks", [n / d.seconds]),
            Side("one process (2 threads)", [m / s.seconds]),
            extra={"dask_s": round(d.seconds, 1), "single_s": round(s.seconds, 1),
                   "dask_client_peak_mib": d.client_mib, "dask_worker_peak_mib": d.worker_mib,
                   "single_peak_mib": s.client_mib},
        ))
    total_d = sum(dask_stages[k].seconds for k in ("propagate", "pca fit", "pca embed", "render"))
    total_s = sum(single_stages[k].seconds for k in ("propagate", "pca fit", "pca embed", "render"))
    results.append(Comparison(
        "scale", f"end to end: {n:,} rows on Dask vs {m:,} in one process", "rows/s",
        Side("Dask LocalCluster, 2 workers", [n / total_d]), Side("one process", [m / total_s]),
        extra={"dask_s": round(total_d, 1), "single_s": round(total_s, 1), "cluster_start_s": round(start, 1),
               "chunks": chunks, "data_written_s": round(made, 1),
               "peak_worker_mib": max(max(dask_stages[k].worker_mib) for k in dask_stages),
               "peak_client_mib": max(dask_stages[k].client_mib for k in dask_stages),
               "single_peak_mib": max(single_stages[k].client_mib for k in single_stages),
               "load_before": load_before.split("load average:")[-1].strip(),
               "load_after": load_after.split("load average:")[-1].strip()},
    ))
    return results


def main(argv=None) -> int:
    from benchmarks.harness import machine, table, write_report

    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS, help="rows on the Dask side (default 100,000,000)")
    parser.add_argument("--single-rows", type=int, default=SINGLE_ROWS, help="rows in one process (10,000,000)")
    parser.add_argument("--png", help="save the Dask side's frame here")
    parser.add_argument("--workdir", help="folder for the temporary data (default: the system's temporary folder)")
    parser.add_argument("--results", help="also write the JSON and Markdown reports into this folder")
    args = parser.parse_args(argv)
    info = machine()
    results = run(False, rows=args.rows, single_rows=args.single_rows, png=args.png, workdir=args.workdir)
    print(table(results))
    if args.results:
        print("written", *write_report(results, info, False, args.results))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    raise SystemExit(main())
