"""Interpolation in the layer's own space: the straight line, the spherical path, decoded and projected to 2-D."""

import numpy as np
import pytest

from engine.data.project import load_project
from engine.errors import InspectorError
from engine.explore.inspection import Inspection
from engine.explore.interpolate import Endpoint, interpolate, interpolation_path, resolve_endpoint


@pytest.fixture(scope="module")
def project(tiny_project):
    return load_project("tiny", root=tiny_project)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("interp-cache")


@pytest.fixture(scope="module")
def pca(project, cache):
    return Inspection(project, "bottleneck", method="pca", cache_dir=cache)


def own_decode(insp, i):
    return insp.split.decode(np.asarray(insp.activations[i : i + 1]).reshape(1, *insp.latent_shape))[0]


@pytest.mark.parametrize("method", ["linear", "spherical"])
def test_endpoints_decode_to_their_own_decodes(pca, method):
    tap = (float(pca.embedding[:, 0].mean()), float(pca.embedding[:, 1].max()))
    path = interpolation_path(pca, 3, tap, steps=7, method=method)
    assert path.start.kind == "sample" and path.end.kind == "tap" and path.end.xy == tap
    assert path.activations.shape == (7, 5) and path.outputs.shape == (7, 16, 16, 1) and path.xy.shape == (7, 2)
    np.testing.assert_allclose(path.outputs[0], own_decode(pca, 3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(path.outputs[-1], pca.decode(*tap).output, rtol=1e-5, atol=1e-6)
    # every step is decoded through the suffix
    np.testing.assert_allclose(path.outputs[3], pca.decode_activation(path.activations[3]), rtol=1e-5, atol=1e-6)
    assert np.abs(path.outputs[3] - path.outputs[0]).max() > 1e-4


def test_linear_path_is_evenly_spaced_and_projects_onto_a_straight_line_under_pca(pca):
    path = interpolation_path(pca, 10, 250, steps=6)
    steps = np.diff(path.activations, axis=0)
    np.testing.assert_allclose(steps, np.repeat(steps[:1], 5, axis=0), atol=1e-6)
    np.testing.assert_allclose(path.xy[0], pca.embedding[10], atol=1e-5)
    np.testing.assert_allclose(path.xy[-1], pca.embedding[250], atol=1e-5)
    d = path.xy - path.xy[0]  # PCA is linear: the projected path is the segment between the projected ends
    cross = d[:, 0] * d[-1, 1] - d[:, 1] * d[-1, 0]
    assert np.abs(cross).max() < 1e-4 * max(1.0, float((d[-1] ** 2).sum()))


def test_spherical_interpolation_interpolates_the_norm_and_turns_evenly():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), 3.0 * rng.normal(size=(3, 4))
    path = interpolate(a, b, steps=9, method="spherical").reshape(9, -1).astype(np.float64)
    t = np.linspace(0, 1, 9)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1),
                               (1 - t) * np.linalg.norm(a) + t * np.linalg.norm(b), rtol=1e-5)
    u = path / np.linalg.norm(path, axis=1, keepdims=True)
    angles = np.arccos(np.clip((u[:-1] * u[1:]).sum(axis=1), -1, 1))
    np.testing.assert_allclose(angles, angles[0], rtol=1e-3)  # constant angular speed along the great circle
    basis = np.linalg.qr(np.c_[a.ravel(), b.ravel()])[0]
    np.testing.assert_allclose(path - path @ basis @ basis.T, 0, atol=1e-5)  # stays in the plane of a and b
    assert np.array_equal(path[0], a.ravel().astype(np.float32)) and np.array_equal(path[-1],
                                                                                    b.ravel().astype(np.float32))


@pytest.mark.parametrize("a, b", [
    ([0.0, 0.0, 0.0], [1.0, 2.0, 2.0]),    # zero endpoint: no direction
    ([1.0, 1.0, 0.0], [2.0, 2.0, 0.0]),    # parallel
    ([1.0, 0.0, 0.0], [-3.0, 0.0, 0.0]),   # opposite
])
def test_spherical_interpolation_handles_degenerate_pairs(a, b):
    path = interpolate(a, b, steps=5, method="spherical").astype(np.float64)
    t = np.linspace(0, 1, 5)
    assert np.isfinite(path).all()
    np.testing.assert_allclose(path[[0, -1]], [a, b])
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), (1 - t) * np.linalg.norm(a) + t * np.linalg.norm(b),
                               rtol=1e-5, atol=1e-6)


def test_endpoints_resolve_from_ids_taps_and_activations(pca):
    act = np.asarray(pca.activations[5]) * 1.1
    assert resolve_endpoint(pca, 5).sample == 5
    assert resolve_endpoint(pca, act).kind == "activation"
    tap = resolve_endpoint(pca, (0.25, -0.5))
    assert tap.kind == "tap"
    np.testing.assert_allclose(tap.activation, pca.decode(0.25, -0.5).activation)
    assert resolve_endpoint(pca, Endpoint.tap(pca, 1.0, 1.0)).xy == (1.0, 1.0)
    with pytest.raises(InspectorError, match=r"layer 'bottleneck': sample id 300 is outside 0\.\.299"):
        resolve_endpoint(pca, 300)
    with pytest.raises(InspectorError, match=r"activation of 5 values \(shape \(5,\)\); got an array of shape \(3,\)"):
        resolve_endpoint(pca, [1.0, 2.0, 3.0])
    with pytest.raises(InspectorError, match="steps must be an integer >= 2"):
        interpolate(act, act, steps=1)
    with pytest.raises(InspectorError, match="method must be one of linear, spherical"):
        interpolate(act, act, method="cubic")


@pytest.mark.slow
@pytest.mark.parametrize("method, params", [("umap", {"n_neighbors": 10}), ("tsne", {"perplexity": 20})])
def test_path_projection_works_with_non_linear_reducers(project, cache, method, params):
    insp = Inspection(project, "bottleneck", method=method, inverse="knn", params=params, cache_dir=cache)
    path = interpolation_path(insp, 0, 1, steps=5, method="spherical")
    assert path.xy.shape == (5, 2) and np.isfinite(path.xy).all()
    lo, hi = insp.embedding.min(axis=0), insp.embedding.max(axis=0)
    span = hi - lo
    assert ((path.xy >= lo - span) & (path.xy <= hi + span)).all()  # placed on the plot, not thrown far away
    np.testing.assert_allclose(path.outputs[0], own_decode(insp, 0), rtol=1e-5, atol=1e-6)
