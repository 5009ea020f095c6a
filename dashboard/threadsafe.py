"""Editing constant parameters from several threads at once, made safe.

Param's ``edit_constant`` and HoloViews' ``disable_constant`` let code assign a ``constant`` parameter: they set
``constant=False`` on the object's Parameter objects, run the body, and put the old flags back. Until an object has
instance copies of its parameters, those Parameter objects are the **class's**, shared by every instance in the
process. HoloViews does it on every ``DynamicMap.clone`` (``.opts()`` on a DynamicMap clones it), every stream update,
and Param on every reference it resolves.

Panel runs session callbacks on a pool of threads (``pn.config.nthreads``). Two threads in those context managers at
once break each other: one puts ``constant=True`` back while the other is still assigning (``TypeError: Constant
parameter 'callback' cannot be modified``, seen in a refinement's redraw), or one records the other's ``False`` as
the original and leaves the class's parameter editable for good.

:func:`install` replaces both context managers with ones that count their holders per Parameter object: the first
holder saves the flag and clears it, the last one puts it back. The lock is held only around the counting, never
around the body, so no callback can wait on it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_lock = threading.Lock()
_held: dict[int, list] = {}  # id(Parameter) -> [Parameter, holders, its `constant` before the first holder]


def _parameters(parameterized):
    """The Parameter objects an assignment to ``parameterized`` may check: the class's, and the instance's own."""
    params = list(parameterized.param.objects(instance=False).values())
    if not isinstance(parameterized, type):
        params += list(parameterized._param__private.params.values())
    return params


def _release(params):
    originals = {}
    for p in params:
        entry = _held[id(p)]
        entry[1] -= 1
        originals[p.name] = entry[2]
        if entry[1] == 0:
            p.constant = entry[2]
            del _held[id(p)]
    return originals


@contextmanager
def _constant_disabled(parameterized, reset_copies: bool):
    with _lock:
        params = _parameters(parameterized)
        for p in params:
            entry = _held.get(id(p))
            if entry is None:
                _held[id(p)] = [p, 1, p.constant]
                p.constant = False
            else:
                entry[1] += 1
    try:
        yield
    finally:
        with _lock:
            originals = _release(params)
            if reset_copies and not isinstance(parameterized, type):
                seen = {id(p) for p in params}  # copies made in the body took the cleared flag: the old one back
                for name, p in parameterized._param__private.params.items():
                    if id(p) not in seen and id(p) not in _held and name in originals:
                        p.constant = originals[name]


def edit_constant(parameterized):
    """Param's ``edit_constant``, safe while other threads do the same: the body may assign ``parameterized``'s
    constant parameters; afterwards they are constant again, copies the body made included."""
    return _constant_disabled(parameterized, reset_copies=True)


def disable_constant(parameterized):
    """HoloViews' ``disable_constant``, safe while other threads do the same.

    As in HoloViews, an instance copy of a parameter made in the body keeps ``constant=False``: HoloViews relies on
    it (``DynamicMap.opts`` assigns the callback of a clone made just before, under its original's block).
    """
    return _constant_disabled(parameterized, reset_copies=False)


def install():
    """Use :func:`edit_constant` and :func:`disable_constant` wherever Param, HoloViews and Panel look them up."""
    import holoviews.core.util
    import holoviews.plotting.util
    import panel.param
    import param
    import param.parameterized

    holoviews.core.util.disable_constant = disable_constant
    holoviews.plotting.util.disable_constant = disable_constant  # imported by name there
    param.parameterized.edit_constant = edit_constant  # Param's own reference resolution looks it up here
    param.edit_constant = edit_constant
    panel.param.edit_constant = edit_constant  # imported by name there
