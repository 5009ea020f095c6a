"""Feature visualization: top-k dataset examples of a unit, and activation maximization by gradient ascent.

Small real Keras models written to real project folders: ``img`` (a conv classifier on 12 x 12 images, labelled),
``series`` (a Conv1D model on 24 x 3 series, the time-series case), ``resid`` (a residual block: a layer inside it
is not a valid cut) and ``hooked`` (the ``img`` model behind a ``preprocess`` hook). Each test checks the engine
against an independent computation (a full sort, the model's own prefix, NumPy) rather than against stored numbers.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.errors import InspectorError
from engine.explore import featurevis as fv


def _img_model():
    import keras
    from keras import layers

    keras.utils.set_random_seed(11)
    return keras.Sequential([
        keras.Input((12, 12, 1), name="image"),
        layers.Conv2D(6, 3, padding="same", activation="relu", name="conv"),
        layers.MaxPooling2D(name="pool"),
        layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2"),
        layers.Flatten(name="flat"),
        layers.Dense(5, name="code"),
        layers.Dense(3, activation="softmax", name="probs"),
    ], name="img_clf")


def _series_model():
    import keras
    from keras import layers

    keras.utils.set_random_seed(12)
    inp = keras.Input((24, 3), name="series")
    h = layers.Conv1D(5, 5, padding="same", activation="relu", name="c1")(inp)
    h = layers.Conv1D(4, 3, padding="same", activation="tanh", name="c2")(h)
    h = layers.GlobalAveragePooling1D(name="gap")(h)
    return keras.Model(inp, layers.Dense(2, name="head")(h), name="series_net")


def _residual_model():
    import keras
    from keras import layers

    keras.utils.set_random_seed(13)
    inp = keras.Input((10,), name="x")
    h = layers.Dense(8, activation="relu", name="stem")(inp)
    r = layers.Dense(8, activation="relu", name="res_a")(h)
    r = layers.Dense(8, name="res_b")(r)
    s = layers.Add(name="res_add")([h, r])
    return keras.Model(inp, layers.Dense(2, name="head")(s), name="resnet")


def _layer(model, name, x):
    """The activations of layer ``name`` computed by Keras itself (not through the engine)."""
    import keras

    return np.asarray(keras.Model(model.inputs, model.get_layer(name).output)([np.asarray(x)]))


IMAGE_VIEW = '[input_view]\nkind = "image"\nshape = [12, 12]\n'


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from builders import write_project

    root = tmp_path_factory.mktemp("projects")
    rng = np.random.default_rng(5)
    x = rng.random((240, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=240)
    write_project(root, "img", _img_model(), x, y, manifest='class_names = ["a", "b", "c"]\n' + IMAGE_VIEW)
    write_project(root, "series", _series_model(), rng.normal(size=(90, 24, 3)).astype(np.float32),
                  rng.integers(0, 2, size=90),
                  manifest='[input_view]\nkind = "series"\nshape = [24, 3]\n')
    write_project(root, "resid", _residual_model(), rng.normal(size=(150, 10)).astype(np.float32))
    hooked = write_project(root, "hooked", _img_model(), x, y, manifest=IMAGE_VIEW)
    (hooked / "hooks.py").write_text("def preprocess(batch):\n    return batch * 2.0 - 1.0\n")
    return root


@pytest.fixture(scope="module")
def load(root):
    from engine.data.project import load_project

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_project(name, root=root)
        return cache[name]

    return get


# -- from the data ---------------------------------------------------------------------------------------------------


def test_top_k_agrees_with_a_full_sort():
    rng = np.random.default_rng(0)
    values = rng.standard_normal(300_000).astype(np.float32)
    for k in (1, 10, 257):
        np.testing.assert_array_equal(fv.top_k(values, k), np.argsort(-values, kind="stable")[:k])
        np.testing.assert_array_equal(fv.top_k(values, k, largest=False), np.argsort(values, kind="stable")[:k])
    # ties, also across the k-th value: the lowest ids first, as a stable full sort
    tied = rng.integers(0, 20, size=5_000).astype(np.float32)
    for k in (3, 250, 777):
        np.testing.assert_array_equal(fv.top_k(tied, k), np.argsort(-tied, kind="stable")[:k])
        np.testing.assert_array_equal(fv.top_k(tied, k, largest=False), np.argsort(tied, kind="stable")[:k])
    assert fv.top_k(values[:5], 9).tolist() == np.argsort(-values[:5], kind="stable").tolist()
    assert fv.top_k(values, 0).size == 0


def test_unit_activations_read_a_memory_map_in_chunks(tmp_path):
    rng = np.random.default_rng(1)
    z = np.lib.format.open_memmap(tmp_path / "z.npy", mode="w+", dtype=np.float32, shape=(1003, 5, 4, 6))
    z[:] = rng.standard_normal(z.shape)
    z.flush()
    z = np.load(tmp_path / "z.npy", mmap_mode="r")
    mean = fv.unit_activations(z, fv.Unit("conv", 4), chunk=100)
    np.testing.assert_allclose(mean, np.asarray(z)[..., 4].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    at = fv.unit_activations(z, fv.Unit("conv", 2, (3, 1)), chunk=64)
    np.testing.assert_array_equal(at, np.asarray(z)[:, 3, 1, 2])
    dream = fv.unit_activations(z, fv.DeepDream("conv"), chunk=77)
    np.testing.assert_allclose(dream, (np.asarray(z, dtype=np.float64) ** 2).mean(axis=(1, 2, 3)), rtol=1e-5)
    flat = np.asarray(z).reshape(1003, -1)
    np.testing.assert_array_equal(fv.unit_activations(flat, fv.Unit("dense", 17), chunk=10), flat[:, 17])


def test_top_examples_are_the_extremes_of_the_layer_with_their_inputs_and_labels(load, tmp_path):
    from engine.model import split

    project = load("img")
    x, y = project.inputs(), project.labels()
    z = split(project.model(), "conv2").encode(x)  # the model's own prefix, not the engine's cache
    for unit, values in ((fv.Unit("conv2", 3), z[..., 3].mean(axis=(1, 2))),
                         (fv.Unit("conv2", 6, (2, 4)), z[:, 2, 4, 6])):
        ex = fv.top_examples(project, unit, k=7, cache_dir=tmp_path)
        order = np.argsort(-values, kind="stable")
        np.testing.assert_array_equal(ex.top.indices, order[:7])
        np.testing.assert_array_equal(ex.bottom.indices, np.argsort(values, kind="stable")[:7])
        np.testing.assert_allclose(ex.top.activations, values[order[:7]], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(ex.top.inputs, x[ex.top.indices])
        np.testing.assert_array_equal(ex.bottom.labels, y[ex.bottom.indices])
        assert ex.n == len(x) and ex.best == pytest.approx(values.max(), rel=1e-5)
        assert ex.shape == (6, 6, 8) and not ex.constant


def test_any_layer_even_inside_a_residual_block(load, tmp_path):
    from engine.model import list_layers

    project = load("resid")
    model = project.model()
    assert not next(i for i in list_layers(model) if i.name == "res_a").valid_cut
    expected = _layer(model, "res_a", project.inputs())[:, 5]
    ex = fv.top_examples(project, fv.Unit("res_a", 5), k=4, cache_dir=tmp_path)
    np.testing.assert_array_equal(ex.top.indices, np.argsort(-expected, kind="stable")[:4])
    np.testing.assert_allclose(ex.top.activations, expected[ex.top.indices], rtol=1e-5)

    result = fv.maximize(project, fv.Objective.unit("res_a", 5), steps=64, seed=0)
    assert result.activation > max(result.start_activation, ex.best)
    np.testing.assert_allclose(result.activation, _layer(model, "res_a", result.input[None])[0, 5], rtol=1e-5)


# -- by optimization -------------------------------------------------------------------------------------------------


def test_the_optimized_input_beats_the_best_dataset_example_and_its_start(load, tmp_path):
    project = load("img")
    x = project.inputs()
    model = project.model()
    cases = ((fv.Unit("code", 2), lambda a: a[:, 2]), (fv.Unit("conv2", 5), lambda a: a[..., 5].mean(axis=(1, 2))),
             (fv.Unit("conv", 1, (6, 6)), lambda a: a[:, 6, 6, 1]))
    for target, read in cases:
        best = fv.top_examples(project, target, k=1, cache_dir=tmp_path)
        result = fv.maximize(project, fv.Objective.sum([(1.0, target)]), steps=96, seed=3)
        assert result.activation > best.best, target
        assert result.activation > result.start_activation, target
        assert result.input.shape == (12, 12, 1) and result.steps_done == 96 and not result.cancelled
        # clipped to the data's range, and the value is the model's own for that input
        assert x.min() <= result.input.min() and result.input.max() <= x.max()
        np.testing.assert_allclose(read(_layer(model, target.layer, result.input[None]))[0], result.activation,
                                   rtol=1e-5)
    result = fv.maximize(project, fv.Objective.unit("conv", 1, (6, 6)), steps=40, seed=3,
                         regularizers=fv.Regularizers(tv=0.1, jitter=1))
    params = result.params()
    assert params["steps"] == 40 and params["lr"] == 0.1 and params["seed"] == 3 and params["start"] == "noise"
    assert params["tv"] == 0.1 and params["jitter"] == 1 and params["clip"] is True
    assert params["objective"] == "conv channel 1 at (6, 6)" and params["objective_kind"] == "unit"

    # from a chosen sample: the top example itself, driven further
    top = fv.top_examples(project, fv.Unit("code", 2), k=1, cache_dir=tmp_path)
    start = int(top.top.indices[0])
    result = fv.maximize(project, fv.Objective.unit("code", 2), start=start, steps=32, seed=0)
    assert result.start == f"sample {start}" and result.start_activation == pytest.approx(top.best, rel=1e-5)
    assert result.activation > top.best


def test_objectives_output_deepdream_and_weighted_sum(load):
    project = load("img")
    model = project.model()
    out = fv.maximize(project, fv.Objective.output(1), steps=48, seed=0)
    assert out.objective.kind == "output" and out.activation > out.start_activation
    assert np.asarray(model(out.input[None]))[0].argmax() == 1  # the class output was driven up

    dream = fv.maximize(project, fv.Objective.deepdream("conv2"), start=4, steps=32, seed=0)
    assert dream.objective.kind == "deepdream" and dream.activation > dream.start_activation

    total = fv.Objective.sum([(2.0, fv.Unit("code", 0)), (-0.5, fv.Unit("conv2", 1)), (1.0, fv.DeepDream("conv"))])
    assert total.kind == "sum" and total.layers == ("code", "conv2", "conv")
    x = project.inputs()[:5]
    parts = [fv.Maximizer(model, fv.Objective.sum([(1.0, t)])).value(x) for _, t in total.terms]
    np.testing.assert_allclose(fv.Maximizer(model, total).value(x), 2 * parts[0] - 0.5 * parts[1] + parts[2],
                               rtol=1e-5)
    result = fv.maximize(project, total, steps=32, seed=0)
    assert result.activation > result.start_activation
    assert result.description == "2 x code unit 0 - 0.5 x conv2 channel 1 (mean over 6x6) + DeepDream on conv " \
        "(mean squared activation)"


def test_total_variation_is_lower_with_the_tv_regularizer_at_the_same_seed(load):
    project = load("img")
    objective = fv.Objective.unit("conv2", 5)
    plain = fv.maximize(project, objective, steps=96, seed=7)
    smooth = fv.maximize(project, objective, steps=96, seed=7, regularizers=fv.Regularizers(tv=2.0))
    np.testing.assert_array_equal(plain.start_input, smooth.start_input)
    assert fv.total_variation(smooth.input, (0, 1)) < 0.8 * fv.total_variation(plain.input, (0, 1))


def test_identical_seeds_give_identical_results(load):
    project = load("img")
    objective = fv.Objective.unit("code", 4)
    reg = fv.Regularizers(l2=0.05, tv=0.2, jitter=2, blur_every=5, blur_sigma=0.7)
    a = fv.maximize(project, objective, steps=60, seed=21, regularizers=reg)
    b = fv.maximize(project, objective, steps=60, seed=21, regularizers=reg)
    np.testing.assert_array_equal(a.input, b.input)
    np.testing.assert_array_equal(a.trace, b.trace)
    assert a.activation == b.activation
    c = fv.maximize(project, objective, steps=60, seed=22, regularizers=reg)
    assert not np.array_equal(a.start_input, c.start_input) and not np.array_equal(a.input, c.input)


def test_time_series_channels_with_one_dimensional_regularizers(load, tmp_path):
    project = load("series")
    x = project.inputs()
    ex = fv.top_examples(project, fv.Unit("c2", 1, (12,)), k=5, cache_dir=tmp_path)
    from engine.model import split

    z = split(project.model(), "c2").encode(x)
    np.testing.assert_array_equal(ex.top.indices, np.argsort(-z[:, 12, 1], kind="stable")[:5])
    assert ex.top.inputs.shape == (5, 24, 3)

    channel = fv.Unit("c1", 3)
    best = fv.top_examples(project, channel, k=1, cache_dir=tmp_path).best
    plain = fv.maximize(project, fv.Objective.sum([(1.0, channel)]), steps=80, seed=1)
    smooth = fv.maximize(project, fv.Objective.sum([(1.0, channel)]), steps=80, seed=1,
                         regularizers=fv.Regularizers(tv=2.0, jitter=2))
    assert plain.spatial_axes == (0,) and plain.input.shape == (24, 3)
    assert plain.activation > max(best, plain.start_activation)
    assert fv.total_variation(smooth.input, (0,)) < fv.total_variation(plain.input, (0,))
    # per-channel clipping: each channel stays within its own range over the data
    lo, hi = x.min(axis=(0, 1)), x.max(axis=(0, 1))
    assert np.all(plain.input >= lo - 1e-6) and np.all(plain.input <= hi + 1e-6)


def test_bad_units_and_layers_raise_typed_errors_naming_the_layer_and_the_range(load, tmp_path):
    project = load("img")
    with pytest.raises(fv.UnitError, match=r"layer 'code' has 5 units .* out of range 0\.\.4"):
        fv.top_examples(project, fv.Unit("code", 5), cache_dir=tmp_path)
    with pytest.raises(fv.UnitError, match=r"layer 'conv2' has 8 channels .* channel 8 is out of range 0\.\.7"):
        fv.maximize(project, fv.Objective.unit("conv2", 8), steps=1)
    with pytest.raises(fv.UnitError, match=r"layer 'conv2' has positions \(0\.\.5, 0\.\.5\) .* \(6, 0\)"):
        fv.top_examples(project, fv.Unit("conv2", 0, (6, 0)), cache_dir=tmp_path)
    with pytest.raises(fv.UnitError, match=r"layer 'code' is flat"):
        fv.Maximizer(project.model(), fv.Objective.unit("code", 0, (1, 1)))
    with pytest.raises(fv.UnitError, match=r"no layer 'cnv2'.*did you mean|no layer 'nope'; layers are: image"):
        fv.top_examples(project, fv.Unit("nope", 0), cache_dir=tmp_path)
    with pytest.raises(fv.UnitError, match="samples 0..239; start sample 240"):
        fv.maximize(project, fv.Objective.unit("code", 0), start=240, steps=1)
    with pytest.raises(fv.UnitError, match="tv = -1"):
        fv.Regularizers(tv=-1)
    assert issubclass(fv.UnitError, InspectorError)


def test_cancellation_stops_early(load):
    project = load("img")
    objective = fv.Objective.unit("code", 1)
    stop = threading.Event()
    seen = []

    def progress(step, steps, x, activation):
        seen.append((step, x.shape, activation))
        if step >= 12:
            stop.set()  # as a Cancel button on another thread would

    result = fv.maximize(project, objective, steps=500, seed=0, on_step=progress, every=4, cancel=stop)
    assert result.cancelled and result.steps_done == 12 and len(result.trace) == 12
    assert [s for s, _, _ in seen] == [4, 8, 12] and seen[0][1] == (12, 12, 1)
    assert result.params()["steps_done"] == 12 and result.params()["cancelled"] is True
    # an on_step callback returning False stops it too
    result = fv.maximize(project, objective, steps=500, seed=0, on_step=lambda s, *_: s < 20, every=10)
    assert result.cancelled and result.steps_done == 20
    done = fv.maximize(project, objective, steps=20, seed=0, on_step=lambda *_: None, every=10)
    assert not done.cancelled and done.steps_done == 20


def test_a_preprocess_hook_optimizes_in_the_model_input_space(load):
    project = load("hooked")
    x = project.inputs()
    space = fv.input_space(project)
    assert space.low.min() == pytest.approx(x.min() * 2 - 1) and space.high.max() == pytest.approx(x.max() * 2 - 1)
    result = fv.maximize(project, fv.Objective.unit("code", 2), start=9, steps=8, seed=0)
    np.testing.assert_allclose(result.start_input, x[9] * 2.0 - 1.0)
    assert result.input.min() >= space.low.min() and result.input.max() <= space.high.max()
