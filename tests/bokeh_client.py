"""Bokeh's own client, run where it can run.

``bokeh.client`` drives a Tornado loop of its own with ``run_forever``, which asyncio refuses in a thread whose
running loop is already set. In a pytest worker that has run a browser test, that is the main thread: Playwright's sync
API keeps its loop marked running there between calls for the whole session (its ``browser`` fixture is
session-scoped). So a client lives in a thread of its own, and every call on it (pull, read, close) is made there:
its loop is that thread's.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


class ClientThread:
    """One thread for a client's life: ``session = client(pull_session, ...)``, then ``client(session.close)``."""

    def __init__(self, timeout: float = 300):
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bokeh-client")

    def __call__(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` on the client's thread; its result, or its exception re-raised here."""
        return self._pool.submit(fn, *args, **kwargs).result(self.timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._pool.shutdown(wait=True)
