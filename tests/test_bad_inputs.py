"""Every bad input of the corpus (``tests/bad_inputs.py``) where a user meets it: the engine, the CLI, the dashboard.

For each case:

* the engine raises the case's typed error, with a message matching its regex, at the case's stage, and every
  stage before it succeeds;
* ``latent-inspector <stage>`` exits with status 2 and one line on stderr, without a traceback: in-process through
  :func:`engine.cli.main` for every case, and as real processes of the installed command for a subset;
* the dashboard's store, opened on the bad project, holds the message in ``error`` (the alert), then opens the good
  project and decodes a point;
* no file in the project folder was changed, added or removed.

Everything is real: a Keras model saved by Keras, files written by NumPy, SciPy and h5py and then damaged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import bad_inputs as bi
import numpy as np
import pytest

from engine.errors import InspectorError

#: Cases that fail today with an untyped error, and why; each is a strict xfail until its fix lands.
PENDING: dict[str, str] = {}

#: Cases also run as real processes of the installed `latent-inspector` command: one or more of each kind, four of
#: them importing TensorFlow.
SUBPROCESS = (
    "npy_truncated_data", "npz_wrong_key", "csv_ragged", "json_objects", "mat_truncated", "h5_data_truncated",
    "inputs_nan", "zero_samples", "labels_too_few", "no_model", "manifest_unknown_key", "model_keras_truncated",
    "model_lambda_h5", "model_input_mismatch", "layer_missing", "default_layer_missing",
)


def _params(cases):
    out = []
    for case in cases:
        marks = [pytest.mark.xfail(strict=True, reason=PENDING[case.name])] if case.name in PENDING else []
        out.append(pytest.param(case, id=case.name, marks=marks))
    return out


@dataclass
class Corpus:
    root: Path
    cache: Path
    out: Path
    before: dict[str, dict[str, str]]

    def unchanged(self, name: str) -> None:
        assert bi.snapshot(self.root / name) == self.before[name], f"files of project {name!r} changed"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad_inputs")
    root = bi.build_corpus(base / "projects", bi.Assets(base / "assets"))
    before = {p.name: bi.snapshot(p) for p in root.iterdir()}
    (base / "out").mkdir()
    mp = pytest.MonkeyPatch()  # where the dashboard's store finds projects and keeps its caches
    mp.setenv("LATENT_INSPECTOR_PROJECTS", str(root))
    mp.setenv("LATENT_INSPECTOR_CACHE", str(base / "cache"))
    yield Corpus(root, base / "cache", base / "out", before)
    mp.undo()


def test_the_corpus_covers_every_kind_the_issue_lists():
    kinds = Counter(case.kind for case in bi.CASES)
    assert len(bi.CASES) >= 40
    for kind in ("npy", "npz", "csv", "json", "mat", "h5 data", "values", "labels", "model", "layer", "manifest",
                 "folder"):
        assert kinds[kind] >= 2, kind
    names = set(bi.CASES_BY_NAME)
    assert {"model_h5_truncated", "h5_data_truncated", "npy_truncated_data", "npz_truncated", "mat_truncated",
            "csv_ragged", "csv_text_cell", "csv_empty", "json_objects", "labels_too_few", "inputs_nan", "inputs_inf",
            "zero_samples", "one_sample", "model_input_mismatch", "layer_missing", "manifest_unknown_key",
            "manifest_title_number", "no_model"} <= names
    assert set(SUBPROCESS) <= names and set(PENDING) <= names


@pytest.mark.parametrize("case", _params(bi.CASES))
def test_engine_raises_the_typed_error(corpus, case):
    stages = bi.STAGES[: bi.STAGES.index(case.stage)]
    for stage in stages:  # the stages before the failing one work
        bi.run_stage(stage, case.name, corpus.root, corpus.cache, case.layer_asked)
    with pytest.raises(InspectorError) as info:
        bi.run_stage(case.stage, case.name, corpus.root, corpus.cache, case.layer_asked)
    assert isinstance(info.value, case.error), f"{type(info.value).__name__}: {info.value}"
    assert re.search(case.match, str(info.value)), str(info.value)
    corpus.unchanged(case.name)


def _one_error_line(stderr: str, case) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), lines[0]
    assert re.search(case.match, lines[0]), lines[0]
    return lines[0]


@pytest.mark.parametrize("case", _params(bi.CASES))
def test_cli_exits_2_with_one_line(corpus, case, capsys):
    from engine.cli import main

    status = main(bi.cli_args(case, corpus.root, corpus.cache, corpus.out))
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    _one_error_line(err, case)
    assert not list(corpus.out.iterdir())  # a failed `reduce` writes no embedding
    corpus.unchanged(case.name)


def test_installed_command_exits_2_with_one_line(corpus):
    """The real `latent-inspector` command, a process per case, all started at once."""
    command = Path(sys.executable).with_name("latent-inspector")
    argv0 = [str(command)] if command.is_file() else [sys.executable, "-m", "engine.cli"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    running = {
        name: subprocess.Popen(argv0 + bi.cli_args(bi.CASES_BY_NAME[name], corpus.root, corpus.cache, corpus.out),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for name in SUBPROCESS
    }
    failures = []
    for name, proc in running.items():
        out, err = proc.communicate(timeout=600)
        try:
            assert proc.returncode == 2, (proc.returncode, out, err)
            _one_error_line(err, bi.CASES_BY_NAME[name])
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert not failures, "\n".join(failures)
    for name in SUBPROCESS:
        corpus.unchanged(name)


#: Cases whose fault is in the data files alone: `info` reports them before it loads the model.
DATA_FAULTS = ("npy_truncated_data", "npz_wrong_key", "csv_ragged", "inputs_nan", "zero_samples", "labels_too_few")


def test_info_reports_a_bad_data_file_before_it_loads_the_model(corpus):
    """A truncated or malformed inputs or labels file is said at once: `info` reads the data before it imports the
    model's framework (TensorFlow and Keras took 5-6 s of each such run here)."""
    probe = ("import sys; from engine.cli import main; rc = main(sys.argv[1:]); "
             "print('imported:', sorted(m for m in ('keras', 'tensorflow', 'torch') if m in sys.modules), "
             "file=sys.stderr); sys.exit(rc)")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    for name in DATA_FAULTS:
        case = bi.CASES_BY_NAME[name]
        done = subprocess.run([sys.executable, "-c", probe, *bi.cli_args(case, corpus.root, corpus.cache, corpus.out)],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 2, (name, done.stderr)
        *error, imported = done.stderr.strip().splitlines()
        assert imported == "imported: []", (name, imported)
        _one_error_line("\n".join(error), case)


def _decode_on_the_good_project(store):
    store.project = bi.GOOD
    assert store.error == "", store.error
    assert store.inspection is not None and store.project_obj.name == bi.GOOD
    x, y = (float(v) for v in np.asarray(store.inspection.embedding)[3])
    decoded = store.decode_at(x + 0.05, y - 0.05)
    assert decoded is not None and decoded.output.shape == (bi.D,) and np.isfinite(decoded.output).all()
    assert store.history[-1] is decoded


# A layer passed on the command line has no dashboard counterpart: there the layer is chosen from the model's list.
DASHBOARD_CASES = [case for case in bi.CASES if case.layer is None]


@pytest.mark.parametrize("case", _params(DASHBOARD_CASES))
def test_dashboard_shows_the_error_and_stays_usable(corpus, case):
    from dashboard.inspector.state import Inspector

    store = Inspector(project=case.name, projects=[case.name, bi.GOOD])
    assert re.search(case.match, store.error), store.error
    assert not store.busy and store.inspection is None
    _decode_on_the_good_project(store)
    corpus.unchanged(case.name)
    corpus.unchanged(bi.GOOD)


@pytest.mark.parametrize("name", ["csv_ragged", "model_lambda_keras", "manifest_view_kind"])
def test_dashboard_alert_is_visible_then_dismissed_by_the_next_project(corpus, name):
    from dashboard.template import Dashboard

    dash = Dashboard(project=name)
    case = bi.CASES_BY_NAME[name]
    assert dash._alert.visible and re.search(case.match, dash._alert.object), dash._alert.object
    _decode_on_the_good_project(dash.store)
    assert not dash._alert.visible
    corpus.unchanged(name)
