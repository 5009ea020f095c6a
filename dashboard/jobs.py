"""The dashboard's one job runner: long work (loading a model, fitting a reducer, training a probe, ranking a dataset,
optimizing an input) runs on a worker thread, so that no session, the asking one included, stops answering meanwhile.

Every state of a session derives from :class:`JobState` and submits its work to its own :class:`Jobs`: a job has a
kind and a label; while it runs, the state's ``busy``, ``progress`` and ``status`` follow it (the engine reports
``progress(stage, done, total)``); a newer job of the same kind supersedes an older one, whose result is then
dropped; an error lands in the state's ``error``, where the view beside the control that asked shows it. When the
session's page closes, its work still queued is dropped (work already running finishes: a shared inspection it
builds still lands in the process's cache, :mod:`dashboard.shared`).

A result reaches the session's document only once the page holds that document (``pn.state.onload``). BokehJS drops
a document patch that arrives before its PULL-DOC-REPLY, on the premise that the reply already holds the change; but
Panel writes a patch made on the event loop straight to the socket, so a patch made after the reply was serialized
can overtake it, and the page never learns of the models it created. That was the stuck page of the load tests (one
session in 3 to 40 kept an empty decoded-output card, and every later decode failed with "reference pNNNN isn't
known"): the shared inspection became ready, and each waiting session drew its new figures, while pages connected.

The worker pool is the process's, created on first use: ``LATENT_INSPECTOR_WORKERS`` threads (default 1). On two
cores one worker computes while the other core keeps serving every session's events; requests of several sessions
queue (each page shows its own wait as progress), identical requests are computed once. Outside a server (tests, a
notebook) the work runs synchronously, so every result follows its call.

A job that runs on its worker longer than ``LATENT_INSPECTOR_JOB_TIMEOUT`` seconds (:func:`engine.settings.job_timeout`,
default 1800; the wait in the queue does not count) is abandoned: its state gets a :class:`~engine.errors.JobTimeout`
as its error, beside the control that asked, the control is usable again, and the job's result is dropped should it
ever come. Python cannot stop a running thread, so the abandoned work goes on until it ends by itself; the worker
pool it holds is retired (its threads end once their work does) and the work queued behind it moves to a new pool,
so that no other session waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import panel as pn
import param

from engine.errors import InspectorError, JobTimeout, UsageError
from engine.settings import JOB_TIMEOUT_ENV, job_timeout

from .widgets import weakly

__all__ = ["DEFAULT_WORKERS", "PAGE_LOADED", "WORKERS_ENV", "JobState", "Jobs", "Progress", "error_message", "guarded",
           "in_server_session", "retire", "subscribe", "worker_count", "workers"]

log = logging.getLogger(__name__)

#: The environment variable that sets the number of worker threads of the process.
WORKERS_ENV = "LATENT_INSPECTOR_WORKERS"
DEFAULT_WORKERS = 1
#: How often a running job's progress reaches its state, in seconds.
POLL_S = 0.25

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()

#: Set once a page of this process has loaded its session's document and been given the results that waited for it
#: (its first picture among them): the server's background warm-up of the reducers waits for it, so as not to share
#: the two cores with the first page (``dashboard.serve``).
PAGE_LOADED = threading.Event()


def worker_count(environ=None) -> int:
    """The number of worker threads ``LATENT_INSPECTOR_WORKERS`` asks for (default 1).

    Raises
    ------
    engine.errors.UsageError
        The variable is set to anything but a whole number of at least 1.

    Example
    -------
    >>> worker_count({"LATENT_INSPECTOR_WORKERS": "2"}), worker_count({})
    (2, 1)
    """
    text = (os.environ if environ is None else environ).get(WORKERS_ENV, "").strip()
    if not text:
        return DEFAULT_WORKERS
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{WORKERS_ENV}={text!r}: expected the number of worker threads, a whole number of 1 or "
                         f"more (default {DEFAULT_WORKERS})")
    return int(text)


def workers() -> ThreadPoolExecutor:
    """The process's worker pool, created on first use with :func:`worker_count` threads."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=worker_count(), thread_name_prefix="latent-inspector-work")
        return _pool


def retire(pool: ThreadPoolExecutor) -> None:
    """``pool`` holds a thread that hangs: later work goes to a new pool, and its queued work is cancelled there (the
    job that queued it queues it again on the new pool). Its threads end once their work does; a thread cannot be
    stopped from outside."""
    global _pool
    with _pool_lock:
        if _pool is not pool:  # retired already
            return
        _pool = None
    log.warning("a dashboard job hangs: its worker pool is retired and the work queued on it moves to a new one")
    pool.shutdown(wait=False, cancel_futures=True)


def in_server_session() -> bool:
    """True inside a server session's callbacks (work then goes to the worker pool), False in a test or notebook."""
    doc = pn.state.curdoc
    return bool(doc is not None and doc.session_context is not None)


def error_message(exc: BaseException) -> str:
    """What a state's ``error`` says of ``exc``: an :class:`~engine.errors.InspectorError`'s own words, any other
    exception's type and words (its traceback goes to the server's log)."""
    return str(exc) if isinstance(exc, InspectorError) else f"{type(exc).__name__}: {exc}"


def subscribe(stream, callback, state: JobState | None = None) -> None:
    """Add ``callback`` to the subscribers of the HoloViews ``stream`` (a plot's taps, presses, cursor, view, box or
    lasso), such that an exception it raises is logged and shown as ``state``'s error, not raised into HoloViews.

    HoloViews handles a plot's events of one kind one batch at a time, and marks the next batch due only once a
    batch has been handled; a subscriber's exception ends that loop with the kind still marked busy, and every later
    event of the kind is queued, never handled. One failed tap left every later tap of the session undecoded, with
    nothing on the page to say so.
    """
    stream.add_subscriber(guarded(callback, state, type(stream).__name__))


def guarded(callback, state: JobState | None = None, what: str = "a plot event"):
    """``callback`` such that an exception it raises is logged (unless the user's, an ``InspectorError``) and shown
    as ``state``'s error, not raised to its caller: HoloViews' loop of a plot's events (:func:`subscribe`), or the
    event loop's callback it was scheduled as."""
    def call(*args, **values):
        try:
            callback(*args, **values)
        except Exception as exc:  # noqa: BLE001 (raised into HoloViews, it would stop this kind of event: see above)
            if not isinstance(exc, InspectorError):
                log.exception("a plot event's callback failed (%s)", what)
            if state is not None:
                try:
                    state.error = error_message(exc)
                except Exception:  # noqa: BLE001 (a view of the error failing: the event's loop goes on regardless)
                    log.exception("showing a plot event's error failed")

    return call


class Progress:
    """The engine's progress reports of one job, ``(stage, done, total)``, written by the worker thread and read on
    the event loop."""

    def __init__(self, title: str):
        self.title, self.label, self.fraction, self.t0 = title, title, None, time.perf_counter()
        self.stage, self._stage_t0, self._stage_f0 = "", self.t0, 0.0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, stage: str, done: int, total: int) -> None:
        fraction = done / total if total else None
        if stage != self.stage:  # a new stage: its own clock for the estimate of time left
            self.stage, self._stage_t0, self._stage_f0 = stage, time.perf_counter(), fraction or 0.0
        self.label = f"{self.title}: {stage}"
        self.fraction = fraction

    @property
    def remaining(self) -> float | None:
        """Seconds left in the current stage, extrapolated from its pace so far; None until the pace is known
        (a stage reporting no fraction, or less than a second or 3% into it)."""
        if self.fraction is None:
            return None
        spent, done = time.perf_counter() - self._stage_t0, self.fraction - self._stage_f0
        if spent < 1.0 or done < 0.03:
            return None
        return spent * (1.0 - self.fraction) / done

    @property
    def text(self) -> str:
        pct = f" {100 * self.fraction:.0f}%" if self.fraction is not None else ""
        left = self.remaining
        eta = f", about {left:.0f} s left" if left is not None and left >= 1 else ""
        return f"{self.label}{pct} ({self.elapsed:.0f} s{eta})"


class JobState(param.Parameterized):
    """Base of the dashboard's states: their work in the background (:attr:`jobs`) and what it is doing."""

    busy = param.Boolean(default=False, doc="Work of this state is under way")
    progress = param.Number(default=None, allow_None=True, bounds=(0, 1), doc="Fraction done, None if unknown")
    status = param.String(default="", doc="The work under way, or the last work done, in words")
    error = param.String(default="", doc="What went wrong last, in words ('' when nothing did)")

    def __init__(self, **params):
        super().__init__(**params)
        self.jobs = Jobs(self)

    def dismiss_error(self, *_):
        """Forget the last error (the alert showing it goes)."""
        self.error = ""


class Jobs:
    """Runs the background work of ``owner``, a :class:`JobState`.

    Example
    -------
    >>> state.jobs.submit("path", "interpolating", lambda progress: work(progress), apply)    # doctest: +SKIP
    """

    def __init__(self, owner: JobState):
        self.owner = owner
        self.running: set[str] = set()  # kinds with work under way
        self.closed = False
        self._generation: dict[str, int] = {}
        self._latest = None  # the kind last submitted: its progress is the one shown
        self._lock = threading.Lock()
        self.loaded = True  # the page holds the session's document: results may change it
        self._waiting: list = []  # results (and errors) that came before the page had its document, in order
        if in_server_session():
            pn.state.on_session_destroyed(weakly(self._closing))
            if not pn.state.loaded:
                self.loaded, self._doc = False, pn.state.curdoc
                pn.state.onload(weakly(self._page_loaded))

    def submit(self, kind: str, label: str, work, apply, *, clear_error: bool = True, on_poll=None,
               timeout: float | None = -1) -> None:
        """Run ``work(progress)`` on a worker, then ``apply(result)`` on the event loop, unless a newer job of
        ``kind`` came meanwhile.

        Parameters
        ----------
        kind : str
            Jobs of one kind supersede each other; jobs of other kinds run on.
        label : str
            The job in words, shown as the state's ``status`` with the engine's stage and percentage.
        work : callable(progress) -> result
            Runs on a worker thread; ``progress(stage, done, total)`` reports how far it is.
        apply : callable(result)
            Runs on the event loop with the result (in the session's document lock).
        clear_error : bool
            Forget the state's last error (False when the job only continues the previous one).
        on_poll : callable(), optional
            Runs on the event loop with each progress report while the work is current (for a result that grows
            while the work runs, such as t-SNE's layout during its optimisation).
        timeout : float or None
            Seconds the work may run on its worker before it is abandoned (its result dropped, a
            :class:`~engine.errors.JobTimeout` in the state's ``error``); None for no limit; by default
            ``LATENT_INSPECTOR_JOB_TIMEOUT`` (:func:`engine.settings.job_timeout`). Only in a server session: elsewhere
            the work runs synchronously.
        """
        if self.closed:  # a result of the closed session's last work: nobody is left to see what it would start
            return
        with self._lock:
            generation = self._generation[kind] = self._generation.get(kind, 0) + 1
        tracker = Progress(label)
        self.running.add(kind)
        self._latest = kind
        self.owner.param.update(busy=True, progress=None, status=f"{label}…", **({"error": ""} if clear_error else {}))
        if not in_server_session():
            try:
                result = work(tracker)
            except Exception as exc:
                self._failed(kind, generation, exc)
            else:
                self._done(kind, generation, tracker, apply, result)
            return

        if timeout == -1:
            timeout = job_timeout()

        async def task():
            await self._run(kind, generation, tracker, work, apply, on_poll, timeout)

        pn.state.execute(task)

    def supersede(self, kind: str) -> None:
        """Drop the result of the work of ``kind`` under way: the state has its answer without it."""
        with self._lock:
            self._generation[kind] = self._generation.get(kind, 0) + 1
        self.running.discard(kind)
        self.owner.param.update(busy=bool(self.running), progress=None)

    def current(self, kind: str, generation: int) -> bool:
        return self._generation.get(kind) == generation

    async def _run(self, kind, generation, tracker, work, apply, on_poll=None, timeout=None):
        loop = asyncio.get_running_loop()
        started = []  # when a worker took the work up: the wait in the queue is not the work's

        def timed(progress):
            started.append(time.monotonic())
            return work(progress)

        def start():
            try:
                pool = workers()
                return pool, loop.run_in_executor(pool, timed, tracker)
            except RuntimeError:  # the pool was retired between the two lines
                pool = workers()
                return pool, loop.run_in_executor(pool, timed, tracker)

        try:
            pool, future = start()
        except InspectorError as exc:  # the pool cannot be made (LATENT_INSPECTOR_WORKERS)
            self._failed(kind, generation, exc)
            return
        while True:
            done, _ = await asyncio.wait({future}, timeout=POLL_S)
            if self.closed:
                # Queued work is dropped, so that it does not hold the worker every session shares; work already
                # running finishes and nobody waits for it.
                future.cancel()
                return
            if done and future.cancelled() and not started:  # queued on a pool retired meanwhile: queue it anew
                try:
                    pool, future = start()
                except InspectorError as exc:
                    self._failed(kind, generation, exc)
                    return
                continue
            if done:
                break
            if timeout is not None and started and time.monotonic() - started[0] > timeout:
                retire(pool)
                self._when_loaded(self._abandon, kind, generation, tracker, timeout)
                return  # nothing waits for its result any more: whatever it returns or raises is dropped
            if not self.loaded:  # nothing may change the document before the page has it (see the module's notes)
                continue
            if self.current(kind, generation) and self._latest == kind:
                self.owner.param.update(status=tracker.text, progress=tracker.fraction)
            if on_poll is not None and self.current(kind, generation):
                try:
                    on_poll()
                except Exception:  # a picture of work in progress is a courtesy: the work itself goes on
                    log.exception("showing work in progress failed")
        try:
            result = future.result()
        except Exception as exc:
            self._when_loaded(self._failed, kind, generation, exc)
        else:
            self._when_loaded(self._done, kind, generation, tracker, apply, result)

    def _when_loaded(self, fn, *args):
        """``fn(*args)`` now if the page holds the session's document, else once it does (in order)."""
        if self.loaded:
            fn(*args)
        else:
            self._waiting.append((fn, args))

    def _page_loaded(self):
        """The page has built the session's document (Panel calls this on the page's ready event, on a thread of its
        pool when it has one): the results that came meanwhile are applied on the event loop, under the document's
        lock."""
        self._doc.add_next_tick_callback(weakly(self._apply_waiting))

    def _apply_waiting(self):
        self.loaded = True
        waiting, self._waiting = self._waiting, []
        try:
            for fn, args in waiting:
                fn(*args)
        finally:
            PAGE_LOADED.set()

    def _closing(self, session_context=None):
        """The session's page is gone: nothing this state would compute can be seen any more."""
        self.closed = True
        self._waiting = []

    def _done(self, kind, generation, tracker, apply, result):
        if not self.current(kind, generation):  # the user asked for something else meanwhile
            return
        self.running.discard(kind)
        try:
            apply(result)
        except Exception as exc:
            self._failed(kind, generation, exc)
            return
        if self.current(kind, generation):  # (apply may have submitted the next job of its kind)
            self.owner.param.update(busy=bool(self.running), progress=None,
                                    status=f"{tracker.title}: done in {tracker.elapsed:.1f} s")

    def _abandon(self, kind, generation, tracker, timeout):
        log.warning("abandoned %r after %.0f s on its worker (%s)", tracker.title, tracker.elapsed, JOB_TIMEOUT_ENV)
        self._failed(kind, generation, JobTimeout(
            f"{tracker.title} did not finish within {timeout:g} s ({JOB_TIMEOUT_ENV}) and was abandoned: try again, "
            f"or with less work. Its result is ignored if it ever comes; the server cannot stop it, so it may go on "
            f"using a processor until it ends."))

    def _failed(self, kind, generation, exc):
        if not isinstance(exc, InspectorError):
            log.exception("dashboard work failed", exc_info=exc)
        if not self.current(kind, generation):
            return
        self.running.discard(kind)
        self.owner.param.update(busy=bool(self.running), progress=None, status="", error=error_message(exc))
