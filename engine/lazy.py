"""Re-exports resolved on first use, so that ``import engine`` loads neither TensorFlow, scikit-learn nor numba.

A package's ``__init__`` lists its public names and the submodule holding each; the submodule is imported when a
name is first read (PEP 562), and the name is then an ordinary attribute of the package::

    __getattr__, __dir__ = lazy_exports(__name__, {"load_project": "engine.data.project"})
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package``, resolving each of ``names`` from its module on first use."""

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(names) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
