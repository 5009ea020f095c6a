"""The GPU path of the model frameworks, for a machine with CUDA (``pytest -m gpu``; skipped elsewhere).

PyTorch models run on the GPU when PyTorch sees one (:func:`engine.model.torch.device`), and ONNX models through
ONNX Runtime's CUDA execution provider when it is installed. These tests check that the engine really runs there
and that the results equal the CPU's to float32 rounding (cuDNN picks other kernels), at every valid cut of the
residual test model and through the whole propagate -> PCA -> decode path of the bundled PyTorch project.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def residual(tmp_path_factory):
    import torch_models as tm

    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    module, example = tm.build("residual")
    path = tm.export(module, example, tmp_path_factory.mktemp("gpu") / "residual.pt2")
    return module, example, path


def test_a_torch_model_runs_on_the_gpu_and_matches_the_cpu(residual):
    from engine.model import list_layers, load_model, split
    from engine.model.torch import device

    module, example, path = residual
    assert device().type == "cuda"
    model = load_model(path)
    assert next(model.gm.parameters()).is_cuda
    x = torch.rand((600, *example.shape[1:])).numpy()
    with torch.no_grad():
        expected = module(torch.as_tensor(x)).numpy()  # eager, on the CPU
    for layer in list_layers(model):
        if layer.valid_cut:
            s = split(model, layer.name)
            np.testing.assert_allclose(s.decode(s.encode(x)), expected, rtol=1e-4, atol=1e-4, err_msg=layer.name)


def test_onnx_runtime_uses_cuda_when_it_has_the_provider(residual, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime without the CUDA execution provider (pip install onnxruntime-gpu)")
    from engine.model import list_layers, load_model, split

    module, example, _ = residual
    path = tmp_path / "residual.onnx"
    torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    model = load_model(path)
    layer = next(i.name for i in list_layers(model) if i.valid_cut and i.name.startswith("/block1/"))
    s = split(model, layer)
    x = torch.rand((300, *example.shape[1:])).numpy()
    with torch.no_grad():
        expected = module(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(s.decode(s.encode(x)), expected, rtol=1e-4, atol=1e-4)


def test_the_bundled_torch_project_propagates_reduces_and_decodes_on_the_gpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection

    insp = Inspection(load_project("mnist_torch"), method="pca", cache_dir=tmp_path)
    d = insp.decode(*insp.embedding[0])
    probs = np.asarray(d.output)
    assert probs.shape == (10,) and abs(float(probs.sum()) - 1) < 1e-4


def test_a_cuda_dask_cluster_propagates_the_torch_project_as_one_process_does(tmp_path):
    """``--dask cuda`` on a GPU node: dask-cuda starts one single-threaded worker per GPU, each worker loads the
    PyTorch model onto its own device, and the Zarr store it writes holds what one process computes."""
    pytest.importorskip("dask_cuda")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    from pathlib import Path

    from engine.backends.cluster import connect
    from engine.backends.dask import ModelRef
    from engine.data.chunked import open_chunked
    from engine.model import load_model, split
    from engine.propagate import propagate

    root = Path(__file__).resolve().parent.parent / "projects" / "mnist_torch"
    x = np.load(root / "digits.npz")["x"][:3000].astype("float32") / 255
    np.save(tmp_path / "x.npy", x)
    expected = propagate(split(load_model(root / "classifier.pt2"), "embedding"), x)
    with connect("cuda") as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) == torch.cuda.device_count() and all(w["nthreads"] == 1 for w in workers.values())
        stored = propagate(ModelRef.from_file(root / "classifier.pt2", "embedding"),
                           open_chunked(tmp_path / "x.npy", chunk_rows=1000), out=tmp_path / "acts.zarr")
        # the workers that ran chunks hold the model's weights on their GPU, not on the CPU
        held = client.run(lambda: __import__("torch").cuda.memory_allocated())
        assert any(n > 0 for n in held.values()), held
    np.testing.assert_allclose(stored.read(), expected, rtol=1e-4, atol=1e-4)
