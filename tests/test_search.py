"""Searching the samples' table: each operator against a brute-force answer, AND, kinds, errors, exported rows."""

import numpy as np
import pandas as pd
import pytest

from engine.errors import InspectorError, SelectionError
from engine.explore.search import (
    CATEGORY_LIMIT,
    Condition,
    column_kind,
    columns,
    export_rows,
    match,
    match_all,
    sample_table,
)
from engine.render import points_frame


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(1)
    n = 2000
    points = points_frame(rng.normal(size=(n, 2)).astype(np.float32), rng.integers(0, 4, n), ["a", "b", "c", "d"])
    ink = rng.random(n)
    ink[::97] = np.nan
    meta = pd.DataFrame({
        "split": np.where(rng.random(n) < 0.1, "test", "train"),
        "ink": ink,
        "count": rng.integers(0, 5, n),
        "note": [f"Sample {i} {'Blurry' if i % 7 == 0 else 'sharp'}" for i in range(n)],
        "label": rng.integers(0, 2, n),  # clashes with the plot's label
    })
    meta.loc[5, "split"] = None
    return sample_table(points, meta)


def test_the_table_puts_metadata_beside_the_plot_columns(table):
    assert list(table.columns) == ["x", "y", "label", "split", "ink", "count", "note", "label (metadata)"]
    kinds = {c.name: c for c in columns(table)}
    assert "x" not in kinds and kinds["label"].kind == "category" and kinds["label"].choices == ("a", "b", "c", "d")
    assert kinds["split"].kind == "category" and kinds["split"].choices == ("test", "train")
    assert kinds["ink"].kind == "number" and 0 <= kinds["ink"].lo < kinds["ink"].hi <= 1
    assert kinds["note"].kind == "text" and kinds["count"].kind == "number"
    assert column_kind(pd.Series([True, False])) == "category"
    assert column_kind(pd.Series([f"v{i}" for i in range(CATEGORY_LIMIT + 1)])) == "text"
    with pytest.raises(SelectionError, match="1 rows and the plot 2,000"):
        sample_table(table, pd.DataFrame({"a": [1]}))


def test_each_operator_equals_a_brute_force_mask(table):
    label = table["label"].astype(str).to_numpy()
    np.testing.assert_array_equal(match(table, "label", "equals", "c"), label == "c")
    np.testing.assert_array_equal(match(table, "label", "one of", ["a", "d", "zzz"]), np.isin(label, ["a", "d"]))
    np.testing.assert_array_equal(match(table, "label", "contains", "B"), label == "b")
    split = table["split"].to_numpy(dtype=object)
    np.testing.assert_array_equal(match(table, "split", "equals", "test"), split == "test")
    assert not match(table, "split", "one of", ["test", "train"])[5]  # missing matches nothing
    ink = table["ink"].to_numpy()
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(match(table, "ink", "range", (0.7, 0.2)), (ink >= 0.2) & (ink <= 0.7))
        np.testing.assert_array_equal(match(table, "ink", "range", (None, 0.3)), ink <= 0.3)
    assert not match(table, "ink", "range", (None, None))[::97].any()  # NaN is in no range
    np.testing.assert_array_equal(match(table, "count", "one of", [1, "3"]), np.isin(table["count"], [1, 3]))
    np.testing.assert_array_equal(match(table, "count", "equals", 2), table["count"].to_numpy() == 2)
    note = table["note"].to_numpy(dtype=object)
    np.testing.assert_array_equal(match(table, "note", "contains", "blurry"),
                                  np.array(["blurry" in s.lower() for s in note]))


def test_conditions_combine_with_and(table):
    conditions = [Condition("label", "one of", ["a", "b"]), ("split", "equals", "train"),
                  Condition("ink", "range", (0.5, None))]
    expected = np.ones(len(table), dtype=bool)
    for c in conditions:
        expected &= match(table, *((c.column, c.op, c.value) if isinstance(c, Condition) else c))
    mask = match_all(table, conditions)
    np.testing.assert_array_equal(mask, expected)
    assert 0 < mask.sum() < len(table) and match_all(table, []).all()
    assert conditions[0].words() == "label is one of a, b" and conditions[2].words() == "ink in 0.5 – …"


@pytest.mark.parametrize(("column", "op", "value", "message"), [
    ("nope", "equals", 1, "no column 'nope' to search; the columns: 'label', 'split'"),
    ("label", "like", "a", "unknown search operator 'like'"),
    ("label", "range", (0, 1), "'label' is a category column: 'range' applies to number columns"),
    ("ink", "contains", "1", "'ink' is a number column: 'contains' applies to category and text columns"),
    ("ink", "range", (0, 1, 2), r"ink range: expected \(lo, hi\)"),
    ("ink", "range", ("low", 1), "ink range: 'low' is not a number"),
    ("count", "equals", float("nan"), "NaN is not a value to search for"),
    ("label", "one of", "a", "label one of: expected a list of values"),
])
def test_bad_queries_are_typed_errors(table, column, op, value, message):
    with pytest.raises(SelectionError, match=message) as info:
        match(table, column, op, value)
    assert isinstance(info.value, InspectorError) and isinstance(info.value, ValueError)


def test_rows_are_exported_with_their_ids(table, tmp_path):
    ids = np.array([7, 3, 1999])
    path = export_rows(table, ids, tmp_path / "rows.csv")
    back = pd.read_csv(path)
    assert back["sample_id"].tolist() == [7, 3, 1999]
    assert back["note"].tolist() == table["note"].iloc[ids].tolist()
    assert back.columns.tolist() == ["sample_id", *table.columns]
    with pytest.raises(SelectionError, match=r"bad\.csv: sample ids must lie in 0\.\.1999, got 2000\.\.2000"):
        export_rows(table, [2000], tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()
