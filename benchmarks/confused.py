"""Build the measurement case of refinement by dragging: an MNIST classifier trained with part of its 4s and 9s
mislabelled as each other.

Usage::

    python -m benchmarks.confused [--out DIR]

Reads the bundled digits of ``projects/mnist`` (``digits.npz``, ``holdout.npy``: the same 1,000 held-out digits);
trains on the other 9,000, with ``MISLABELLED`` of the training 4s labelled 9 and as many of the training 9s
labelled 4 (seeded). The model is a small Keras MLP: ``Rescaling(1/255) -> Flatten -> Dense(64, relu) ->
Dense(16, relu, name="features") -> Dense(10, softmax)``, cut at ``features`` for the map.

Writes the project folder ``mnist_confused`` (about 2 MB: the digits are copied) into ``DIR`` (default
``<cache>/benchmarks``, the engine's cache folder; not into ``projects/``): ``model.keras``, ``digits.npz`` (the
true labels, as the project's labels), ``holdout.npy``, ``mislabelled.npy`` (the rows trained with the other
label), ``project.toml``. A folder already built with the same settings is reused (``build.json`` records them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

MNIST = Path(__file__).resolve().parent.parent / "projects" / "mnist"
NAME = "mnist_confused"
SEED = 20261204
MISLABELLED = 0.4  # share of the training 4s (and of the 9s) trained with the other label
EPOCHS = 6
BATCH = 64
SETTINGS = {"seed": SEED, "mislabelled": MISLABELLED, "epochs": EPOCHS, "batch": BATCH, "version": 1}

MANIFEST = """\
title = "MNIST digits, a classifier confused on 4 and 9"
description = \"\"\"\\
The digits of the mnist project and a small MLP classifier trained on 9,000 of them with {share:.0%} of the \\
training 4s labelled 9 and as many 9s labelled 4 (mislabelled.npy lists them); the labels here are the true \\
digits. Built by benchmarks/confused.py.\"\"\"
model = "model.keras"
inputs = "digits.npz"
inputs_key = "x"
labels = "digits.npz"
labels_key = "y"
class_names = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
default_layer = "features"

[input_view]
kind = "image"
shape = [28, 28]

[output_view]
kind = "probabilities"
"""


def default_root() -> Path:
    from engine.settings import cache_dir

    return cache_dir() / "benchmarks"


def _model(keras):
    L = keras.layers
    inp = keras.Input(shape=(28, 28, 1), name="image")
    h = L.Rescaling(1.0 / 255.0, name="rescale")(inp)
    h = L.Flatten(name="flatten")(h)
    h = L.Dense(64, activation="relu", name="hidden")(h)
    z = L.Dense(16, activation="relu", name="features")(h)
    out = L.Dense(10, activation="softmax", name="probs")(z)
    return keras.Model(inp, out, name="mnist_confused")


def build(root: Path | None = None, *, force: bool = False) -> Path:
    """The project folder of the case, built (about 20 s on 2 cores) or reused; returns its path.

    Example
    -------
    >>> folder = build()                                       # doctest: +SKIP
    >>> load_project(folder.name, folder.parent).default_layer  # doctest: +SKIP
    'features'
    """
    root = Path(root) if root is not None else default_root()
    folder = root / NAME
    stamp = folder / "build.json"
    if not force and stamp.is_file() and json.loads(stamp.read_text()).get("settings") == SETTINGS:
        return folder
    import keras

    keras.utils.set_random_seed(SEED)
    data = np.load(MNIST / "digits.npz")
    x, y = data["x"], data["y"]
    holdout = np.load(MNIST / "holdout.npy")
    train = np.ones(len(y), bool)
    train[holdout] = False
    rng = np.random.default_rng(SEED)
    wrong = []
    for digit in (4, 9):
        rows = np.flatnonzero(train & (y == digit))
        wrong.append(np.sort(rng.choice(rows, int(round(MISLABELLED * len(rows))), replace=False)))
    mislabelled = np.sort(np.concatenate(wrong))
    y_train = y.copy()
    y_train[wrong[0]], y_train[wrong[1]] = 9, 4

    t0 = time.perf_counter()
    model = _model(keras)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[train].astype(np.float32), y_train[train], epochs=EPOCHS, batch_size=BATCH, verbose=0, shuffle=True)
    seconds = time.perf_counter() - t0
    probs = model.predict(x[holdout].astype(np.float32), verbose=0)
    accuracy = float(np.mean(probs.argmax(axis=1) == y[holdout]))

    tmp = root / f".{NAME}.building"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save(tmp / "model.keras")
    shutil.copyfile(MNIST / "digits.npz", tmp / "digits.npz")
    np.save(tmp / "holdout.npy", holdout)
    np.save(tmp / "mislabelled.npy", mislabelled)
    (tmp / "project.toml").write_text(MANIFEST.format(share=MISLABELLED))
    (tmp / "build.json").write_text(json.dumps({"settings": SETTINGS, "train_s": round(seconds, 1),
                                                "holdout_accuracy": accuracy}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.confused", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder to write mnist_confused into "
                        "(default <cache>/benchmarks)")
    parser.add_argument("--force", action="store_true", help="build again even if a folder with these settings "
                        "exists")
    args = parser.parse_args(argv)
    folder = build(args.out, force=args.force)
    print(f"{folder}: {json.loads((folder / 'build.json').read_text())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
