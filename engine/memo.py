"""Remembering results: one bounded, thread-safe memo, and results that belong to an object's lifetime.

What depends on one inspection is a ``cached_property`` of it; what depends on one object that the engine does not
own (a loaded Keras model, an activation array) is kept in an :class:`ObjectMemo`, which holds the object weakly and
forgets its results when the object goes. The few process-wide memos (loaded model files, a data file's input range)
are :class:`Memo` instances, each bounded and named where it is defined.

Both build a missing value once: a second caller asking for the same key while it is being built waits for the first
and gets the same object. A build that raises stores nothing, so the next call tries again.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from contextlib import contextmanager
from typing import Any

__all__ = ["KeyedLocks", "Memo", "ObjectMemo"]


class KeyedLocks:
    """One lock per key, held only while someone uses it: ``with locks(key): ...``.

    Unlike a dictionary of locks, nothing is left behind for keys no longer in use, so a server that sees many keys
    over days holds no more than the keys in use at once.
    """

    def __init__(self):
        self._guard = threading.Lock()
        self._locks: dict[Hashable, list] = {}  # key -> [lock, users]

    @contextmanager
    def __call__(self, key: Hashable):
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0 and self._locks.get(key) is entry:
                    del self._locks[key]

    def keys(self) -> list:
        """The keys in use now."""
        with self._guard:
            return list(self._locks)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


class Memo:
    """At most ``max_items`` results, the least recently used dropped first; each built once per key.

    Parameters
    ----------
    max_items : int
        Results kept (at least 1).
    name : str
        What the memo holds, for ``repr``.

    Example
    -------
    >>> squares = Memo(max_items=2, name="squares")
    >>> squares.get(3, lambda: 9), squares.get(3, lambda: 0), len(squares)
    (9, 9, 1)
    """

    def __init__(self, max_items: int, name: str = ""):
        if not isinstance(max_items, int) or max_items < 1:
            raise ValueError(f"Memo: max_items must be a positive integer, got {max_items!r}")
        self.max_items = max_items
        self.name = name
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._guard = threading.Lock()
        self._building = KeyedLocks()

    def __repr__(self) -> str:
        return f"Memo({self.name!r}, {len(self)}/{self.max_items})"

    def get(self, key: Hashable, build: Callable[[], Any]):
        """The value for ``key``: remembered, or ``build()`` now (once, however many threads ask)."""
        with self._guard:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        with self._building(key):
            with self._guard:  # built by another thread while this one waited
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            value = build()
            self.put(key, value)
            return value

    def put(self, key: Hashable, value) -> None:
        """Remember ``value`` for ``key`` (the oldest entries go beyond ``max_items``)."""
        with self._guard:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def peek(self, key: Hashable, default=None):
        """The remembered value for ``key``, or ``default``; builds nothing and keeps the order."""
        with self._guard:
            return self._items.get(key, default)

    def recall(self, key: Hashable, default=None):
        """The remembered value for ``key`` (now the most recently used), or ``default``; builds nothing."""
        with self._guard:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def keys(self) -> list:
        """The remembered keys, least recently used first."""
        with self._guard:
            return list(self._items)

    @property
    def building(self) -> list:
        """The keys being built right now (none is left behind once a build ends, failed or not)."""
        return self._building.keys()

    def pop(self, key: Hashable, default=None):
        with self._guard:
            return self._items.pop(key, default)

    def clear(self) -> None:
        with self._guard:
            self._items.clear()

    def __contains__(self, key) -> bool:
        with self._guard:
            return key in self._items

    def __len__(self) -> int:
        with self._guard:
            return len(self._items)


class ObjectMemo:
    """Results computed from an object, kept while the object lives: a :class:`Memo` of ``max_items`` per object,
    held in a weak-keyed table, so the results go when the object does (and never keep it alive).

    Parameters
    ----------
    max_items : int
        Results kept per object.
    name : str

    Example
    -------
    >>> import numpy as np
    >>> norms = ObjectMemo(max_items=2, name="row norms")
    >>> X = np.ones((3, 2))
    >>> norms.get(X, "l2", lambda: np.linalg.norm(X, axis=1)).tolist()
    [1.4142135623730951, 1.4142135623730951, 1.4142135623730951]
    """

    def __init__(self, max_items: int, name: str = ""):
        self.max_items = max_items
        self.name = name
        # id(obj) -> (weak reference to obj, Memo): by identity, so unhashable objects (NumPy arrays) qualify too
        self._memos: dict[int, tuple[weakref.ref, Memo]] = {}
        self._guard = threading.Lock()

    def _forget(self, key: int, ref) -> None:
        with self._guard:
            if self._memos.get(key, (None,))[0] is ref:
                del self._memos[key]

    def _memo(self, obj, create: bool) -> Memo | None:
        key = id(obj)
        with self._guard:
            hit = self._memos.get(key)
            if hit is not None and hit[0]() is obj:
                return hit[1]
            if not create:
                return None
            ref = weakref.ref(obj)  # TypeError for objects that cannot be weakly referenced
            memo = Memo(self.max_items, self.name)
            self._memos[key] = (ref, memo)
        weakref.finalize(obj, self._forget, key, ref)
        return memo

    def get(self, obj, key: Hashable, build: Callable[[], Any]):
        """The value for ``(obj, key)``: remembered while ``obj`` lives, or ``build()`` now.

        An object that cannot be weakly referenced (a list) is not remembered: the value is built every time.
        """
        try:
            memo = self._memo(obj, create=True)
        except TypeError:
            return build()
        return memo.get(key, build)

    def peek(self, obj, key: Hashable, default=None):
        memo = self._memo(obj, create=False)
        return default if memo is None else memo.peek(key, default)

    def __len__(self) -> int:
        """Objects with remembered results."""
        with self._guard:
            return len(self._memos)
