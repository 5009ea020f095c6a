"""A project's metadata table: found, read and checked, hostile files refused with typed errors naming the file."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data.metadata import MAX_CELL_BYTES, MAX_CELL_CHARS, MAX_COLUMNS, MAX_TEXT, read_metadata
from engine.data.project import load_project
from engine.errors import DataError, ProjectError

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, data) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_a_csv_reads_into_numbers_and_text(tmp_path):
    path = write(tmp_path / "metadata.csv", "\ufeffname,score,count,note\n"
                 "a,0.5,1,\"quoted, with a comma\"\n\nb,,2,x\nc,1e3,3,\n")
    meta = read_metadata(path, 3)
    assert list(meta.columns) == ["name", "score", "count", "note"]
    assert meta["score"].dtype == np.float64 and np.isnan(meta["score"][1]) and meta["score"][2] == 1000.0
    assert meta["count"].dtype == np.int64 and meta["count"].tolist() == [1, 2, 3]
    assert meta["note"][0] == "quoted, with a comma" and pd.isna(meta["note"][2])
    assert meta.index.tolist() == [0, 1, 2]


def test_row_count_must_equal_the_samples(tmp_path):
    path = write(tmp_path / "metadata.csv", "a\n1\n2\n")
    with pytest.raises(DataError, match=r"metadata\.csv: 2 rows for 3 samples; expected one row per sample"):
        read_metadata(path, 3)


def test_ragged_rows_name_the_line(tmp_path):
    long = write(tmp_path / "long.csv", "a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"long\.csv, line 3: 3 fields; the header names 2 columns"):
        read_metadata(long, 2)
    short = write(tmp_path / "short.csv", "a,b\n1,2\n3\n")
    with pytest.raises(DataError, match=r"short\.csv, line 3: 1 fields; the header names 2 columns"):
        read_metadata(short, 2)


def test_wrong_encoding_and_bytes_are_typed_errors(tmp_path):
    latin = write(tmp_path / "latin.csv", "name\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv: not UTF-8 text \(byte 8, line 2: b'\\xe9'\); save the table"):
        read_metadata(latin, 1)
    nul = write(tmp_path / "nul.csv", b"name\na\x00b\n")
    with pytest.raises(DataError, match=r"nul\.csv, line 2: a NUL byte; a binary file"):
        read_metadata(nul, 1)
    with pytest.raises(DataError, match=r"empty\.csv: empty; expected a header line"):
        read_metadata(write(tmp_path / "empty.csv", ""), 1)
    with pytest.raises(DataError, match="must be a .csv or .parquet file"):
        read_metadata(write(tmp_path / "metadata.json", "{}"), 1)


def test_huge_cells_are_refused_and_long_text_is_cut(tmp_path):
    huge = write(tmp_path / "huge.csv", "note\n" + "x" * (MAX_CELL_CHARS + 10) + "\n")
    with pytest.raises(DataError, match=r"huge\.csv, line \d+: not readable as CSV \(field larger than field limit"):
        read_metadata(huge, 1)
    long = write(tmp_path / "long.csv", "note\n" + "y" * 5000 + "\nshort\n")
    meta = read_metadata(long, 2)
    assert len(meta["note"][0]) == MAX_TEXT and meta["note"][0].endswith("…") and meta["note"][1] == "short"


def test_header_names_must_be_distinct_and_present(tmp_path):
    with pytest.raises(DataError, match="two columns are named 'a'"):
        read_metadata(write(tmp_path / "dup.csv", "a,b,a\n1,2,3\n"), 1)
    with pytest.raises(DataError, match="column 2 of the header has no name"):
        read_metadata(write(tmp_path / "blank.csv", "a, \n1,2\n"), 1)


def test_parquet_reads_and_is_checked(tmp_path):
    path = tmp_path / "metadata.parquet"
    pd.DataFrame({"split": ["train", "test", None], "ink": [0.1, 0.2, 0.3], "tags": [[1], [2, 3], []],
                  "long": ["z" * 1000, "a", "b"]}).to_parquet(path)
    meta = read_metadata(path, 3)
    assert meta["ink"].tolist() == [0.1, 0.2, 0.3] and pd.isna(meta["split"][2])
    assert meta["tags"][1] == "[2 3]" and len(meta["long"][0]) == MAX_TEXT
    with pytest.raises(DataError, match=r"3 rows for 4 samples"):
        read_metadata(path, 4)
    bad = write(tmp_path / "bad.parquet", b"PAR1 not really")
    with pytest.raises(DataError, match=r"bad\.parquet: not a readable Parquet file"):
        read_metadata(bad, 1)


def test_a_project_finds_its_metadata_and_never_takes_it_for_inputs(tmp_path, tiny_project):
    root = tmp_path / "root"
    shutil.copytree(tiny_project / "tiny", root / "tiny")
    project = load_project("tiny", root=root)
    assert project.metadata() is None
    write(root / "tiny" / "metadata.csv", "group\n" + "".join(f"g{i % 4}\n" for i in range(300)))
    project = load_project("tiny", root=root)
    assert project.metadata_path.name == "metadata.csv" and project.inputs_path.name != "metadata.csv"
    assert project.metadata()["group"].tolist()[:5] == ["g0", "g1", "g2", "g3", "g0"]
    assert project.metadata() is project.metadata()  # read once
    pd.DataFrame({"group": ["x"] * 300}).to_parquet(root / "tiny" / "metadata.parquet")
    with pytest.raises(ProjectError, match="several metadata files"):
        load_project("tiny", root=root)
    toml = root / "tiny" / "project.toml"
    toml.write_text('metadata = "metadata.parquet"\n' + toml.read_text())
    assert load_project("tiny", root=root).metadata()["group"][0] == "x"
    toml.write_text(toml.read_text().replace('"metadata.parquet"', '"../elsewhere.csv"'))
    with pytest.raises(ProjectError, match="outside the project folder|does not exist"):
        load_project("tiny", root=root)
    write(root / "tiny" / "metadata.csv", "group\na\n")
    toml.write_text(toml.read_text().replace('"../elsewhere.csv"', '"metadata.csv"'))
    with pytest.raises(DataError, match=r"metadata\.csv: 1 rows for 300 samples"):
        load_project("tiny", root=root).metadata()


def test_the_bundled_mnist_metadata():
    path = REPO / "projects" / "mnist" / "metadata.csv"
    assert path.stat().st_size < 300_000
    project = load_project("mnist", root=REPO / "projects")
    meta = project.metadata()
    assert list(meta.columns) == ["digit_name", "stroke_ink", "split"]
    names = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    assert meta["digit_name"].tolist() == [names[int(y)] for y in project.labels()]
    ink = project.inputs().reshape(len(meta), -1).mean(axis=1) / 255.0
    np.testing.assert_allclose(meta["stroke_ink"], ink, atol=5e-4 + 1e-9)
    held_out = np.load(REPO / "projects" / "mnist" / "holdout.npy")
    assert (meta["split"] == "test").sum() == len(held_out) and set(meta["split"][held_out]) == {"test"}


def test_a_csv_longer_than_the_samples_is_refused_at_the_first_row_too_many(tmp_path):
    """The rest of the file is not read: here a ragged row after it is never reached."""
    path = write(tmp_path / "metadata.csv", "a,b\n1,2\n3,4\n5,6\n" + "7,8,9\n" * 1000)
    with pytest.raises(DataError, match=r"metadata\.csv, line 4: more than 2 rows for 2 samples; expected one row "
                                        r"per sample.*\(the rest of the file is not read\)"):
        read_metadata(path, 2)
    wide = write(tmp_path / "wide.csv", ",".join(f"c{i}" for i in range(MAX_COLUMNS + 1)) + "\n")
    with pytest.raises(DataError, match=rf"wide\.csv: {MAX_COLUMNS + 1} columns; metadata may hold at most"):
        read_metadata(wide, 0)


def test_a_parquet_bomb_is_refused_from_its_footer(tmp_path):
    """A Parquet file of a few KiB whose one cell unpacks to 20 MB, or whose one column holds 1,000,000 rows for 10
    samples, is refused from the footer's counts before any value is unpacked."""
    pytest.importorskip("pyarrow")
    bomb = tmp_path / "bomb.parquet"
    pd.DataFrame({"note": ["x" * 20_000_000]}).to_parquet(bomb, compression="zstd")
    assert bomb.stat().st_size < 2**16
    with pytest.raises(DataError, match=rf"bomb\.parquet: the table unpacks to [\d,]+ bytes, more than "
                                        rf"{MAX_CELL_BYTES:,} a cell on average \(1 rows x 1 columns"):
        read_metadata(bomb, 1)
    rows = tmp_path / "rows.parquet"
    pd.DataFrame({"z": np.zeros(1_000_000, np.int8)}).to_parquet(rows, compression="zstd")
    with pytest.raises(DataError, match=r"rows\.parquet: 1,000,000 rows for 10 samples; expected one row per sample"):
        read_metadata(rows, 10)
