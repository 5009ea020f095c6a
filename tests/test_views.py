"""Samples drawn as pictures for each view kind."""

import numpy as np

from engine.data.project import ViewSpec
from engine.render.samples import to_image


def test_image_view_keeps_absolute_scale():
    a = np.zeros((28, 28), np.float32)
    a[10:18, 10:18] = 1.0
    img = to_image(a.reshape(-1), ViewSpec("image", (28, 28)), size=28)  # flat samples are reshaped
    assert img.shape == (28, 28, 3)
    assert img[14, 14, 0] == 255 and img[0, 0, 0] == 0
    dim = to_image(a * 0.5, ViewSpec("image", (28, 28)), size=28)
    assert dim[14, 14, 0] == 127  # a half-bright output stays half bright


def test_series_view_draws_one_colour_per_channel():
    t = np.linspace(0, 6, 100)
    series = np.stack([np.sin(t), np.cos(t), t / 6], axis=1)
    img = to_image(series, ViewSpec("series", (100, 3)), size=64)
    colours = {tuple(c) for c in img.reshape(-1, 3)} - {(255, 255, 255)}
    assert len(colours) >= 3


def _bar_pixels(img):
    return int((img == np.array([0x1F, 0x77, 0xB4], np.uint8)).all(axis=2).sum())


def test_probabilities_use_a_fixed_scale():
    low = to_image(np.array([0.1, 0.0]), ViewSpec("probabilities"), size=32)
    high = to_image(np.array([1.0, 0.0]), ViewSpec("probabilities"), size=32)
    assert _bar_pixels(high) > 3 * _bar_pixels(low) > 0


def test_a_probability_tile_writes_its_most_probable_class():
    scores = np.array([0.1, 0.7, 0.2])
    named = to_image(scores, ViewSpec("probabilities", class_names=("cat", "dog", "fox")), size=64)
    numbered = to_image(scores, ViewSpec("probabilities"), size=64)
    text = (named[:12] < 80).all(axis=2)  # black text in the top rows
    assert text.sum() > 10
    assert not np.array_equal(named[:12], numbered[:12])  # "dog 0.70" is not "1 0.70"


def test_vector_bars_are_proportional():
    img = to_image(np.array([0.25, 1.0]), ViewSpec("vector"), size=34)
    drawn = (img != 255).any(axis=2)
    left, right = drawn[:, :17].sum(), drawn[:, 17:].sum()
    assert 3 * left < right < 5 * left


def test_dashboard_bars_name_classes_only_where_there_is_one_value_per_class():
    """The decoded output's bars: a vector as long as the class list (logits) is labelled by class, a vector of
    another length by unit number (16 units labelled 'class 0'..'class 9', then '10'..'15', read as classes)."""
    from dashboard.sample import element

    classes = [f"class {i}" for i in range(10)]
    units = element(np.arange(16.0), ViewSpec("vector"), class_names=classes)
    assert list(units.dimension_values(0)) == [str(i) for i in range(16)]
    logits = element(np.arange(10.0), ViewSpec("vector"), class_names=classes)
    assert list(logits.dimension_values(0)) == classes
    scores = element(np.full(4, 0.25), ViewSpec("probabilities", class_names=("a", "b", "c")))
    assert list(scores.dimension_values(0)) == ["a", "b", "c", "3"]  # a class without a name: its number
