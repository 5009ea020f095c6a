"""Typed errors of the engine.

Every error a user can cause (a bad file, a bad manifest, a layer that does not exist, a cut that a skip
connection crosses, a parameter out of range) is raised as a subclass of :class:`InspectorError` whose message names
the file, layer or value at fault and says what was expected. The CLI prints the message on one line and exits with
status 2; the dashboard shows it next to the control that asked. Anything else is a bug and keeps its traceback.

Where scikit-learn or the standard library expects an exception of its own in the same place (``ValueError`` for a
bad parameter, ``NotFittedError`` before ``fit``, ``ImportError`` for a missing optional package), the error is that
exception too, so code written against those conventions keeps working.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "ClusterError",
    "CutError",
    "DataError",
    "EditError",
    "InspectorError",
    "JobTimeout",
    "ModelError",
    "ProbeUnavailable",
    "ProjectError",
    "ReducerError",
    "ReducerNotFittedError",  # noqa: F822 (made on first use, see __getattr__)
    "ReducerValueError",
    "RenderError",
    "SelectionError",
    "StorageError",
    "UnitError",
    "UploadError",
    "UsageError",
]


class InspectorError(Exception):
    """Base class of user-facing errors: the message names what was wrong and what was expected."""


class Cancelled(InspectorError):
    """Work stopped because its result is no longer wanted (the view it was computed for has moved on)."""


class JobTimeout(InspectorError, TimeoutError):
    """Work ran past its time limit and was abandoned: its result, should it still come, is dropped; the message
    names the work, the limit and the setting that sets it."""


class DataError(InspectorError):
    """A data file or store is unreadable or malformed (truncated, ragged, non-numeric, NaN/inf, wrong length)."""


class ProjectError(InspectorError):
    """A project folder or its ``project.toml`` is missing something or holds a value of the wrong type."""


class ModelError(InspectorError):
    """A model cannot be loaded, needs explicit trust, or does not accept the project's inputs."""


class CutError(ModelError):
    """The model cannot be split at the requested layer; the message names the tensor that crosses the cut."""


class ReducerError(InspectorError):
    """A reducer or inverse map was given bad parameters, failed to fit, or was used before fitting."""


class ReducerValueError(ReducerError, ValueError):
    """A parameter or an input array of a reducer or inverse map has a wrong value or shape."""


def __getattr__(name):
    # ReducerNotFittedError is also scikit-learn's NotFittedError; scikit-learn takes seconds to import, so the class
    # is made on first use, not when the engine is imported.
    if name == "ReducerNotFittedError":
        from sklearn.exceptions import NotFittedError

        cls = type(name, (ReducerError, NotFittedError), {
            "__doc__": "A reducer or inverse map was used before ``fit``.", "__module__": __name__})
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class BackendUnavailableError(ReducerError, ImportError):
    """A GPU backend was asked for, but cuML/CuPy or a CUDA device is missing; the message gives the install hint."""


class RenderError(InspectorError, ValueError):
    """A picture cannot be drawn from what was given: an embedding or labels of the wrong shape, a category without
    a colour, an unknown scaling or compositor."""


class SelectionError(InspectorError, ValueError):
    """A selection of samples that does not fit the view: ids out of range or not whole numbers, a polygon or box of
    the wrong shape, two linked views of different samples, an id file of an unknown format."""


class EditError(InspectorError, ValueError):
    """A point, activation, control or neighbour query that does not fit the layer it is applied to."""


class ProbeUnavailable(InspectorError):
    """A probe classifier cannot be trained: the project has no labels, one class only, or a class too rare to
    stratify; the message says which and what to add."""


class StorageError(InspectorError, OSError):
    """A file could not be written for want of room or permission (the disk full, over quota, read-only); the
    message names the file and says what was kept. Also an ``OSError``, as the failed write was."""


class UnitError(InspectorError):
    """A unit, layer or objective that the model does not have; the message names the layer and the valid range."""


class UsageError(InspectorError):
    """A command line that does not fit together: a flag without the option it belongs to, a malformed value."""


class ClusterError(InspectorError):
    """A Dask cluster cannot be started or reached, lacks a worker or a package, or lost workers mid-run."""


# -- uploads (engine.data.upload) -------------------------------------------------------------------------------------
class UploadError(InspectorError):
    """Files sent to make a new project were refused: a bad or taken name, a file of the wrong kind or too large, an
    archive that would unpack to too much, or files that do not load as a project. ``field`` names what the user
    should change: ``"name"``, ``"model"``, ``"inputs"``, ``"labels"``, or None for the upload as a whole."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
# -- end uploads ------------------------------------------------------------------------------------------------------
