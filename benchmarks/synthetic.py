"""A synthetic categorical latent space, as a 2-D embedding of ten classes looks: clusters of different sizes and
spreads, and a thin background of points between them (so that sparse regions exist for ``dynspread``).

The same ``n`` and ``seed`` give the same points, in memory (:func:`frame`, the engine's ``points_frame``) or
written to ``.npy`` files in chunks (:func:`write_npy`, for sizes that should stream from disk).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = tuple(f"class {i}" for i in range(10))
#: Fraction of the points spread uniformly over the whole extent.
BACKGROUND = 0.01


def _layout(seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(len(CLASSES), 2))
    scales = rng.uniform(0.4, 1.6, size=(len(CLASSES), 2))
    weights = rng.uniform(0.5, 1.5, size=len(CLASSES))
    return centres, scales, weights / weights.sum()


def embedding(n: int, seed: int = 0, dtype=np.float64, *, start: int = 0):
    """``(E, labels)``: ``n`` points of shape (n, 2) and their class codes (uint8); ``start`` offsets the stream
    so that chunks of a large set differ."""
    centres, scales, weights = _layout(seed)
    rng = np.random.default_rng([seed, start])
    labels = rng.choice(len(CLASSES), size=n, p=weights).astype(np.uint8)
    E = centres[labels] + rng.standard_normal((n, 2)) * scales[labels]
    background = rng.random(n) < BACKGROUND
    E[background] = rng.uniform(-14, 14, size=(int(background.sum()), 2))
    return E.astype(dtype, copy=False), labels


def frame(n: int, seed: int = 0):
    """The dashboard's table of ``n`` points: ``engine.render.points_frame`` (float64 x, y; categorical label)."""
    from engine.render import points_frame

    E, labels = embedding(n, seed)
    return points_frame(E, labels, CLASSES)


def write_npy(directory, n: int, seed: int = 0, chunk: int = 5_000_000) -> dict[str, Path]:
    """Write ``x.npy``, ``y.npy`` (float32) and ``codes.npy`` (uint8) of ``n`` points in chunks of ``chunk``.

    Returns
    -------
    dict
        ``{"x": path, "y": path, "codes": path}``; open them with ``np.load(path, mmap_mode="r")``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / f"{name}.npy" for name in ("x", "y", "codes")}
    x = np.lib.format.open_memmap(paths["x"], mode="w+", dtype=np.float32, shape=(n,))
    y = np.lib.format.open_memmap(paths["y"], mode="w+", dtype=np.float32, shape=(n,))
    codes = np.lib.format.open_memmap(paths["codes"], mode="w+", dtype=np.uint8, shape=(n,))
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        E, labels = embedding(m, seed, np.float32, start=start)
        x[start : start + m], y[start : start + m], codes[start : start + m] = E[:, 0], E[:, 1], labels
    for a in (x, y, codes):
        a.flush()
    del x, y, codes
    return paths
