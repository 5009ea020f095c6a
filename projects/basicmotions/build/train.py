"""Train the 1-D convolutional autoencoder of the BasicMotions project (CPU, under a minute).

Usage::

    python projects/basicmotions/build/train.py          # after build/convert.py

Trains on the original TRAIN split (40 recordings), evaluates on the TEST split (40).
The model takes the raw stored series (100, 6) and returns a (100, 6) series in the
same raw units: a ``Normalization`` layer with fixed per-channel mean/variance (from the
training split, passed to the constructor) standardizes the input, and a second one with
``invert=True`` undoes it at the output. Training minimises MSE in standardized units
(so every channel counts equally), on randomly time-shifted (circular) and slightly
rescaled copies of the 40 training recordings (seeded).

Writes ``autoencoder.keras`` (native Keras format, uncompiled, no optimizer state) and the
"Model" section of ``PROVENANCE.md``, then reloads the file in a fresh process with
``compile=False, safe_mode=True`` and checks the outputs match.
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
MODEL_FILE = PROJECT / "autoencoder.keras"
SEED = 20240601
COPIES = 64  # augmented copies of each training recording
EPOCHS = 8
BATCH = 64
LATENT = 8


def augment(x: np.ndarray, copies: int, rng: np.random.Generator) -> np.ndarray:
    """Circular time shifts and a +-10 % amplitude scale; the first copy is the original."""
    out = [x]
    for _ in range(copies - 1):
        shifts = rng.integers(0, x.shape[1], size=len(x))
        scale = rng.uniform(0.9, 1.1, size=(len(x), 1, 1)).astype(np.float32)
        out.append(np.stack([np.roll(s, k, axis=0) for s, k in zip(x, shifts)]) * scale)
    return np.concatenate(out).astype(np.float32)


def build_models(keras, mean: np.ndarray, var: np.ndarray):
    L = keras.layers
    T, C = 100, 6
    inp = keras.Input(shape=(T, C), name="series")
    h = L.Normalization(axis=-1, mean=mean, variance=var, name="standardize")(inp)
    h = L.Conv1D(32, 7, strides=2, padding="same", activation="relu", name="encoder_conv1")(h)  # 50 x 32
    h = L.Conv1D(64, 5, strides=2, padding="same", activation="relu", name="encoder_conv2")(h)  # 25 x 64
    h = L.Flatten(name="encoder_flatten")(h)
    h = L.Dense(64, activation="relu", name="encoder_dense")(h)
    z = L.Dense(LATENT, name="bottleneck")(h)
    h = L.Dense(25 * 64, activation="relu", name="decoder_dense")(z)
    h = L.Reshape((25, 64), name="decoder_reshape")(h)
    h = L.Conv1DTranspose(64, 5, strides=2, padding="same", activation="relu", name="decoder_deconv1")(h)  # 50
    h = L.Conv1DTranspose(32, 7, strides=2, padding="same", activation="relu", name="decoder_deconv2")(h)  # 100
    std_out = L.Conv1D(C, 5, padding="same", name="decoder_output")(h)  # standardized units
    out = L.Normalization(axis=-1, mean=mean, variance=var, invert=True, name="destandardize")(std_out)
    train_model = keras.Model(inp, std_out, name="basicmotions_autoencoder_std")
    model = keras.Model(inp, out, name="basicmotions_autoencoder")
    return train_model, model


CHECK = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, keras
m = keras.models.load_model(sys.argv[1], compile=False, safe_mode=True)
x = np.load(sys.argv[2]); ref = np.load(sys.argv[3])
out = m.predict(x, batch_size=80, verbose=0)
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
    body = prov.read_text() if prov.exists() else "# Provenance: BasicMotions\n"
    body = body.split("\n## Model\n")[0].rstrip("\n") + "\n\n" + text
    prov.write_text(body)


def pca_mse(train: np.ndarray, test: np.ndarray, k: int) -> float:
    """MSE of a rank-k PCA reconstruction (fit on train), inputs already flat and standardized."""
    mu = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mu, full_matrices=False)
    v = vt[:k].T
    rec = (test - mu) @ v @ v.T + mu
    return float(np.mean((rec - test) ** 2))


def main() -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(SEED)

    d = np.load(PROJECT / "motions.npz")
    x, split = d["x"], d["split"]
    x_tr, x_te = x[split == 0], x[split == 1]
    mean = x_tr.mean(axis=(0, 1)).astype(np.float32)
    var = x_tr.var(axis=(0, 1)).astype(np.float32)
    std = np.sqrt(var)

    train_model, model = build_models(keras, mean, var)
    x_aug = augment(x_tr, COPIES, rng)
    t_aug = (x_aug - mean) / std
    t_te = (x_te - mean) / std
    steps = EPOCHS * int(np.ceil(len(x_aug) / BATCH))
    lr = keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=steps, alpha=0.05)
    train_model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    t0 = time.perf_counter()
    hist = train_model.fit(
        x_aug, t_aug, batch_size=BATCH, epochs=EPOCHS, shuffle=True, verbose=2, validation_data=(x_te, t_te)
    )
    train_s = time.perf_counter() - t0

    rec_te = model.predict(x_te, batch_size=80, verbose=0)
    rec_tr = model.predict(x_tr, batch_size=80, verbose=0)
    raw_mse = float(np.mean((rec_te - x_te) ** 2))
    std_mse = float(np.mean(((rec_te - x_te) / std) ** 2))
    std_mse_tr = float(np.mean(((rec_tr - x_tr) / std) ** 2))
    base_raw = float(np.mean((mean - x_te) ** 2))
    base_std = float(np.mean(((mean - x_te) / std) ** 2))
    pca_std = pca_mse(((x_tr - mean) / std).reshape(len(x_tr), -1), t_te.reshape(len(x_te), -1), LATENT)
    print(
        f"test MSE raw {raw_mse:.4f} (baseline {base_raw:.4f}); standardized {std_mse:.4f} "
        f"(baseline {base_std:.4f}, PCA-{LATENT} {pca_std:.4f}); train standardized {std_mse_tr:.4f}; "
        f"training {train_s:.0f} s"
    )

    model.save(MODEL_FILE)  # `model` was never compiled: no optimizer state in the file
    diff = fresh_process_check(MODEL_FILE, x_te, rec_te)
    print(f"fresh-process reload (compile=False, safe_mode=True): max |diff| = {diff:.3g}")
    if diff > 1e-4:
        raise SystemExit("reloaded model disagrees with the trained one")

    rows = []
    for layer in model.layers:
        shape = tuple(layer.output.shape)[1:]
        rows.append(f"| `{layer.name}` | {layer.__class__.__name__} | {shape} | {layer.count_params()} |")
    sha = hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()
    per_ch = np.mean(((rec_te - x_te) / std) ** 2, axis=(0, 1))
    chans = [str(c) for c in d["channels"]]
    text = "\n".join(
        [
            "## Model",
            "",
            "`autoencoder.keras`, trained by `build/train.py` (native Keras format, uncompiled).",
            f"- sha256 `{sha}` (the zip stores a timestamp, so the bytes differ between runs;",
            "  the weights were bit-identical on rerun)",
            f"- Environment: Python {platform.python_version()}, TensorFlow {tf.__version__},"
            f" Keras {keras.__version__}, CPU;",
            f"  seed {SEED} (`keras.utils.set_random_seed`, `enable_op_determinism`).",
            "- Input: the raw stored series, float32 (100, 6). Output: (100, 6) in the same raw units.",
            "  `standardize` / `destandardize` are `Normalization` layers with the training split's",
            "  per-channel mean and variance fixed in their config:",
            f"  mean {[round(float(v), 4) for v in mean]}, std {[round(float(v), 4) for v in std]}.",
            f"- Training: the 40 TRAIN recordings, each as {COPIES} copies (the original plus random circular",
            "  time shifts and a uniform 0.9-1.1 amplitude scale, seeded); MSE in standardized units;",
            f"  Adam (cosine decay 2e-3 to 1e-4), batch {BATCH}, {EPOCHS} epochs, {train_s:.0f} s on 2 CPU cores.",
            "- Test split (40 recordings), reconstruction MSE:",
            "",
            "| | raw units | standardized |",
            "| --- | --- | --- |",
            f"| autoencoder ({LATENT}-d bottleneck) | **{raw_mse:.4f}** | **{std_mse:.4f}** |",
            f"| baseline: per-channel training mean | {base_raw:.4f} | {base_std:.4f} |",
            f"| for scale: PCA with {LATENT} components (fit on train, standardized) | | {pca_std:.4f} |",
            "",
            f"  Standardized MSE on the training recordings: {std_mse_tr:.4f}. Per channel on test: "
            + ", ".join(f"{c} {v:.3f}" for c, v in zip(chans, per_ch))
            + ".",
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
    print(f"wrote {MODEL_FILE} ({MODEL_FILE.stat().st_size} bytes), PROVENANCE.md")
    print("val loss per epoch:", [round(v, 4) for v in hist.history["val_loss"]])


if __name__ == "__main__":
    main()
