"""One inspected layer: propagate -> reduce -> (inverse map -> suffix) = decode any 2-D point.

An :class:`Inspection` ties the stages together for one project, layer, reducer and inverse map:

1. the model is split at the layer (:mod:`engine.split`);
2. the dataset is propagated through the prefix, cached on disk (:mod:`engine.propagate`);
3. the activations are reduced to 2-D and an inverse map is fitted on the pairs (:mod:`engine.reducers`);
4. :meth:`Inspection.decode` maps any 2-D point back into the layer and through the suffix, with a trust measure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from . import cache_dir as default_cache_dir
from .errors import InspectorError
from .propagate import activations as layer_activations
from .split import split


@dataclass(frozen=True)
class Decode:
    """What one 2-D point decodes to.

    Attributes
    ----------
    xy : tuple of float
        The queried point in the embedding's coordinates.
    activation : numpy.ndarray
        The inverse map's activation at the layer, in the layer's shape.
    output : numpy.ndarray
        The suffix's output for that activation (one sample, no batch axis).
    trust : engine.reducers.Trust
        The trust measures of the point (length-1 arrays; ``trust.record(0)`` gives plain values): distance to
        the data, out-of-bounds flags, estimated round-trip error.
    nearest : int
        Index of the nearest embedded sample.
    seconds : float
        Time spent in inverse map + suffix.
    """

    xy: tuple[float, float]
    activation: np.ndarray
    output: np.ndarray
    trust: object
    nearest: int
    seconds: float


def _report(progress, stage):
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


class Inspection:
    """A project's layer, reduced to 2-D, with an inverse map: decode any point of the plane.

    Parameters
    ----------
    project : Project
    layer : str, optional
        Default: the project's ``default_layer``.
    method : {"pca", "umap", "tsne"}
    inverse : {"auto", "exact", "mlp", "knn", "native"}
        ``auto``: PCA's exact inverse for PCA, the learned MLP inverse otherwise.
    params : dict, optional
        Reducer parameters (``n_neighbors``, ``perplexity``...); missing ones are self-tuned where supported.
    seed : int
    cache_dir : str or Path, optional
    progress : callable(stage: str, done: int, total: int), optional

    Raises
    ------
    CutError, DataError, ModelError, ReducerError

    Example
    -------
    >>> insp = Inspection(load_project("mnist"), "bottleneck", method="umap")  # doctest: +SKIP
    >>> d = insp.decode(3.0, -1.5); d.output.shape, d.trust.out_of_bounds    # doctest: +SKIP
    ((28, 28, 1), False)
    """

    def __init__(self, project, layer=None, *, method="pca", inverse="auto", params=None, seed=0,
                 cache_dir=None, progress=None):
        from .reducers import make_reducer

        self.project = project
        self.layer = layer or project.default_layer
        if self.layer is None:
            raise InspectorError(f"project {project.name!r} has no default_layer; choose a layer")
        self.method, self.inverse, self.seed = method, inverse, seed
        self.params = dict(params or {})
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.split = split(project.model(), self.layer)
        self.timings = {}

        t0 = time.perf_counter()
        acts = layer_activations(project, self.layer, cache_dir=self.cache_dir, progress=_report(progress, "propagate"))
        self.timings["propagate"] = time.perf_counter() - t0
        self.activations = acts.reshape(len(acts), -1)
        self.labels = project.labels()

        t0 = time.perf_counter()
        self.reducer = make_reducer(
            method, inverse=inverse, random_state=seed, cache_dir=self.cache_dir / "projections",
            progress=_report(progress, "reduce"), **self.params,
        ).fit(self.activations)
        self.reducer.progress = None  # the fitted reducer outlives this call's progress display
        self.timings["reduce"] = time.perf_counter() - t0
        self.embedding = self.reducer.embedding_

    # -- what the dashboard and CLI read --------------------------------------------------------------------------

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.split.latent_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.split.output_shape

    @cached_property
    def quality(self):
        """The projection's :class:`~engine.reducers.QualityReport`, in layer and output space (computed once)."""
        from .reducers import quality_report

        return quality_report(self.reducer, self.activations, decode=self.split.decode, random_state=self.seed)

    def nearest(self, x: float, y: float) -> int:
        """Index of the embedded sample nearest to ``(x, y)``."""
        return int(self.reducer.trust_.tree_.query([x, y])[1])

    # -- decoding -------------------------------------------------------------------------------------------------

    def decode(self, x: float, y: float) -> Decode:
        """Decode one 2-D point: inverse map into the layer, then the suffix."""
        t0 = time.perf_counter()
        acts, outputs, trusts = self.decode_batch(np.array([[x, y]], dtype=np.float32))
        return Decode((float(x), float(y)), acts[0], outputs[0], trusts[0], self.nearest(x, y),
                      time.perf_counter() - t0)

    def decode_batch(self, xy) -> tuple[np.ndarray, np.ndarray, object]:
        """Decode many points at once: (activations in the layer's shape, outputs, :class:`Trust` of all points)."""
        xy = np.asarray(xy, dtype=np.float32).reshape(-1, 2)
        flat = self.reducer.inverse_transform(xy)
        acts = np.asarray(flat, dtype=np.float32).reshape((len(xy), *self.latent_shape))
        outputs = self.split.decode(acts)
        return acts, outputs, self.reducer.trust(xy)

    def decode_activation(self, activation) -> np.ndarray:
        """The suffix's output for one activation in the layer's shape (an edited or interpolated point)."""
        a = np.asarray(activation, dtype=np.float32).reshape((1, *self.latent_shape))
        return self.split.decode(a)[0]
