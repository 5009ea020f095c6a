"""The examples in the docstrings of the engine and the dashboard run and give what they show.

An example that needs a model, a project or a server is marked ``# doctest: +SKIP``; the rest (the arithmetic of
scales, colours, progress, settings, validators) are checked here, so that a docstring cannot drift from the code it
documents. Each module is one test.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import dashboard
import engine


def _modules():
    for package in (engine, dashboard):
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            yield info.name


def _with_examples(name: str) -> bool:
    """Whether module ``name`` has a docstring example that is not skipped (found without importing it)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return False
    with open(spec.origin, encoding="utf-8") as f:
        text = f.read()
    return any(">>> " in line and "+SKIP" not in line for line in text.splitlines())


MODULES = sorted(name for name in _modules() if _with_examples(name))


def test_the_examples_are_found():
    assert {"engine.progress", "engine.render.landscape", "engine.reduce.verdict"} <= set(MODULES), MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False,
                             report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see above)"
