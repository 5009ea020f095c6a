"""The latent editor on real Inspections of the tiny conv autoencoder: per-unit controls for the 5-unit bottleneck,
principal directions plus channel scales for the (4, 4, 8) conv feature map."""

import numpy as np
import pytest

from engine.data.project import load_project
from engine.errors import InspectorError
from engine.explore.edit import LatentEditor, decode_edit
from engine.explore.inspection import Inspection


@pytest.fixture(scope="module")
def inspections(tiny_project, tmp_path_factory):
    project = load_project("tiny", root=tiny_project)
    cache = tmp_path_factory.mktemp("edit-cache")
    return {layer: Inspection(project, layer, method="pca", cache_dir=cache) for layer in ("bottleneck", "conv2")}


@pytest.fixture(scope="module")
def bottleneck(inspections):
    insp = inspections["bottleneck"]
    return insp, LatentEditor.from_inspection(insp)


@pytest.fixture(scope="module")
def conv(inspections):
    insp = inspections["conv2"]
    return insp, LatentEditor.from_inspection(insp)


def own_decode(insp, i):
    return insp.split.decode(np.asarray(insp.activations[i : i + 1]).reshape(1, *insp.latent_shape))[0]


def test_small_layer_gets_one_control_per_unit_with_extended_ranges(bottleneck):
    insp, ed = bottleneck
    controls = ed.controls()
    assert ed.basis_ == "units" and [c.name for c in controls] == [f"unit {i}" for i in range(5)]
    X = insp.activations
    for i, c in enumerate(controls):
        lo, hi = float(X[:, i].min()), float(X[:, i].max())
        assert c.kind == "unit" and c.observed == (lo, hi)
        assert c.range == pytest.approx((lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo)))
        assert c.default == pytest.approx(float(X[:, i].mean(dtype=np.float64)))
    start = ed.start(7)
    assert start.sample == 7 and start.channel_scales is None
    assert [c.default for c in start.controls] == pytest.approx(X[7].tolist())


def test_editing_nothing_reproduces_the_start_sample_decode(bottleneck, conv):
    for insp, ed in (bottleneck, conv):
        start = ed.start(11)
        act = ed.activation(start.values, start.channel_scales, start=start)
        assert act.shape == insp.latent_shape
        np.testing.assert_allclose(act.reshape(-1), insp.activations[11], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(insp.decode_activation(act), own_decode(insp, 11), rtol=1e-5, atol=1e-6)


def test_editing_one_unit_changes_that_unit_and_the_decode(bottleneck):
    insp, ed = bottleneck
    start = ed.start(4)
    before = insp.decode_activation(ed.activation(start.values, start=start))
    for unit in range(5):
        values = start.values.copy()
        c = ed.controls()[unit]
        values[unit] = c.range[1]
        act = ed.activation(values, start=start)
        changed = np.flatnonzero(act != start.activation)
        assert changed.tolist() == [unit]
        assert np.abs(insp.decode_activation(act) - before).max() > 1e-3


def test_out_of_range_is_flagged_exactly_beyond_the_observed_bounds(bottleneck, conv):
    for _, ed in (bottleneck, conv):
        lo, hi = ed.observed_[:, 0], ed.observed_[:, 1]
        assert not ed.out_of_range(lo).any() and not ed.out_of_range(hi).any()
        assert ed.out_of_range(np.nextafter(lo, -np.inf)).all()
        assert ed.out_of_range(np.nextafter(hi, np.inf)).all()
        one = (lo + hi) / 2
        one[0] = np.nextafter(hi[0], np.inf)
        assert ed.out_of_range(one).tolist() == [True] + [False] * (len(lo) - 1)
        # the sample holding a control's maximum sits exactly on the bound and is not flagged
        coords = ed.coords_ if ed.basis_ == "principal" else np.asarray(ed._X)
        extreme = int(np.argmax(coords[:, 0]))
        assert not ed.out_of_range(ed.start(extreme).values).any()


def test_large_conv_layer_gets_principal_directions_and_channel_scales(conv):
    insp, ed = conv
    assert insp.latent_shape == (4, 4, 8) and ed.basis_ == "principal"
    controls = ed.controls()
    assert [c.name for c in controls[:16]] == [f"PC {i}" for i in range(1, 17)]
    assert [c.name for c in controls[16:]] == [f"channel {c} scale" for c in range(8)]
    start = ed.start(20)
    assert start.channel_scales.tolist() == [1.0] * 8
    # moving one direction moves the activation along that direction only, keeping the sample's residual detail
    values = start.values.copy()
    values[0] += 0.75
    delta = ed.activation(values, start=start).reshape(-1) - start.activation.reshape(-1)
    np.testing.assert_allclose(delta, 0.75 * ed.directions_.components_[0], atol=1e-5)
    assert np.abs(insp.decode_activation(ed.activation(values, start=start)) - own_decode(insp, 20)).max() > 1e-4
    # a channel scale multiplies exactly that channel's feature map
    scales = np.ones(8)
    scales[3] = 2.0
    scaled = ed.activation(start.values, scales, start=start)
    np.testing.assert_allclose(scaled[..., 3], 2.0 * start.activation[..., 3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.delete(scaled, 3, axis=-1), np.delete(start.activation, 3, axis=-1), atol=1e-6)


def test_channel_scales_are_flagged_outside_the_data_magnitudes(conv):
    insp, ed = conv
    start = ed.start(20)
    values = start.values
    channels = start.controls[16:]
    assert not ed.out_of_range(values, start.channel_scales, start=start).any()
    for c in channels:
        assert c.range[0] >= 0.0 and c.range[0] <= c.observed[0] <= 1.0 <= c.observed[1] <= c.range[1]
    active = [c for c in channels if c.active]
    assert active, "the conv layer has channels that are non-zero at sample 20"
    c = active[0]
    scales = np.ones(8)
    scales[c.index] = np.nextafter(c.observed[1], np.inf)
    flags = ed.out_of_range(values, scales, start=start)
    assert flags.tolist() == [False] * 16 + [i == c.index for i in range(8)]
    # the flag agrees with the data: the scaled channel's magnitude is just beyond the largest one observed
    rms = np.sqrt(np.mean(ed.activation(values, scales, start=start)[..., c.index].astype(np.float64) ** 2))
    assert rms == pytest.approx(ed.channel_rms_range_[c.index, 1], rel=1e-5)


def test_a_tapped_point_loads_into_the_editor(conv):
    insp, ed = conv
    tap = insp.decode(*map(float, insp.embedding[:2].mean(axis=0)))
    start = ed.start(tap.activation)
    assert start.sample is None
    np.testing.assert_allclose(ed.activation(start.values, start=start), tap.activation, rtol=1e-5, atol=1e-6)


def test_an_edit_decodes_like_a_tap(conv):
    insp, ed = conv
    start = ed.start(9)
    values = start.values.copy()
    values[1] = ed.controls()[1].range[0]
    act = ed.activation(values, start=start)
    d = decode_edit(insp, act)
    np.testing.assert_array_equal(d.activation, act)
    np.testing.assert_allclose(d.output, insp.decode_activation(act), rtol=1e-6)
    np.testing.assert_allclose(d.xy, insp.reducer.transform(act.reshape(1, -1))[0], rtol=1e-6)
    assert d.nearest == insp.nearest(*d.xy) and len(d.trust.distance) == 1
    with pytest.raises(InspectorError, match=r"layer 'conv2': an activation must hold 128 values"):
        decode_edit(insp, np.zeros(5))


def test_bad_input_is_reported_with_the_layer(bottleneck, conv):
    _, ed = bottleneck
    with pytest.raises(InspectorError, match=r"layer 'bottleneck': sample id 300 is outside 0\.\.299"):
        ed.start(300)
    with pytest.raises(InspectorError, match="expected 5 values"):
        ed.activation([0.0, 1.0])
    with pytest.raises(InspectorError, match="must hold 5 values"):
        ed.start(np.zeros(7))
    with pytest.raises(InspectorError, match="no channel scales"):
        ed.activation(np.zeros(5), np.ones(3))
    with pytest.raises(InspectorError, match="expected 8 channel scales"):
        conv[1].activation(np.zeros(16), np.ones(3))
