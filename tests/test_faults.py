"""Faults while the engine writes: a SIGKILL in the middle of a build, a disk that fills up.

A kill leaves no cache entry that looks valid (the next run rebuilds it whole); a cache the disk refuses does not
stop the computation (it is computed without caching, with a warning) and leaves nothing behind; a record the disk
refuses is a typed error, with nothing of it written and the earlier records intact.

The disk-full tests fill a small tmpfs, which needs ``mount`` (root, as CI runs); elsewhere they are skipped, saying
so. Every child process is bounded in time.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from engine.data.files import TMP_PREFIX
from engine.data.project import load_project
from engine.errors import StorageError
from engine.propagate import activations, cache_path
from engine.reduce.cache import ProjectionCache

REPO = Path(__file__).resolve().parents[1]
LAYER = "/embedding/embedding.1/Relu"  # mnist_onnx's default layer: 10,000 x 16 activations
#: The copied project's hook: a pause per batch when the child asks for one, so that a kill lands mid-build.
SLOW_HOOK = ("import os, time\n\n\ndef preprocess(batch):\n"
             "    time.sleep(float(os.environ.get('LATENT_INSPECTOR_TEST_PAUSE', '0')))\n    return batch\n")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A projects root holding ``digits``: the mnist_onnx project (an ONNX model: its child processes start in a
    second) with :data:`SLOW_HOOK`."""
    pytest.importorskip("onnxruntime")
    root = tmp_path_factory.mktemp("projects")
    shutil.copytree(REPO / "projects" / "mnist_onnx", root / "digits")
    (root / "digits" / "hooks.py").write_text(SLOW_HOOK)
    return root


@pytest.fixture(scope="module")
def expected(root, tmp_path_factory):
    """The activations at :data:`LAYER`, computed with a cache of their own."""
    return np.array(activations(load_project("digits", root=root), LAYER,
                                cache_dir=tmp_path_factory.mktemp("clean")))


def _child(code: str, *args, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), **env})


def _kill_when(proc: subprocess.Popen, sign, timeout: float = 60) -> list[str]:
    """Read ``proc``'s lines until ``sign(line)``, then SIGKILL it; the lines read. Fails if it ends first."""
    guard = threading.Timer(timeout, proc.kill)
    guard.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if sign(line):
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        guard.cancel()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, (lines, err[-2000:])
    return lines


def _entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """(entries, temporaries) in ``folder``."""
    found = sorted(folder.iterdir()) if folder.is_dir() else []
    return [p for p in found if not p.name.startswith(TMP_PREFIX)], [p for p in found if p.name.startswith(TMP_PREFIX)]


# -- SIGKILL mid-build ----------------------------------------------------------------------------------------------

_PROPAGATE = """
import sys
from engine.data.project import load_project
from engine.propagate import activations
project = load_project("digits", root=sys.argv[1])
activations(project, sys.argv[3], cache_dir=sys.argv[2], batch_size=500,
            progress=lambda stage, done, total: print(stage, done, total, flush=True))
print("done", flush=True)
"""


def test_sigkill_during_propagation_leaves_no_entry_and_the_next_inspection_rebuilds(root, expected, tmp_path):
    from engine.explore.inspection import Inspection

    cache = tmp_path / "cache"
    proc = _child(_PROPAGATE, root, cache, LAYER, LATENT_INSPECTOR_TEST_PAUSE="0.3")
    lines = _kill_when(proc, lambda line: line.startswith("propagate") and 0 < int(line.split()[1]) < 10_000)
    assert lines[-1].split()[1:] == ["500", "10000"]  # killed with 1 batch of 20 written
    project = load_project("digits", root=root)
    entries, temporaries = _entries(cache / "activations")
    assert entries == [] and len(temporaries) == 1  # the half-written map, under a name no reader takes
    assert not cache_path(project, LAYER, cache).exists()

    seen = []
    inspection = Inspection(project, LAYER, method="pca", cache_dir=cache,
                            progress=lambda stage, done, total: seen.append((stage, done)))
    assert ("propagate", 10_000) in seen  # computed again, not read from the half-written map
    np.testing.assert_array_equal(inspection.activations, expected)
    np.testing.assert_array_equal(np.load(cache_path(project, LAYER, cache)), expected)
    assert _entries(cache / "activations")[1] == []  # the killed build's map, removed (its writer is dead)


_TSNE = """
import sys
import numpy as np
from engine.reduce import make_reducer
X = np.load(sys.argv[1])
make_reducer("tsne", perplexity=20, n_iter=150, early_exaggeration_iter=100, inverse="knn", random_state=0,
             cache_dir=sys.argv[2], progress=lambda stage, done, total: print(stage, done, total, sep="|",
                                                                               flush=True)).fit(X)
print("done", flush=True)
"""


def _tsne(cache: Path):
    from engine.reduce import make_reducer

    return make_reducer("tsne", perplexity=20, n_iter=150, early_exaggeration_iter=100, inverse="knn",
                        random_state=0, cache_dir=cache)


def test_sigkill_during_a_reducer_fit_leaves_no_entry_and_the_next_fit_rebuilds(tmp_path):
    X = np.random.default_rng(0).normal(size=(600, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    cache = tmp_path / "projections"
    proc = _child(_TSNE, tmp_path / "x.npy", cache)
    _kill_when(proc, lambda line: line.startswith("optimising the t-SNE layout|") and line.split("|")[1] != "0")
    entries, _ = _entries(cache)
    assert [p for p in entries if p.is_file()] == []  # no fitted projection from the killed fit
    first = _tsne(cache).fit(X)
    assert not first.cache_hit_
    again = _tsne(cache).fit(X)
    assert again.cache_hit_ and again.cache_key_ == first.cache_key_
    np.testing.assert_array_equal(again.embedding_, first.embedding_)


_SAVE_LOOP = """
import sys
import numpy as np
from engine.reduce.cache import ProjectionCache
cache = ProjectionCache(sys.argv[1])
print("ready", flush=True)
for i in range(10_000):
    k = i % 4
    cache.save("Reducer", f"k{k}", {"embedding_": np.full((2_000_000,), k, np.float32), "round": i})
    print("saved", flush=True)
"""


def _after_saves(rng: random.Random):
    """A kill sign: after 1 to 3 saves the child announced, and a random part of a second more (a moment inside
    the next save, or between two), whatever the machine's load."""
    goal, seen = rng.randint(1, 3), []

    def sign(line: str) -> bool:
        seen.append(line == "saved\n")
        if sum(seen) < goal:
            return False
        time.sleep(rng.uniform(0, 1))
        return True

    return sign


def test_sigkill_at_random_moments_of_cache_writes_leaves_only_whole_entries(tmp_path):
    """A child rewrites four 8 MB projection entries in a loop and is killed at a random moment after its first
    saves, 6 times: every entry a reader finds is whole (a kill mid-write leaves only a temporary)."""
    cache = ProjectionCache(tmp_path / "projections")
    for attempt in range(6):
        proc = _child(_SAVE_LOOP, cache.directory)
        _kill_when(proc, _after_saves(random.Random(attempt)))
        for path in _entries(cache.directory)[0]:
            key = path.stem.split("-", 1)[1]
            state = cache.load("Reducer", key)
            assert state is not None, path
            np.testing.assert_array_equal(state["embedding_"], np.full((2_000_000,), int(key[1:]), np.float32))
    assert _entries(cache.directory)[0]  # the kills let some writes finish


_PYRAMID_LOOP = """
import sys
import numpy as np
from engine.render import build_pyramid, save_pyramid
rng = np.random.default_rng(0)
x, y = rng.normal(size=(2, 30_000))
pyramid = build_pyramid(x, y, rng.integers(0, 5, 30_000), list("abcde"))
for i in range(10_000):
    save_pyramid(pyramid, sys.argv[1])
    print("saved", flush=True)
"""


def _collect(stream, into: list) -> None:
    for line in stream:
        into.append(line)


def _files(path: Path) -> int | None:
    """Files in the store at ``path``; None while there is none (between two renames, or before the first)."""
    try:
        return sum(len(files) for _, _, files in os.walk(path)) if (path / "zarr.json").is_file() else None
    except OSError:
        return None


def test_sigkill_while_a_stored_pyramid_is_replaced_leaves_it_whole_or_absent(tmp_path):
    """A child saves the same pyramid over and over at one path. The parent watches the store and kills the child
    the moment the store is there with files missing (what replacing it by rmtree then rename showed, and left at a
    kill), else after a few saves, at a random moment of the next one; 4 times. The store at the path is then
    absent or opens whole, its finest level counting all its points."""
    from engine.errors import RenderError
    from engine.render import open_pyramid

    path = tmp_path / "pyramid.zarr"
    for attempt in range(4):
        rng = random.Random(100 + attempt)
        proc = _child(_PYRAMID_LOOP, path)
        saves, full = [], None
        reader = threading.Thread(target=_collect, args=(proc.stdout, saves), daemon=True)
        reader.start()
        deadline, goal = time.monotonic() + 90, rng.randint(2, 3)
        while time.monotonic() < deadline and proc.poll() is None:
            files = _files(path)
            if full is None and saves:  # the first save is complete: its count
                full = _files(path)
            if full is not None and files is not None and files < full:
                break  # files missing from a store at the path: kill now
            if len(saves) >= goal:
                time.sleep(rng.uniform(0, 0.5))
                break
            time.sleep(0.001)  # leave the child the CPU
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=30)
        assert saves, proc.stderr.read()[-2000:]
        try:
            stored = open_pyramid(path)
        except RenderError:
            assert _files(path) is None  # no store, or one without its group: never read as a pyramid
            continue
        assert stored.count == 30_000
        assert int(np.asarray(stored.levels[0][...], dtype=np.int64).sum()) == 30_000
    from engine.render import build_pyramid, save_pyramid

    save_pyramid(build_pyramid(np.zeros(3), np.zeros(3), np.zeros(3, int), ["a"]), path)
    assert _entries(tmp_path)[1] == []  # what killed saves left, removed (their writers are dead)


# -- a full disk ----------------------------------------------------------------------------------------------------


@contextmanager
def small_disk(folder: Path, size: str):
    """A tmpfs of ``size`` mounted at ``folder`` while the block runs; skips the test where mounting is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command: the disk-full tests fill a small tmpfs")
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True,
                         text=True, timeout=30)
    if run.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs to fill (needs root, as CI runs): "
                    f"{run.stderr.strip() or run.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def test_a_record_saved_to_a_full_disk_is_a_typed_error_leaving_nothing_partial(tmp_path):
    from generated_writer import make_record

    from engine.data.generated import GeneratedDataset, list_datasets

    with small_disk(tmp_path / "disk", "300k") as disk:
        project = disk / "proj"
        project.mkdir()
        ds = GeneratedDataset(project, "corrections")
        saved = []
        with pytest.raises(StorageError) as info:
            for i in range(50):
                saved.append(ds.save(make_record(1, i)))
        message = str(info.value)
        assert message.startswith(f"{ds.path}: the record was not saved to dataset 'corrections': No space left on "
                                  "device") and "the dataset's earlier records are as they were" in message
        assert info.value.errno is None and isinstance(info.value, OSError)
        assert 2 <= len(saved) < 50
        fresh = GeneratedDataset(project, "corrections")  # another reader: every earlier record, whole
        records = fresh.records()
        assert [r.id for r in records] == saved and fresh.skipped == []
        for r in records:
            np.testing.assert_array_equal(r.output, make_record(1, r.params["i"]).output)
        assert not [p for p in ds.path.rglob("*") if p.name.startswith(TMP_PREFIX)]
        for rid in saved[:3]:  # room made: the save works again
            (ds.records_dir / f"{rid}.npz").unlink()
        assert ds.save(make_record(1, 99)) in [r.id for r in GeneratedDataset(project, "corrections").records()]

        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(bytes(max(free - 8192, 0)))  # room for a manifest, not for a record
        with pytest.raises(StorageError, match=r"export.npz: dataset 'corrections' was not exported: No space left"):
            ds.export(disk / "export.npz")
        assert not (disk / "export.npz").exists() and not list(disk.glob(f"{TMP_PREFIX}*"))
        with pytest.raises(StorageError):  # a new dataset whose first record does not fit: no dataset at all
            GeneratedDataset(project, "second").save(make_record(2, 0))
        assert list_datasets(project) == ["corrections"]


_PROPAGATE_FULL = """
import sys
import numpy as np
from engine.data.project import load_project
from engine.propagate import activations
z = activations(load_project("digits", root=sys.argv[1]), sys.argv[3], cache_dir=sys.argv[2])
np.testing.assert_array_equal(z, np.load(sys.argv[4]))
print("equal", type(z).__name__, flush=True)
"""


def test_activations_on_a_full_cache_disk_are_computed_without_caching(root, expected, tmp_path):
    """10,000 x 16 float32 (640 KB) into a 100 KB cache: before the blocks were reserved, the memory map's first
    write past the disk's end killed the process with SIGBUS. Run in a child, which that would kill."""
    np.save(tmp_path / "expected.npy", expected)
    with small_disk(tmp_path / "disk", "100k") as disk:
        run = subprocess.run([sys.executable, "-c", _PROPAGATE_FULL, str(root), str(disk), LAYER,
                              str(tmp_path / "expected.npy")], capture_output=True, text=True, timeout=120, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
        assert run.stdout.strip() == "equal ndarray"
        assert "the activations are not cached (No space left on device); computed in memory" in run.stderr
        assert list((disk / "activations").iterdir()) == []


def test_a_reducer_fit_on_a_full_cache_disk_stands_uncached(tmp_path, caplog):
    from engine.reduce import make_reducer

    X = np.random.default_rng(1).normal(size=(20_000, 8)).astype(np.float32)
    with small_disk(tmp_path / "disk", "64k") as disk:
        with caplog.at_level(logging.WARNING, logger="engine.reduce.cache"):
            reducer = make_reducer("pca", inverse="exact", cache_dir=disk).fit(X)
        assert reducer.embedding_.shape == (20_000, 2) and not reducer.cache_hit_
        assert "the fitted projection is not cached (No space left on device)" in caplog.text
        assert [p for p in disk.rglob("*") if p.is_file()] == []
        fresh = make_reducer("pca", inverse="exact", cache_dir=disk).fit(X)
        np.testing.assert_allclose(fresh.embedding_, reducer.embedding_, rtol=1e-5, atol=1e-5)


def test_a_pyramid_saved_to_a_full_disk_fails_leaving_nothing(tmp_path):
    from engine.render import build_pyramid, save_pyramid

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(2, 200_000))
    pyramid = build_pyramid(x, y, rng.integers(0, 5, 200_000), list("abcde"))
    with small_disk(tmp_path / "disk", "64k") as disk:
        with pytest.raises(OSError) as info:
            save_pyramid(pyramid, disk / "pyramids" / "p.zarr")
        assert info.value.errno == errno.ENOSPC
        assert list((disk / "pyramids").iterdir()) == []  # neither the store nor its temporary
