"""Every model of the corpus (``tests/corpus.py``), as a new user would try it: ``info``, ``doctor``,
``propagate``, ``reduce --method pca``, ``render``, a decode, and the dashboard's store opening it. A model the
tool cannot take is refused by each of them with the same one line, never a traceback.

Set ``CORPUS_REPORT=path.json`` to write the table of results (kind, command, outcome) the closing notes quote.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pytest
from corpus import CORPUS

from engine.cli import main

pytest.importorskip("keras")
RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from builders import projects_root

    yield from projects_root(tmp_path_factory, **{case.name: case.build for case in CORPUS})


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    path = os.environ.get("CORPUS_REPORT")
    if path:
        with open(path, "w") as fh:
            json.dump({c.name: {"kind": c.kind, **RESULTS.get(c.name, {})} for c in CORPUS}, fh, indent=1)


def _cli(root, cache, *args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--root", str(root), "--cache-dir", str(cache), *map(str, args)])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_each_model_through_every_command(case, root, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_INSPECTOR_CACHE", str(tmp_path / "cache"))
    cache = tmp_path / "cache"
    before = {p.name: p.read_bytes() for p in (root / case.name).iterdir() if p.is_file()}
    results = RESULTS.setdefault(case.name, {})
    commands = [("info", case.name), ("doctor", case.name), ("propagate", case.name),
                ("reduce", case.name, "--method", "pca", "-o", tmp_path / "e.npz"),
                ("render", case.name, "--method", "pca", "--grid", "2", "-o", tmp_path / "r.png")]
    for command in commands:
        code, out, err = _cli(root, cache, *command)
        assert "Traceback" not in out + err
        if case.expect == "works":
            assert code == 0, f"{command[0]}: {err or out}"
            results[command[0]] = "ok"
        else:
            assert code == 2, f"{command[0]} did not refuse: {out}"
            text = out if command[0] == "doctor" else err
            assert case.expect in text, f"{command[0]}: {text}"
            if command[0] != "doctor":
                assert len(err.strip().splitlines()) == 1, err
            results[command[0]] = "refused in one line"

    from dashboard.inspector.state import Inspector

    store = Inspector(project=case.name)
    if case.expect == "works":
        from engine import Inspection, load_project

        d = Inspection(load_project(case.name), method="pca", cache_dir=cache).decode(0.1, -0.1)
        assert all(np.isfinite(h).all() for h in d.heads.values())
        results["decode"] = "ok"
        assert store.error == "", store.error
        assert store.inspection is not None and store.decode_at(0.0, 0.0) is not None
        results["dashboard"] = "ok"
    else:
        assert case.expect in store.error and store.inspection is None
        results["decode"] = "-"
        results["dashboard"] = "error shown"
    after = {p.name: p.read_bytes() for p in (root / case.name).iterdir() if p.is_file()}
    assert after == before  # nothing in the project folder modified
