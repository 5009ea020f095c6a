"""The `latent-inspector` command: output and exit codes.

The commands run in this process (``engine.cli.main``, what the console script calls), so that the test session's
TensorFlow and compiled models serve them all; the last tests run the installed command as a real subprocess, which
is what proves the entry point, the exit status and a traceback-free stderr of a fresh process.
"""

import contextlib
import io
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from builders import build_models, write_project

from engine.cli import main


def run(*args, root, cache=None):
    argv = ["--root", str(root)] + (["--cache-dir", str(cache)] if cache is not None else []) + list(args)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def test_info_lists_layers_and_cuts(tiny_project):
    r = run("info", "tiny", root=tiny_project)
    assert r.returncode == 0, r.stderr
    assert "bottleneck" in r.stdout and "(None, 5)" in r.stdout and "(default)" in r.stdout
    assert "labels    300 in 3 classes: a, b, c" in r.stdout


def test_propagate_then_cache_hit(tiny_project, tmp_path):
    r = run("propagate", "tiny", "--layer", "bottleneck", root=tiny_project, cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "(300, 5) float32" in r.stdout and "rows/s" in r.stdout
    r = run("propagate", "tiny", root=tiny_project, cache=tmp_path)  # default layer, now cached
    assert r.returncode == 0 and "read from cache" in r.stdout


def test_errors_are_one_line_exit_2_no_traceback(tiny_project, tmp_path):
    for args, needle in [
        (("info", "nope"), "no project 'nope'"),
        (("info", "../x"), "invalid project name"),
        (("propagate", "tiny", "--layer", "nonexistent"), "has no layer 'nonexistent'"),
    ]:
        r = run(*args, root=tiny_project, cache=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_residual_cut_error_names_crossing_tensor(tmp_path):
    model, x = build_models()["residual"]
    write_project(tmp_path, "res", model, np.repeat(x, 3, axis=0))
    r = run("propagate", "res", "--layer", "res_b", root=tmp_path, cache=tmp_path / "c")
    assert r.returncode == 2 and "'stem'" in r.stderr and "Traceback" not in r.stderr


def test_the_installed_command_exits_2_with_one_line_and_debug_shows_the_traceback(tiny_project):
    command = Path(sys.executable).with_name("latent-inspector")
    argv0 = [str(command)] if command.is_file() else [sys.executable, "-m", "engine.cli"]
    r = subprocess.run(argv0 + ["--root", str(tiny_project), "info", "nope"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "no project 'nope'" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run(argv0 + ["--debug", "--root", str(tiny_project), "info", "nope"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" in r.stderr and "ProjectError" in r.stderr


def test_reduce_prints_quality_and_writes_embedding(tiny_project, tmp_path):
    out = tmp_path / "emb.npz"
    r = run("reduce", "tiny", "--method", "pca", "-o", str(out), root=tiny_project, cache=tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert "trustworthiness" in r.stdout and "explained variance" in r.stdout
    with np.load(out) as z:
        assert z["embedding"].shape == (300, 2) and z["labels"].shape == (300,)


def test_render_writes_a_png_with_decodes(tiny_project, tmp_path):
    from PIL import Image

    out = tmp_path / "latent.png"
    r = run("render", "tiny", "--method", "pca", "--grid", "3", "-o", str(out), root=tiny_project,
            cache=tmp_path / "c")
    assert r.returncode == 0, r.stderr
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[0] > 200 and img.shape[1] > 400
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20  # a drawn picture, not a blank canvas


def test_render_draws_a_map_layer_under_the_points(tiny_project, tmp_path):
    """``--map distance``: the distance to the data fills the space between the points, which the plain render
    leaves white; an unknown layer is refused by name."""
    from PIL import Image

    shots = {}
    for layer in (None, "distance"):
        out = tmp_path / f"{layer}.png"
        r = run("render", "tiny", "--method", "pca", "--grid", "2", "-o", str(out),
                *(["--map", layer] if layer else []), root=tiny_project, cache=tmp_path / "c")
        assert r.returncode == 0, r.stderr
        shots[layer] = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert shots[None].shape == shots["distance"].shape
    white = shots[None].min(axis=2) > 250
    changed = np.abs(shots["distance"] - shots[None]).max(axis=2) > 40
    assert changed.sum() > 0.3 * white.sum(), (changed.sum(), white.sum())  # the empty space is coloured now
    with pytest.raises(SystemExit) as exit_:
        run("render", "tiny", "--map", "contour", root=tiny_project, cache=tmp_path / "c")
    assert exit_.value.code == 2  # argparse: "invalid choice: 'contour' (choose from 'decision', ...)"


def test_bad_reducer_parameter_is_one_line(tiny_project, tmp_path):
    r = run("reduce", "tiny", "--param", "nonsense", root=tiny_project, cache=tmp_path)
    assert r.returncode == 2 and "NAME=VALUE" in r.stderr and "Traceback" not in r.stderr


def test_progress_bars_count_each_stage_in_its_own_unit():
    """The learned inverse counts epochs, a refinement steps, propagation rows: a bar says which (it said "50/50 rows
    2 rows/s" for the inverse map's epochs)."""
    from engine.progress import ProgressBars

    out = io.StringIO()
    bars = ProgressBars(stream=out)
    for stage, total in (("propagate", 10_000), ("training the inverse map", 50), ("refining", 100), ("reduce", 10)):
        bars(stage, total, total)
    lines = [line.strip("\r") for line in out.getvalue().split("\n") if line]
    assert [line.split("]")[1].split()[1] for line in lines] == ["rows", "epochs", "steps", "rows"], lines
