"""Parallel coordinates rendered with real datashader: axes, colours by label, highlighted selections."""

import numpy as np
import pytest

from engine.data.project import load_project
from engine.errors import InspectorError
from engine.explore.inspection import Inspection
from engine.explore.selection import select_axis_range
from engine.render.parallel import (
    aggregate_lines,
    lines_frame,
    make_parallel_canvas,
    parallel_axes,
    parallel_image,
)


def rgba(img) -> np.ndarray:
    """The image's pixels as (height, width, 4) uint8, rows in the aggregate's order (y upwards)."""
    return np.asarray(img.data, dtype=np.uint32).view(np.uint8).reshape(*img.shape, 4)


def drawn(img) -> np.ndarray:
    return (rgba(img)[..., :3] < 250).any(axis=-1)


@pytest.fixture(scope="module")
def inspections(tiny_project, tmp_path_factory):
    project = load_project("tiny", root=tiny_project)
    cache = tmp_path_factory.mktemp("parallel-cache")
    return {layer: Inspection(project, layer, method="pca", cache_dir=cache) for layer in ("bottleneck", "conv2")}


def test_axes_are_the_units_of_a_small_layer(inspections):
    insp = inspections["bottleneck"]
    axes = parallel_axes(insp.activations)
    assert axes.basis == "units" and axes.names == tuple(f"unit {i}" for i in range(5))
    np.testing.assert_array_equal(axes.values, insp.activations)
    np.testing.assert_array_equal(axes.ranges, np.c_[insp.activations.min(0), insp.activations.max(0)])


def test_axes_are_top_principal_directions_of_a_large_layer(inspections):
    insp = inspections["conv2"]
    axes = parallel_axes(insp.activations, max_axes=16)
    assert axes.basis == "principal" and axes.names[0] == "PC 1" and axes.values.shape == (300, 16)
    cov = np.cov(axes.values.T.astype(np.float64))
    assert np.all(np.diff(np.diag(cov)) <= 1e-9)  # decreasing variance
    np.testing.assert_allclose(cov - np.diag(np.diag(cov)), 0.0, atol=1e-5)  # uncorrelated
    assert np.all(np.diff(axes.explained_variance_ratio) <= 0) and axes.explained_variance_ratio.sum() <= 1.0


def test_image_is_drawn_and_a_selection_highlights_exactly_its_lines(inspections):
    insp = inspections["conv2"]
    axes = parallel_axes(insp.activations)
    frame = lines_frame(axes, insp.labels, ["a", "b", "c"])
    plain = parallel_image(axes, insp.labels, class_names=["a", "b", "c"], width=320, height=160, frame=frame)
    assert plain.shape == (160, 320) and drawn(plain).mean() > 0.2

    selected = np.array([5, 77, 150])
    lit = parallel_image(axes, insp.labels, class_names=["a", "b", "c"], selected=selected, width=320, height=160)
    canvas = make_parallel_canvas(axes.n_axes, width=320, height=160)
    where = aggregate_lines(frame.iloc[selected], canvas=canvas).sum(dim="label").values > 0
    assert where.sum() > 100
    px = rgba(lit)[..., :3].astype(int)
    assert (px[where].max(axis=-1) < 130).all()  # the selected lines, dark on top
    others = drawn(lit) & ~where
    assert others.any() and (px[others].min(axis=-1) > 150).all()  # the others, faded
    assert (rgba(lit)[where] != rgba(plain)[where]).any(axis=-1).all()
    nothing = parallel_image(axes, insp.labels, selected=[], width=320, height=160)
    assert drawn(nothing).any() and (rgba(nothing)[..., :3][drawn(nothing)].min(axis=-1) > 150).all()


def test_lines_are_coloured_by_label_with_the_latent_plot_colours():
    rng = np.random.default_rng(0)
    low = rng.uniform(0.0, 0.3, size=(200, 6))
    high = rng.uniform(0.7, 1.0, size=(200, 6))
    values = np.concatenate([low, high]).astype(np.float32)
    labels = np.repeat([0, 1], 200)  # "a" -> #1f77b4 (blue) below, "b" -> #ff7f0e (orange) above
    axes = parallel_axes(values)
    px = rgba(parallel_image(axes, labels, class_names=["a", "b"], width=200, height=100))[..., :3].astype(int)
    bottom, top = px[:40], px[-40:]
    ink_bottom, ink_top = (bottom < 250).any(-1), (top < 250).any(-1)
    assert ink_bottom.sum() > 500 and ink_top.sum() > 500
    assert (bottom[ink_bottom][:, 2] > bottom[ink_bottom][:, 0]).all()   # blue
    assert (top[ink_top][:, 0] > top[ink_top][:, 2]).all()               # orange


def test_a_range_drawn_on_an_axis_selects_the_samples_crossing_it(inspections):
    insp = inspections["bottleneck"]
    axes = parallel_axes(insp.activations)
    lo, hi = axes.to_data(2, 0.25), axes.to_data(2, 0.75)
    ids = select_axis_range(axes.values[:, 2], lo, hi)
    unit = axes.to_unit(2, insp.activations[:, 2])
    np.testing.assert_array_equal(ids, np.flatnonzero((unit >= 0.25) & (unit <= 0.75)))
    assert axes.to_data(2, 0.0) == axes.ranges[2, 0] and axes.to_data(2, 1.0) == pytest.approx(axes.ranges[2, 1])
    with pytest.raises(InspectorError, match=r"axis 5 is outside 0\.\.4"):
        axes.to_data(5, 0.5)


def test_hundred_thousand_samples_render_with_a_highlight():
    rng = np.random.default_rng(1)
    values = (rng.normal(size=(100_000, 16)) @ rng.normal(size=(16, 16))).astype(np.float32)
    labels = rng.integers(0, 10, size=100_000)
    axes = parallel_axes(values)
    img = parallel_image(axes, labels, selected=np.arange(0, 100_000, 1000), width=400, height=200)
    assert img.shape == (200, 400) and drawn(img).mean() > 0.3
    assert (rgba(img)[..., :3].max(axis=-1) < 130).sum() > 1000  # the 100 highlighted lines show


def test_bad_labels_and_ids_are_reported():
    axes = parallel_axes(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(InspectorError, match="3 labels for 20 samples"):
        lines_frame(axes, [0, 1, 2])
    with pytest.raises(InspectorError, match=r"selected ids must lie in 0\.\.19"):
        parallel_image(axes, selected=[3, 20])
