"""The README's Python example, run as written: the public API a notebook user imports from ``engine``."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    marker = text.index("<!-- the block below is run by tests/test_readme.py -->")
    return re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)


def test_the_readme_example_runs_on_the_bundled_project(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_INSPECTOR_CACHE", str(tmp_path))
    out = io.StringIO()
    scope: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(_example(), str(README), "exec"), scope)  # noqa: S102 - our own README
    printed = out.getvalue()
    assert "(28, 28, 1) True" in printed  # a point far outside the data decodes, flagged out of bounds
    assert "trustworthiness@10" in printed and "explained variance" in printed
    assert "bottleneck" in scope["cuts"] and len(scope["z"]) == 10_000 and scope["umap"].embedding_.shape == (2000, 2)
    assert scope["model_output"].shape == (1, 28, 28, 1)


def test_importing_the_engine_loads_nothing_heavy_and_every_public_name_resolves():
    import subprocess
    import sys

    import engine

    heavy = "('tensorflow', 'keras', 'sklearn', 'numba', 'dask', 'panel', 'holoviews')"
    code = f"import sys, engine; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    assert len(engine.__all__) > 20
    missing = [name for name in engine.__all__ if not hasattr(engine, name)]
    assert missing == []
