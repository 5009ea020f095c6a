"""Running a test's coroutine to the end from plain test code, whatever else runs in the test process.

Once a browser test has run in a pytest worker, pytest-playwright's sync API keeps an asyncio event loop running on
that worker's main thread for the rest of the session, and ``asyncio.run`` there raises "cannot be called from a
running event loop". Which modules a worker runs after its browser tests depends on how xdist hands out modules, so
a test that calls ``asyncio.run`` passes or fails with the order. :func:`run` gives the coroutine a loop of its own,
on a thread of its own when this one already runs a loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading


def run(coroutine):
    """``asyncio.run(coroutine)``, on a new thread (this thread's context copied) when this thread runs a loop already;
    returns the coroutine's result or raises its exception."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()
    outcome = {}

    def target():
        try:
            outcome["result"] = context.run(asyncio.run, coroutine)
        except BaseException as exc:  # noqa: BLE001 (handed to the caller's thread as it is)
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="test-event-loop")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
