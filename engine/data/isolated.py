"""Checking an uploaded project in a process of its own: a model file that asks for more memory than an upload may
use, or that crashes its framework's loader, ends that process, never the server that every session shares.

The parent (:func:`check_isolated`, called by :func:`engine.data.upload.create_project`) starts
``python -m engine.data.isolated --memory BYTES ROOT NAME`` and waits at most ``seconds``. The child first limits its
own address space (``RLIMIT_AS``; set by the child itself, since a ``preexec_fn`` is unsafe in a server with
threads), then loads the project as any project is loaded (never trusted: the manifest an upload writes says so),
runs :func:`engine.data.checkup.check_project` (the model loads, the data fits it, one batch runs through it) and
writes one line: the findings, or the engine's error. A child that runs out of memory, is killed, or takes too long
is a :class:`~engine.errors.ModelError` saying which limit was hit.

The limits: :func:`engine.settings.upload_memory` (``LATENT_INSPECTOR_UPLOAD_MEMORY_GB``, default 8 GiB) and
:func:`engine.settings.upload_check_seconds` (``LATENT_INSPECTOR_UPLOAD_CHECK_S``, default 300 s).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from engine import errors
from engine.data.checkup import Finding
from engine.errors import InspectorError, ModelError

__all__ = ["check_isolated"]

#: The child's answer is the stdout line that starts with this (frameworks may print lines of their own).
MARK = "LATENT-INSPECTOR-CHECK "
#: What a framework's error says when the address space ran out (a library that could not be mapped, an allocation
#: refused), in lower case.
OUT_OF_MEMORY = ("memory", "resourceexhausted", "bad_alloc", "failed to map segment", "cannot allocate")
#: The folder holding the ``engine`` package: the child imports it from there, installed or not.
_SOURCE = Path(__file__).resolve().parent.parent.parent


def _format(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_isolated(name: str, root, *, memory: int | None = None, seconds: float | None = None) -> list[Finding]:
    """Check project ``name`` of ``root`` in a separate process limited to ``memory`` bytes of address space and
    ``seconds`` of time; the findings of :func:`~engine.data.checkup.check_project`.

    Raises
    ------
    InspectorError
        The error the child met loading the project (a :class:`~engine.errors.ModelError` for a model that does not
        load, a :class:`~engine.errors.DataError` for data that does not fit...), with its own text.
    ModelError
        The child ran out of memory, died, or took longer than ``seconds``.

    Example
    -------
    >>> [f.level for f in check_isolated("mnist", projects_root())]       # doctest: +SKIP
    ['ok', 'ok', 'ok', 'ok', 'info', 'ok']
    """
    from engine.settings import upload_check_seconds, upload_memory

    memory = int(memory if memory is not None else upload_memory())
    seconds = float(seconds if seconds is not None else upload_check_seconds())
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_SOURCE), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "engine.data.isolated", "--memory", str(memory), str(root), name]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ModelError(f"loading the model and running a batch through it took longer than {seconds:.0f} s (the "
                         "most an upload's check may take, LATENT_INSPECTOR_UPLOAD_CHECK_S)") from None
    answer = next((line[len(MARK):] for line in reversed(done.stdout.splitlines()) if line.startswith(MARK)), None)
    if answer is None:
        if done.returncode < 0:
            try:
                how = f"was ended by {signal.Signals(-done.returncode).name}"
            except ValueError:
                how = f"was ended by signal {-done.returncode}"
        else:
            how = f"ended with exit code {done.returncode}"
        raise ModelError(f"the process that loads the model {how} before it could say why: a model that needs more "
                         f"than the {_format(memory)} of memory an upload's check may use "
                         "(LATENT_INSPECTOR_UPLOAD_MEMORY_GB), or a file its framework's loader cannot read")
    found = json.loads(answer)
    if "findings" in found:
        return [Finding(*f) for f in found["findings"]]
    if found.get("kind") == "memory":
        raise ModelError(f"loading the model and running a batch through it needs more than the {_format(memory)} of "
                         "memory an upload's check may use (LATENT_INSPECTOR_UPLOAD_MEMORY_GB)")
    kind = getattr(errors, str(found.get("kind")), None)
    if isinstance(kind, type) and issubclass(kind, InspectorError):
        try:
            raise kind(found["error"])
        except TypeError:  # an error class that takes more than its text
            pass
    raise ModelError(found["error"])


def _child(argv: list[str]) -> int:
    import argparse
    import resource

    parser = argparse.ArgumentParser(prog="python -m engine.data.isolated")
    parser.add_argument("--memory", type=int, required=True)
    parser.add_argument("root")
    parser.add_argument("name")
    args = parser.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_AS, (args.memory, args.memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def say(answer: dict) -> int:
        sys.stdout.write(MARK + json.dumps(answer) + "\n")
        sys.stdout.flush()
        return 0

    try:
        from engine.data.checkup import check_project
        from engine.data.project import load_project

        findings = check_project(load_project(args.name, args.root))
        return say({"findings": [[f.level, f.topic, f.text] for f in findings]})
    except MemoryError:
        return say({"kind": "memory", "error": "out of memory"})
    except InspectorError as exc:
        return say({"kind": type(exc).__name__, "error": str(exc)})
    except Exception as exc:  # a framework's own error (TensorFlow's ResourceExhaustedError...): its words
        text = f"{type(exc).__name__}: {exc}"
        if any(sign in text.lower() for sign in OUT_OF_MEMORY):
            return say({"kind": "memory", "error": text})
        return say({"kind": "ModelError", "error": f"the model could not be loaded and run: {text[:2000]}"})


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
