"""Typed errors of the engine.

Every error a user can cause (a bad file, a bad manifest, a layer that does not exist, a cut that a skip
connection crosses) is raised as a subclass of :class:`InspectorError` whose message names the file, layer or
value at fault and says what was expected. The CLI prints the message on one line and exits with status 2; the
dashboard shows it in an alert. Anything else is a bug and keeps its traceback.
"""


class InspectorError(Exception):
    """Base class of user-facing errors: the message names what was wrong and what was expected."""


class DataError(InspectorError):
    """A data file is unreadable or malformed (truncated, ragged, non-numeric, NaN/inf, wrong length)."""


class ProjectError(InspectorError):
    """A project folder or its ``project.toml`` is missing something or holds a value of the wrong type."""


class ModelError(InspectorError):
    """A model cannot be loaded, needs explicit trust, or does not accept the project's inputs."""


class CutError(ModelError):
    """The model cannot be split at the requested layer; the message names the tensor that crosses the cut."""


class ReducerError(InspectorError):
    """A reducer or inverse map was given bad parameters, failed to fit, or was used before fitting."""


class ProbeUnavailable(InspectorError):
    """A probe classifier cannot be trained: the project has no labels, one class only, or a class too rare to
    stratify; the message says which and what to add."""


class UnitError(InspectorError):
    """A unit, layer or objective that the model does not have; the message names the layer and the valid range."""


class ClusterError(InspectorError):
    """A Dask cluster cannot be started or reached, lacks a worker or a package, or lost workers mid-run."""
