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


@pytest.hookimpl(trylast=True)  # after tests/ui's conftest has marked its tests
def pytest_collection_modifyitems(config, items):
    from engine.backends.cupy import gpu_available

    _long_files_first(items)
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="no GPU: needs a CUDA device with CuPy and cuML")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _long_files_first(items):
    """Order the files so that those holding a ``slow`` test come first, then those holding a browser test, each
    file's tests kept together and in their order; within each group, by their number of tests, most first
    (pytest-xdist's own order).

    ``make test`` hands one file at a time to each of its workers in this order (``--dist loadfile
    --no-loadscope-reorder``). In xdist's own order the one-test browser files, of 30-100 s each, came last, and a
    worker could sit idle while another ran the last of them."""
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def holds(tests, mark):
        return any(t.get_closest_marker(mark) for t in tests)

    order = sorted(files.values(), key=lambda tests: (not holds(tests, "slow"), not holds(tests, "ui"), -len(tests)))
    items[:] = [item for tests in order for item in tests]


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
