"""Convert the BasicMotions data set shipped in the ``aeon==1.6.0`` wheel into ``motions.npz``.

Usage::

    python projects/basicmotions/build/convert.py [path/to/aeon-1.6.0-py3-none-any.whl]

Without a path the wheel is fetched with ``pip download --no-deps aeon==1.6.0`` into a
temporary directory. aeon itself is never installed or imported: the two ``.ts`` files are
read straight out of the wheel (a zip file).

``.ts`` format (sktime/aeon): header lines start with ``#`` (comments) or ``@`` (metadata);
after ``@data`` every line is one case: the 6 dimensions separated by ``:``, each a
comma-separated series of 100 values, then the class label after the last ``:``.

Channel order: the files only say "3D accelerometer and a 3D gyroscope"; we assume the
usual order acc_x, acc_y, acc_z, gyr_x, gyr_y, gyr_z (dimensions 0-2 accelerometer, 3-5
gyroscope). The data agrees: dimensions 0-2 have clearly non-zero per-class means while
running/badminton, dimensions 3-5 (rotation rates) average to ~0 in every class.

Writes (deterministic, byte-identical on every run):

* ``projects/basicmotions/motions.npz``: ``x`` float32 (80, 100, 6) channels-last,
  ``y`` int64 class codes, ``split`` int64 (0 = original TRAIN file, 1 = TEST file),
  ``case`` int64 (row of the case in its original file), ``class_names`` and ``channels``
  (unicode string arrays, no pickle needed). Train cases first, then test cases, each in
  file order.
* ``projects/basicmotions/PROVENANCE.md`` (the "Model" section is appended by ``train.py``).
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "aeon"
VERSION = "1.6.0"
WHEEL = f"{PACKAGE}-{VERSION}-py3-none-any.whl"
DATA_DIR = "aeon/datasets/data/BasicMotions"
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_npz_deterministic(path: Path, **arrays: np.ndarray) -> None:
    """Like ``np.savez_compressed`` but with fixed zip timestamps, so reruns are byte-identical."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def fetch_wheel(workdir: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(workdir),
            f"{PACKAGE}=={VERSION}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return workdir / WHEEL


def parse_ts(text: str, name: str) -> tuple[dict, np.ndarray, list[str]]:
    header: dict[str, str] = {}
    cases, labels = [], []
    in_data = False
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise SystemExit(f"{name}:{lineno}: expected a header line, got {line[:40]!r}")
            key, _, value = line[1:].partition(" ")
            if key.lower() == "data":
                in_data = True
            else:
                header[key.lower()] = value.strip()
            continue
        parts = line.split(":")
        dims = [np.array(p.split(","), dtype=np.float64) for p in parts[:-1]]
        if len({len(d) for d in dims}) != 1:
            raise SystemExit(f"{name}:{lineno}: dimensions of unequal length")
        cases.append(np.stack(dims, axis=-1))  # (T, C) channels-last
        labels.append(parts[-1].strip())
    return header, np.stack(cases), labels


def convert(wheel: Path) -> dict:
    blob = wheel.read_bytes()
    raw: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        for split in ("TRAIN", "TEST"):
            raw[split] = zf.read(f"{DATA_DIR}/BasicMotions_{split}.ts")

    xs, ys, splits, cases = [], [], [], []
    class_names: list[str] | None = None
    header = {}
    for code, split in enumerate(("TRAIN", "TEST")):
        header, x, labels = parse_ts(raw[split].decode("utf-8"), f"BasicMotions_{split}.ts")
        # "@classLabel true Standing Running Walking Badminton"
        names = header["classlabel"].split()[1:]
        if class_names is None:
            class_names = names
        elif names != class_names:
            raise SystemExit(f"class labels differ between files: {class_names} vs {names}")
        if int(header["dimensions"]) != x.shape[2] or int(header["serieslength"]) != x.shape[1]:
            raise SystemExit(f"{split}: header says {header['dimensions']} x {header['serieslength']}, data {x.shape}")
        xs.append(x)
        ys.append(np.array([class_names.index(lab) for lab in labels], dtype=np.int64))
        splits.append(np.full(len(x), code, dtype=np.int64))
        cases.append(np.arange(len(x), dtype=np.int64))
    x64 = np.concatenate(xs)
    x = x64.astype(np.float32)
    y = np.concatenate(ys)
    split = np.concatenate(splits)
    case = np.concatenate(cases)

    out = PROJECT / "motions.npz"
    save_npz_deterministic(
        out,
        x=x,
        y=y,
        split=split,
        case=case,
        class_names=np.array(class_names),
        channels=np.array(CHANNELS),
    )

    per_class = {n: [int(((y == i) & (split == s)).sum()) for s in (0, 1)] for i, n in enumerate(class_names)}
    lines = [
        "# Provenance: BasicMotions",
        "",
        "## Data",
        "",
        f"- Source: the `{PACKAGE}=={VERSION}` wheel from PyPI (BSD-3-Clause), which ships the UEA/UCR",
        "  multivariate archive's BasicMotions problem (smart-watch accelerometer + gyroscope, 4 students,",
        "  4 activities, 10 s at 10 Hz). aeon is not installed; the files are read from the zip.",
        f"- Wheel `{WHEEL}` sha256 `{sha256(blob)}`",
        "",
        "| file in the wheel | sha256 | cases |",
        "| --- | --- | --- |",
        f"| `{DATA_DIR}/BasicMotions_TRAIN.ts` | `{sha256(raw['TRAIN'])}` | {int((split == 0).sum())} |",
        f"| `{DATA_DIR}/BasicMotions_TEST.ts` | `{sha256(raw['TEST'])}` | {int((split == 1).sum())} |",
        "",
        "- Conversion (`build/convert.py`): `.ts` parsed directly (header `@`/`#` lines, then per case",
        "  6 `:`-separated dimensions of 100 comma-separated values and the label after the last `:`).",
        "  Class codes follow the header's `@classLabel` order: "
        + ", ".join(f"{i} = {n}" for i, n in enumerate(class_names))
        + ".",
        '- Channel order is an assumption: the files only say "3D accelerometer and a 3D gyroscope"; taken as',
        f"  {', '.join(CHANNELS)}. Consistent with the data: dimensions 3-5 average ~0 in every class",
        "  (rotation rates), dimensions 0-2 do not while running / playing badminton.",
        "- Values are stored as float32 (the text has 6 decimals, |x| < 100; float32 keeps them to < 1e-5).",
        f"- Output `motions.npz` (sha256 `{sha256(out.read_bytes())}`): `x` float32 {tuple(x.shape)} channels-last,",
        "  `y` int64, `split` int64 (0 = TRAIN file, 1 = TEST file, the original split), `case` int64 (row in its",
        "  file), `class_names`, `channels`. Train cases first, then test, each in file order. Not windowed:",
        "  one sample = one whole 10 s recording. Fixed zip timestamps, so reruns are byte-identical.",
        f"- Cases per class [train, test]: {per_class}",
        "",
    ]
    (PROJECT / "PROVENANCE.md").write_text("\n".join(lines))
    return {
        "x": x.shape,
        "per_class": per_class,
        "max_float32_error": float(np.abs(x - x64).max()),
        "npz_bytes": out.stat().st_size,
    }


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        info = convert(Path(argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            info = convert(fetch_wheel(Path(tmp)))
    print(f"wrote {PROJECT / 'motions.npz'}: {info}")


if __name__ == "__main__":
    main(sys.argv)
