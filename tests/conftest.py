"""Shared fixtures: real Keras models of every kind the engine must split, written to real files."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# numba's compiled code is reused across test runs and processes (must be set before numba is imported).
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from builders import build_models, write_project  # noqa: E402


def pytest_collection_modifyitems(config, items):
    from engine.backends.cupy import gpu_available

    if gpu_available():
        return
    skip = pytest.mark.skip(reason="no GPU: needs a CUDA device with CuPy and cuML")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    """Every model kind saved as .keras and as .h5 (Keras 3 writer), with its sample inputs and reference outputs."""
    root = tmp_path_factory.mktemp("models")
    files = {}
    for kind, (model, x) in build_models().items():
        ref = np.asarray(model(x, training=False))
        for ext in (".keras", ".h5"):
            path = root / f"{kind}{ext}"
            model.save(path)
            files[kind, ext] = (path, x, ref)
    return files


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory):
    """A project root holding one small labelled conv-autoencoder project, ``tiny``."""
    root = tmp_path_factory.mktemp("projects")
    model, _ = build_models()["conv2d"]
    rng = np.random.default_rng(3)
    x = rng.random((300, 16, 16, 1)).astype("float32")
    y = rng.integers(0, 3, size=300)
    write_project(
        root, "tiny", model, x, y,
        manifest='class_names = ["a", "b", "c"]\ndefault_layer = "bottleneck"\n'
        '[input_view]\nkind = "image"\nshape = [16, 16]\n[output_view]\nkind = "image"\nshape = [16, 16]\n',
    )
    return root
