"""A project's metadata table: one row per sample, any columns (a split, a source, a measurement), to search by.

A project folder may hold ``metadata.csv`` or ``metadata.parquet`` (or name another file with ``metadata = "..."``
in its ``project.toml``): row ``i`` describes sample ``i`` of the inputs, in the same order. It is read once per
project (:meth:`engine.data.project.Project.metadata`) and checked here:

* one row per sample: another count is a :class:`~engine.errors.DataError` naming the file and both counts;
* CSV: UTF-8 text (a byte order mark is allowed), a header of distinct, non-empty names, then rows of exactly as
  many fields (a ragged row is refused, naming its line); a cell over :data:`MAX_CELL_CHARS` characters or a NUL
  byte (a binary file) is refused; blank lines are skipped;
* a column whose every non-empty cell is a number becomes numeric (an empty cell is NaN); any other column stays
  text, each value cut to :data:`MAX_TEXT` characters (what the dashboard shows and searches);
* Parquet: its footer checked first (the row count, the columns, and values that would unpack to more than
  :data:`MAX_CELL_BYTES` a cell on average: a compressed bomb), then read by pandas (pyarrow); nested values become
  their text, cut the same way.
* a table holding more rows than samples is refused at the first row too many, the rest of the file unread.

Errors are typed (:class:`~engine.errors.DataError`, :class:`~engine.errors.ProjectError`), never a parser's
traceback.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from engine.errors import DataError, ProjectError

__all__ = ["MAX_CELL_BYTES", "MAX_CELL_CHARS", "MAX_COLUMNS", "MAX_FILE_BYTES", "MAX_TEXT", "METADATA_FILES",
           "find_metadata", "read_metadata"]

#: The file names a project's metadata is found under when its manifest names none.
METADATA_FILES = ("metadata.csv", "metadata.parquet")
#: Characters of a text cell kept (longer values end in an ellipsis).
MAX_TEXT = 200
#: A CSV cell longer than this is refused (the csv module's own limit).
MAX_CELL_CHARS = csv.field_size_limit()
#: Columns at most.
MAX_COLUMNS = 512
#: A CSV file larger than this is refused (Parquet is the format for large tables).
MAX_FILE_BYTES = 512 * 2**20
#: A Parquet table whose values unpack to more than this many bytes a cell, on average, is refused before reading.
MAX_CELL_BYTES = 4096


def find_metadata(folder) -> Path | None:
    """The metadata file of the project ``folder`` (one of :data:`METADATA_FILES`), or None.

    Raises
    ------
    ProjectError
        Both files are there: which one to use must be said in ``project.toml``.

    Example
    -------
    >>> find_metadata("projects/mnist").name      # doctest: +SKIP
    'metadata.csv'
    """
    folder = Path(folder)
    found = [folder / name for name in METADATA_FILES if (folder / name).is_file()]
    if len(found) > 1:
        raise ProjectError(f"{folder}: several metadata files ({', '.join(p.name for p in found)}); name one with "
                           "metadata = \"...\" in project.toml")
    return found[0] if found else None


def read_metadata(path, n_samples: int):
    """Read and check a metadata table of ``n_samples`` rows.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` or ``.parquet`` file.
    n_samples : int
        The project's number of samples: the table must hold exactly one row per sample.

    Returns
    -------
    pandas.DataFrame
        ``n_samples`` rows (index 0..n-1, the sample ids), numeric columns as numbers, others as text cut to
        :data:`MAX_TEXT` characters (a missing value is NaN).

    Raises
    ------
    DataError
        Unreadable or not UTF-8, ragged rows, a huge cell, duplicate or empty column names, too many columns, or
        another number of rows than samples (the message names the file and what was found).

    Example
    -------
    >>> meta = read_metadata("projects/mnist/metadata.csv", 10_000)   # doctest: +SKIP
    >>> list(meta.columns)                                             # doctest: +SKIP
    ['digit_name', 'stroke_ink', 'split']
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = _read_csv(path, n_samples)
    elif suffix == ".parquet":
        frame = _read_parquet(path, n_samples)
    else:
        raise DataError(f"{path}: metadata must be a .csv or .parquet file, not {suffix or 'a file without suffix'!r}")
    if len(frame.columns) > MAX_COLUMNS:
        raise DataError(f"{path}: {len(frame.columns)} columns; metadata may hold at most {MAX_COLUMNS}")
    if len(frame) != n_samples:
        raise DataError(f"{path}: {len(frame):,} rows for {n_samples:,} samples; expected one row per sample, in "
                        "the order of the inputs")
    return frame.reset_index(drop=True)


def _too_many_rows(path: Path, where: str, n_samples: int) -> DataError:
    return DataError(f"{where}: more than {n_samples:,} rows for {n_samples:,} samples; expected one row per sample, "
                     "in the order of the inputs (the rest of the file is not read)")


def _read_csv(path: Path, n_samples: int):
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DataError(f"{path}: {size / 2**20:,.0f} MiB of CSV; metadata above {MAX_FILE_BYTES // 2**20} MiB "
                            "must be a .parquet file")
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: unreadable ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start:,}, line {line}: {raw[exc.start:exc.start + 1]!r}); "
                        "save the table as UTF-8") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(f"{path}, line {line}: a NUL byte; a binary file, not CSV text")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty; expected a header line naming the columns, then one row per sample")
        if len(header) > MAX_COLUMNS:
            raise DataError(f"{path}: {len(header)} columns; metadata may hold at most {MAX_COLUMNS}")
        names = _column_names(path, header)
        for row in reader:
            if not row:  # a blank line
                continue
            if len(rows) == n_samples:  # a row past the last sample: stop before holding a whole hostile file
                raise _too_many_rows(path, f"{path}, line {reader.line_num}", n_samples)
            if len(row) != len(names):
                raise DataError(f"{path}, line {reader.line_num}: {len(row)} fields; the header names {len(names)} "
                                "columns")
            rows.append(row)
    except csv.Error as exc:  # a NUL byte, a cell over the field limit, an unterminated quote
        raise DataError(f"{path}, line {reader.line_num}: not readable as CSV ({exc})") from None
    columns = list(zip(*rows)) if rows else [()] * len(names)
    import pandas as pd

    return pd.DataFrame({name: _column(values) for name, values in zip(names, columns)}, index=range(len(rows)))


def _column_names(path: Path, header: list[str]) -> list[str]:
    names = [name.strip() for name in header]
    for i, name in enumerate(names):
        if not name:
            raise DataError(f"{path}: column {i + 1} of the header has no name")
        if len(name) > MAX_TEXT:
            raise DataError(f"{path}: column {i + 1} has a name of {len(name):,} characters; at most {MAX_TEXT}")
    seen = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path}: two columns are named {name!r}; column names must differ")
        seen.add(name)
    return names


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _column(values):
    """Numbers when every non-empty cell is one (empty cells NaN), else text cut to :data:`MAX_TEXT`."""
    import pandas as pd

    cells = pd.Series(values, dtype=object)
    filled = cells.str.strip() != ""
    numbers = pd.to_numeric(cells.where(filled, None), errors="coerce")
    if filled.any() and numbers[filled].notna().all():
        whole = numbers.notna().all() and np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers))
        return numbers.astype(np.int64) if whole and np.abs(numbers).max() < 2**53 else numbers.astype(np.float64)
    return cells.where(filled, None).map(lambda v: None if v is None else _cut(v))


def _read_parquet(path: Path, n_samples: int):
    import pandas as pd

    _check_parquet_size(path, n_samples)
    try:
        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise ImportError(f"{path}: reading Parquet needs pyarrow ({exc}); pip install pyarrow") from None
    except Exception as exc:  # ArrowInvalid, OSError, ...: a damaged or foreign file
        raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    names = [str(c) for c in frame.columns]
    frame.columns = _column_names(path, names)
    for name in frame.columns:
        column = frame[name]
        if column.dtype.kind in "biuf":
            continue
        frame[name] = column.map(lambda v: None if _missing(v) else _cut(str(v))).astype(object)
    return frame


def _check_parquet_size(path: Path, n_samples: int) -> None:
    """Refuse, from the file's footer alone, a Parquet table of another number of rows than samples, of too many
    columns, or whose values unpack to more than :data:`MAX_CELL_BYTES` a cell on average: Parquet compresses a
    column of one repeated value (or one huge string) to almost nothing, and reading it unpacks it whole."""
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
        unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    except ImportError:
        return  # pandas says what to install when it reads the file
    except Exception as exc:  # ArrowInvalid, OSError, ...: a damaged or foreign file
        raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    columns = meta.num_columns
    if columns > MAX_COLUMNS:
        raise DataError(f"{path}: {columns} columns; metadata may hold at most {MAX_COLUMNS}")
    if meta.num_rows != n_samples:
        raise DataError(f"{path}: {meta.num_rows:,} rows for {n_samples:,} samples; expected one row per sample, in "
                        "the order of the inputs")
    allowed = max(n_samples, 1) * max(columns, 1) * MAX_CELL_BYTES
    if unpacked > allowed:
        raise DataError(f"{path}: the table unpacks to {unpacked:,} bytes, more than {MAX_CELL_BYTES:,} a cell on "
                        f"average ({n_samples:,} rows x {columns} columns: {allowed:,} bytes); text is cut to "
                        f"{MAX_TEXT} characters anyway: refused before unpacking")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
