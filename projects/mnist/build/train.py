"""Train the convolutional autoencoder of the MNIST project (CPU, a few minutes).

Usage::

    python projects/mnist/build/train.py            # after build/convert.py

Reads ``digits.npz``; holds out 1,000 digits (stratified by label, seeded) and trains on
the rest. The model takes the raw uint8 image as float (its first layer is
``Rescaling(1/255)``) and outputs a (28, 28, 1) image in [0, 1].

Writes ``autoencoder.h5`` (Keras 3 ``model.save``), ``holdout.npy`` (sorted int64 indices
into ``digits.npz`` of the held-out digits) and the "Model" section of ``PROVENANCE.md``.
Finally it reloads the file in a fresh process with ``compile=False, safe_mode=True`` and
checks the outputs match.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
MODEL_FILE = PROJECT / "autoencoder.h5"
SEED = 20240601
HOLDOUT = 1000
EPOCHS = 25
BATCH = 64


def stratified_holdout(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n indices, spread over the classes in proportion to their counts (largest remainder)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * n / len(y)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: n - take.sum()]:
        take[i] += 1
    picked = [rng.choice(np.flatnonzero(y == c), size=k, replace=False) for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def build_model(keras):
    L = keras.layers
    inp = keras.Input(shape=(28, 28, 1), name="image")
    h = L.Rescaling(1.0 / 255.0, name="rescale")(inp)
    h = L.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="encoder_conv1")(h)
    h = L.Conv2D(32, 3, strides=2, padding="same", name="encoder_conv2")(h)
    h = L.BatchNormalization(name="encoder_bn")(h)
    h = L.Activation("relu", name="encoder_relu")(h)
    h = L.Flatten(name="encoder_flatten")(h)
    h = L.Dense(64, activation="relu", name="encoder_dense")(h)
    h = L.Dropout(0.1, name="encoder_dropout")(h)
    z = L.Dense(10, name="bottleneck")(h)
    h = L.Dense(7 * 7 * 32, activation="relu", name="decoder_dense")(z)
    h = L.Reshape((7, 7, 32), name="decoder_reshape")(h)
    h = L.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu", name="decoder_deconv1")(h)
    h = L.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu", name="decoder_deconv2")(h)
    out = L.Conv2D(1, 3, padding="same", activation="sigmoid", name="reconstruction")(h)
    return keras.Model(inp, out, name="mnist_autoencoder")


CHECK = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, keras
m = keras.models.load_model(sys.argv[1], compile=False, safe_mode=True)
x = np.load(sys.argv[2]); ref = np.load(sys.argv[3])
out = m.predict(x, batch_size=500, verbose=0)
print(float(np.abs(out - ref).max()))
"""


def fresh_process_check(model_file: Path, x: np.ndarray, ref: np.ndarray) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", x)
        np.save(Path(tmp) / "ref.npy", ref)
        res = subprocess.run(
            [sys.executable, "-c", CHECK, str(model_file), f"{tmp}/x.npy", f"{tmp}/ref.npy"],
            check=True,
            capture_output=True,
            text=True,
        )
    return float(res.stdout.strip().splitlines()[-1])


def write_model_section(text: str) -> None:
    prov = PROJECT / "PROVENANCE.md"
    body = prov.read_text() if prov.exists() else "# Provenance: MNIST digits\n"
    body = body.split("\n## Model\n")[0].rstrip("\n") + "\n\n" + text
    prov.write_text(body)


def main() -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()

    data = np.load(PROJECT / "digits.npz")
    x_raw, y = data["x"], data["y"]
    holdout = stratified_holdout(y, HOLDOUT, SEED)
    train_mask = np.ones(len(y), bool)
    train_mask[holdout] = False
    x = x_raw.astype(np.float32)
    target = x / 255.0
    x_tr, t_tr = x[train_mask], target[train_mask]
    x_ho, t_ho = x[holdout], target[holdout]

    model = build_model(keras)
    steps = EPOCHS * int(np.ceil(train_mask.sum() / BATCH))
    lr = keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy", metrics=["mse"])
    t0 = time.perf_counter()
    hist = model.fit(x_tr, t_tr, batch_size=BATCH, epochs=EPOCHS, shuffle=True, verbose=2, validation_data=(x_ho, t_ho))
    train_s = time.perf_counter() - t0

    recon = model.predict(x_ho, batch_size=500, verbose=0)
    mse = float(np.mean((recon - t_ho) ** 2))
    mean_img = t_tr.mean(axis=0, keepdims=True)
    base = float(np.mean((mean_img - t_ho) ** 2))
    print(f"held-out reconstruction MSE {mse:.5f}; mean-image baseline {base:.5f}; training {train_s:.0f} s")

    model.save(MODEL_FILE, include_optimizer=False)  # weights only: keeps the file small
    np.save(PROJECT / "holdout.npy", holdout)
    diff = fresh_process_check(MODEL_FILE, x_ho, recon)
    print(f"fresh-process reload (compile=False, safe_mode=True): max |diff| = {diff:.3g}")
    if diff > 1e-5:
        raise SystemExit("reloaded model disagrees with the trained one")

    rows = []
    for layer in model.layers:
        shape = tuple(layer.output.shape)[1:]
        rows.append(f"| `{layer.name}` | {layer.__class__.__name__} | {shape} | {layer.count_params()} |")
    sha = hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()
    text = "\n".join(
        [
            "## Model",
            "",
            "`autoencoder.h5`, trained by `build/train.py` (Keras 3 `model.save`, legacy HDF5 format).",
            f"- sha256 `{sha}` (rerunning the build gave a byte-identical file on this machine)",
            f"- Environment: Python {platform.python_version()}, TensorFlow {tf.__version__},"
            f" Keras {keras.__version__}, CPU;",
            f"  seed {SEED} (`keras.utils.set_random_seed`, `enable_op_determinism`).",
            "- Input: raw uint8 image as float32, shape (28, 28, 1); first layer rescales by 1/255.",
            "  Output: (28, 28, 1) sigmoid image in [0, 1].",
            f"- Split: {HOLDOUT} held-out digits, stratified by label, seeded (`holdout.npy`, indices into",
            f"  `digits.npz`); trained on the other {int(train_mask.sum())}.",
            "- Training: Adam (cosine decay from 2e-3 to 1e-4), binary cross-entropy against x/255,",
            f"  batch {BATCH}, {EPOCHS} epochs, {train_s:.0f} s on this machine's CPU (2 cores).",
            f"- Held-out reconstruction MSE (against x/255): **{mse:.5f}**",
            f"- Baseline, the mean training image for every digit: {base:.5f}",
            f"- Reload check: fresh process, `load_model(compile=False, safe_mode=True)`, max |diff| {diff:.2g}",
            "",
            "| layer | class | output shape | params |",
            "| --- | --- | --- | --- |",
            *rows,
            f"| total | | | {model.count_params()} |",
            "",
        ]
    )
    write_model_section(text)
    print(f"wrote {MODEL_FILE} ({MODEL_FILE.stat().st_size} bytes), holdout.npy, PROVENANCE.md")
    print("final loss per epoch:", [round(v, 5) for v in hist.history["val_mse"]])


if __name__ == "__main__":
    main()
