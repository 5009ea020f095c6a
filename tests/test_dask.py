"""Scale-out on Dask, on a real cluster: a ``distributed.LocalCluster`` of 2 worker processes on 127.0.0.1.

The chunked path gives what the single-process path gives (activations to float32 rounding, the same PCA, the same
picture); an input several times larger than a worker's memory limit streams through without a worker being
restarted; a worker killed mid-run is survived, and a chunk that keeps killing its worker fails the job with a
typed error and leaves no store at the target. Starting TensorFlow in a worker takes seconds, so the module shares
one cluster; the tests that kill workers come last.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from builders import build_models, write_project

from engine.backends.cluster import ClusterSpec, connect, describe, parse_address
from engine.backends.dask import ModelRef, embedding_frame, loaded_models
from engine.data.chunked import NpyRows, open_chunked
from engine.data.store import open_store
from engine.errors import ClusterError, CutError, DataError, InspectorError, ModelError
from engine.model import list_layers, load_model, split
from engine.propagate import activations, propagate
from engine.reduce import PCAReducer, PrincipalDirections, embed

#: Per worker. TensorFlow and a model take about 750 MiB of a worker's resident memory; the nanny pauses a worker
#: at 80 % of its limit and restarts it at 95 %.
WORKER_MEMORY = int(1.5 * 2**30)
#: Per worker of the module's cluster, which every test here shares: its workers keep what each test left (models,
#: TensorFlow's graphs, umap-learn), about 1.1 GiB after the whole file, too near the 80 % of 1.5 GiB.
SHARED_MEMORY = 2 * 2**30
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client():
    # allowed_failures=1: a task may lose one worker (it is then re-run elsewhere); a second death fails it
    with connect("local:2", memory_limit=SHARED_MEMORY, scheduler_options={"allowed_failures": 1}) as client:
        yield client


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A real conv autoencoder saved as .keras, 3,000 inputs and labels as .npy, and the single-process activations."""
    root = tmp_path_factory.mktemp("dask")
    model, _ = build_models()["conv2d"]
    model.save(root / "model.keras")
    rng = np.random.default_rng(7)
    x = rng.random((3000, 16, 16, 1)).astype("float32")
    y = rng.integers(0, 3, size=3000)
    np.save(root / "x.npy", x)
    np.save(root / "y.npy", y)
    z = propagate(split(load_model(root / "model.keras"), "bottleneck"), x)
    return SimpleNamespace(root=root, model=root / "model.keras", x=x, y=y, z=z)


@pytest.fixture(scope="module")
def acts(client, data):
    """The activations propagated on the cluster in 8 chunks, with the progress reported on the way."""
    seen = []
    ref = ModelRef.from_file(data.model, "bottleneck")
    stored = propagate(ref, open_chunked(data.root / "x.npy", chunk_rows=400), out=data.root / "acts.zarr",
                       key="conv-bottleneck-x", progress=lambda stage, d, t: seen.append((d, t)))
    return SimpleNamespace(stored=stored, seen=seen, ref=ref)


def _same_up_to_sign(a, b, atol):
    signs = np.sign(np.sum(a * b, axis=0))
    np.testing.assert_allclose(a * signs, b, rtol=0, atol=atol)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


# -- addresses and clusters --------------------------------------------------------------------------------------------


def test_addresses_parse_or_fail_with_what_is_expected():
    assert parse_address("local") == ClusterSpec("local", None)
    assert parse_address("local:3") == ClusterSpec("local", 3)
    assert parse_address("cuda:2") == ClusterSpec("cuda", 2)
    assert parse_address("tcp://10.1.2.3:8786") == ClusterSpec("scheduler", None, "tcp://10.1.2.3:8786")
    for bad in ("local:0", "lokal", "tcp://host", "8786", "tcp://h:99999", "local:-1"):
        with pytest.raises(ClusterError, match="--dask"):
            parse_address(bad)
    with pytest.raises(ClusterError, match="worker memory limit 'lots'"):
        with connect("local:1", memory_limit="lots"):
            pass


def test_unreachable_scheduler_and_missing_gpu_are_clear_errors():
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterError, match=rf"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        with connect(f"tcp://127.0.0.1:{port}", timeout=2):
            pass
    try:
        import dask_cuda  # noqa: F401

        has_dask_cuda = True
    except Exception:
        has_dask_cuda = False
    from engine.backends.cupy import gpu_available

    if has_dask_cuda and gpu_available():
        pytest.skip("a GPU and dask-cuda are present: --dask cuda starts (see test_cuda_cluster_propagates)")
    with pytest.raises(ClusterError, match="dask-cuda|no CUDA device"):
        with connect("cuda"):
            pass


def test_local_cluster_binds_loopback_with_one_thread_per_worker(client):
    info = client.scheduler_info()
    assert client.scheduler.address.startswith("tcp://127.0.0.1:")
    assert len(info["workers"]) == 2
    assert all(w["nthreads"] == 1 and w["memory_limit"] == SHARED_MEMORY for w in info["workers"].values())
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in info["workers"])
    assert describe(client).endswith("2 workers, 1 thread and 2.00 GiB each")


# -- propagation -------------------------------------------------------------------------------------------------------


def test_chunked_propagation_gives_the_single_process_activations(client, data, acts):
    stored = acts.stored
    assert stored.shape == (3000, 5) and stored.chunk_rows == 400 and len(stored.bounds()) == 8
    assert not stored.cache_hit and stored.attrs["complete"] and stored.attrs["layer"] == "bottleneck"
    np.testing.assert_allclose(stored.read(), data.z, rtol=1e-5, atol=1e-6)  # float32 rounding
    done = [d for d, _ in acts.seen]
    assert len(done) == 8 and done == sorted(done) and acts.seen[-1] == (3000, 3000)
    assert _leftovers(data.root) == []
    # the model was loaded once per worker process, though each worker ran several chunks
    key = f"{acts.ref.model_path}@{acts.ref.model_hash}:bottleneck"
    loads = [counts.get(key, 0) for counts in client.run(loaded_models).values()]
    assert loads == [1, 1]


@pytest.fixture
def torch_client(client):
    """A cluster of its own for the PyTorch and ONNX models, closed after the test (the shared one is the default
    client again): PyTorch and ONNX Runtime in the shared cluster's workers, beside TensorFlow, took them past the
    memory at which the nanny pauses a worker (80 % of 1.5 GiB), and the next test's tasks waited forever."""
    from distributed import default_client

    with connect("local:2", memory_limit=WORKER_MEMORY) as own:
        assert default_client() is own
        yield own
    assert default_client() is client


def test_torch_and_onnx_models_propagate_on_the_cluster_loaded_once_per_worker(torch_client, tmp_path):
    """A PyTorch program (.pt2) and an ONNX file of the same network, on one cluster of their own (starting one took
    seconds of the suite's time for each)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import torch_models as tm

    client = torch_client
    module, example = tm.build("residual")
    x = np.random.default_rng(3).random((1200, 1, 14, 14)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    onnx = tmp_path / "model.onnx"
    torch.onnx.export(module, (example,), str(onnx), dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    onnx_layer = next(i.name for i in list_layers(load_model(onnx)) if i.valid_cut and i.name.startswith("/block1/"))
    for kind, path, layer in (("pytorch", tm.export(module, example, tmp_path / "model.pt2"), "block1"),
                              ("onnx", onnx, onnx_layer)):
        ref = ModelRef.from_file(path, layer)
        stored = propagate(ref, open_chunked(tmp_path / "x.npy", chunk_rows=200), out=tmp_path / f"{kind}.zarr",
                           key=f"{kind}-x")
        np.testing.assert_allclose(stored.read(), split(load_model(path), layer).encode(x), rtol=1e-5, atol=1e-5,
                                   err_msg=kind)
        key = f"{ref.model_path}@{ref.model_hash}:{layer}"
        loads = [counts.get(key, 0) for counts in client.run(loaded_models).values()]
        assert sorted(loads) == [1, 1], (kind, loads)  # six chunks, one load per worker process


def test_a_complete_store_with_the_same_key_is_reused(client, data, acts):
    seen = []
    again = propagate(acts.ref, open_chunked(data.root / "x.npy", chunk_rows=400), out=acts.stored.path,
                      key="conv-bottleneck-x", progress=lambda stage, d, t: seen.append(d))
    assert again.cache_hit and seen == [3000]
    assert again.attrs["written"] == acts.stored.attrs["written"]


def test_hdf5_and_zarr_inputs_give_the_same_activations(client, data, tmp_path):
    import h5py
    import zarr

    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("inputs/x", data=data.x, chunks=(250, 16, 16, 1))
        f.create_dataset("inputs/y", data=data.y)
    zarr.create_array(str(tmp_path / "x.zarr"), data=data.x, chunks=(700, 16, 16, 1))
    ref = ModelRef.from_file(data.model, "bottleneck")
    for source, key in ((tmp_path / "x.h5", "inputs/x"), (tmp_path / "x.zarr", None)):
        x = open_chunked(source, key, chunk_rows=1000)
        assert x.shape == (3000, 16, 16, 1) and x.chunks[0] == (1000, 1000, 1000)
        stored = propagate(ref, x, out=tmp_path / f"{source.stem}{source.suffix}-acts.zarr")
        np.testing.assert_allclose(stored.read(), data.z, rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError, match=r"x.h5: holds 2 datasets \(inputs/x, inputs/y\); name one"):
        open_chunked(tmp_path / "x.h5")


def test_a_bundled_project_propagates_through_the_command_line_on_a_running_scheduler(client, tmp_path):
    """``latent-inspector propagate mnist --dask tcp://...``: the bundled .h5 model and .npz digits, on the
    module's cluster; the store holds what the single-process cache holds."""
    from engine.data.project import load_project

    address = client.scheduler.address
    cmd = [sys.executable, "-m", "engine.cli", "--cache-dir", str(tmp_path), "propagate", "mnist", "--dask", address]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    # 7.5 MiB of digits: by default two chunks per worker thread, not one 64 MiB chunk for one worker
    assert "bottleneck: (10000, 10) float32 in 4 chunks" in r.stdout and "rows/s" in r.stdout
    assert "loaded and compiled on the workers in" in r.stderr
    assert f"dask {address}: 2 workers" in r.stderr
    (store,) = (tmp_path / "activations").glob("mnist-*-bottleneck-*.zarr")
    assert f"zarr store at {store}" in r.stdout
    single = activations(load_project("mnist"), "bottleneck", cache_dir=tmp_path / "single")  # in this process
    np.testing.assert_allclose(open_store(store).read(), single, rtol=1e-5, atol=1e-5)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0 and "read from store" in r.stdout, r.stderr[-3000:]
    for args, needle in ((["--dask", "nowhere"], "--dask 'nowhere': not a cluster address"),
                         (["--dask", address, "--input-chunks", "0"], "chunk rows must be a positive integer, got 0"),
                         (["--output", str(tmp_path / "a.zarr")], "--output applies to a Dask run")):
        r = subprocess.run(cmd[:7] + args, capture_output=True, text=True, timeout=300, cwd=REPO)
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]

    # reduce and render --dask read that store (no propagation in the command's process) and fit on the cluster
    base = [sys.executable, "-m", "engine.cli", "--cache-dir", str(tmp_path)]
    r = subprocess.run(base + ["reduce", "mnist", "--dask", address, "-o", str(tmp_path / "e.npz")],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"bottleneck: (10000, 10) float32 in 4 chunks (read from store) at {store}" in r.stderr
    assert not list((tmp_path / "activations").glob("*.npy"))  # never propagated in the command's process

    embedded = np.load(tmp_path / "e.npz")["embedding"]
    reference = PCAReducer(random_state=0).fit(single).embedding_
    _same_up_to_sign(embedded, reference, atol=1e-4 * float(np.abs(reference).max()))
    r = subprocess.run(base + ["render", "mnist", "--dask", address, "--grid", "2", "-o", str(tmp_path / "m.png")],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0 and (tmp_path / "m.png").stat().st_size > 10_000, r.stderr[-3000:]
    r = subprocess.run(base + ["reduce", "mnist", "--dask", "nowhere"], capture_output=True, text=True, timeout=300,
                       cwd=REPO)
    assert r.returncode == 2 and "not a cluster address" in r.stderr and "Traceback" not in r.stderr


def test_bad_inputs_fail_with_typed_errors_and_leave_nothing(client, data, tmp_path):
    ref = ModelRef.from_file(data.model, "bottleneck")
    x = data.x.copy()
    x[2345, 3, 4, 0] = np.nan
    np.save(tmp_path / "x_nan.npy", x)
    with pytest.raises(DataError, match=r"x_nan.npy: inputs contain NaN \(first at sample 2345\)"):
        propagate(ref, open_chunked(tmp_path / "x_nan.npy", chunk_rows=500), out=tmp_path / "nan.zarr",
                  source=str(tmp_path / "x_nan.npy"))
    assert not (tmp_path / "nan.zarr").exists() and _leftovers(tmp_path) == []
    with pytest.raises(CutError, match="has no layer 'bottle'"):
        propagate(ModelRef.from_file(data.model, "bottle"), open_chunked(data.root / "x.npy"),
                  out=tmp_path / "cut.zarr")
    np.save(tmp_path / "x_flat.npy", np.zeros((10, 100), np.float32))
    with pytest.raises(ModelError, match=r"expects samples of shape \(16, 16, 1\) \(256 values\); "
                       r"the data's samples have shape \(100,\)"):
        propagate(ref, open_chunked(tmp_path / "x_flat.npy"), out=tmp_path / "shape.zarr")
    np.save(tmp_path / "x_f.npy", np.asfortranarray(np.zeros((10, 4), np.float32)))
    with pytest.raises(DataError, match="Fortran order"):
        open_chunked(tmp_path / "x_f.npy")
    with pytest.raises(DataError, match="no such file"):
        open_chunked(tmp_path / "missing.npy")
    with pytest.raises(InspectorError, match="chunk rows must be a positive integer"):
        open_chunked(data.root / "x.npy", chunk_rows=0)
    with pytest.raises(DataError, match="no chunked store there"):
        open_store(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_f.npy", "x_flat.npy", "x_nan.npy"]


def test_npy_rows_read_like_a_memory_map(tmp_path):
    a = np.arange(5 * 3 * 2, dtype=np.int16).reshape(5, 3, 2)
    np.save(tmp_path / "a.npy", a)
    rows = NpyRows(tmp_path / "a.npy")
    assert rows.shape == (5, 3, 2) and rows.dtype == np.int16 and len(rows) == 5
    for key in (slice(1, 4), slice(None), (slice(2, 5), slice(0, 2)), 3, -1, slice(4, 0, -2), (slice(0, 5), 1),
                slice(3, 3)):
        np.testing.assert_array_equal(rows[key], a[key])


# -- reduction and rendering ------------------------------------------------------------------------------------------


def test_pca_on_the_cluster_matches_the_single_process_pca(client, data, acts, tmp_path):
    """The store's PCA against :class:`engine.reduce.PCAReducer` fitted in this process on the single-process
    activations.

    A reducer fitted on a sample (here every row) and embedding the chunks on the workers gives the same embedding
    to float32 rounding. The exact fit (moments added up over the chunks) and the incremental one (keeping every
    direction between chunks: 5 units) are both exact PCA in exact arithmetic; the differences left come from the
    activations, equal only to float32 rounding (about 1e-7 relative), and move the components by that over the
    relative eigengap (about 1e-5 rad here). Hence 1e-3 rad on the principal angles and 1e-4 relative on the
    explained variance: far below what a wrong mean, a missed chunk or a truncated basis gives (see the next test).
    """
    from scipy.linalg import subspace_angles

    reference = PCAReducer(random_state=0, inverse=None).fit(data.z)
    scale = float(np.abs(reference.embedding_).max())

    stages = []
    reducer = PCAReducer(random_state=0, inverse=None, fit_sample=3000, incremental=False,
                         progress=lambda *a: stages.append(a)).fit(acts.stored)
    emb = embed(reducer, acts.stored, tmp_path / "sampled.zarr", progress=lambda *a: stages.append(a))
    assert emb.shape == (3000, 2) and type(reducer).__name__ == "PCAReducer"
    # the fit reads every chunk (its moments) and embeds every row: 2 x 3000 rows of progress, then the store
    assert stages[-1] == ("embed", 3000, 3000) and ("reduce", 6000, 6000) in stages
    _same_up_to_sign(emb.read(), reference.embedding_, atol=1e-5 * scale)

    for method in ("exact", "incremental"):
        fits = []
        pca = PrincipalDirections(2, fit_sample=None, method=method,
                                  progress=lambda stage, d, t, fits=fits: fits.append(d)).fit(acts.stored)
        assert pca.n_samples_seen_ == 3000 and pca.keep_ == 5 and fits == sorted(fits) and fits[-1] == 3000
        angles = subspace_angles(pca.components_.T.astype(float), reference.components_.T.astype(float))
        assert angles.max() < 1e-3, (method, angles)
        np.testing.assert_allclose(pca.explained_variance_ratio_, reference.explained_variance_ratio_, rtol=1e-4)
        np.testing.assert_allclose(pca.mean_, reference.mean_, rtol=0, atol=1e-6)
        emb2 = embed(pca, acts.stored, tmp_path / f"{method}.zarr")
        _same_up_to_sign(emb2.read(), reference.embedding_, atol=1e-4 * scale)
        assert emb2.attrs["ranges"][0] == [float(emb2.read()[:, 0].min()), float(emb2.read()[:, 0].max())]
    pca = PCAReducer(inverse=None).fit(acts.stored)  # PCA over every row, exact
    emb3 = embed(pca, acts.stored, tmp_path / "default.zarr")
    assert emb3.attrs["fit"] == "over all 3000 rows, exact" and isinstance(pca.model_, PrincipalDirections)
    np.testing.assert_array_equal(emb3.read(), embed(pca, acts.stored, tmp_path / "again.zarr").read())
    np.testing.assert_array_equal(emb3.read(), pca.embedding_)  # the in-memory embedding is the stored one
    assert _leftovers(tmp_path) == []


def test_chunked_pca_keeping_fewer_directions_is_the_approximate_incremental_pca():
    """With ``keep`` below the layer's size the fit is IncrementalPCA's approximation: close where the spectrum has
    a gap after the kept directions, as here (variances 25, 9, then 0.01)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 12)) * np.r_[5.0, 3.0, [0.1] * 10]
    X = X @ np.linalg.qr(rng.normal(size=(12, 12)))[0]
    chunked = dict(fit_sample=None, method="incremental", chunk_size=500)  # partial fits of 500 rows each
    exact = PrincipalDirections(2, **chunked).fit(X)
    approx = PrincipalDirections(2, keep=2, **chunked).fit(X)
    from sklearn.decomposition import PCA

    ref = PCA(2).fit(X)
    assert exact.keep_ == 12 and approx.keep_ == 2
    np.testing.assert_allclose(np.abs(exact.components_ @ ref.components_.T), np.eye(2), atol=1e-6)
    np.testing.assert_allclose(np.abs(approx.components_ @ ref.components_.T), np.eye(2), atol=1e-3)
    with pytest.raises(InspectorError, match=r"n_components must be an integer in 1..12"):
        PrincipalDirections(13, **chunked).fit(X[:100])


def test_one_frame_rendered_from_a_dask_dataframe_is_the_in_memory_picture(client, data, acts, tmp_path):
    from distributed import get_task_stream

    from engine.render import aggregate, make_canvas, points_frame, shade

    emb = embed(PCAReducer(inverse=None).fit(acts.stored), acts.stored, tmp_path / "emb.zarr")
    names = ["a", "b", "c"]
    frame = embedding_frame(emb, data.root / "y.npy", names)
    assert frame.npartitions == 8 and list(frame.columns) == ["x", "y", "label"]
    with get_task_stream(client) as stream:  # the same stages as in memory, given the store
        img = shade(aggregate(points_frame(emb, data.root / "y.npy", names),
                              canvas=make_canvas(emb, width=200, height=150)))
    parts = [t for t in stream.data if "embedding" in str(t["key"])]  # each partition aggregated on a worker
    assert len(parts) >= 8 and {t["worker"] for t in parts} <= set(client.scheduler_info()["workers"])
    E = emb.read()
    expected = shade(aggregate(points_frame(E, data.y, names), canvas=make_canvas(E, width=200, height=150)))
    assert img.shape == (150, 200)
    np.testing.assert_array_equal(img.data, expected.data)
    assert int((img.data != expected.data[0, 0]).sum()) > 1000  # not a blank picture
    unnamed = embedding_frame(emb, data.root / "y.npy")  # the codes as names, from one pass over the file
    assert list(unnamed["label"].cat.categories) == ["0", "1", "2"]
    assert unnamed.partitions[3].compute()["label"].astype(str).tolist() == [str(c) for c in data.y[1200:1600]]
    with pytest.raises(DataError, match="labels: 10 for 3000 embedded rows"):
        embedding_frame(emb, np.zeros(10, int))


def test_an_inspection_reads_a_store_propagated_on_the_cluster(client, data, tmp_path, monkeypatch):
    """``latent-inspector propagate --dask`` leaves a Zarr store in the cache; an Inspection (the dashboard's) then
    reads it chunk by chunk rather than propagating again in its own process, and gives the in-memory result."""
    from engine.data.project import load_project
    from engine.data.store import Stored
    from engine.explore.inspection import Inspection

    model, _ = build_models()["conv2d"]
    write_project(tmp_path / "projects", "conv", model, data.x, data.y, manifest='default_layer = "bottleneck"\n')
    project = load_project("conv", root=tmp_path / "projects")
    stored = activations(project, "bottleneck", client=client, cache_dir=tmp_path / "cache")
    assert stored.path.parent == tmp_path / "cache" / "activations"

    seen = []
    insp = Inspection(project, "bottleneck", cache_dir=tmp_path / "cache", progress=lambda *a: seen.append(a))
    assert isinstance(insp.activations, Stored) and insp.out_of_core
    assert seen[0] == ("propagate", 3000, 3000)  # read from the store, not computed
    assert not any((tmp_path / "cache" / "activations").glob("*.npy"))
    reference = PCAReducer(random_state=0).fit(data.z)
    _same_up_to_sign(insp.embedding, reference.embedding_, atol=1e-4 * float(np.abs(reference.embedding_).max()))
    d = insp.decode(*insp.embedding[7])  # the rank-2 reconstruction of sample 7, whatever the components' signs
    np.testing.assert_allclose(d.activation.reshape(-1), reference.inverse_transform(reference.embedding_[7:8])[0],
                               rtol=0, atol=1e-4)
    assert d.output.shape == (16, 16, 1) and d.nearest == 7
    assert insp.quality.n_samples == 3000 and insp.quality.inverse == "exact"

    # the dashboard opens the project out of core: its store's inspection reads the same Zarr store
    from dashboard.inspector.state import Inspector

    monkeypatch.setenv("LATENT_INSPECTOR_PROJECTS", str(tmp_path / "projects"))
    monkeypatch.setenv("LATENT_INSPECTOR_CACHE", str(tmp_path / "cache"))
    store = Inspector(project="conv")
    assert store.error == "", store.error
    assert store.inspection.out_of_core and isinstance(store.inspection.activations, Stored)
    assert store.decode_at(*insp.embedding[7]).nearest == 7
    assert not any((tmp_path / "cache" / "activations").glob("*.npy"))

    # UMAP fitted on a sample, every chunk embedded by the workers: each worker then holds umap-learn and its numba
    # code beside TensorFlow, more than the shared workers above keep below the 80 % at which they are paused
    with connect("local:2", memory_limit="3GiB"):
        umap = Inspection(project, "bottleneck", method="umap", params={"n_neighbors": 15, "fit_sample": 1000},
                          inverse="knn", cache_dir=tmp_path / "cache")
    assert umap.embedding.shape == (3000, 2) and np.isfinite(umap.embedding).all()
    assert len(umap.reducer.fit_index_) == 1000 and umap.decode(0.0, 0.0).output.shape == (16, 16, 1)


# -- memory and failures ----------------------------------------------------------------------------------------------


def _rss():
    import psutil

    return psutil.Process().memory_info().rss


@pytest.mark.slow
def test_an_input_several_times_larger_than_a_worker_memory_limit_streams_through(tmp_path):
    """6 GiB of inputs (4x a worker's limit, 2x both limits together) in one .npy: no worker is paused to death or
    restarted, and the marked rows come out right. The file is sparse (only the marked rows are written, the rest
    reads as zeros), so the test costs no disk; what a worker holds in memory is the same.

    On workers of their own: the module's workers keep what the tests before left (models, TensorFlow's graphs), about
    1.1 GiB here after the whole file, so near the 80 % at which one is paused that a CI run crossed it."""
    with connect("local:2", memory_limit=WORKER_MEMORY, scheduler_options={"allowed_failures": 1}) as client:
        _streams_through(client, tmp_path)


def _streams_through(client, tmp_path):
    import keras

    n, d = 6 * 2**30 // (1024 * 4), 1024
    inp = keras.Input((d,), name="x")
    code = keras.layers.Dense(8, name="code")(inp)
    keras.Model(inp, keras.layers.Dense(d, name="recon")(code)).save(tmp_path / "wide.keras")
    x = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(3)
    marked = np.r_[0:500, n // 2 : n // 2 + 500, n - 500 : n]  # rows with values; the rest of the file is zeros
    x[marked] = rng.normal(size=(len(marked), d)).astype(np.float32)
    x.flush()
    del x
    assert (tmp_path / "big.npy").stat().st_size > 4 * WORKER_MEMORY
    pids = client.run(os.getpid)
    peaks = {}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for addr, rss in client.run(_rss).items():
                peaks[addr] = max(peaks.get(addr, 0), rss)
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        ref = ModelRef.from_file(tmp_path / "wide.keras", "code")
        stored = propagate(ref, open_chunked(tmp_path / "big.npy"), out=tmp_path / "big-acts.zarr")
    finally:
        stop.set()
        sampler.join()
    assert stored.shape == (n, 8) and len(stored.bounds()) == n // 16384
    assert client.run(os.getpid) == pids  # no worker was restarted
    logs = client.get_worker_logs(nanny=True)
    assert not [line for lines in logs.values() for _, line in lines if "exceeded" in line or "Restarting" in line]
    assert peaks and max(peaks.values()) < 0.95 * WORKER_MEMORY, {a: p / 2**20 for a, p in peaks.items()}
    s = split(load_model(tmp_path / "wide.keras"), "code")
    big = np.load(tmp_path / "big.npy", mmap_mode="r")
    got = zarr_rows(stored.path, marked)
    np.testing.assert_allclose(got, s.encode(np.asarray(big[marked])), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stored.read(1000, 1003), s.encode(np.zeros((3, d), np.float32)), atol=1e-6)
    del big
    (tmp_path / "big.npy").unlink()  # pytest keeps the last runs' folders


def zarr_rows(path, rows):
    import zarr

    return zarr.open_array(str(path), mode="r").oindex[rows]


def _hook_project(root: Path, name: str, hook: str, model, x) -> Path:
    folder = write_project(root, name, model, x, manifest='default_layer = "bottleneck"\n')
    (folder / "hooks.py").write_text(hook)
    return folder


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_survived_and_the_store_is_correct(client, data, tmp_path):
    """A worker is killed (SIGKILL) when the first chunk completes: its chunks run again on the other worker or on
    the nanny's new one; the store appears once, complete and equal to the single-process activations."""
    from engine.data.project import load_project

    hook = "import time\n\ndef preprocess(batch):\n    time.sleep(0.05)\n    return batch\n"
    model, _ = build_models()["conv2d"]
    _hook_project(tmp_path, "slow", hook, model, data.x)
    project = load_project("slow", root=tmp_path)
    victims = list(client.run(os.getpid).values())
    killed = []

    def progress(stage, done, total):
        if not killed:
            os.kill(victims[0], signal.SIGKILL)
            killed.append(done)

    out = tmp_path / "out" / "acts.zarr"
    try:
        stored = activations(project, "bottleneck", client=client, out=out, chunk_rows=100, batch_size=50,
                             progress=progress)
    except ClusterError as exc:  # allowed: a clear, typed failure; then nothing is left at the target
        assert "Nothing was written" in str(exc) or "nothing was written" in str(exc)
        assert not out.exists()
    else:
        assert stored.path == out and open_store(out).attrs["complete"]
        expected = propagate(split(project.model(), "bottleneck"), data.x)
        np.testing.assert_allclose(stored.read(), expected, rtol=1e-5, atol=1e-6)
    assert killed and _leftovers(out.parent) == []
    deadline = time.monotonic() + 120
    while len(client.scheduler_info()["workers"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert victims[0] not in client.run(os.getpid).values()


@pytest.mark.slow
def test_a_chunk_that_keeps_killing_its_worker_fails_with_a_clear_error_and_keeps_the_old_store(client, data,
                                                                                                 acts, tmp_path):
    """A hook that crashes its process on some rows (as a segfault in a custom op would): the scheduler gives up
    after the allowed failures; the job raises ClusterError naming the rows, and the complete store already at the
    target is left as it was."""
    from engine.data.project import load_project

    hook = ("import os, signal\n\ndef preprocess(batch):\n    if (batch[:, 0, 0, 0] == 7.0).any():\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n    return batch\n")
    x = data.x.copy()
    x[2100:2200, 0, 0, 0] = 7.0
    model, _ = build_models()["conv2d"]
    _hook_project(tmp_path, "crash", hook, model, x)
    out = tmp_path / "out" / "acts.zarr"
    out.parent.mkdir()
    shutil.copytree(acts.stored.path, out)  # an older complete store at the target
    died = r"workers died 2 times while computing rows [0-9,]+\.\.[0-9,]+ .*no memory limit was exceeded.*Nothing was"
    with pytest.raises(ClusterError, match=died):
        activations(load_project("crash", root=tmp_path), "bottleneck", client=client, out=out, chunk_rows=500)
    assert open_store(out).attrs["written"] == acts.stored.attrs["written"]
    np.testing.assert_array_equal(open_store(out).read(), acts.stored.read())
    assert _leftovers(out.parent) == []


_HELD = []


def _hold_memory(share):
    """On a worker: keep memory alive (as a module's data would) until the process holds ``share`` of its limit."""
    from distributed import get_worker

    limit = get_worker().memory_manager.memory_limit
    _HELD.append(np.ones(max(int(share * limit) - _rss(), 0) // 8))
    return _rss() / limit


def test_workers_paused_at_their_memory_limit_fail_the_job_rather_than_hang_it(monkeypatch):
    """A worker whose own memory (its modules, a model) reaches 80 % of its limit is paused by its nanny and runs
    nothing more: a job on such workers says so, instead of waiting for ever."""
    import dask.array as da

    from engine.backends import map_chunks
    from engine.backends.dask import tasks

    monkeypatch.setattr(tasks, "PAUSED_S", 3.0)
    with connect("local:1", memory_limit="1GiB") as small:
        assert 0.8 < small.submit(_hold_memory, 0.87, pure=False).result() < 0.95  # paused (80 %), not killed (95 %)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
                w["status"] != "paused" for w in small.scheduler_info()["workers"].values()):
            time.sleep(0.2)
        x = da.ones((1000, 4), chunks=(250, 4))
        with pytest.raises(ClusterError, match=r"every worker has been paused at its memory limit \(1.00 GiB\) "
                                               r"for 3 s.*--worker-memory"):
            map_chunks(lambda rows: rows.sum(), x, stage="summing")


def _chunk_sum_pausing(rows, address):
    """A chunk's sum; on the worker at ``address``, first take that worker to 87 % of its memory limit, so that its
    nanny pauses it with the next tasks the scheduler gave it waiting (as a model's memory left by an earlier job
    did, in CI)."""
    from distributed import get_worker

    if get_worker().address == address and not _HELD:
        _hold_memory(0.87)
    time.sleep(0.2)  # long enough for the nanny's memory monitor to pause it before it takes the next task
    return rows.sum()


def test_a_worker_paused_with_tasks_of_the_job_fails_the_job_rather_than_hang_it(monkeypatch):
    """One worker paused at its memory limit while the other runs: the tasks the scheduler had already handed to the
    paused one wait there for ever once the other has done the rest. The job names that worker, instead of hanging
    (this hung a CI run for the test's whole 900 s)."""
    import dask.array as da

    from engine.backends import map_chunks
    from engine.backends.dask import tasks

    monkeypatch.setattr(tasks, "PAUSED_S", 3.0)
    with connect("local:2", memory_limit="1GiB") as pair:
        victim = sorted(pair.scheduler_info()["workers"])[0]
        x = da.ones((4000, 4), chunks=(250, 4))
        started = time.monotonic()
        with pytest.raises(ClusterError, match=rf"summing: worker {victim} has been paused at its memory limit "
                                               r"\(1.00 GiB\) for 3 s with tasks of this job waiting on it.*"
                                               r"--worker-memory"):
            map_chunks(lambda rows: _chunk_sum_pausing(rows, victim), x, stage="summing")
        assert time.monotonic() - started < 60


@pytest.mark.gpu
def test_cuda_cluster_propagates(data, tmp_path):
    with connect("cuda") as gpu_client:
        workers = gpu_client.scheduler_info()["workers"]
        assert len(workers) >= 1 and all(w["nthreads"] == 1 for w in workers.values())
        stored = propagate(ModelRef.from_file(data.model, "bottleneck"), open_chunked(data.root / "x.npy",
                           chunk_rows=1000), out=tmp_path / "gpu.zarr")
    np.testing.assert_allclose(stored.read(), data.z, rtol=1e-4, atol=1e-5)


def test_a_job_on_a_scheduler_left_without_workers_fails_rather_than_hang(monkeypatch):
    """Workers that lose their connection and close (CI saw both of a cluster's go at once on a loaded machine) are
    not restarted by their nannies: a job left without any worker says so, instead of waiting for ever."""
    import dask.array as da

    from engine.backends import map_chunks
    from engine.backends.dask import tasks

    monkeypatch.setattr(tasks, "NO_WORKERS_S", 3.0)
    with connect("local:1", memory_limit="1GiB") as client:
        address = client.scheduler.address
        client.retire_workers(close_workers=True, remove=True)  # the worker and its nanny leave, as a closed one
        deadline = time.monotonic() + 30
        while client.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not client.scheduler_info()["workers"]
        x = da.ones((1000, 4), chunks=(250, 4))
        started = time.monotonic()
        with pytest.raises(ClusterError, match=rf"summing: the Dask scheduler at {address} has had no worker for 3 s"):
            map_chunks(lambda rows: rows.sum(), x, stage="summing")
        assert time.monotonic() - started < 30  # and not the test's timeout


def test_a_store_written_to_a_full_disk_fails_with_a_typed_error_and_leaves_nothing(client, data, tmp_path):
    """The workers write the store's chunks; a disk that fills half-way is the user's error to read, in one line
    naming the store, and no store (or its temporary) is left that could later be taken for a complete one."""
    from test_faults import small_disk

    from engine.errors import StorageError

    ref = ModelRef.from_file(data.model, "bottleneck")
    with small_disk(tmp_path / "disk", "24k") as disk:
        with pytest.raises(StorageError) as info:
            propagate(ref, open_chunked(data.root / "x.npy", chunk_rows=400), out=disk / "acts.zarr",
                      key="conv-bottleneck-full")
        message = str(info.value)
        assert message.startswith(f"{disk / 'acts.zarr'}: the store was not written: propagating "), message
        assert message.endswith(": No space left on device; nothing was left there"), message
        assert "\n" not in message and "a worker could not write rows" in message
        assert sorted(p.name for p in disk.iterdir()) == []  # neither the store nor its temporary
        with pytest.raises(DataError, match="no chunked store there"):
            open_store(disk / "acts.zarr")
