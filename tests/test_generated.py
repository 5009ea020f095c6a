"""Generated datasets: save, reload, export, undo/delete, and no record lost or half-written under SIGKILL or two
concurrent writers (real child processes)."""

import csv
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from builders import build_models, write_project
from generated_writer import make_record

from engine.data.generated import GeneratedDataset, Record, list_datasets, record_from_decode
from engine.errors import DataError

WRITER = Path(__file__).resolve().parent / "generated_writer.py"


@pytest.fixture
def project_dir(tmp_path):
    folder = tmp_path / "crashproj"
    folder.mkdir()
    return folder


def _same_content(found: Record, expected: Record) -> bool:
    return found == dataclasses.replace(expected, id=found.id, timestamp=found.timestamp)


# -- save / reload / export ---------------------------------------------------------------------------------------


def test_save_reload_round_trips_exactly(project_dir):
    ds = GeneratedDataset(project_dir, "corrections")
    assert not ds.exists and ds.records() == [] and list_datasets(project_dir) == []
    originals = [make_record(1, i) for i in range(5)]
    originals[2] = dataclasses.replace(originals[2], output=originals[2].output.astype(np.float64))
    ids = [ds.save(r) for r in originals]

    assert [int(i.split("-")[0]) for i in ids] == [1, 2, 3, 4, 5] and len(set(ids)) == 5
    reopened = GeneratedDataset(project_dir, "corrections")
    loaded = reopened.records()
    assert [r.id for r in loaded] == ids and reopened.skipped == []
    for found, original in zip(loaded, originals):
        assert _same_content(found, original)
        assert found.output.dtype == original.output.dtype and found.activation.dtype == np.float32
        assert found.timestamp.endswith("+00:00")
        assert list(found.probabilities) == list(original.probabilities)  # class order kept
        assert np.isnan(found.trust["error"]) and found.trust["out_of_bounds"] is original.trust["out_of_bounds"]
    assert reopened.load(ids[3]) == loaded[3]
    assert Record.from_dict(loaded[0].to_dict()) == loaded[0]

    manifest = json.loads((ds.path / "manifest.json").read_text())
    assert manifest["project"] == "crashproj" and manifest["layer"] == "bottleneck"
    assert manifest["model_hash"] == "0123456789abcdef" and manifest["format_version"] == 1
    assert manifest["activation_shape"] == [10] and manifest["output_shape"] == [32, 32, 8]
    assert list_datasets(project_dir) == ["corrections"]
    assert [row["id"] for row in ds.table()] == ids and ds.table()[0]["user_label"] == originals[0].user_label


def test_export_round_trips_exactly_in_every_format(project_dir, tmp_path):
    ds = GeneratedDataset(project_dir, "export")
    records = [make_record(2, i) for i in range(12)]  # labels "0".."9" and "not a number"
    ids = [ds.save(r) for r in records]
    x = np.stack([r.output for r in records])
    labels = [r.user_label for r in records]
    names = ds.label_names()
    assert names[:3] == ["0", "1", "2"] and "not a number" in names and len(names) == len(set(labels))

    z = np.load(ds.export(tmp_path / "out.npz"))
    assert z["x"].dtype == np.float32 and np.array_equal(z["x"], x)
    assert z["y"].dtype == np.int64 and [str(z["names"][c]) for c in z["y"]] == labels
    assert z["ids"].tolist() == ids and np.array_equal(z["activation"], np.stack([r.activation for r in records]))

    with h5py.File(ds.export(tmp_path / "out.h5"), "r") as f:
        assert np.array_equal(f["x"][()], x) and np.array_equal(f["y"][()], z["y"])
        assert [n.decode() for n in f["names"][()]] == z["names"].tolist()
        assert f.attrs["layer"] == "bottleneck"

    with open(ds.export(tmp_path / "out.csv"), newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:4] == ["id", "y", "label", "x_0"] and len(rows[0]) == 3 + x[0].size
    assert [r[0] for r in rows[1:]] == ids and [r[2] for r in rows[1:]] == labels
    assert [int(r[1]) for r in rows[1:]] == z["y"].tolist()
    back = np.array([[float(v) for v in r[3:]] for r in rows[1:]]).astype(np.float32)
    assert np.array_equal(back, x.reshape(len(x), -1))

    with pytest.raises(DataError, match="'parquet'"):
        ds.export(tmp_path / "out.parquet")
    with pytest.raises(DataError, match="holds no records"):
        GeneratedDataset(project_dir, "empty").export(tmp_path / "e.npz")


def test_project_class_names_come_first_in_the_export(tiny_project, tmp_path):
    import shutil

    from engine.data.project import load_project

    shutil.copytree(tiny_project / "tiny", tmp_path / "tiny")  # the session's project is shared: work on a copy
    project = load_project("tiny", tmp_path)
    ds = GeneratedDataset(project, "names-first")
    rec = dataclasses.replace(make_record(3, 0), project="tiny", activation=np.zeros((5,), np.float32))
    for label in ("zebra", "b", "zebra"):
        ds.save(dataclasses.replace(rec, user_label=label))
    data = ds.arrays()
    assert data["names"].tolist() == ["a", "b", "c", "zebra"] and data["y"].tolist() == [3, 1, 3]
    assert data["labels"].tolist() == ["zebra", "b", "zebra"]


def test_undo_and_delete_survive_a_restart(project_dir):
    ds = GeneratedDataset(project_dir, "d")
    ids = [ds.save(make_record(4, i)) for i in range(6)]
    removed = ds.undo()
    assert removed.id == ids[5] and ds.ids() == ids[:5]
    assert ds.delete(ids[1]).id == ids[1]

    again = GeneratedDataset(project_dir, "d")  # a restart: no history in this handle
    assert again.ids() == [ids[0], ids[2], ids[3], ids[4]]
    assert again.undo().id == ids[4]  # a fresh handle undoes the newest record
    new = again.save(make_record(4, 99))
    assert int(new.split("-")[0]) == 7  # sequence numbers never reuse one taken before, deleted or not
    assert again.undo().id == new
    assert GeneratedDataset(project_dir, "d").ids() == [ids[0], ids[2], ids[3]]
    for rid, i in zip([ids[0], ids[2], ids[3]], [0, 2, 3]):
        assert _same_content(again.load(rid), make_record(4, i))
    # removed records are moved aside, whole, not destroyed
    assert sorted(p.stem for p in (ds.path / "deleted").iterdir()) == sorted([ids[5], ids[1], ids[4], new])

    with pytest.raises(DataError, match="no record '00000002-"):
        again.delete(ids[1])
    with pytest.raises(DataError, match="invalid record id '../x'"):
        again.delete("../x")
    assert GeneratedDataset(project_dir, "never-saved").undo() is None


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 101, "a\\b", None])
def test_dataset_names_are_validated(project_dir, name):
    with pytest.raises(DataError, match="invalid dataset name"):
        GeneratedDataset(project_dir, name)


def test_records_that_do_not_fit_the_dataset_are_refused(project_dir):
    ds = GeneratedDataset(project_dir, "d")
    rec = make_record(5, 0)
    ds.save(rec)
    with pytest.raises(DataError, match="at layer 'bottleneck'.*at layer 'conv2'"):
        ds.save(dataclasses.replace(rec, layer="conv2"))
    with pytest.raises(DataError, match=r"activations of shape \(10,\).*shape \(11,\)"):
        ds.save(dataclasses.replace(rec, activation=np.zeros(11, np.float32)))
    with pytest.raises(DataError, match="no user label"):
        ds.save(dataclasses.replace(rec, user_label="  "))
    with pytest.raises(DataError, match="NaN or inf"):
        ds.save(dataclasses.replace(rec, output=np.full_like(rec.output, np.nan)))
    assert len(ds) == 1


def test_a_damaged_record_file_is_skipped_not_fatal(project_dir):
    ds = GeneratedDataset(project_dir, "d")
    good = [ds.save(make_record(6, i)) for i in range(3)]
    (ds.records_dir / "00000009-aaaaaaaaaaaa.npz").write_bytes(b"PK\x03\x04 truncated")
    (ds.records_dir / ".tmp-00000010-bbbbbbbbbbbb.npz.123").write_bytes(b"half")  # a dead writer's temporary
    fresh = GeneratedDataset(project_dir, "d")
    assert [r.id for r in fresh.records()] == good
    assert [p.name for p, _ in fresh.skipped] == ["00000009-aaaaaaaaaaaa.npz"]
    fresh.save(make_record(6, 3))  # the writer's lock sweeps temporaries left by dead writers
    assert not any(p.name.startswith(".tmp-") for p in ds.records_dir.iterdir())


def test_record_from_decode_of_a_real_inspection(tmp_path):
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection
    from engine.explore.probe import train_probe

    model, _ = build_models()["conv2d"]
    rng = np.random.default_rng(0)
    write_project(tmp_path, "ae", model, rng.random((120, 16, 16, 1)).astype("float32"), rng.integers(0, 3, 120),
                  manifest='class_names = ["a", "b", "c"]\n')
    project = load_project("ae", tmp_path)
    insp = Inspection(project, "bottleneck", method="pca", cache_dir=tmp_path / "cache")
    probe = train_probe(insp)
    decode = insp.decode(0.5, -0.25)
    record = record_from_decode(insp, decode, "b", probe)

    assert record.project == "ae" and record.layer == "bottleneck" and record.method == "pca"
    assert record.model_hash == project.model_hash() and record.inverse == "exact"
    assert record.params["n_components"] == 2 and record.xy == (0.5, -0.25)
    assert np.array_equal(record.activation, decode.activation) and np.array_equal(record.output, decode.output)
    assert record.probe_label in ("a", "b", "c") and set(record.probabilities) == {"a", "b", "c"}
    assert record.trust == decode.trust.record(0) and isinstance(record.trust["out_of_bounds"], bool)
    assert record.matches(insp)

    ds = GeneratedDataset(project, "labelled")
    rid = ds.save(record)
    assert GeneratedDataset(project, "labelled").load(rid) == dataclasses.replace(
        record, id=rid, timestamp=ds.load(rid).timestamp
    )
    assert list_datasets(project) == ["labelled"]
    assert ds.manifest()["class_names"] == ["a", "b", "c"]


# -- crash safety and concurrency ---------------------------------------------------------------------------------


def _writer(project_dir, name, tag, count, start_at=None):
    args = [sys.executable, str(WRITER), str(project_dir), name, str(tag), str(count)]
    if start_at is not None:
        args.append(repr(start_at))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _saved_lines(stdout: str) -> list[tuple[str, int, int]]:
    """``(id, tag, i)`` of each complete line a writer printed after a save returned."""
    out = []
    for line in stdout.splitlines(keepends=True):
        parts = line.split()
        if line.endswith("\n") and len(parts) == 3:
            out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def _check_all(ds: GeneratedDataset) -> list[Record]:
    """Every record is whole: its content is exactly what its writer made for its (tag, i)."""
    records = ds.records()
    assert ds.skipped == []
    for r in records:
        assert _same_content(r, make_record(r.params["tag"], r.params["i"])), r.id
    ids = [r.id for r in records]
    seqs = [int(i.split("-")[0]) for i in ids]
    assert len(set(ids)) == len(ids) and len(set(seqs)) == len(seqs)
    keys = [(r.params["tag"], r.params["i"]) for r in records]
    assert len(set(keys)) == len(keys), "a record was saved twice"
    return records


@pytest.mark.slow  # ~20 s: 50 child processes, each killed at a random moment of its save loop
def test_sigkill_at_random_moments_loses_no_returned_save_and_leaves_no_partial_record(project_dir):
    rng = random.Random(1234)
    printed, mid_write = [], 0
    records_dir = project_dir / "generated" / "crash" / "records"
    for attempt in range(50):
        proc = _writer(project_dir, "crash", attempt, 0)
        assert proc.stdout.readline() == "ready\n"  # imports done: the kill lands in the save loop
        time.sleep(rng.uniform(0.02, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, err
        printed += _saved_lines(out)
        # a temporary left behind means the kill landed mid-write (the next writer sweeps it)
        mid_write += records_dir.is_dir() and any(p.name.startswith(".tmp-") for p in records_dir.iterdir())

    ds = GeneratedDataset(project_dir, "crash")
    records = _check_all(ds)
    by_id = {r.id: r for r in records}
    for rid, tag, i in printed:  # every save that returned is there, whole
        assert rid in by_id and (by_id[rid].params["tag"], by_id[rid].params["i"]) == (tag, i)
    # a record may exist that the writer had no time to announce; it is whole too (checked above), and it is
    # only ever the one it was writing when killed
    unannounced = set(by_id) - {rid for rid, _, _ in printed}
    assert len(unannounced) <= 50
    print(f"\n{len(printed)} announced saves, {len(unannounced)} unannounced, {mid_write} of 50 kills mid-write")
    ds.save(make_record(999, 0))
    assert not any(p.name.startswith(".tmp-") for p in ds.records_dir.iterdir())
    assert len(GeneratedDataset(project_dir, "crash").records()) == len(records) + 1


def test_two_processes_saving_concurrently_neither_clobber_nor_duplicate(project_dir):
    start_at = time.time() + 1.5
    procs = [_writer(project_dir, "shared", tag, 100, start_at) for tag in (1, 2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    printed = [line for out, _ in outs for line in _saved_lines(out)]
    assert len(printed) == 200

    records = _check_all(GeneratedDataset(project_dir, "shared"))
    assert len(records) == 200
    assert sorted(int(r.id.split("-")[0]) for r in records) == list(range(1, 201))
    assert {r.id for r in records} == {rid for rid, _, _ in printed}
    assert sorted((r.params["tag"], r.params["i"]) for r in records) == [(t, i) for t in (1, 2) for i in range(100)]
    tags = [r.params["tag"] for r in records]
    assert 0 < sum(a != b for a, b in zip(tags, tags[1:])), "the writers never interleaved"
