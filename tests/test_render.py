"""The render path: datashader stages (frame -> aggregate -> shade) and the PNG with legend and decode grid."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from engine import render
from engine.reducers import PCAReducer


@pytest.fixture(scope="module")
def digits_pca():
    """Real data: scikit-learn's 8x8 digits, a PCA of the pixels, and its exact inverse as the decoder."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    reducer = PCAReducer(random_state=0).fit(X)
    return reducer, y


def test_pipeline_stages_are_datashader_objects(digits_pca):
    import datashader.transfer_functions as tf
    import xarray as xr

    reducer, labels = digits_pca
    E = reducer.embedding_
    frame = render.points_frame(E, labels, class_names=[f"digit {i}" for i in range(10)])
    assert str(frame["label"].dtype) == "category" and len(frame) == len(E)

    canvas = render.make_canvas(E, width=120, height=80)
    agg = render.aggregate(frame, canvas=canvas)
    assert isinstance(agg, xr.DataArray) and agg.shape == (80, 120, 10)
    assert int(agg.sum()) == len(E)  # every point lands in one pixel of one category (5% padding)

    img = render.shade(agg)
    assert isinstance(img, tf.Image) and img.shape == (80, 120)
    pil = img.to_pil()
    assert pil.size == (120, 80)


def test_pixels_take_the_colour_of_their_class():
    E = np.array([[0.0, 0.0]] * 50 + [[10.0, 10.0]] * 50)
    labels = np.array([0] * 50 + [1] * 50)
    pil = render.latent_image(E, labels, width=50, height=50, spread=False).convert("RGB")
    a = np.asarray(pil)
    keys = render.color_key(["0", "1"])
    hex_of = lambda px: "#{:02x}{:02x}{:02x}".format(*px)
    # class 0 sits bottom-left, class 1 top-right (y grows upwards in the picture)
    assert hex_of(a[-3, 2]) == keys["0"] or hex_of(a[-2, 2]) == keys["0"] or hex_of(a[-3, 3]) == keys["0"]
    assert hex_of(a[2, -3]) == keys["1"] or hex_of(a[2, -2]) == keys["1"] or hex_of(a[3, -3]) == keys["1"]
    assert hex_of(a[25, 25]) == "#ffffff"


def test_unlabelled_points_are_shaded_by_count():
    E = np.random.default_rng(0).normal(size=(5000, 2))
    pil = render.latent_image(E, width=64, height=64)
    assert pil.size == (64, 64)
    assert len(np.unique(np.asarray(pil.convert("L")))) > 5  # a density ramp, not a flat colour


def test_write_png_with_legend_and_a_grid_of_decodes(digits_pca, tmp_path):
    reducer, labels = digits_pca
    asked = []

    def decode_fn(xy):
        asked.append(np.asarray(xy))
        return reducer.inverse_transform(xy)  # real decodes: the exact PCA inverse of each grid position

    path = render.write_png(
        tmp_path / "out" / "latent.png",
        reducer.embedding_,
        labels,
        class_names=[str(i) for i in range(10)],
        decode_fn=decode_fn,
        draw_fn=lambda out: out.reshape(8, 8),
        grid=4,
        size=200,
        tile=32,
        title="digits",
        compositor="pil",
    )
    assert path.is_file()
    with Image.open(path) as img:
        assert img.format == "PNG"
        width, height = img.size
        a = np.asarray(img.convert("RGB"))
    assert width > 200 + 4 * 32 and height >= 200
    # the decodes were asked once, on a 4 x 4 lattice inside the embedding's range
    (xy,) = asked
    assert xy.shape == (16, 2)
    E = reducer.embedding_
    assert (xy.min(axis=0) > E.min(axis=0) - 1).all() and (xy.max(axis=0) < E.max(axis=0) + 1).all()
    # the right-hand grid is not blank and the legend shows the class colours
    assert a[:, -4 * 36 :].std() > 10
    legend_colours = {render.color_key([str(i) for i in range(10)])[str(i)] for i in range(10)}
    present = {"#{:02x}{:02x}{:02x}".format(*px) for px in a[:, 200:260].reshape(-1, 3)}
    assert len(legend_colours & present) >= 8


def test_write_png_without_decodes(tmp_path):
    E = np.random.default_rng(1).normal(size=(300, 2))
    path = render.write_png(tmp_path / "plain.png", E, np.arange(300) % 3, compositor="pil")
    with Image.open(path) as img:
        assert img.size[0] >= 600


def test_write_png_errors():
    E = np.zeros((3, 2))
    with pytest.raises(ValueError, match="draw_fn"):
        render.write_png("x.png", E, decode_fn=lambda xy: xy)
    with pytest.raises(ValueError, match="compositor"):
        render.write_png("x.png", E, compositor="svg")
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        render.points_frame(np.zeros((3, 3)))


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is not None, reason="checks the message without matplotlib")
def test_matplotlib_compositor_needs_matplotlib(tmp_path):
    with pytest.raises(ImportError, match="pip install matplotlib"):
        render.write_png(tmp_path / "m.png", np.zeros((3, 2)), compositor="matplotlib")


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")
def test_matplotlib_compositor(digits_pca, tmp_path):
    reducer, labels = digits_pca
    path = render.write_png(
        tmp_path / "m.png",
        reducer.embedding_,
        labels,
        decode_fn=reducer.inverse_transform,
        draw_fn=lambda out: out.reshape(8, 8),
        grid=3,
        compositor="matplotlib",
    )
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > img.size[1]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (np.array([[0.0, 1.0]]), [[0, 255]]),  # floats in [0, 1] are scaled
        (np.array([[-2.0, 2.0]]), [[0, 255]]),  # other ranges are min-max normalized
        (np.array([[[7], [9]]], np.uint8), [[7, 9]]),  # (H, W, 1) uint8 kept as is
    ],
)
def test_to_rgb_array(image, expected):
    rgb = render.to_rgb_array(image)
    assert rgb.dtype == np.uint8 and rgb.shape == (*np.asarray(expected).shape, 3)
    np.testing.assert_array_equal(rgb[..., 0], expected)
