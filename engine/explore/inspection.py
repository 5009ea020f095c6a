"""One inspected layer: propagate -> reduce -> (inverse map -> suffix) = decode any 2-D point.

An :class:`Inspection` ties the stages together for one project, layer, reducer and inverse map:

1. the model is split at the layer (:mod:`engine.model`);
2. the dataset is propagated through the prefix, cached on disk (:mod:`engine.propagate`);
3. the activations are reduced to 2-D and an inverse map is fitted on the pairs (:mod:`engine.reduce`);
4. :meth:`Inspection.decode` maps any 2-D point back into the layer and through the suffix, with a trust measure.

The activations may live out of core: a Zarr store written on a Dask cluster (``latent-inspector propagate --dask``,
or :func:`engine.propagate.activations` with a client) is found in the cache like the in-process ``.npy``, or can be
given; the reducer then fits from its chunks (:mod:`engine.backends`). What is derived from one inspection (its plot
table, its point index, the latent editor's directions, parallel coordinates, neighbour norms) is computed once and
kept by the inspection, which every dashboard session showing it shares.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from engine import backends
from engine.errors import ProjectError
from engine.memo import Memo
from engine.model import split
from engine.progress import ProgressFn
from engine.propagate import activations as layer_activations
from engine.settings import cache_dir as default_cache_dir

__all__ = ["Decode", "Inspection"]


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
    trust : engine.reduce.Trust
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
        Stages ``"propagate"`` (rows) and ``"reduce"`` (rows).
    activations : array, memory map, Zarr store or its path, optional
        The layer's activations, computed elsewhere (a store from ``latent-inspector propagate --dask``). Default:
        :func:`engine.propagate.activations`, which finds such a store in the cache too.

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
                 cache_dir=None, progress: ProgressFn | None = None, activations=None):
        from engine.reduce import make_reducer

        self.project = project
        self.layer = layer or project.default_layer
        if self.layer is None:
            raise ProjectError(f"project {project.name!r} has no default_layer; choose a layer")
        self.method, self.inverse, self.seed = method, inverse, seed
        self.params = dict(params or {})
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.split = split(project.model(), self.layer)
        self.timings = {}

        t0 = time.perf_counter()
        if activations is None:
            activations = layer_activations(project, self.layer, cache_dir=self.cache_dir, progress=progress)
        elif isinstance(activations, (str, Path)):
            from engine.data.store import open_store

            activations = open_store(activations)
        self.timings["propagate"] = time.perf_counter() - t0
        self.activations = _flat_rows(activations)
        self.labels = project.labels()
        if len(self.activations) != len(project.inputs()):
            from engine.errors import DataError

            raise DataError(f"the activations given have {len(self.activations)} rows; project {project.name!r} has "
                            f"{len(project.inputs())} samples")

        t0 = time.perf_counter()
        self.reducer = make_reducer(
            method, inverse=inverse, random_state=seed, cache_dir=self.cache_dir / "projections",
            progress=progress, **self.params,
        ).fit(self.activations)
        self.reducer.progress = None  # the fitted reducer outlives this call's progress display
        self.timings["reduce"] = time.perf_counter() - t0
        self.embedding = self.reducer.embedding_
        self._indexes = Memo(max_items=4, name="point indexes of an inspection")

    # -- what the dashboard and CLI read --------------------------------------------------------------------------

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.split.latent_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.split.output_shape

    @property
    def out_of_core(self) -> bool:
        """The activations live in chunks outside this process's memory (a Zarr store)."""
        return backends.is_chunked(self.activations)

    @cached_property
    def quality(self):
        """The projection's :class:`~engine.reduce.QualityReport`, in layer and output space (computed once)."""
        from engine.reduce import quality_report

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

    # -- what is derived from this inspection, kept by it -----------------------------------------------------------

    @cached_property
    def frame(self):
        """The embedding as a table: float ``x``, ``y`` and the categorical ``label`` of each sample
        (:func:`engine.render.points_frame`)."""
        from engine.render import points_frame

        names = list(self.project.label_names() or []) or None
        return points_frame(self.embedding, self.labels, names)

    def point_index(self, frame=None, by: str = "label"):
        """The :class:`~engine.render.PointIndex` of a table of this inspection's points (default :attr:`frame`)
        coloured by its categorical column ``by``: built once per table and column."""
        from engine.render import index_frame

        frame = self.frame if frame is None else frame
        return self._indexes.get((id(frame), by), lambda: (frame, index_frame(frame, by)))[1]

    @cached_property
    def editor(self):
        """The :class:`~engine.explore.edit.LatentEditor` of this layer (its controls' directions and ranges)."""
        from engine.explore.edit import LatentEditor

        return LatentEditor.from_inspection(self)

    @cached_property
    def parallel(self):
        """The :class:`~engine.render.parallel.ParallelCoordinates` of this layer: its units, or its top 16
        principal directions, with every line binned once per picture size."""
        from engine.render.parallel import ParallelCoordinates

        names = list(self.project.label_names() or []) or None
        return ParallelCoordinates.of(self.activations, self.labels, names)

    def neighbor_index(self, metric: str = "euclidean"):
        """A :class:`~engine.explore.neighbors.NeighborIndex` of the activations under ``metric`` (the rows' norms
        computed once)."""
        from engine.explore.neighbors import NeighborIndex

        return NeighborIndex(self.activations, metric, sq_norms=self._row_norms)

    @cached_property
    def _row_norms(self):
        from engine.explore.neighbors import NeighborIndex

        return NeighborIndex(self.activations).sq_norms


def _flat_rows(activations):
    """Activations as (n, units) rows: a NumPy view, or for a store of more axes, its Dask array reshaped."""
    if backends.is_chunked(activations):
        if len(activations.shape) == 2:
            return activations
        array = activations.array() if hasattr(activations, "array") else activations
        return array.reshape((array.shape[0], -1))
    return activations.reshape(len(activations), -1)
