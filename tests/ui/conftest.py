"""Browser tests: the dashboard served on 127.0.0.1 in a subprocess, driven by Playwright in Debian's Chromium.

Playwright cannot download its browsers here, so the plugin's ``browser`` fixture is pointed at
``/usr/bin/chromium``. One server serves every test of the session from a projects root holding a copy of the
bundled MNIST project and a synthetic project of 1,000,000 points. Screenshots go to the test's output folder
(``test-results/<test>/``, pytest-playwright's ``output_path``).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from dashboard_server import RUNNING_LOGS, running_server

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT

REPO = Path(__file__).resolve().parents[2]
MILLION = 1_000_000


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.ui)


@pytest.fixture
def context(context):
    """pytest-playwright's browser context, keeping what its pages print to the console, for the report of a test
    that fails."""
    start = time.monotonic()
    context.console_lines = []
    context.on("console", lambda m: context.console_lines.append(f"{time.monotonic() - start:7.1f} s {m.type}: "
                                                                  f"{m.text[:300]}"))
    return context


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A browser test that fails reports, beside its traceback, the end of its pages' console and of the log of every
    dashboard server running then: a click lost on its way and a change that never left the server read alike in
    the test, not there."""
    report = yield
    if report.failed:
        context = item.funcargs.get("context") if hasattr(item, "funcargs") else None
        lines = getattr(context, "console_lines", None)
        if lines is not None:
            report.sections.append(("browser console (last 60)", "\n".join(lines[-60:]) or "(nothing)"))
        for log in RUNNING_LOGS:
            text = log.read_text(errors="replace").splitlines() if log.is_file() else ["(no log)"]
            report.sections.append((f"server log {log} (last 80 lines)", "\n".join(text[-80:])))
    return report


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (make chromium installs Debian's)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": VIEWPORT}


def make_million_project(root: Path, n: int = MILLION) -> Path:
    """A project of ``n`` 4-D samples in 8 labelled clusters and a small dense autoencoder (untrained: the
    dashboard only needs a model to cut and decode)."""
    import keras
    from keras import layers

    path = root / "million"
    path.mkdir()
    rng = np.random.default_rng(7)
    y = rng.integers(0, 8, n)
    centres = rng.normal(scale=4.0, size=(8, 4)).astype(np.float32)
    x = centres[y] + rng.normal(size=(n, 4)).astype(np.float32)
    np.save(path / "x.npy", x.astype(np.float32))
    np.save(path / "y.npy", y.astype(np.int64))
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((4,), name="x"),
        layers.Dense(16, activation="tanh", name="hidden"),
        layers.Dense(3, name="bottleneck"),
        layers.Dense(16, activation="tanh", name="expand"),
        layers.Dense(4, name="output"),
    ])
    model.save(path / "model.keras")
    (path / "project.toml").write_text(
        'title = "Synthetic million"\n'
        'model = "model.keras"\ninputs = "x.npy"\nlabels = "y.npy"\ndefault_layer = "bottleneck"\n'
        'class_names = ["a", "b", "c", "d", "e", "f", "g", "h"]\n'
        '[input_view]\nkind = "vector"\n[output_view]\nkind = "vector"\n'
    )
    return path


@pytest.fixture(scope="session")
def projects_root(tmp_path_factory):
    """mnist (copied from projects/) and million, in a root of their own."""
    root = tmp_path_factory.mktemp("projects")
    src = REPO / "projects" / "mnist"
    if not (src / "project.toml").is_file():
        pytest.skip("projects/mnist is not built")
    shutil.copytree(src, root / "mnist", ignore=shutil.ignore_patterns("build", "__pycache__"))
    make_million_project(root)
    return root


@pytest.fixture(scope="session")
def server(projects_root, tmp_path_factory):
    """Base URL of the dashboard served by ``python -m dashboard.serve mnist`` for the whole session."""
    with running_server(projects_root, tmp_path_factory.mktemp("server") / "server.log") as base:
        yield base


@pytest.fixture(scope="module")
def engine_projects(projects_root):
    """The engine in the test process, reading the same projects root as the server (for this module only)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LATENT_INSPECTOR_PROJECTS", str(projects_root))
    yield projects_root
    mp.undo()
