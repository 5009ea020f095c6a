"""Running the pipeline's operations as Dask tasks: on the current :class:`distributed.Client`'s workers (progress as
chunks complete, workers that die or stall turned into a :class:`~engine.errors.ClusterError` naming the rows), or on
Dask's threads here without one; and the generic operations of :mod:`engine.backends` for Dask arrays."""

from __future__ import annotations

import errno
import sys
import time

import dask
import dask.array as da
import numpy as np

from engine import backends
from engine.data.store import Stored
from engine.errors import ClusterError, StorageError
from engine.progress import ProgressFn, report

__all__ = ["NO_WORKERS_S", "PAUSED_S", "POLL_S", "current_client", "fold_chunks", "key_name", "row_blocks",
           "row_chunked", "run"]


def current_client():
    """The :class:`distributed.Client` in use (the one :func:`engine.backends.cluster.connect` opened), or None."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def key_name(key) -> str:
    return str(key[0] if isinstance(key, tuple) else key)


def _death_hint(client) -> str:
    """Why workers died, as far as their nannies' logs tell: the memory limit, or something else."""
    try:
        logs = client.get_worker_logs(nanny=True)
        lines = [line for entries in logs.values() for _, line in entries]
    except Exception:
        lines = []
    if any("exceeded 95% memory budget" in line for line in lines):
        return ("a worker exceeded its memory limit: use smaller chunks (--input-chunks) or give each worker more "
                "memory (--worker-memory)")
    return "no memory limit was exceeded: a crash in the model, a hook or the process itself?"


def _rows_text(bounds, i) -> str:
    try:
        lo, hi = bounds[int(i)]
        return f"rows {lo:,}..{hi - 1:,}"
    except (TypeError, IndexError, ValueError):
        return f"task {i!r}"


def run(tasks: list, bounds: list, *, progress: ProgressFn | None, stage: str, what: str, on_failure=None,
         wait: list | None = None) -> list:
    """Compute ``tasks`` (Dask delayed objects, one per chunk of ``bounds``, in order) and return their results.

    On a :class:`distributed.Client`: as futures, reporting ``progress(stage, rows_done, n)`` as chunks complete,
    with workers that keep dying (or a lost cluster) turned into a :class:`~engine.errors.ClusterError` naming the
    rows; ``on_failure(client, futures)`` runs first. Without a client: chunk after chunk on Dask's threads here.
    ``wait`` lists further delayed objects computed with them (the nodes of a reduction tree), whose results follow.
    """
    n = bounds[-1][1] if bounds else 0
    wait = list(wait or [])
    client = current_client()
    if client is None:
        results, done = [], 0
        for task, (lo, hi) in zip(tasks, bounds):
            results.append(dask.compute(task, scheduler="threads")[0])
            done += hi - lo
            report(progress, stage, done, n)
        return results + list(dask.compute(*wait, scheduler="threads")) if wait else results
    from distributed import wait as wait_for
    from distributed.scheduler import KilledWorker

    futures = client.compute(tasks + wait)
    leaves = futures[: len(tasks)]
    position = {f.key: i for i, f in enumerate(leaves)}
    current = None
    try:
        done, pending, stalled = 0, set(leaves), _Stall(client)
        while pending:
            try:
                finished, pending = wait_for(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                stalled.check(what)  # raises when the job's workers have sat paused at their memory limit too long
                continue
            stalled.progressed()
            for fut in sorted(finished, key=lambda f: position[f.key]):
                current = position[fut.key]
                fut.result()  # raises the task's error
                done += bounds[current][1] - bounds[current][0]
                report(progress, stage, done, n)
        return [f.result() for f in futures]
    except KilledWorker as exc:
        if on_failure is not None:
            on_failure(client, futures)
        raise ClusterError(
            f"{what}: workers died {exc.allowed_failures + 1} times while computing {_rows_text(bounds, current)} "
            f"(last on {getattr(exc.last_worker, 'address', exc.last_worker)}); {_death_hint(client)}"
        ) from None
    except ClusterError:
        if on_failure is not None:
            on_failure(client, futures)
        raise
    except TimeoutError as exc:  # the connection to the scheduler was lost
        if on_failure is not None:
            on_failure(client, futures)
        raise ClusterError(f"{what}: lost the Dask cluster ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        if on_failure is not None:
            on_failure(client, futures)
        if exc.errno in NO_ROOM:  # a task's write failed for want of room or permission: not the cluster's fault
            raise StorageError(f"{what}: a worker could not write {_rows_text(bounds, current)}: "
                               f"{exc.strerror or exc}") from None
        raise ClusterError(f"{what}: lost the Dask cluster ({type(exc).__name__}: {exc})") from None
    except BaseException:
        if on_failure is not None:
            on_failure(client, futures)
        raise
    finally:
        client.cancel(futures)


#: Seconds between looks at a running job's futures (and at whether its workers can run at all).
POLL_S = 2.0
#: errno values of a write that failed for want of room or permission (a full disk, a quota, a read-only folder).
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
#: A job whose every worker has been paused at its memory limit this long fails rather than waiting forever.
PAUSED_S = 120.0
#: A job on a scheduler that has had no worker at all this long fails rather than waiting forever (a nanny restarts a
#: worker that died within seconds; one that lost its connection and closed, as seen on a loaded machine, is not).
NO_WORKERS_S = 120.0


class _Stall:
    """Whether the workers of a job can run at all: a worker that reaches 80 % of its memory limit is paused by its
    nanny and runs nothing until memory is freed, which, for the memory its own modules hold, is never. When every
    worker is paused nothing runs; when one is, the tasks the scheduler had already given it wait there for ever while
    the others, their own work done, sit idle. And a scheduler left without workers runs nothing until one joins,
    which may be never."""

    def __init__(self, client, patience: float | None = None, alone: float | None = None):
        self.client, self.since, self.empty_since, self.stuck_since = client, None, None, {}
        self.patience = PAUSED_S if patience is None else patience
        self.alone = NO_WORKERS_S if alone is None else alone

    def progressed(self) -> None:
        """A task of the job finished: a paused worker's waiting tasks are not (yet) what holds the job up."""
        self.stuck_since = {}

    def check(self, what: str) -> None:
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except Exception:  # the scheduler did not answer: the next wait says whether it is gone
            return
        workers = info["workers"]
        self._check_empty(what, not workers, info.get("address", "the scheduler"))
        paused = bool(workers) and all(w.get("status") == "paused" for w in workers.values())
        if not paused:
            self.since = None
            self._check_stuck(what, workers)
            return
        self.since = self.since or time.monotonic()
        if time.monotonic() - self.since > self.patience:
            raise ClusterError(
                f"{what}: every worker has been paused at its memory limit ({_limits(workers.values())}) for "
                f"{self.patience:.0f} s, so nothing can run: give each worker more memory (--worker-memory), or use "
                "fewer rows per chunk (--input-chunks)"
            )

    def _check_stuck(self, what: str, workers: dict) -> None:
        now, stuck = time.monotonic(), {}
        for address, w in workers.items():
            counts = (w.get("metrics") or {}).get("task_counts") or {}
            waiting = sum(v for k, v in counts.items() if k in ("ready", "constrained", "waiting"))
            if w.get("status") == "paused" and not counts.get("executing") and waiting:
                stuck[address] = self.stuck_since.get(address, now)
        self.stuck_since = stuck
        late = sorted(a for a, t in stuck.items() if now - t > self.patience)
        if late:
            raise ClusterError(
                f"{what}: worker {', '.join(late)} has been paused at its memory limit "
                f"({_limits(workers[a] for a in late)}) for {self.patience:.0f} s with tasks of this job waiting on "
                "it, and no task of the job has finished since: give each worker more memory (--worker-memory), or use "
                "fewer rows per chunk (--input-chunks)"
            )

    def _check_empty(self, what: str, empty: bool, address: str) -> None:
        if not empty:
            self.empty_since = None
            return
        self.empty_since = self.empty_since or time.monotonic()
        if time.monotonic() - self.empty_since > self.alone:
            raise ClusterError(
                f"{what}: the Dask scheduler at {address} has had no worker for {self.alone:.0f} s, so nothing can "
                "run: start workers for it (dask worker ADDRESS), or run without --dask"
            )


def _limits(workers) -> str:
    from dask.utils import format_bytes

    return "/".join(format_bytes(m) for m in sorted({w.get("memory_limit") or 0 for w in workers}))


def row_chunked(x):
    """``x`` chunked along rows only, in equal chunks (the last may be shorter): Zarr chunks align with tasks."""
    if any(len(c) > 1 for c in x.chunks[1:]):
        x = x.rechunk({i: -1 for i in range(1, x.ndim)})
    rows = x.chunks[0]
    if any(c != rows[0] for c in rows[:-1]) or rows[-1] > rows[0]:
        x = x.rechunk({0: max(rows)})
    return x


def row_blocks(X) -> tuple[list, list]:
    """The row blocks of ``X`` (a Dask array or store; delayed NumPy arrays) and their ``(lo, hi)``."""
    X = row_chunked(X.array() if isinstance(X, Stored) else X)
    blocks = list(X.to_delayed().reshape(-1))
    edges = np.cumsum((0,) + X.chunks[0])
    return blocks, [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def _flat(block) -> np.ndarray:
    block = np.asarray(block)
    return block.reshape(len(block), -1)


def _apply(fn, block):
    return fn(_flat(block))


# -- the generic operations, for Dask arrays --------------------------------------------------------------------------


@backends.take_rows.register(da.Array)
def _take_rows(X, index) -> np.ndarray:
    index = np.asarray(index, dtype=np.int64)
    blocks, bounds = row_blocks(X)
    parts = []
    for block, (lo, hi) in zip(blocks, bounds):
        a, b = np.searchsorted(index, [lo, hi])
        if b > a:
            parts.append(dask.delayed(_select, pure=False)(block, index[a:b] - lo))
    if not parts:
        return np.empty((0, int(np.prod(X.shape[1:], dtype=np.int64))), dtype=X.dtype)
    client = current_client()
    rows = client.gather(client.compute(parts)) if client is not None else dask.compute(*parts, scheduler="threads")
    return np.concatenate(rows)


def _select(block, local):
    return _flat(block)[local]


@backends.chunk_bounds.register(da.Array)
def _chunk_bounds(X, chunk_rows=None) -> list:
    return row_blocks(X)[1]


@backends.map_chunks.register(da.Array)
def _map_chunks(fn, X, chunk_rows=None, progress=None, stage: str = "") -> list:
    blocks, bounds = row_blocks(X)
    tasks = [dask.delayed(_apply, pure=False)(fn, block) for block in blocks]
    return run(tasks, bounds, progress=progress, stage=stage, what=stage or "a Dask job")


@backends.reduce_chunks.register(da.Array)
def _reduce_chunks(fn, combine, X, chunk_rows=None, progress=None, stage: str = ""):
    blocks, bounds = row_blocks(X)
    leaves = [dask.delayed(_apply, pure=False)(fn, block) for block in blocks]
    level, nodes = leaves, []
    while len(level) > 1:  # pairwise, in chunk order: a tree of depth log2(chunks)
        nxt = [dask.delayed(combine, pure=False)(a, b) for a, b in zip(level[::2], level[1::2])]
        level = nxt + ([level[-1]] if len(level) % 2 else [])
        nodes += nxt
    # every node is asked for: cancelling a task cancels its dependents, which must be wanted by the client
    results = run(leaves, bounds, progress=progress, stage=stage, what=stage or "a Dask job", wait=nodes)
    return results[-1]  # the root, the last node made (or the only leaf)


@backends.fingerprint.register(da.Array)
def _fingerprint(X) -> str:
    return f"dask:{X.name}:{X.shape}:{X.dtype.str}"


backends.is_chunked.register(da.Array, lambda X: True)


def fold_chunks(step, X, *, progress: ProgressFn | None = None, stage: str = "", minimum_rows: int = 1):
    """``state = step(state, rows)`` over the chunks of ``X`` in order (``state`` is None at first), as a chain of
    tasks; a last chunk shorter than ``minimum_rows`` joins the previous one. Returns the final state."""
    blocks, bounds = row_blocks(X)
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < minimum_rows:
        blocks = blocks[:-2] + [dask.delayed(np.concatenate, pure=False)([blocks[-2], blocks[-1]])]
        bounds = bounds[:-2] + [(bounds[-2][0], bounds[-1][1])]
    state, chain = None, []
    for block in blocks:
        state = dask.delayed(_fold, pure=False)(step, state, block)
        chain.append(state)
    return run(chain, bounds, progress=progress, stage=stage, what=stage or "a Dask job")[-1]


def _fold(step, state, block):
    return step(state, _flat(block))
