"""Write ``projects/mnist/metadata.csv``: one row per digit of ``digits.npz``, to search the dashboard by.

Usage::

    python projects/mnist/build/metadata.py

Columns, computed from the bundled data only (deterministic: the same bytes on every run):

* ``digit_name``: the label in words (``zero`` .. ``nine``);
* ``stroke_ink``: the mean grey level of the image, 0 (blank) to 1 (all ink), rounded to 3 decimals;
* ``split``: ``test`` for the 1,000 digits held out from training (``holdout.npy``), else ``train``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def table_text() -> str:
    """The CSV text of the metadata table."""
    with np.load(PROJECT / "digits.npz") as z:
        x, y = z["x"], z["y"]
    held_out = np.zeros(len(y), dtype=bool)
    held_out[np.load(PROJECT / "holdout.npy")] = True
    ink = x.reshape(len(x), -1).mean(axis=1) / 255.0
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["digit_name", "stroke_ink", "split"])
    for label, value, test in zip(y, ink, held_out):
        writer.writerow([NAMES[int(label)], f"{value:.3f}", "test" if test else "train"])
    return out.getvalue()


def main() -> None:
    from engine.data.files import atomic_write

    path = atomic_write(PROJECT / "metadata.csv", lambda fh: fh.write(table_text().encode("utf-8")))
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
