"""Keras models: load, flatten the graph, split at any layer into an exact prefix and suffix.

This is the Keras implementation of the model interface of :mod:`engine.model`; nothing else in the engine talks
to Keras about the user's model. Reading a file (and importing TensorFlow and Keras on first use) is
:mod:`engine.model.keras_files`; the flat graph and which layers are valid cuts, :mod:`engine.model.keras_graph`.

**Loading.** Models load with ``compile=False`` (an ``.h5`` compiled with a string loss fails otherwise, and we
never train through the saved optimizer) and ``safe_mode=True``: a Lambda layer or custom object can run arbitrary
code, so it is refused unless the project sets ``trust_model = true``.

**Cuts.** A layer is a valid cut when every path from the model's inputs to its outputs passes through the layer's
output tensor: a layer of a sequential chain, the ``Add`` that closes a residual block, the boundary between a
nested encoder and decoder. A cut inside a residual block or across a U-Net skip is rejected, naming the tensor
that crosses it.

How: the model is first re-traced into one flat functional graph, nested sub-models descended into (their inner
layers become selectable). The prefix is then ``keras.Model(inputs, cut)`` and the suffix
``keras.Model(cut, outputs)``: Keras builds both, nothing is re-called by hand. The flat graph, the splits and the
feature extractors of a model are kept while the model object lives.
"""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np

from engine.errors import CutError, ModelError, UnitError
from engine.model import base
from engine.model.base import Ascent, Features, Framework, LayerInfo, ModelObjects, Term, nearby_cuts
from engine.model.keras_files import MODEL_SUFFIXES, backend, keras, load_model, model_label, tensorflow
from engine.model.keras_graph import (
    BUILT,
    GRAPH_LOCK,
    find_entry,
    flat_graph,
    input_specs,
    list_layers,
    output_specs,
    require_single_input,
    why_not_a_cut,
)

__all__ = [
    "FRAMEWORK",
    "GRAPH_LOCK",
    "Keras",
    "KerasFeatures",
    "MODEL_SUFFIXES",
    "Split",
    "conform_batch",
    "feature_extractor",
    "find_entry",
    "flat_graph",
    "input_specs",
    "backend",
    "keras",
    "layer_shape",
    "list_layers",
    "load_model",
    "model_label",
    "output_specs",
    "require_single_input",
    "split",
    "tensorflow",
]


class Split(base.Split):
    """A Keras model cut at one layer: ``suffix(prefix(x)) == model(x)``; ``prefix`` and ``suffix`` are Keras models
    built over the flat graph's tensors, run as compiled functions of fixed signature.

    Parameters
    ----------
    model : keras.Model
    layer : str
        A name from :func:`list_layers` (a nested model's name cuts at its output).

    Raises
    ------
    CutError
        The layer does not exist, or the cut is crossed by another tensor.

    Example
    -------
    >>> s = Split(model, "bottleneck")          # doctest: +SKIP
    >>> z = s.encode(x); y = s.decode(z)        # doctest: +SKIP
    """

    def __init__(self, model, layer: str):
        K = keras()

        graph = flat_graph(model)
        require_single_input(model)
        entry = find_entry(graph, model, layer)
        calls = Counter(id(e.layer) for e in graph.entries if not e.alias)
        reason = why_not_a_cut(graph, entry, calls, graph.consumers())
        if reason is not None:
            raise CutError(f"cannot cut model {model_label(model)!r} at {layer!r}: {reason}; "
                           f"{nearby_cuts(list_layers(model), layer)}")
        cut = entry.outputs[0]
        outputs = graph.outputs[0] if len(graph.outputs) == 1 else graph.outputs
        inputs = graph.inputs[0] if len(graph.inputs) == 1 else graph.inputs
        with GRAPH_LOCK:
            self.prefix = K.Model(inputs, cut, name=f"prefix_{entry.layer.name}")
            if len(graph.outputs) == 1 and graph.outputs[0] is cut:  # cut at the output: the suffix is identity
                z = K.Input(shape=tuple(cut.shape[1:]), dtype=cut.dtype)
                self.suffix = K.Model(z, z, name=f"suffix_{entry.layer.name}")
            else:
                self.suffix = K.Model(cut, outputs, name=f"suffix_{entry.layer.name}")
        self.framework = FRAMEWORK
        self.model = model
        self.layer = layer
        self.latent_shape = tuple(int(d) for d in cut.shape[1:])
        self.input_shape = tuple(int(d) if d is not None else None for d in graph.inputs[0].shape[1:])
        self.input_dtype = str(graph.inputs[0].dtype)
        producer = {id(t): e for e in graph.entries if not e.alias for t in e.outputs}
        self.output_names = tuple(producer[id(t)].name if id(t) in producer else f"output_{i}"
                                  for i, t in enumerate(graph.outputs))
        self.output_shapes = tuple(tuple(int(d) if d is not None else None for d in t.shape[1:])
                                   for t in graph.outputs)
        self._encoder = self._decoder = None

    def _compile(self):
        if self._encoder is not None:
            return
        if backend() != "tensorflow":  # Keras on PyTorch or JAX: the models' own calls, converted at the edge
            K = keras()
            prefix, suffix = self.prefix, self.suffix
            self._decoder = lambda z: _to_numpy(K, suffix(z, training=False))
            self._encoder = lambda x: _to_numpy(K, prefix(x, training=False))
            return
        tf = tensorflow()

        with GRAPH_LOCK:
            if self._encoder is None:
                prefix, suffix = self.prefix, self.suffix
                in_spec = tf.TensorSpec((None, *self.input_shape), self.input_dtype)
                z_spec = tf.TensorSpec((None, *self.latent_shape), tf.float32)
                self._encoder = tf.function(lambda x: prefix(x, training=False), input_signature=[in_spec])
                self._decoder = tf.function(lambda z: suffix(z, training=False), input_signature=[z_spec])

    def _encode(self, x: np.ndarray) -> np.ndarray:
        self._compile()
        return np.asarray(self._encoder(x))

    def _decode(self, z: np.ndarray) -> list[np.ndarray]:
        self._compile()
        out = self._decoder(z)
        return [np.asarray(t) for t in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]


def split(model, layer: str) -> Split:
    """The :class:`Split` of ``model`` at ``layer``, built once per model and layer while the model object lives."""
    with GRAPH_LOCK:
        return BUILT.get(model, ("split", layer), lambda: Split(model, layer))


# -- any layer's output ---------------------------------------------------------------------------------------------


def _entry(model, layer: str | None):
    """The flattened graph's output tensor of ``layer`` (``None``: the model's output)."""
    graph = flat_graph(model)
    if len(graph.inputs) != 1:
        raise ModelError(f"model {model_label(model)!r} has {len(graph.inputs)} inputs; feature visualization "
                         "optimizes the input of a single-input model")
    if layer is None:
        if len(graph.outputs) != 1:
            raise UnitError(f"model {model_label(model)!r} has {len(graph.outputs)} outputs; name the layer to use")
        return graph, graph.outputs[0]
    entry = find_entry(graph, model, layer, UnitError)
    if len(entry.outputs) != 1:
        raise UnitError(f"layer {layer!r} returns {len(entry.outputs)} tensors; choose a layer with one output")
    return graph, entry.outputs[0]


def layer_shape(model, layer: str | None) -> tuple:
    """Activation shape of ``layer`` (no batch axis); ``None`` is the model's output. Raises :class:`UnitError`."""
    _, tensor = _entry(model, layer)
    return tuple(int(d) if d is not None else None for d in tensor.shape[1:])


def feature_extractor(model, layers) -> object:
    """``keras.Model(inputs, [output of each layer])`` over the flattened graph, for any layer (valid cut or not);
    built once per model and layer tuple while the model lives. ``None`` in ``layers`` is the model's output."""
    layers = tuple(layers)

    def build():
        graph, tensors = None, []
        for layer in layers:
            graph, tensor = _entry(model, layer)
            tensors.append(tensor)
        return keras().Model(graph.inputs[0], tensors if len(tensors) > 1 else tensors[0], name="features")

    with GRAPH_LOCK:
        return BUILT.get(model, ("features", layers), build)


def conform_batch(batch: np.ndarray, extractor) -> np.ndarray:
    """``batch`` reshaped to the extractor's input shape when the sizes agree, as float32."""
    want = tuple(extractor.inputs[0].shape[1:])
    if tuple(batch.shape[1:]) != want and None not in want:
        if int(np.prod(batch.shape[1:])) != int(np.prod(want)):
            raise ModelError(f"the model expects inputs of shape (n, {', '.join(map(str, want))}); got "
                             f"{tuple(batch.shape)}")
        batch = batch.reshape((len(batch), *want))
    return batch.astype(np.float32, copy=False)


# -- reading any layer, gradients ---------------------------------------------------------------------------------


def _to_numpy(K, out):
    if isinstance(out, (list, tuple)):
        return [K.ops.convert_to_numpy(t) for t in out]
    return K.ops.convert_to_numpy(out)


class KerasFeatures(Features):
    """Any layers' outputs of a Keras model through a feature extractor over its flat graph, one compiled call per
    batch; gradients through ``tf.GradientTape``."""

    def __init__(self, model, layers: tuple):
        self.model, self.layers = model, tuple(layers)
        self.extractor = feature_extractor(model, self.layers)
        self.input_shape = tuple(int(d) if d is not None else None for d in self.extractor.inputs[0].shape[1:])
        self._run = None

    def __call__(self, x) -> list[np.ndarray]:
        if backend() != "tensorflow":
            K = keras()
            out = _to_numpy(K, self.extractor(self.conform(x), training=False))
            out = out if isinstance(out, list) else [out]
            return [np.asarray(t, dtype=np.float32) for t in out]
        tf = tensorflow()
        if self._run is None:
            extractor = self.extractor
            spec = tf.TensorSpec((None, *self.extractor.inputs[0].shape[1:]), self.extractor.inputs[0].dtype)
            self._run = tf.function(lambda b: extractor(b, training=False), input_signature=[spec])
        out = self._run(self.conform(x))
        out = out if isinstance(out, (list, tuple)) else [out]
        return [np.asarray(t, dtype=np.float32) for t in out]

    def ascent(self, terms: tuple[Term, ...], spatial_axes: tuple) -> Ascent:
        if backend() != "tensorflow":
            raise ModelError(f"activation maximization of a Keras model runs on Keras' TensorFlow backend; this "
                             f"process runs Keras on {backend()!r} (KERAS_BACKEND)")
        return _KerasAscent(self, terms, spatial_axes)


class _KerasAscent(Ascent):
    def __init__(self, features: KerasFeatures, terms, spatial_axes):
        tf = tensorflow()
        extractor = features.extractor
        input_shape = tuple(int(d) for d in features.input_shape)
        batch_axes = [a + 1 for a in spatial_axes]

        def value(x):
            outs = extractor(x, training=False)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            total = 0.0
            for t in terms:
                a = tf.cast(outs[t.layer], tf.float32)
                if t.kind == "square":
                    v = tf.reduce_mean(tf.reshape(a * a, (tf.shape(a)[0], -1)), axis=1)
                elif t.kind == "unit" and t.position is None:
                    v = a[:, t.channel]
                elif t.kind == "unit":
                    v = a[(slice(None), *t.position, t.channel)]
                else:
                    v = tf.reduce_mean(tf.reshape(a[..., t.channel], (tf.shape(a)[0], -1)), axis=1)
                total = total + t.weight * v
            return total

        def tv_of(u):
            total = tf.constant(0.0)
            for a in batch_axes:
                ahead = [slice(None)] * (len(input_shape) + 1)
                behind = list(ahead)
                ahead[a], behind[a] = slice(1, None), slice(None, -1)
                total = total + tf.reduce_mean(tf.abs(u[tuple(ahead)] - u[tuple(behind)]))
            return total

        sample = tf.TensorSpec((1, *input_shape), tf.float32)
        scalar = tf.TensorSpec((), tf.float32)

        @tf.function(input_signature=[sample, tf.TensorSpec((len(batch_axes),), tf.int32), scalar, scalar, scalar,
                                      sample, sample, sample, sample, tf.TensorSpec((), tf.bool)])
        def step(x, shift, lr, l2, tv, low, high, center, scale, clip):
            with tf.GradientTape() as tape:
                tape.watch(x)
                seen = tf.roll(x, shift, axis=batch_axes) if batch_axes else x
                target = value(seen)[0]
                u = (x - center) / scale
                loss = target - l2 * tf.reduce_mean(u * u) - tv * tv_of(u)
            grad = tape.gradient(loss, x)
            # A value held at a bound of the data's range cannot move further out: its gradient would only shrink
            # the normalized step of the values that can move (projected gradient ascent).
            pinned = tf.logical_and(clip, tf.logical_or(tf.logical_and(x <= low, grad < 0),
                                                        tf.logical_and(x >= high, grad > 0)))
            grad = tf.where(pinned, tf.zeros_like(grad), grad)
            grad = grad / (tf.sqrt(tf.reduce_mean(grad * grad)) + 1e-12)  # normalized ascent: lr sets the step
            x = x + lr * scale * grad
            x = tf.where(clip, tf.clip_by_value(x, low, high), x)
            return x, target

        self._step = step
        self._value = tf.function(value, input_signature=[tf.TensorSpec((None, *input_shape), tf.float32)])

    def step(self, x, shift, lr, l2, tv, low, high, center, scale, clip):
        tf = tensorflow()
        f32 = [tf.constant(np.asarray(a, np.float32)) for a in (x, lr, l2, tv, low, high, center, scale)]
        x_t, lr_t, l2_t, tv_t, low_t, high_t, center_t, scale_t = f32
        x_next, target = self._step(x_t, tf.constant(np.asarray(shift, np.int32)), lr_t, l2_t, tv_t, low_t, high_t,
                                    center_t, scale_t, tf.constant(bool(clip)))
        return np.asarray(x_next), float(target)

    def value(self, x) -> np.ndarray:
        return np.asarray(self._value(np.asarray(x, np.float32)))


# -- training the suffix ------------------------------------------------------------------------------------------


def train_suffix(s: Split, z, y, *, epochs: int, learning_rate: float, batch_size: int, freeze_batchnorm: bool,
                 seed: int = 0, progress=None) -> list[float]:
    """Train ``s.suffix`` with Keras on ``(z, y)`` (sparse categorical cross-entropy on its probabilities); layers the
    prefix shares and, with ``freeze_batchnorm``, BatchNormalization layers stay frozen. Returns each epoch's loss."""
    from engine.progress import report

    K = keras()
    prefix_layers = {id(layer_) for layer_ in s.prefix.layers}
    frozen = []
    for layer_ in s.suffix.layers:
        shared = id(layer_) in prefix_layers
        bn = freeze_batchnorm and isinstance(layer_, K.layers.BatchNormalization)
        if (shared or bn) and layer_.trainable:
            layer_.trainable = False
            frozen.append(layer_)
    callbacks = []
    if progress is not None:
        callbacks.append(K.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: report(progress, "training", epoch + 1, epochs)))
    try:
        s.suffix.compile(optimizer=K.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                         jit_compile=False)
        history = s.suffix.fit(z, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
                               callbacks=callbacks)
    finally:
        for layer_ in frozen:
            layer_.trainable = True
    s._encoder = s._decoder = None  # the compiled calls read the weights anew
    return [float(v) for v in history.history["loss"]]


# -- training the prefix ------------------------------------------------------------------------------------------


def _prefix_layers_with_weights(s: Split) -> list:
    """The prefix's layers that hold trainable weights, in the order the prefix runs them (BatchNormalization layers
    excluded: the prefix is trained in inference mode, so their statistics and scales stay as they are)."""
    K = keras()
    seen, out = set(), []
    for layer_ in s.prefix.layers:
        if id(layer_) in seen or isinstance(layer_, K.layers.BatchNormalization):
            continue
        seen.add(id(layer_))
        if layer_.trainable and layer_.trainable_weights:
            out.append(layer_)
    return out


def train_prefix(s: Split, x, z, weights, *, steps: int, learning_rate: float, batch_size: int,
                 last_layers: int | None = None, relative: bool = False, seed: int = 0, progress=None,
                 cancel=None) -> list[float]:
    """Train the layers of ``s.prefix`` (the last ``last_layers`` of them with weights, or all) so that the prefix's
    activations of the inputs ``x`` approach ``z``: Adam on the ``weights``-weighted mean squared error, in inference
    mode (Dropout off, BatchNormalization statistics kept), ``steps`` steps of minibatches of ``batch_size`` rows
    drawn with a generator seeded by ``seed`` (every row each step when there are no more). With ``relative``, ``z``
    holds displacements from the prefix's activations of ``x`` before training, computed by the training step's own
    forward pass. Returns each step's loss. ``cancel()`` returning true stops between steps with
    :class:`~engine.errors.Cancelled`."""
    from engine.errors import Cancelled
    from engine.progress import report

    if backend() != "tensorflow":
        raise ModelError(f"refining the layers before a cut of a Keras model runs on Keras' TensorFlow backend; this "
                         f"process runs Keras on {backend()!r} (KERAS_BACKEND)")
    tf = tensorflow()
    K = keras()
    layers = _prefix_layers_with_weights(s)
    if not layers:
        raise ModelError(f"model {model_label(s.model)!r}: no layer before {s.layer!r} has weights to train")
    chosen = layers if last_layers is None else layers[-int(last_layers):]
    variables = [v for layer_ in chosen for v in layer_.trainable_weights]
    x = np.asarray(x, dtype=s.input_dtype)
    z = np.asarray(z, np.float32).reshape((len(z), *s.latent_shape))
    w = np.asarray(weights, np.float32).reshape(len(z))
    optimizer = K.optimizers.Adam(float(learning_rate))
    prefix = s.prefix
    axes = tuple(range(1, 1 + len(s.latent_shape)))

    if relative:
        forward = tf.function(lambda xb: tf.cast(prefix(xb, training=False), tf.float32), reduce_retracing=True)
        z = z + np.asarray(forward(tf.constant(x)))

    @tf.function(reduce_retracing=True)
    def step(xb, zb, wb):
        with tf.GradientTape() as tape:
            out = tf.cast(prefix(xb, training=False), tf.float32)
            per_row = tf.reduce_mean(tf.square(out - zb), axis=axes)
            loss = tf.reduce_sum(wb * per_row) / tf.maximum(tf.reduce_sum(wb), 1e-12)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    rng = np.random.default_rng(int(seed))
    history = []
    for i in range(int(steps)):
        if cancel is not None and cancel():
            raise Cancelled(f"refining {model_label(s.model)!r} at {s.layer!r} was cancelled after {i} of {steps} "
                            "steps")
        rows = slice(None) if len(x) <= batch_size else rng.choice(len(x), int(batch_size), replace=False)
        history.append(float(step(tf.constant(x[rows]), tf.constant(z[rows]), tf.constant(w[rows]))))
        report(progress, "refining", i + 1, steps)
    s._encoder = s._decoder = None  # the compiled calls read the weights anew
    return history


# -- the framework ------------------------------------------------------------------------------------------------


class Keras(Framework):
    """Keras 3 models (``.keras``, ``.h5``) on the TensorFlow backend, or on the one ``KERAS_BACKEND`` names: the
    Keras implementation of the model interface (:class:`engine.model.base.Framework`)."""

    name = "keras"
    title = "Keras"
    suffixes = MODEL_SUFFIXES

    @property
    def requires(self) -> tuple:
        # Keras 3 and the backend it runs on: TensorFlow, or PyTorch or JAX where KERAS_BACKEND names it (a GPU
        # node with PyTorch alone runs Keras models on PyTorch and needs no TensorFlow)
        return ("keras", backend())
    extra = "cpu"
    version_suffix = ".keras"

    def load(self, path, *, trust: bool = False, objects: ModelObjects | None = None):
        self.require(path)
        return load_model(path, trust=trust, objects=objects)

    def owns(self, model) -> bool:
        k = sys.modules.get("keras")
        return k is not None and isinstance(model, k.Model)

    def label(self, model) -> str:
        return model_label(model)

    def list_layers(self, model) -> list[LayerInfo]:
        return list_layers(model)

    def input_specs(self, model):
        return input_specs(model)

    def output_specs(self, model):
        return output_specs(model)

    def require_single_input(self, model) -> None:
        require_single_input(model)

    def split(self, model, layer: str) -> Split:
        return split(model, layer)

    def layer_shape(self, model, layer):
        return layer_shape(model, layer)

    def features(self, model, layers) -> Features:
        layers = tuple(layers)
        with GRAPH_LOCK:
            return BUILT.get(model, ("features-run", layers), lambda: KerasFeatures(model, layers))

    def train_suffix(self, split, z, y, **kwargs) -> list[float]:
        return train_suffix(split, z, y, **kwargs)

    def train_prefix(self, split, x, z, weights, **kwargs) -> list[float]:
        return train_prefix(split, x, z, weights, **kwargs)

    def save(self, model, path) -> None:
        model.save(path)


FRAMEWORK = Keras()
