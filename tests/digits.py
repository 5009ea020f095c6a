"""Real activations for the reducer tests: a small Keras autoencoder on scikit-learn's 8x8 digits.

``digits_autoencoder()`` trains (once, then reads ``.cache/tests/``) a 64 -> 64 -> 8 -> 64 -> 64 autoencoder for
a few seconds and returns the bottleneck activations, the labels, the pixels and the decoder's weights. The
decoder is evaluated with NumPy on those weights, so decoding needs no TensorFlow call.

A plain module beside the tests (as ``builders``), holding no tests: ``import digits``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CACHE = REPO / ".cache" / "tests" / "digits-autoencoder-v1.npz"


@dataclass
class Digits:
    activations: np.ndarray  # (1797, 8) float32, the bottleneck layer
    labels: np.ndarray  # (1797,) int64
    pixels: np.ndarray  # (1797, 64) float32 in [0, 1], the model's inputs and targets
    decoder: list  # [W1, b1, W2, b2]: bottleneck -> 64 relu -> 64 sigmoid

    def decode(self, activations) -> np.ndarray:
        """The rest of the model: activations (k, 8) -> images (k, 64), in NumPy on the trained weights."""
        W1, b1, W2, b2 = self.decoder
        h = np.maximum(np.asarray(activations, np.float32) @ W1 + b1, 0)
        return 1.0 / (1.0 + np.exp(-(h @ W2 + b2)))


def _train() -> dict:
    import keras
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(64, activation="relu")(inputs)
    z = keras.layers.Dense(8, name="bottleneck")(h)
    dec1 = keras.layers.Dense(64, activation="relu")
    dec2 = keras.layers.Dense(64, activation="sigmoid")
    model = keras.Model(inputs, dec2(dec1(z)))
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, X, epochs=30, batch_size=64, verbose=0)
    A = keras.Model(inputs, z).predict(X, verbose=0, batch_size=512)
    W1, b1 = dec1.get_weights()
    W2, b2 = dec2.get_weights()
    return {"activations": A, "labels": y, "pixels": X, "W1": W1, "b1": b1, "W2": W2, "b2": b2}


def digits_autoencoder() -> Digits:
    """Train (or read the cached) digits autoencoder and return its bottleneck activations."""
    if CACHE.is_file():
        data = dict(np.load(CACHE))
    else:
        data = _train()
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        tmp = CACHE.with_suffix(".tmp.npz")
        np.savez(tmp, **data)
        os.replace(tmp, CACHE)
    return Digits(
        activations=np.ascontiguousarray(data["activations"], dtype=np.float32),
        labels=data["labels"].astype(np.int64),
        pixels=data["pixels"].astype(np.float32),
        decoder=[data[k].astype(np.float32) for k in ("W1", "b1", "W2", "b2")],
    )
