"""The dashboard's job runner on its server path (a worker thread, results on the event loop), without a browser:
a job that raises, a job that hangs past its time limit, and other sessions beside them.

Each session is a :class:`~dashboard.jobs.JobState` of its own, as every tab's state is; the work runs on the process's
real worker pool (one thread, as served by default). Outside a server session the runner computes synchronously, so
these tests take its server path the way a session's callback does: inside a running event loop, with
:func:`dashboard.jobs.in_server_session` answering True.
"""

from __future__ import annotations

import asyncio
import threading
import time

import event_loop
import pytest

import dashboard.jobs as jobs
from dashboard.jobs import JobState, workers
from dashboard.widgets import error_html
from engine.settings import JOB_TIMEOUT_ENV, job_timeout


class Session(JobState):
    """A session's state: what its jobs applied."""

    def __init__(self, **params):
        super().__init__(**params)
        self.applied = []


async def until(condition, within: float = 15.0):
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the job runner never got there"
        await asyncio.sleep(0.05)


@pytest.fixture
def served(monkeypatch):
    """Sessions whose jobs take the server path; the pool a test's hung job retired is replaced for the next test."""
    monkeypatch.delenv("LATENT_INSPECTOR_WORKERS", raising=False)
    released = []
    yield lambda: monkeypatch.setattr(jobs, "in_server_session", lambda: True), released
    for event in released:
        event.set()


def test_a_job_that_raises_is_an_error_of_its_session_only_and_the_next_job_runs(served):
    serve, _ = served
    a, b = Session(), Session()
    serve()

    def broken(progress):
        raise RuntimeError("the reducer fell over")

    async def scenario():
        a.jobs.submit("fit", "fitting UMAP", broken, a.applied.append)
        b.jobs.submit("fit", "fitting PCA", lambda progress: "b's picture", b.applied.append)
        await until(lambda: not a.busy and not b.busy)
        assert a.error == "RuntimeError: the reducer fell over" and a.applied == []
        assert "the reducer fell over" in error_html(a.error)  # what the line beside the control shows
        assert b.error == "" and b.applied == ["b's picture"]  # the other session never knew
        a.jobs.submit("fit", "fitting PCA", lambda progress: "a's picture", a.applied.append)  # the page still works
        await until(lambda: not a.busy)
        assert a.error == "" and a.applied == ["a's picture"]

    event_loop.run(scenario())


def test_a_hung_job_is_abandoned_after_its_time_limit_and_its_late_result_is_dropped(served, monkeypatch):
    """The hung job holds the one worker; the job another session queued behind it moves to a new pool when the
    limit is reached, and the hung session's control works again."""
    serve, released = served
    monkeypatch.setenv(JOB_TIMEOUT_ENV, "1")
    hang = threading.Event()
    released.append(hang)
    a, b = Session(), Session()
    serve()
    pool = workers()

    async def scenario():
        a.jobs.submit("fit", "fitting t-SNE", lambda progress: hang.wait(60) and "a's stale picture", a.applied.append)
        await asyncio.sleep(0.2)
        b.jobs.submit("fit", "fitting PCA", lambda progress: "b's picture", b.applied.append)  # queued behind a's
        assert a.busy and b.busy
        await until(lambda: not a.busy)
        assert "fitting t-SNE did not finish within 1 s (LATENT_INSPECTOR_JOB_TIMEOUT) and was abandoned" in a.error
        assert "cannot stop it" in a.error and a.status == ""
        await until(lambda: not b.busy)  # not stuck behind the hung job
        assert b.applied == ["b's picture"] and b.error == ""
        assert workers() is not pool  # the hung thread's pool is retired

        a.jobs.submit("fit", "fitting PCA", lambda progress: "a's picture", a.applied.append)  # the control works
        await until(lambda: not a.busy)
        assert a.applied == ["a's picture"] and a.error == ""
        hang.set()  # the abandoned job ends after all: its result goes nowhere
        await asyncio.sleep(1.0)
        assert a.applied == ["a's picture"] and a.error == ""

    event_loop.run(scenario())


def test_the_queue_wait_does_not_count_and_no_limit_means_none(served, monkeypatch):
    """A job waiting its turn behind a slow one is not abandoned for the slow one's time; with the limit off, a job
    runs as long as it takes."""
    serve, released = served
    monkeypatch.setenv(JOB_TIMEOUT_ENV, "off")
    slow = threading.Event()
    released.append(slow)
    a, b = Session(), Session()
    serve()

    async def scenario():
        a.jobs.submit("fit", "fitting t-SNE", lambda progress: slow.wait(60) and "a's picture", a.applied.append)
        await asyncio.sleep(0.2)
        b.jobs.submit("fit", "fitting PCA", lambda progress: "b's picture", b.applied.append, timeout=0.5)
        await asyncio.sleep(1.5)  # a runs past b's limit while b waits for the worker
        assert a.busy and b.busy and a.error == b.error == ""
        slow.set()
        await until(lambda: not a.busy and not b.busy)
        assert a.applied == ["a's picture"] and b.applied == ["b's picture"] and a.error == b.error == ""

    event_loop.run(scenario())


def test_a_scenario_runs_where_the_thread_runs_an_event_loop_already(served):
    """As in a pytest worker after its browser tests (pytest-playwright's loop runs on the main thread): the job
    runner's server path still runs to its end, on a loop of its own."""
    serve, _ = served
    a = Session()
    serve()

    async def scenario():
        a.jobs.submit("fit", "fitting PCA", lambda progress: "a's picture", a.applied.append)
        await until(lambda: not a.busy)
        return threading.current_thread()

    async def fails():
        raise ValueError("a scenario's own failure")

    async def beside_a_running_loop():
        assert asyncio.get_running_loop() is not None
        with pytest.raises(ValueError, match="a scenario's own failure"):  # reaches the test as it was raised
            event_loop.run(fails())
        return event_loop.run(scenario())

    ran_on = event_loop.run(beside_a_running_loop())  # (this thread may run one already: then another thread)
    assert ran_on is not threading.current_thread()
    assert a.applied == ["a's picture"] and a.error == ""


@pytest.mark.parametrize(("value", "limit"), [("90", 90.0), ("0.5", 0.5), ("off", None), ("", 1800.0),
                                              ("0", 1800.0), ("-3", 1800.0), ("nan", 1800.0), ("soon", 1800.0)])
def test_the_time_limit_comes_from_the_environment(value, limit):
    assert job_timeout(environ={JOB_TIMEOUT_ENV: value}) == limit
