"""Input checks of the reducers and inverse maps.

They raise the typed errors of :mod:`engine.errors`: :class:`~engine.errors.ReducerValueError` and
:class:`~engine.errors.ReducerNotFittedError` are :class:`~engine.errors.ReducerError` (so the CLI and the dashboard
show their message) *and* the exception scikit-learn expects in the same place (``ValueError``, ``NotFittedError``),
so our estimators behave like scikit-learn's for code written against scikit-learn.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from engine.errors import ReducerNotFittedError, ReducerValueError

__all__ = [
    "check_fitted",
    "check_int",
    "check_query",
]


def check_fitted(estimator, attributes: str | list[str] | None = None) -> None:
    """Raise :class:`ReducerNotFittedError` unless ``estimator`` is fitted.

    Parameters
    ----------
    estimator : estimator instance
    attributes : str or list of str, optional
        Fitted attributes to look for; by default any attribute ending in ``_``.

    Raises
    ------
    ReducerNotFittedError
        Naming the estimator and what to call first.
    """
    try:
        check_is_fitted(estimator, attributes)
    except NotFittedError as exc:
        raise ReducerNotFittedError(
            f"This {type(estimator).__name__} is not fitted yet: call fit(...) before using it."
        ) from exc


def check_int(value, name: str, *, minimum: int = 1, owner: str = "") -> int:
    """Return ``value`` as an int >= ``minimum`` or raise :class:`ReducerValueError` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        where = f"{owner}: " if owner else ""
        raise ReducerValueError(f"{where}{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_query(Y, n_features: int, owner: str):
    """Validate a batch of query points cheaply (hot path of every inverse map).

    Accepts NumPy arrays, anything ``np.asarray`` understands, and CuPy arrays (kept on the device).
    Returns a float32 C-contiguous 2-D array in the same array namespace.

    Raises
    ------
    ReducerValueError
        If the array is not 2-D with ``n_features`` columns, or holds NaN/inf.
    """
    from engine.backends.cupy import get_namespace

    xp = get_namespace(Y)
    if xp is np and not isinstance(Y, np.ndarray):
        if hasattr(Y, "toarray") or type(Y).__module__.startswith("scipy.sparse"):
            raise TypeError(f"{owner} does not accept sparse input; pass a dense (k, {n_features}) array.")
        Y = np.asarray(Y)
    if Y.dtype.kind not in "fiub":
        try:
            Y = Y.astype(np.float32)
        except (TypeError, ValueError) as exc:
            raise ReducerValueError(f"{owner} expects numeric query points, got dtype {Y.dtype}: {exc}") from None
    Y = xp.ascontiguousarray(Y, dtype=xp.float32)
    if Y.ndim != 2:
        raise ReducerValueError(
            f"{owner} expects a 2-D array of shape (k, {n_features}), got shape {tuple(Y.shape)}. "
            "Reshape your data: a single point is Y.reshape(1, -1)."
        )
    if Y.shape[1] != n_features:
        raise ReducerValueError(
            f"X has {Y.shape[1]} features, but {owner} is expecting {n_features} features as input: it was "
            f"fitted on {n_features}-D points and got shape {tuple(Y.shape)}."
        )
    if Y.shape[0] == 0:
        raise ReducerValueError(f"{owner} got 0 query points (shape {tuple(Y.shape)}); pass at least one.")
    if not bool(xp.isfinite(Y).all()):
        raise ReducerValueError(f"{owner} got query points containing NaN or infinity.")
    return Y
