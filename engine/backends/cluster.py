"""Where Dask work runs: worker processes on this machine, an existing scheduler, or one worker per GPU.

We do not build our own distribution: the out-of-core stages (:mod:`engine.backends.dask`) are Dask task graphs, run by
a :class:`distributed.Client`. :func:`connect` turns the ``--dask ADDRESS`` of the command line into one::

    with connect("local:2") as client:            # distributed.LocalCluster: 2 worker processes on 127.0.0.1
        ...
    with connect("tcp://10.0.0.5:8786") as client:  # a scheduler started elsewhere (`dask scheduler`)
        ...
    with connect("cuda") as client:               # dask_cuda.LocalCUDACluster: one worker process per GPU
        ...

A local cluster runs one thread per worker process: each worker holds its own TensorFlow runtime and its own copy
of the model (TensorFlow releases the GIL, but two threads in one process would share one intra-op thread pool), so
parallelism comes from processes. Clusters started here bind 127.0.0.1 and have no dashboard unless asked; they
are closed when the ``with`` block ends. ``distributed`` and ``dask_cuda`` are imported on use, never at import of
the engine.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass

from engine.errors import ClusterError  # noqa: F401 (raised here; part of this module's API)

__all__ = ["ClusterError", "ClusterSpec", "connect", "describe", "parse_address"]

#: Smallest memory limit accepted for a worker: TensorFlow alone takes about 750 MiB of it.
MIN_WORKER_MEMORY = 768 * 2**20

_LOCAL = re.compile(r"^(local|cuda)(?::(\d+))?$")
_TCP = re.compile(r"^(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class ClusterSpec:
    """A parsed ``--dask`` address.

    Attributes
    ----------
    kind : {"local", "scheduler", "cuda"}
    n_workers : int or None
        Worker processes of a local cluster (``None``: one per core), or GPUs of a CUDA cluster (``None``: all).
    address : str or None
        The scheduler's address for ``kind == "scheduler"``.
    """

    kind: str
    n_workers: int | None = None
    address: str | None = None


def parse_address(text: str) -> ClusterSpec:
    """Parse ``local``, ``local:N``, ``cuda``, ``cuda:N`` or ``tcp://HOST:PORT`` (also ``tls://``).

    Parameters
    ----------
    text : str

    Returns
    -------
    ClusterSpec

    Raises
    ------
    ClusterError
        Any other text, or ``N < 1``, or a port outside 1..65535.

    Examples
    --------
    >>> parse_address("local:2")
    ClusterSpec(kind='local', n_workers=2, address=None)
    >>> parse_address("tcp://127.0.0.1:8786").address
    'tcp://127.0.0.1:8786'
    """
    value = str(text).strip()
    hint = "expected local, local:N, cuda, cuda:N or tcp://HOST:PORT (a running `dask scheduler`)"
    m = _LOCAL.match(value)
    if m:
        n = int(m.group(2)) if m.group(2) is not None else None
        if n is not None and n < 1:
            raise ClusterError(f"--dask {value!r}: the number of workers must be at least 1; {hint}")
        return ClusterSpec(m.group(1), n)
    m = _TCP.match(value)
    if m:
        if not 1 <= int(m.group(3)) <= 65535:
            raise ClusterError(f"--dask {value!r}: port {m.group(3)} is outside 1..65535")
        return ClusterSpec("scheduler", None, value)
    raise ClusterError(f"--dask {value!r}: not a cluster address; {hint}")


def _memory_limit(value):
    """``"auto"``, ``None``/``0`` (no limit), a number of bytes or a size such as ``"2GiB"``, checked."""
    if value in (None, 0, "auto"):
        return value
    from dask.utils import parse_bytes

    try:
        size = parse_bytes(value) if isinstance(value, str) else int(value)
    except (ValueError, TypeError):
        size = -1
    if size <= 0:
        raise ClusterError(f"worker memory limit {value!r}: expected a size such as '2GiB', a number of bytes, "
                           "or 'auto'")
    if size < MIN_WORKER_MEMORY:
        raise ClusterError(f"worker memory limit {value!r} is below {MIN_WORKER_MEMORY // 2**20} MiB: a worker holds "
                           "TensorFlow and the model (about 750 MiB) besides its chunk; give it at least 1GiB")
    return size


@contextmanager
def connect(address, *, memory_limit="auto", threads_per_worker: int = 1, dashboard: bool = False,
            timeout: float = 60, scheduler_options: dict | None = None):
    """A :class:`distributed.Client` for ``address``; a cluster started here is closed on exit.

    Parameters
    ----------
    address : str or ClusterSpec
        See :func:`parse_address`.
    memory_limit : str, int or "auto", default="auto"
        Per worker of a cluster started here (``"auto"``: the machine's memory divided among the workers). The
        nanny pauses a worker at 80 % and restarts it at 95 %; a worker must hold TensorFlow and the model (about
        750 MiB for TensorFlow 2.20 on CPU) plus one chunk in flight.
    threads_per_worker : int, default=1
    dashboard : bool, default=False
        Serve the Dask dashboard of a local cluster on 127.0.0.1, on a free port (``client.dashboard_link``).
    timeout : float, default=60
        Seconds to reach a remote scheduler and to wait for its first worker.
    scheduler_options : dict, optional
        Keyword arguments of :class:`distributed.Scheduler` for a cluster started here (e.g.
        ``{"allowed_failures": 1}``: how many worker deaths a task may cause before it fails).

    Yields
    ------
    distributed.Client

    Raises
    ------
    ClusterError
        Bad address or memory limit; a scheduler that cannot be reached or has no worker; ``cuda`` without
        dask-cuda or without a GPU.

    Example
    -------
    >>> with connect("local:2", memory_limit="2GiB") as client:   # doctest: +SKIP
    ...     stored = propagate_project(client, project, "bottleneck")
    """
    spec = address if isinstance(address, ClusterSpec) else parse_address(address)
    limit = _memory_limit(memory_limit)
    if not isinstance(threads_per_worker, int) or threads_per_worker < 1:
        raise ClusterError(f"threads_per_worker must be a positive integer, got {threads_per_worker!r}")
    from distributed import Client

    if spec.kind == "scheduler":
        try:
            client = Client(spec.address, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {spec.address} ({type(exc).__name__}: {exc}); start one with "
                "`dask scheduler` and workers with `dask worker ADDRESS`, or use --dask local:N"
            ) from None
        try:
            try:
                client.wait_for_workers(1, timeout=timeout)
            except TimeoutError:
                raise ClusterError(f"the Dask scheduler at {spec.address} has no worker after {timeout:g} s; "
                                   f"start some with `dask worker {spec.address}`") from None
            yield client
        finally:
            client.close()
        return

    common = dict(threads_per_worker=threads_per_worker, memory_limit=limit, host="127.0.0.1",
                  dashboard_address="127.0.0.1:0" if dashboard else None, scheduler_kwargs=scheduler_options)
    if spec.kind == "cuda":
        cluster = _cuda_cluster(spec, common)
    else:
        from distributed import LocalCluster

        n = spec.n_workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, processes=True, **common)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        # TensorFlow's threads can keep a worker from exiting within the nanny's 4 s; it is then killed, which is
        # what closing asks for: no warning about it
        nanny_log = logging.getLogger("distributed.nanny")
        level = nanny_log.level
        nanny_log.setLevel(logging.ERROR)
        try:
            cluster.close()
        finally:
            nanny_log.setLevel(level)


def _cuda_cluster(spec: ClusterSpec, common: dict):
    """``dask_cuda.LocalCUDACluster`` with one worker per visible GPU (the first ``n_workers`` of them)."""
    try:
        from dask_cuda import LocalCUDACluster
        from dask_cuda.utils import get_n_gpus
    except Exception as exc:  # a missing package, or a broken CUDA install that fails at import
        raise ClusterError(
            f"--dask cuda needs dask-cuda ({type(exc).__name__}: {exc}); install the GPU extra with "
            "`pip install latent-inspector[gpu]`, or use --dask local:N on the CPU"
        ) from None
    try:
        n_gpus = int(get_n_gpus())
    except Exception:  # no driver, no NVML
        n_gpus = 0
    if n_gpus < 1:
        raise ClusterError("--dask cuda: no CUDA device is visible on this machine (check nvidia-smi and "
                           "CUDA_VISIBLE_DEVICES); use --dask local:N on the CPU")
    if spec.n_workers is not None and spec.n_workers > n_gpus:
        raise ClusterError(f"--dask cuda:{spec.n_workers}: only {n_gpus} GPU(s) visible; one worker runs per GPU")
    return LocalCUDACluster(n_workers=spec.n_workers or n_gpus, **common)


def describe(client) -> str:
    """One line about the cluster behind ``client``: scheduler, workers, threads and memory per worker.

    Example
    -------
    >>> describe(client)   # doctest: +SKIP
    'tcp://127.0.0.1:40123: 2 workers, 1 thread and 2.00 GiB each'
    """
    from dask.utils import format_bytes

    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    threads = sorted({w["nthreads"] for w in workers})
    memory = sorted({w["memory_limit"] for w in workers})
    each = f"{'/'.join(map(str, threads))} thread{'s' if threads != [1] else ''}"
    if memory and memory[0]:
        each += " and " + "/".join(format_bytes(m) for m in memory)
    return f"{client.scheduler.address}: {len(workers)} worker{'s' if len(workers) != 1 else ''}, {each} each"
