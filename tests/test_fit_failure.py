"""A fit that fails halfway leaves no cache entry that looks valid: neither on disk (the fitted-projection cache) nor
in the dashboard's process-wide cache of inspections; the next request computes the whole thing afresh.

The failures are real ones: the progress callback raising (what a cancelled job does), an inverse map whose
parameters its own fit rejects after the projection was computed, and Ctrl-C in the middle of training the
inverse MLP.
"""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from engine.reduce import make_reducer
from engine.reduce.inverse import MLPInverse


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=5.0, size=(4, 12))
    return (centres[rng.integers(0, 4, 2_000)] + rng.normal(size=(2_000, 12))).astype(np.float32)


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


class Cancelled(Exception):
    pass


def _count_reports(method, X, **params):
    calls = []
    make_reducer(method, progress=lambda s, d, t: calls.append((d, t)), **params).fit(X)
    return calls


@pytest.mark.parametrize("inverse", ["exact", "knn"])
def test_a_fit_cancelled_from_its_progress_leaves_no_cache_entry(tmp_path, X, inverse):
    method, params = "pca", {"fit_sample": 200, "chunk_size": 150, "inverse": inverse, "random_state": 0}
    X = X[:600]  # the rows left out of the fit are embedded in chunks, each reported
    reports = _count_reports(method, X, **params)
    assert len(reports) >= 3  # there is a "halfway" to fail at
    for fail_at in (1, len(reports) // 2, len(reports)):  # the first report, the middle one, the very last
        seen = []

        def progress(stage, done, total, fail_at=fail_at, seen=seen):
            seen.append(done)
            if len(seen) == fail_at:
                raise Cancelled(f"cancelled at report {fail_at}")

        reducer = make_reducer(method, cache_dir=tmp_path, progress=progress, **params)
        with pytest.raises(Cancelled):
            reducer.fit(X)
        assert _files(tmp_path) == [], f"a fit cancelled at report {fail_at} of {len(reports)} left a file"

    whole = make_reducer(method, cache_dir=tmp_path, **params).fit(X)
    assert not whole.cache_hit_ and len(_files(tmp_path)) == 1
    again = make_reducer(method, cache_dir=tmp_path, **params).fit(X)
    assert again.cache_hit_
    np.testing.assert_array_equal(again.embedding_, whole.embedding_)


def test_an_inverse_map_failing_after_the_projection_leaves_no_cache_entry(tmp_path, X):
    from engine.errors import ReducerError

    bad = MLPInverse(validation_fraction=1.5)  # accepted when made, rejected by its fit, after the projection's
    reached = []
    reducer = make_reducer("pca", inverse=bad, cache_dir=tmp_path, progress=lambda s, d, t: reached.append(d == t))
    with pytest.raises(ReducerError, match="validation_fraction"):
        reducer.fit(X)
    assert reached and reached[-1]  # the projection itself was complete
    assert not hasattr(reducer, "inverse_") and _files(tmp_path) == []
    fitted = make_reducer("pca", inverse=MLPInverse(max_epochs=2), cache_dir=tmp_path).fit(X)
    assert not fitted.cache_hit_ and len(_files(tmp_path)) == 1


def test_ctrl_c_while_the_inverse_mlp_trains_leaves_no_cache_entry(tmp_path, X):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT reaches the main thread only")
    # long enough that the interrupt lands in the training: up to 60 s of epochs, no early stopping
    slow = MLPInverse(max_epochs=10_000, patience=10_000, max_seconds=60, epoch_samples=20_000)
    started, caught = threading.Event(), threading.Event()

    # One SIGINT was once lost in a full CI run (the MLP then trained its whole 60 s), with Python's own handler in
    # place: an interrupt that lands while the main thread runs code that swallows it (a finalizer, a bare except
    # in a library) is gone. So Ctrl-C is pressed every half second, as a user would press it again, until one
    # lands. The handler does what Python's own does (raise KeyboardInterrupt) until the test has caught one, and
    # nothing after, so no stray interrupt escapes the test.
    def interrupt(signum, frame):
        if not caught.is_set():
            raise KeyboardInterrupt

    def press_ctrl_c():
        started.wait()
        caught.wait(1.5)
        while not caught.is_set():
            os.kill(os.getpid(), signal.SIGINT)
            caught.wait(0.5)

    def progress(stage, done, total):
        if done == total:  # the projection is complete: the inverse map's training starts now
            started.set()

    reducer = make_reducer("pca", inverse=slow, cache_dir=tmp_path, progress=progress)
    previous = signal.signal(signal.SIGINT, interrupt)
    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            try:
                reducer.fit(X)
            except KeyboardInterrupt:
                caught.set()
                raise
    finally:
        caught.set()
        started.set()
        presser.join(timeout=10)
        signal.signal(signal.SIGINT, previous)
    assert not hasattr(reducer, "inverse_"), "the interrupt came after the inverse map's training"
    assert _files(tmp_path) == []


def test_a_dashboard_inspection_failing_halfway_is_not_cached(tiny_project, tmp_path, monkeypatch):
    """The process-wide cache of inspections (the real build of the dashboard's store) keeps nothing of a build
    that failed while reducing, and builds it whole on the next request."""
    from dashboard import shared
    from engine.memo import Memo

    monkeypatch.setenv("LATENT_INSPECTOR_CACHE", str(tmp_path))
    cache = Memo(2, name="inspections")
    monkeypatch.setattr(shared, "INSPECTIONS", cache)
    request = shared.Request.make("tiny", "bottleneck", method="pca", root=tiny_project)

    def progress(*args):
        if args[0] == "reduce":
            raise Cancelled("the session went away")

    with pytest.raises(Cancelled):
        shared.inspection(request, progress)
    assert cache.peek(request) is None and len(cache) == 0
    assert not len(cache._building)  # no lock kept for the failed request
    assert _files(tmp_path / "projections") == []
    stages = []
    inspection = shared.inspection(request, lambda *args: stages.append(args[0]))
    assert "reduce" in stages and cache.peek(request) is inspection
    assert inspection.decode(*inspection.embedding[0]).output.shape == inspection.output_shape
