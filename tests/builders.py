"""Real Keras models of every kind the engine must split, and project folders written from them.

A plain module rather than ``conftest``: pytest imports each folder's conftest under the same module name, so
``from conftest import ...`` resolves to whichever was imported last.
"""

from pathlib import Path

import numpy as np


def build_models():
    """Small real models of each kind the splitter must handle, with a sample input for each."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    models = {}

    models["sequential"] = (
        keras.Sequential(
            [
                keras.Input((12,)),
                layers.Dense(8, activation="relu", name="d1"),
                layers.BatchNormalization(name="bn"),
                layers.Dropout(0.5, name="drop"),
                layers.Dense(4, name="bottleneck"),
                layers.Dense(12, activation="sigmoid", name="out"),
            ],
            name="seq",
        ),
        rng.normal(size=(7, 12)),
    )

    inp = keras.Input((16, 16, 1), name="image")
    h = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv1")(inp)
    h = layers.BatchNormalization(name="bn")(h)
    h = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv2")(h)
    h = layers.Flatten(name="flat")(h)
    z = layers.Dense(5, name="bottleneck")(h)
    h = layers.Dense(8 * 8 * 2, activation="relu", name="dec_dense")(z)
    h = layers.Reshape((8, 8, 2), name="dec_reshape")(h)
    h = layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu", name="dec_up")(h)
    out = layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="recon")(h)
    models["conv2d"] = (keras.Model(inp, out, name="conv_ae"), rng.random((5, 16, 16, 1)))

    inp = keras.Input((32, 3), name="series")
    h = layers.Conv1D(6, 5, padding="same", activation="relu", name="c1")(inp)
    h = layers.MaxPooling1D(2, name="pool")(h)
    h = layers.Conv1D(4, 3, padding="same", activation="relu", name="c2")(h)
    h = layers.GlobalAveragePooling1D(name="gap")(h)
    h = layers.Dropout(0.2, name="drop")(h)
    out = layers.Dense(3, activation="softmax", name="probs")(h)
    models["conv1d"] = (keras.Model(inp, out, name="conv1d_clf"), rng.normal(size=(6, 32, 3)))

    inp = keras.Input((10,), name="x")
    h = layers.Dense(8, activation="relu", name="stem")(inp)
    r = layers.Dense(8, activation="relu", name="res_a")(h)
    r = layers.Dense(8, name="res_b")(r)
    s = layers.Add(name="res_add")([h, r])
    out = layers.Dense(2, name="head")(s)
    models["residual"] = (keras.Model(inp, out, name="resnet"), rng.normal(size=(4, 10)))

    enc = keras.Sequential([keras.Input((12,)), layers.Dense(6, activation="relu", name="dense"),
                            layers.Dense(3, name="code")], name="encoder")
    dec = keras.Sequential([keras.Input((3,)), layers.Dense(6, activation="relu", name="dense"),
                            layers.Dense(12, name="recon")], name="decoder")
    inp = keras.Input((12,), name="x")
    models["nested"] = (keras.Model(inp, dec(enc(inp)), name="autoencoder"), rng.normal(size=(5, 12)))

    inp = keras.Input((16, 16, 1), name="image")
    c1 = layers.Conv2D(4, 3, padding="same", activation="relu", name="down1")(inp)
    p = layers.MaxPooling2D(name="pool")(c1)
    c2 = layers.Conv2D(8, 3, padding="same", activation="relu", name="down2")(p)
    u = layers.UpSampling2D(name="up")(c2)
    cat = layers.Concatenate(name="skip_concat")([u, c1])
    out = layers.Conv2D(1, 1, name="seg")(cat)
    models["unet"] = (keras.Model(inp, out, name="unet"), rng.random((3, 16, 16, 1)))

    return {k: (m, x.astype("float32")) for k, (m, x) in models.items()}


def write_project(root: Path, name: str, model, x, y=None, manifest: str | None = None) -> Path:
    """A project folder with a real model file and real data files."""
    folder = root / name
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    np.save(folder / "x.npy", x)
    if y is not None:
        np.save(folder / "y.npy", y)
    if manifest is not None:
        (folder / "project.toml").write_text(manifest)
    return folder


def projects_root(tmp_path_factory, **builds):
    """A fixture body: a temporary projects root holding one project per ``name=build`` (``build(folder)`` writes
    the project into ``folder``), set as ``LATENT_INSPECTOR_PROJECTS`` while the fixture lives.

    Example
    -------
    >>> @pytest.fixture(scope="module")                                   # doctest: +SKIP
    ... def root(tmp_path_factory):
    ...     yield from projects_root(tmp_path_factory, tiny=_build_tiny)
    """
    import pytest

    root = tmp_path_factory.mktemp("projects")
    for name, build in builds.items():
        build(root / name)
    mp = pytest.MonkeyPatch()
    mp.setenv("LATENT_INSPECTOR_PROJECTS", str(root))
    try:
        yield root
    finally:
        mp.undo()


def blobs(classes: int, per_class: int, dim: int, *, spread: float, seed: int = 0, scale: float = 3.0):
    """Labelled clusters: ``classes`` gaussian blobs of ``per_class`` float32 points in ``dim`` dimensions, centres
    drawn with standard deviation ``scale``, points around them with ``spread``; labels in blocks, class by class."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), per_class)
    centres = rng.normal(scale=scale, size=(classes, dim)).astype(np.float32)
    return centres[y] + rng.normal(scale=spread, size=(len(y), dim)).astype(np.float32), y
