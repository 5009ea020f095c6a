"""One progress signature for the whole engine: ``progress(stage, done, total)``.

Every long computation of the engine (propagating a dataset, fitting a reducer, training a suffix, optimizing an
input, a Dask job) takes an optional ``progress`` callable and calls it as ``progress(stage, done, total)``: ``stage``
names what is under way in a few words ("propagate", "reduce", "quality report", "training"), ``done`` and
``total`` count its units (rows, epochs, steps). ``total`` may be 0 when it is unknown. The return value is ignored.

The CLI draws one bar per stage, the dashboard shows the stage and percentage on the plot; a notebook user can pass
``print``-like functions::

    Inspection(project, "bottleneck", progress=lambda stage, done, total: print(stage, done, total))
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

__all__ = ["ProgressBars", "ProgressFn", "report", "stage"]

#: The signature of every progress callback of the engine.
ProgressFn = Callable[[str, int, int], object]


def report(progress: ProgressFn | None, stage_name: str, done, total) -> None:
    """Call ``progress(stage_name, done, total)`` with whole numbers, when there is a callback."""
    if progress is not None:
        progress(stage_name, int(done), int(total))


def stage(progress: ProgressFn | None, stage_name: str) -> Callable[[int, int], None] | None:
    """``progress`` with its stage bound: a ``(done, total)`` counter for a loop that knows only its own stage, or
    ``None`` when there is no callback.

    Example
    -------
    >>> seen = []
    >>> count = stage(lambda *a: seen.append(a), "propagate")
    >>> count(5, 10); seen
    [('propagate', 5, 10)]
    """
    if progress is None:
        return None
    return lambda done, total: progress(stage_name, int(done), int(total))


#: What the engine's stages count, where it is not rows (:data:`ProgressBars`'s default unit).
STAGE_UNITS = {"training the inverse map": "epochs", "training": "epochs", "refining": "steps", "optimize": "steps"}


class ProgressBars:
    """Progress bars on stderr, one line per stage: ``propagate  [#####.....]  5,000/10,000 rows  3,512 rows/s``.

    Called as every progress callback of the engine is, ``progress(stage, done, total)``. A copy sent to another
    process (a reducer shipped to Dask workers with its callback) draws nothing there: the stream stays here. Each
    stage counts in its own unit (:data:`STAGE_UNITS`), else in ``unit``.

    Example
    -------
    >>> import io
    >>> out = io.StringIO(); bars = ProgressBars(stream=out)
    >>> bars("training the inverse map", 50, 50); bars("propagate", 10, 10)
    >>> [line.split("]")[1].split()[:2] for line in out.getvalue().split("\\n") if line]
    [['50/50', 'epochs'], ['10/10', 'rows']]
    """

    def __init__(self, unit: str = "rows", stream=None):
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.stage, self.t0, self.last = None, time.perf_counter(), 0.0

    def __getstate__(self):
        return {**self.__dict__, "stream": None}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.stream is None:
            return
        now = time.perf_counter()
        if stage != self.stage:
            self.stage, self.t0, self.last = stage, now, 0.0
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        elapsed = now - self.t0
        bar = "#" * int(30 * done / max(total, 1))
        end = "\n" if done >= total else ""
        unit = STAGE_UNITS.get(stage, self.unit)
        counts = f"{done:,}/{total:,} {unit}"
        if elapsed > 0.05:  # a rate over no time (a cache hit) means nothing
            counts += f"  {done / elapsed:,.0f} {unit}/s"
        self.stream.write(f"\r{stage}  [{bar:<30}]  {counts}{end}")
        self.stream.flush()
