"""Selections on the latent plot and on parallel coordinates, exported ids, and linking views by sample id."""

import math

import numpy as np
import pytest

from engine.data.project import load_project
from engine.errors import InspectorError
from engine.explore.inspection import Inspection
from engine.explore.selection import (
    export_ids,
    intersect,
    load_ids,
    map_selection,
    select_axis_range,
    select_box,
    select_lasso,
    union,
)
from engine.render.parallel import parallel_axes


def winding_inside(p, polygon) -> bool:
    """Brute force, another rule than the even-odd one under test: the winding number of a simple polygon."""
    total = 0.0
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0)):
        a0, a1 = math.atan2(y0 - p[1], x0 - p[0]), math.atan2(y1 - p[1], x1 - p[0])
        total += (a1 - a0 + math.pi) % (2 * math.pi) - math.pi
    return abs(total) > math.pi


@pytest.fixture(scope="module")
def points():
    return np.random.default_rng(0).normal(size=(3000, 2)).astype(np.float32)


def test_box_selection_equals_a_brute_force_mask(points):
    ids = select_box(points, 1.2, -0.5, 0.8, -1.0)  # bounds in any order
    x, y = points[:, 0], points[:, 1]
    np.testing.assert_array_equal(ids, np.flatnonzero((x >= -0.5) & (x <= 1.2) & (y >= -1.0) & (y <= 0.8)))
    assert ids.dtype == np.int64 and len(ids) > 100
    corner = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    assert select_box(corner, 0.0, 1.0, 0.0, 1.0).tolist() == [0, 1]  # bounds included


def test_lasso_selection_equals_a_brute_force_mask(points):
    angles = np.linspace(0, 2 * np.pi, 23, endpoint=False)
    radii = np.where(np.arange(23) % 2 == 0, 1.8, 0.6)  # a star: not convex
    polygon = np.c_[radii * np.cos(angles) + 0.2, radii * np.sin(angles) - 0.1]
    ids = select_lasso(points, polygon)
    expected = np.flatnonzero([winding_inside(p, polygon) for p in points.astype(np.float64)])
    np.testing.assert_array_equal(ids, expected)
    assert 100 < len(ids) < len(points)
    with pytest.raises(InspectorError, match=r"polygon must have shape \(vertices >= 3, 2\)"):
        select_lasso(points, [[0, 0], [1, 1]])


def test_axis_ranges_and_combinations():
    values = np.array([0.5, -1.0, 2.0, 0.0, 1.0])
    assert select_axis_range(values, 1.0, 0.0).tolist() == [0, 3, 4]
    assert intersect([0, 3, 4], [4, 3, 9], [3, 4]).tolist() == [3, 4]
    assert union([4, 0], [3, 0]).tolist() == [0, 3, 4]
    assert intersect().tolist() == [] and union().tolist() == []


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".txt"])
def test_exported_ids_read_back_and_replace_atomically(tmp_path, suffix):
    path = tmp_path / "sub" / f"cluster{suffix}"
    export_ids([9, 2, 40], path)
    export_ids(np.array([3, 17, 42, 0]), path)  # replaces the earlier file
    assert load_ids(path).tolist() == [3, 17, 42, 0]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left behind
    if suffix == ".csv":
        assert path.read_text().splitlines()[:2] == ["sample_id", "3"]


def test_export_refuses_bad_files_and_ids(tmp_path):
    with pytest.raises(InspectorError, match=r"cannot write ids as '\.json'; use one of \.npy, \.csv, \.txt"):
        export_ids([1], tmp_path / "ids.json")
    with pytest.raises(InspectorError, match="sample ids must lie in >= 0"):
        export_ids([1, -2], tmp_path / "ids.txt")
    with pytest.raises(InspectorError, match="whole numbers"):
        export_ids([1.5], tmp_path / "ids.txt")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def two_layers(tiny_project, tmp_path_factory):
    project = load_project("tiny", root=tiny_project)
    cache = tmp_path_factory.mktemp("selection-cache")
    return Inspection(project, "bottleneck", cache_dir=cache), Inspection(project, "conv2", cache_dir=cache)


def test_a_box_on_one_layer_maps_to_the_same_ids_on_another(two_layers):
    a, b = two_layers
    (x0, y0), (x1, y1) = np.percentile(a.embedding, 20, axis=0), np.percentile(a.embedding, 70, axis=0)
    ids = select_box(a.embedding, x0, x1, y0, y1)
    mapped = map_selection(ids, a, b)
    np.testing.assert_array_equal(mapped.ids, ids)
    np.testing.assert_array_equal(mapped.xy, b.embedding[ids])
    back = map_selection(mapped.ids, b, a)
    np.testing.assert_array_equal(back.xy, a.embedding[ids])


def test_a_range_on_a_parallel_axis_highlights_the_same_samples_in_the_latent_plot(two_layers):
    a, b = two_layers
    axes = parallel_axes(b.activations)
    ids = select_axis_range(axes.values[:, 0], axes.to_data(0, 0.6), axes.to_data(0, 1.0))
    on_plot = map_selection(ids, b, a)
    assert len(ids) > 0
    np.testing.assert_array_equal(on_plot.xy, a.embedding[ids])
    (x0, y0), (x1, y1) = on_plot.xy.min(axis=0), on_plot.xy.max(axis=0)
    both = intersect(ids, select_box(a.embedding, x0, x1, y0, y1))
    np.testing.assert_array_equal(both, ids)  # the box around the mapped points holds every mapped id


def test_views_of_different_samples_cannot_be_linked(two_layers):
    a, _ = two_layers
    with pytest.raises(InspectorError, match=r"cannot link layer 'bottleneck' of project 'tiny' \(300 samples\) "
                                             r"with a view \(10 samples\)"):
        map_selection([1], a, np.zeros((10, 2)))
    with pytest.raises(InspectorError, match=r"sample ids must lie in 0\.\.299"):
        map_selection([300], a, a)
