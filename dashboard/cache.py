"""Inspections shared by every session of the process.

Building an :class:`engine.inspection.Inspection` propagates the dataset and fits a reducer and an inverse map:
seconds to minutes. The result depends only on the request (project, model version, layer, reducer, inverse map,
parameters), never on who asked, so one process keeps the last few and hands the same object to every session.
Two sessions asking for the same request at once compute it once: the second waits on the first's lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    """What to inspect: everything an :class:`~engine.inspection.Inspection` depends on."""

    root: str  # the projects root the name is resolved in
    project: str
    layer: str
    method: str = "pca"
    inverse: str = "auto"
    params: tuple = field(default_factory=tuple)  # sorted (name, value) pairs of the reducer's parameters
    model: str = ""  # a fine-tuned version's file, relative to the project folder; "" for the project's own model

    @classmethod
    def make(cls, project, layer, method="pca", inverse="auto", params=None, root=None, model=""):
        from engine.project import projects_root

        root = str(root if root is not None else projects_root())
        return cls(root, project, layer, method, inverse, tuple(sorted((params or {}).items())), str(model or ""))


class InspectionCache:
    """A small least-recently-used store of built inspections, one lock per request.

    At most ``max_items`` inspections are kept, and locks only for those and the builds under way: a process that
    serves many sessions for days holds no more. A build that raises stores nothing.

    Parameters
    ----------
    build : callable(Request, progress) -> Inspection
    max_items : int
        Inspections kept; each holds its activations (memory-mapped) and embedding.
    """

    def __init__(self, build, max_items: int = 6):
        self._build = build
        self.max_items = max_items
        self._items: OrderedDict[Request, object] = OrderedDict()
        self._locks: dict[Request, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, request: Request, progress=None):
        """The inspection for ``request``, built now (calling ``progress``) unless cached."""
        with self._guard:
            lock = self._locks.setdefault(request, threading.Lock())
        with lock:
            with self._guard:
                if request in self._items:
                    self._items.move_to_end(request)
                    return self._items[request]
            try:
                value = self._build(request, progress)
            except BaseException:
                # nothing is stored for a build that failed halfway; its lock goes too (one per failed request
                # would pile up), and the next request for it builds it afresh
                with self._guard:
                    if self._locks.get(request) is lock:
                        del self._locks[request]
                raise
            with self._guard:
                self._items[request] = value
                while len(self._items) > self.max_items:
                    old, _ = self._items.popitem(last=False)
                    self._locks.pop(old, None)
            return value

    def peek(self, request: Request):
        """The cached inspection for ``request`` or None, without building it."""
        with self._guard:
            return self._items.get(request)

    def __len__(self) -> int:
        with self._guard:
            return len(self._items)

    def clear(self):
        """Forget every inspection (sessions showing one keep it until they move on)."""
        with self._guard:
            self._items.clear()
            self._locks.clear()
