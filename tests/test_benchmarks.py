"""The benchmark harness: reports, the ``bench`` command, and ``python -m benchmarks --quick`` as a smoke test.

The smoke test runs every case at its quick sizes in a subprocess, writing into a temporary folder; it judges no
figure (timings belong to the reports), only that each case ran, or says why it was skipped: the browser cases run
when Chromium is there, the GPU cases say "no GPU" without one.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.harness import RESULTS, Comparison, Side, table, targets, write_report

REPO = RESULTS.parent.parent


def _comparisons():
    return [
        Comparison("render (server)", "10,000,000 points, pan", "ms", Side("ours", [0.05, 0.06, 0.07]),
                   Side("stock", [0.5, 0.6]), target="< 150 ms p95", met=True, extra={"identical_px": 1.0}),
        Comparison("propagation", "10,000 rows", "rows/s", Side("engine", [2000.0]), Side("predict", [1000.0])),
        Comparison("gpu", "[GPU] umap fit", "s", Side("cuML"), skipped="no GPU"),
    ]


def test_table_puts_each_figure_beside_its_baseline():
    text = table(_comparisons())
    lines = text.splitlines()
    assert lines[0].startswith("| case | measured | ours | median | p95 | baseline |") and len(lines) == 5
    assert "| 60.00 |" in lines[2] and "9.2x better" in lines[2] and "< 150 ms p95 (met)" in lines[2]
    assert "2.0x better" in lines[3]  # rows/s: higher is better
    assert "skipped: no GPU" in lines[4] and "better" not in lines[4]
    assert "**met**" in targets(_comparisons())


def test_a_figure_of_zero_where_higher_is_better_reads_as_worse():
    """Ours at 0 of a rate (a share of classes kept, say) against a baseline above 0: 'worse', not a division by 0."""
    row = Comparison("c", "share", "rows/s", Side("ours", [0.0]), Side("theirs", [5.0]))
    assert row.ratio == 0 and "worse (ours 0)" in table([row])


def test_a_gpu_comparison_that_raises_is_marked_failed_and_the_others_are_kept():
    from benchmarks.cases.gpu import measured

    kept = measured("pyramid", lambda: [Comparison("gpu", "pyramid", "ms", Side("CuPy", [1.0]))])
    assert [c.ours.samples for c in kept] == [[1.0]] and not kept[0].skipped

    def broken():
        raise ValueError("this trainer only supports steps_per_execution=1")

    lost = measured("mlp inverse", broken)
    assert len(lost) == 1 and lost[0].label == "mlp inverse"
    assert lost[0].skipped == "failed: ValueError: this trainer only supports steps_per_execution=1"
    assert "failed: ValueError" in table(kept + lost)


def test_write_report_keeps_every_sample_in_the_given_folder(tmp_path):
    info = {"cpu": "test cpu", "cores": 2, "memory_gib": 1.0, "python": "3", "gpu": False, "load_avg_start": 0.5,
            "date": "today"}
    json_path, md_path = write_report(_comparisons(), info, quick=True, results_dir=tmp_path / "out")
    assert json_path.parent == md_path.parent == tmp_path / "out" and md_path.name.endswith("-quick.md")
    payload = json.loads(json_path.read_text())
    assert payload["quick"] and payload["machine"]["cores"] == 2 and "load_avg_end" in payload["machine"]
    first = payload["results"][0]
    assert first["ours"]["samples"] == [0.05, 0.06, 0.07] and first["baseline"]["samples"] == [0.5, 0.6]
    assert payload["results"][2]["skipped"] == "no GPU"
    md = md_path.read_text()
    assert "Machine: test cpu, 2 cores" in md and "Targets:" in md and "identical_px=1.0" in md
    assert (tmp_path / "out" / "latest-quick.md").read_text() == md


def _gpu() -> bool:
    from engine.backends.cupy import gpu_available

    return gpu_available()


def test_bench_command_forwards_to_the_harness(tmp_path):
    from engine.cli import main

    before = set(RESULTS.iterdir()) if RESULTS.is_dir() else set()
    assert main(["bench", "--quick", "--only", "gpu", "--results", str(tmp_path)]) == 0
    (json_path,) = tmp_path.glob("*-quick.json")
    rows = json.loads(json_path.read_text())["results"]
    # one row per GPU case skipped without a GPU; with one, the pyramid's build and view are two rows
    assert [r["case"] for r in rows] == ["gpu"] * (5 if _gpu() else 4)
    if not _gpu():
        assert all(r["skipped"] == "no GPU" and not r["ours"]["samples"] for r in rows)
    assert (tmp_path / "latest-quick.md").is_file()
    assert (set(RESULTS.iterdir()) if RESULTS.is_dir() else set()) == before  # nothing written into the repo


@pytest.mark.slow
def test_quick_run_of_every_case(tmp_path):
    """``python -m benchmarks --quick`` (about four minutes here): every case runs and is reported."""
    from benchmarks import browser
    from benchmarks.cases import CASES

    out = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--results", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (json_path,) = out.glob("*-quick.json")
    (md_path,) = out.glob("2*-quick.md")
    rows = json.loads(json_path.read_text())["results"]
    by_case = {}
    for r in rows:
        by_case.setdefault(r["case"], []).append(r)
    names = {"propagation", "frameworks", "suffix latency", "reducer fit", "numba cache", "inverse latency",
             "first picture", "inverse methods", "landscape", "decode (server)", "decode (browser)", "render (server)",
             "render (server), pyramid", "render (browser)", "gpu"}
    assert set(by_case) == names, sorted(by_case)
    measured = [r for r in rows if not r["skipped"]]
    assert all(r["ours"]["samples"] for r in measured)
    chromium = browser.unavailable() == ""
    for case in ("decode (browser)", "render (browser)"):
        ran = [r for r in by_case[case] if not (r["skipped"] or "").startswith("--quick")]
        assert ran and all(bool(r["ours"]["samples"]) == chromium for r in ran), by_case[case]
    # what a quick run leaves out, it says, and the rest of its case runs
    assert all(r["skipped"].startswith("--quick (") for r in rows if (r["skipped"] or "").startswith("--quick"))
    assert all((r["skipped"] == "no GPU") != _gpu() for r in by_case["gpu"])
    render = by_case["render (server)"]
    assert all(r["baseline"]["samples"] and r["extra"]["identical_px"] == 1.0 for r in render)
    pyramid = by_case["render (server), pyramid"]  # pans, zooms, deep zooms at 1M in a quick run
    assert len(pyramid) == 3 and all(r["ours"]["samples"] and r["baseline"]["samples"] for r in pyramid)
    assert pyramid[0]["extra"]["pyramid_count_diff_vs_points"] == pyramid[0]["extra"]["points_on_snapped_upper_edges"]
    md = md_path.read_text()
    assert "| case | measured |" in md and "Machine:" in md
    assert "no GPU" in done.stdout or _gpu()  # the GPU cases say so, rather than print a figure
    assert len(CASES) == 10
    frameworks = by_case["frameworks"]  # PyTorch and ONNX Runtime both measured, nothing skipped
    assert len(frameworks) == 8 and not any(r["skipped"] for r in frameworks)
