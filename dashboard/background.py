"""Work of the explore and linked views that takes too long for an event (fitting the editor's directions, the
parallel axes, an interpolation path projected by a slow reducer, the compare view's second inspection).

It runs on the worker thread the store uses (:mod:`dashboard.state`), one job at a time for the whole process, so
that two cores keep serving every session while it computes; the owner's ``status`` shows its progress. A newer
job of the same kind supersedes an older one: the older one's result is dropped. Unlike the store's own work, these
jobs never supersede the store's (a new projection being built keeps going while the user asks for a path).
Outside a server (tests, a notebook) the work runs synchronously.
"""

from __future__ import annotations

import asyncio
import logging

import panel as pn

from engine.errors import InspectorError

from .state import WORKERS, Progress, in_server_session

log = logging.getLogger(__name__)


class Background:
    """Runs jobs for ``owner``, a Parameterized with string parameters ``status`` and ``error``.

    Example
    -------
    >>> jobs = Background(explorer)                                                # doctest: +SKIP
    >>> jobs.submit("path", "interpolating", lambda progress: work(), apply)      # doctest: +SKIP
    """

    def __init__(self, owner):
        self.owner = owner
        self._generation: dict[str, int] = {}
        self.running: set[str] = set()

    def submit(self, kind: str, label: str, work, apply):
        """Run ``work(progress)``, then ``apply(result)`` on the event loop, unless a newer job of ``kind`` came."""
        generation = self._generation[kind] = self._generation.get(kind, 0) + 1
        tracker = Progress(label)
        self.running.add(kind)
        self.owner.param.update(status=f"{label}…", error="")
        if in_server_session():
            async def task():
                loop = asyncio.get_running_loop()
                future = loop.run_in_executor(WORKERS, work, tracker)
                while True:
                    done, _ = await asyncio.wait({future}, timeout=0.25)
                    if done:
                        break
                    if self._generation[kind] == generation:
                        self.owner.status = tracker.text
                try:
                    result = future.result()
                except Exception as exc:
                    self._failed(kind, generation, exc)
                else:
                    self._done(kind, generation, tracker, apply, result)

            pn.state.execute(task)
            return
        try:
            result = work(tracker)
        except Exception as exc:
            self._failed(kind, generation, exc)
        else:
            self._done(kind, generation, tracker, apply, result)

    def _done(self, kind, generation, tracker, apply, result):
        if self._generation[kind] != generation:
            return
        self.running.discard(kind)
        try:
            apply(result)
        except Exception as exc:
            self._failed(kind, generation, exc)
            return
        self.owner.status = f"{tracker.title}: done in {tracker.elapsed:.1f} s"

    def _failed(self, kind, generation, exc):
        if self._generation[kind] != generation:
            return
        self.running.discard(kind)
        if not isinstance(exc, InspectorError):
            log.exception("dashboard work failed", exc_info=exc)
        message = str(exc) if isinstance(exc, InspectorError) else f"{type(exc).__name__}: {exc}"
        self.owner.param.update(status="", error=message)
