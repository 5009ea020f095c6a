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

from collections.abc import Callable

__all__ = ["ProgressFn", "report", "stage"]

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
