"""Search the samples by what is known of them: label, predicted class, metadata.

The samples' table is the plot's table (``x``, ``y``, the categorical ``label``, the model's and the probe's
predicted classes when there are) beside the project's metadata (:meth:`engine.data.project.Project.metadata`),
one row per sample id: :func:`sample_table`. Each column has a kind (:func:`columns`):

* ``category``: a categorical column, booleans, or text of at most :data:`CATEGORY_LIMIT` distinct values;
* ``number``: integers and floats (NaN never matches);
* ``text``: any other text.

A condition is a column, an operator and a value (:class:`Condition`); :func:`match` gives the boolean mask of one,
:func:`match_all` of several combined with AND:

* ``equals``: the value (compared as text for a category or text column);
* ``one of``: any of a list of values;
* ``contains``: the text holds the value, ignoring case;
* ``range``: ``lo <= value <= hi`` (bounds in any order, None for an open end).

:func:`export_rows` writes the rows of some samples (their ids first) as CSV, atomically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.files import atomic_write
from engine.errors import SelectionError

__all__ = ["CATEGORY_LIMIT", "KINDS", "OPS", "Column", "Condition", "columns", "column_kind", "export_rows", "match",
           "match_all", "sample_table"]

#: The kinds of column.
KINDS = ("category", "number", "text")
#: The operators, and the kinds of column each applies to.
OPS = {"equals": KINDS, "one of": KINDS, "contains": ("category", "text"), "range": ("number",)}
#: Text columns with at most this many distinct values are categories (offered as a list to pick from).
CATEGORY_LIMIT = 50
#: Columns of the plot's table that are positions, not something to search by.
POSITIONS = ("x", "y")


@dataclass(frozen=True)
class Column:
    """A searchable column and what its values are.

    Attributes
    ----------
    name : str
    kind : {"category", "number", "text"}
    choices : tuple of str
        The values of a category, sorted as the column orders them (empty for other kinds).
    lo, hi : float or None
        The finite range of a number column (None for other kinds, or a column without a finite value).
    """

    name: str
    kind: str
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None


@dataclass(frozen=True)
class Condition:
    """One test of a column: ``column`` ``op`` ``value`` (see the module's operators)."""

    column: str
    op: str
    value: object

    def words(self) -> str:
        """The condition in words: ``label is one of 3, 5``, ``stroke_ink in 0.1 – 0.2``."""
        value = self.value
        if self.op == "range":
            lo, hi = value
            return f"{self.column} in {_num(lo)} – {_num(hi)}"
        if self.op == "one of":
            return f"{self.column} is one of {', '.join(map(str, value))}"
        if self.op == "contains":
            return f"{self.column} contains {value!r}"
        return f"{self.column} = {value}"


def _num(value) -> str:
    return "…" if value is None else f"{float(value):.4g}"


def sample_table(points, metadata=None):
    """The samples' table: the plot's table ``points`` and, beside it, the ``metadata`` columns (a metadata column
    named like a column of ``points`` is called ``NAME (metadata)``).

    Parameters
    ----------
    points : pandas.DataFrame
        One row per sample id (``Inspection.frame``, or the plot's table with prediction columns).
    metadata : pandas.DataFrame, optional
        As many rows, in the same order (:meth:`Project.metadata`).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    SelectionError
        The two tables hold different numbers of rows.

    Example
    -------
    >>> table = sample_table(insp.frame, insp.project.metadata())   # doctest: +SKIP
    """
    import pandas as pd

    if metadata is None or len(metadata.columns) == 0:
        return points
    if len(metadata) != len(points):
        raise SelectionError(f"the metadata holds {len(metadata):,} rows and the plot {len(points):,}; expected one "
                             "row per sample in both")
    names = {c: (f"{c} (metadata)" if c in points.columns else c) for c in metadata.columns}
    meta = metadata.rename(columns=names).set_axis(points.index)
    return pd.concat([points, meta], axis=1)


def column_kind(values) -> str:
    """The kind of a column (a pandas Series): ``category``, ``number`` or ``text``.

    Example
    -------
    >>> column_kind(pd.Series([0.5, 1.0])), column_kind(pd.Series(["a", "b", "a"]))   # doctest: +SKIP
    ('number', 'category')
    """
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or dtype.kind == "b":
        return "category"
    if dtype.kind in "iuf":
        return "number"
    return "category" if values.nunique(dropna=True) <= CATEGORY_LIMIT else "text"


def _describe(name: str, values) -> Column:
    import pandas as pd

    kind = column_kind(values)
    if kind == "category":
        if isinstance(values.dtype, pd.CategoricalDtype):
            choices = [str(c) for c in values.cat.categories]
        else:
            choices = sorted({str(v) for v in values.dropna().unique()})
        return Column(name, kind, tuple(choices))
    if kind == "number":
        finite = values.to_numpy(dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if not len(finite):
            return Column(name, kind)
        return Column(name, kind, lo=float(finite.min()), hi=float(finite.max()))
    return Column(name, kind)


def columns(frame, skip=POSITIONS) -> list[Column]:
    """The searchable columns of ``frame`` (every column but ``skip``), described.

    Example
    -------
    >>> [(c.name, c.kind) for c in columns(table)]             # doctest: +SKIP
    [('label', 'category'), ('digit_name', 'category'), ('stroke_ink', 'number'), ('split', 'category')]
    """
    return [_describe(str(name), frame[name]) for name in frame.columns if name not in skip]


def _text(values) -> np.ndarray:
    """The column as text (missing values as '')."""
    return np.array(["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values],
                    dtype=object)


def _category_mask(values, keep) -> np.ndarray:
    """Rows whose value, as text, satisfies ``keep(text)``: tested once per category for a categorical column."""
    import pandas as pd

    if isinstance(values.dtype, pd.CategoricalDtype):
        hits = np.array([bool(keep(str(c))) for c in values.cat.categories] + [False])
        return hits[values.cat.codes.to_numpy()]  # code -1 (missing) reads the last entry: False
    return np.fromiter((bool(keep(t)) if t else False for t in _text(values)), dtype=bool, count=len(values))


def _numbers(value, column: str, op: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SelectionError(f"{column} {op}: {value!r} is not a number") from None
    if math.isnan(number):
        raise SelectionError(f"{column} {op}: NaN is not a value to search for")
    return number


def match(frame, column: str, op: str, value) -> np.ndarray:
    """Boolean mask of the rows of ``frame`` where ``column`` ``op`` ``value`` holds.

    Parameters
    ----------
    frame : pandas.DataFrame
        The samples' table (:func:`sample_table`).
    column : str
    op : {"equals", "one of", "contains", "range"}
    value
        A value (``equals``), a list of values (``one of``), a text (``contains``), ``(lo, hi)`` (``range``, either
        end None for an open one).

    Returns
    -------
    numpy.ndarray of bool, shape (len(frame),)

    Raises
    ------
    SelectionError
        An unknown column or operator, an operator that does not apply to the column's kind, or a value of the
        wrong form (the message names the column and what was expected).

    Example
    -------
    >>> match(table, "label", "equals", "3").sum()                   # doctest: +SKIP
    1032
    >>> match(table, "stroke_ink", "range", (0.1, None)).sum()       # doctest: +SKIP
    8115
    """
    if column not in frame.columns:
        known = ", ".join(map(repr, [c for c in frame.columns if c not in POSITIONS]))
        raise SelectionError(f"no column {column!r} to search; the columns: {known}")
    if op not in OPS:
        raise SelectionError(f"unknown search operator {op!r}; expected one of {', '.join(map(repr, OPS))}")
    values = frame[column]
    kind = column_kind(values)
    if kind not in OPS[op]:
        raise SelectionError(f"{column!r} is a {kind} column: {op!r} applies to {' and '.join(OPS[op])} columns")
    if op == "range":
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise SelectionError(f"{column} range: expected (lo, hi), got {value!r}")
        lo, hi = (None if v is None else _numbers(v, column, op) for v in value)
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
        x = values.to_numpy(dtype=np.float64)
        mask = ~np.isnan(x)
        if lo is not None:
            mask &= x >= lo
        if hi is not None:
            mask &= x <= hi
        return mask
    if op == "one of":
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise SelectionError(f"{column} one of: expected a list of values, got {value!r}")
        wanted = list(value)
    else:
        wanted = [value]
    if kind == "number":
        targets = np.array([_numbers(v, column, op) for v in wanted], dtype=np.float64)
        return np.isin(values.to_numpy(dtype=np.float64), targets)
    if op == "contains":
        needle = str(value).casefold()
        return _category_mask(values, lambda text: needle in text.casefold())
    targets = {str(v) for v in wanted}
    return _category_mask(values, targets.__contains__)


def match_all(frame, conditions) -> np.ndarray:
    """Boolean mask of the rows where every condition holds (AND); every row for no condition.

    Parameters
    ----------
    frame : pandas.DataFrame
    conditions : iterable of Condition or (column, op, value)

    Example
    -------
    >>> both = [Condition("label", "equals", "3"), Condition("split", "equals", "test")]  # doctest: +SKIP
    >>> match_all(table, both).sum()                                    # doctest: +SKIP
    103
    """
    mask = np.ones(len(frame), dtype=bool)
    for condition in conditions:
        column, op, value = (condition.column, condition.op, condition.value) if isinstance(condition, Condition) \
            else condition
        mask &= match(frame, column, op, value)
    return mask


def export_rows(frame, ids, path) -> Path:
    """Write the rows of samples ``ids`` of ``frame`` (in the order given) as CSV, with their ``sample_id`` first,
    atomically.

    Parameters
    ----------
    frame : pandas.DataFrame
        The samples' table (:func:`sample_table`).
    ids : array-like of int
    path : str or Path

    Returns
    -------
    Path

    Raises
    ------
    SelectionError
        Ids that are not whole numbers or lie outside the table (the message names the file and the range).

    Example
    -------
    >>> export_rows(table, [3, 17, 42], "selection.csv")           # doctest: +SKIP
    PosixPath('selection.csv')
    """
    from engine.explore.selection import _check_ids  # the ids' one check (export_ids's too)

    a = _check_ids(ids, len(frame), where=str(path))
    rows = frame.iloc[a].reset_index(drop=True)
    rows.insert(0, "sample_id", a)
    text = rows.to_csv(index=False, lineterminator="\n")
    return atomic_write(Path(path), lambda fh: fh.write(text.encode("utf-8")))
