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
import weakref
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from engine import backends
from engine.errors import InspectorError, UsageError
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
        The suffix's output for that activation (one sample, no batch axis); for a model with several outputs, the
        output (head) asked for, by default the first.
    trust : engine.reduce.Trust
        The trust measures of the point (length-1 arrays; ``trust.record(0)`` gives plain values): distance to
        the data, out-of-bounds flags, estimated round-trip error.
    nearest : int
        Index of the nearest embedded sample.
    seconds : float
        Time spent in inverse map + suffix.
    heads : dict of str to numpy.ndarray
        Every output of the model for that activation, by output name (one entry for a single-output model).
    """

    xy: tuple[float, float]
    activation: np.ndarray
    output: np.ndarray
    trust: object
    nearest: int
    seconds: float
    heads: dict = field(default_factory=dict)


class Inspection:
    """A project's layer, reduced to 2-D, with an inverse map: decode any point of the plane.

    Parameters
    ----------
    project : Project
    layer : str, optional
        Default: the project's ``default_layer``, else the one it infers (:meth:`Project.choose_layer`).
    method : {"pca", "umap", "tsne"}
    inverse : {"auto", "exact", "mlp", "knn", "native"}
        ``auto``: PCA's exact inverse for PCA, the learned MLP inverse otherwise.
    params : dict, optional
        Reducer parameters (``n_neighbors``, ``perplexity``...); missing ones are self-tuned where supported.
    seed : int
    cache_dir : str or Path, optional
    progress : callable(stage: str, done: int, total: int), optional
        Stages ``"propagate"`` (rows), then the reducer's: ``"tuning n_neighbors"`` / ``"tuning perplexity"``
        (trial fits), ``"fitting UMAP"`` (epochs) / ``"fitting t-SNE"`` (iterations), ``"reduce"`` (rows),
        ``"training the inverse map"`` (epochs of the learned inverse).
    snapshot : callable(embedding, fit_index, done, total), optional
        For t-SNE: the layout of the fitted rows as it forms, every 25 iterations, then the final one (see
        :class:`~engine.reduce.TSNEReducer`); never called by PCA and UMAP, which have no layout to show before the
        end, nor when the projection comes from the cache. An exception it raises stops the build and is raised.
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
                 cache_dir=None, progress: ProgressFn | None = None, activations=None, snapshot=None):
        from engine.reduce import make_reducer

        self.project = project
        self.layer = project.choose_layer(layer)
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
        self._take(activations)

        t0 = time.perf_counter()
        self.reducer = make_reducer(
            method, inverse=inverse, random_state=seed, cache_dir=self.cache_dir / "projections",
            progress=progress, snapshot=snapshot, **self.params,
        ).fit(self.activations)
        # the fitted reducer outlives this call's progress display and layout drawing
        self.reducer.progress = self.reducer.snapshot = None
        self.timings["reduce"] = time.perf_counter() - t0
        self._mapped()

    def _take(self, activations):
        """Keep the layer's activations (one flat row per sample of the project) and the project's labels."""
        self.activations = _flat_rows(activations)
        self.labels = self.project.labels()
        if len(self.activations) != len(self.project.inputs()):
            from engine.errors import DataError

            raise DataError(f"the activations given have {len(self.activations)} rows; project "
                            f"{self.project.name!r} has {len(self.project.inputs())} samples")

    def _mapped(self):
        self.embedding = self.reducer.embedding_
        self._indexes = Memo(max_items=4, name="point indexes of an inspection")
        self._predictions = Memo(max_items=8, name="predicted classes of an inspection's samples, by output")
        self._tokens = {}  # (id of a table, column) -> (weak reference to the table, its cache name)

    @classmethod
    def on_map(cls, parent: Inspection, project, activations, *, embedding=None,
               progress: ProgressFn | None = None) -> Inspection:
        """The inspection of ``project`` (the project of ``parent`` with another version of its model, cut at the
        same layer) read on ``parent``'s map: its activations are placed by ``parent``'s fitted reducer, so every
        point keeps its meaning and a sample that did not move inside the layer stays where it was on the plot;
        only the inverse map and the trust measures are fitted again (:meth:`BaseReducer.on_rows`).

        Parameters
        ----------
        parent : Inspection
        project : Project
            ``parent.project.with_model(version)``: the same samples, another model file.
        activations : array (n, ...)
            The new model's activations at ``parent.layer``, one row per sample.
        embedding : array (n, 2), optional
            Their places on the map, when already computed (``parent.reducer.transform(activations)``).
        progress : callable(stage, done, total), optional

        Raises
        ------
        DataError
            Another number of samples than the project has.
        ReducerValueError
            Activations of another width than the layer's.

        Example
        -------
        >>> r = refine(insp, move)                                                       # doctest: +SKIP
        >>> after = Inspection.on_map(insp, insp.project.with_model(r.path), r.activations_after,
        ...                           embedding=r.xy_after)                              # doctest: +SKIP
        >>> bool((after.embedding == r.xy_after.astype("float32")).all())                # doctest: +SKIP
        True
        """
        self = cls.__new__(cls)
        self.project, self.layer = project, parent.layer
        self.method, self.inverse, self.seed = parent.method, parent.inverse, parent.seed
        self.params, self.cache_dir = dict(parent.params), parent.cache_dir
        self.split = split(project.model(), self.layer)
        self._take(activations)
        t0 = time.perf_counter()
        self.reducer = parent.reducer.on_rows(self.activations, embedding=embedding, progress=progress)
        self.timings = {"propagate": 0.0, "reduce": time.perf_counter() - t0}
        self._mapped()
        return self

    # -- what the dashboard and CLI read --------------------------------------------------------------------------

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.split.latent_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the (first) output."""
        return self.split.output_shape

    @property
    def heads(self) -> tuple[str, ...]:
        """The model's outputs, by name (one for most models)."""
        return self.split.output_names

    def head_index(self, head: str | int | None) -> int:
        """Position of output ``head`` (a name from :attr:`heads`, an index, or None for the first).

        Raises
        ------
        UsageError
            No such output, naming the model's outputs.
        """
        if head is None:
            return 0
        if isinstance(head, (int, np.integer)) and not isinstance(head, bool) and 0 <= head < len(self.heads):
            return int(head)
        if head in self.heads:
            return self.heads.index(head)
        raise UsageError(f"the model of project {self.project.name!r} has no output {head!r}; its outputs: "
                         f"{', '.join(map(repr, self.heads))}")

    def head_shape(self, head: str | int | None = None) -> tuple[int, ...]:
        """Per-sample shape of output ``head``."""
        return self.split.output_shapes[self.head_index(head)]

    @property
    def out_of_core(self) -> bool:
        """The activations live in chunks outside this process's memory (a Zarr store)."""
        return backends.is_chunked(self.activations)

    @cached_property
    def quality(self):
        """The projection's :class:`~engine.reduce.QualityReport`, in layer and output space, with the classes kept
        by decoded points (:meth:`classifier`'s) where the layer has classes (computed once)."""
        from engine.errors import ProbeUnavailable
        from engine.reduce import quality_report

        try:
            classifier = self.classifier()
        except ProbeUnavailable:  # no class scores and no labels: the report leaves Cons_d and ACC_M out
            classifier = None
        return quality_report(self.reducer, self.activations, decode=self.decode_outputs, random_state=self.seed,
                              classify=None if classifier is None else classifier.predict,
                              classes_from=None if classifier is None else classifier.source, labels=self.labels)

    def nearest(self, x: float, y: float) -> int:
        """Index of the embedded sample nearest to ``(x, y)``: from the trust model's k-d tree where it holds every
        point, else (an embedding of more than ``TrustModel.max_points``) from the :meth:`point_index` the plot
        draws from, reading the cells within the distance of the tree's nearest sampled point."""
        trust = self.reducer.trust_
        if getattr(trust, "tree_rows_", None) is None:
            return int(trust.tree_.query([x, y])[1])
        within = float(trust.tree_.query([x, y])[0])  # the nearest of the sample: the nearest of all is no farther
        frame = self.frame
        if "label" in frame and hasattr(frame["label"], "cat"):
            return self.point_index(frame, "label").nearest(x, y, within)
        return self._indexes.get(("nearest",), lambda: (None, _index_all(self.embedding)))[1].nearest(x, y, within)

    # -- decoding -------------------------------------------------------------------------------------------------

    def decode(self, x: float, y: float, head: str | int | None = None) -> Decode:
        """Decode one 2-D point: inverse map into the layer, then the suffix; ``output`` is output ``head``'s
        (default the first), ``heads`` holds every output."""
        t0 = time.perf_counter()
        xy = np.array([[x, y]], dtype=np.float32)
        acts = self._activations_at(xy)
        heads = self.split.decode_heads(acts)
        return Decode((float(x), float(y)), acts[0], heads[self.head_index(head)][0], self.reducer.trust(xy)[0],
                      self.nearest(x, y), time.perf_counter() - t0,
                      {name: h[0] for name, h in zip(self.heads, heads, strict=True)})

    def decode_batch(self, xy, head: str | int | None = None) -> tuple[np.ndarray, np.ndarray, object]:
        """Decode many points at once: (activations in the layer's shape, outputs of ``head`` (default the first),
        :class:`Trust` of all points)."""
        xy = np.asarray(xy, dtype=np.float32).reshape(-1, 2)
        acts = self._activations_at(xy)
        return acts, self.decode_outputs(acts, head), self.reducer.trust(xy)

    def _activations_at(self, xy: np.ndarray) -> np.ndarray:
        flat = self.reducer.inverse_transform(xy)
        return np.asarray(flat, dtype=np.float32).reshape((len(xy), *self.latent_shape))

    def decode_outputs(self, activations, head: str | int | None = None) -> np.ndarray:
        """Output ``head`` (default the first) of the suffix for a batch of activations at the layer."""
        return self.split.decode_heads(activations)[self.head_index(head)]

    def decode_activation(self, activation, head: str | int | None = None) -> np.ndarray:
        """The suffix's output ``head`` for one activation in the layer's shape (an edited or interpolated point)."""
        a = np.asarray(activation, dtype=np.float32).reshape((1, *self.latent_shape))
        return self.decode_outputs(a, head)[0]

    def scored_heads(self) -> tuple[str, ...]:
        """The outputs that are a vector of class scores (one axis of two or more values): those with
        :meth:`predictions`."""
        return tuple(name for name, shape in zip(self.heads, self.split.output_shapes, strict=True)
                     if len([d for d in shape if d != 1]) == 1 and int(np.prod(shape)) >= 2)

    def head_classes(self, head: str | int | None = None) -> tuple[str, ...]:
        """The class names of output ``head``'s scores: its view's ``class_names``, else the class numbers."""
        name = self.heads[self.head_index(head)]
        names = self.project.output_views()[name].class_names
        return tuple(names) if names else tuple(str(i) for i in range(int(np.prod(self.head_shape(name)))))

    def predictions(self, head: str | int | None = None, batch_size: int = 4096) -> np.ndarray | None:
        """The model's predicted class of every sample at output ``head`` (the argmax of its values), computed from
        the layer's activations through the suffix once per head; None for an output that is not a vector of
        class scores (an image, a series, a single value)."""
        index = self.head_index(head)
        if self.heads[index] not in self.scored_heads():
            return None

        def compute():
            classes = int(np.prod(self.head_shape(index)))  # the smallest integer that holds them: 100 MB per
            out = np.empty(len(self.activations), dtype=np.min_scalar_type(-classes))  # 100M samples, not 800
            for start in range(0, len(self.activations), batch_size):
                rows = np.asarray(self.activations[start:start + batch_size], dtype=np.float32)
                scores = self.decode_outputs(rows.reshape((len(rows), *self.latent_shape)), index)
                out[start:start + len(rows)] = scores.reshape(len(rows), -1).argmax(axis=1)
            return out

        return self._predictions.get(index, lambda: self._stored_predictions(index, compute))

    def _stored_predictions(self, index: int, compute):
        """``compute()``'s predicted classes at output ``index``; from :attr:`PYRAMID_POINTS` samples, read from the
        cache folder (``predictions/``, keyed by the project's model, layer and data, as its activations) or
        computed and stored there: every sample through the suffix takes minutes at 100 million."""
        from engine.data.files import atomic_path
        from engine.propagate.cache import cache_path
        from engine.settings import pyramid_points

        if len(self.activations) < pyramid_points(self.PYRAMID_POINTS):
            return compute()
        stem = cache_path(self.project, self.layer, self.cache_dir).stem

        def open_(path):
            stored = np.load(path, mmap_mode="r")
            return stored if stored.shape == (len(self.activations),) else None

        def save(out, path):
            with atomic_path(path) as tmp:
                np.save(tmp, out)
            return out

        return _open_or_store(self.cache_dir / "predictions" / f"{stem}-output{index}.npy", open_, compute, save,
                              "predicted classes")


    # -- what is derived from this inspection, kept by it -----------------------------------------------------------

    @cached_property
    def default_probe(self):
        """A :class:`~engine.explore.probe.Probe` trained once on the layer's labelled activations: the classes of
        the map layers and of the quality report where the model's output is not a vector of class scores.

        Raises
        ------
        ProbeUnavailable
            No labels, a single class... (the message says what to add).
        """
        from engine.explore.probe import train_probe

        return train_probe(self, class_names=self.project.label_names())

    def classifier(self, head=None, probe=None):
        """The :class:`~engine.explore.landscape.Classifier` of this layer: the model's class scores at ``head``,
        else ``probe``, else :attr:`default_probe` (:func:`engine.explore.landscape.classifier_for`)."""
        from engine.explore.landscape import classifier_for

        return classifier_for(self, head, probe)

    def fold(self, x: float, y: float) -> float | None:
        """How much faster the decoded point moves at ``(x, y)`` than on the map's median (the gradient map's value
        there over its median over the data's box): well above 3, the map folds or tears here, and taps a few
        pixels apart decode to very different points. None for the native inverse (seconds per decode)."""
        if self.reducer.inverse_ is None or self.reducer.inverse_.kind == "native":
            return None
        from engine.reduce.metrics import local_gradient

        g = local_gradient(self.reducer.inverse_transform, [[x, y]], self.box_corners, self._spread)[0]
        return float(g / self.median_gradient) if self.median_gradient > 0 else None

    @cached_property
    def _spread(self) -> float:
        return float(np.sqrt(self.reducer.activation_variance_ * int(np.prod(self.latent_shape))))

    @cached_property
    def median_gradient(self) -> float:
        """The gradient map's median over the data's box (:func:`engine.reduce.metrics.gradient_map`, 40 x 40 cells):
        the scale of :meth:`fold` and of the gradient map layer."""
        from engine.reduce.metrics import gradient_map

        return float(np.median(gradient_map(self.reducer.inverse_transform, self.box_corners, self._spread, grid=40)))

    @cached_property
    def box_corners(self) -> np.ndarray:
        """The lower-left and upper-right corners of the embedding's bounding box, (2, 2): what the gradient map and
        the fold of a tap read of the embedding, found once (every tap scanned 100 million points for it)."""
        from engine.reduce.metrics import data_box

        (x0, x1), (y0, y1) = data_box(self.embedding)
        return np.array([[x0, y0], [x1, y1]])

    def landscape(self, layer: str, x_range, y_range, **kwargs):
        """Map layer ``layer`` over a view (:func:`engine.explore.landscape.landscape`)."""
        from engine.explore.landscape import landscape

        return landscape(self, layer, x_range, y_range, **kwargs)

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
        return self._indexes.get((id(frame), by), lambda: (frame, self._stored_index(frame, by, index_frame)))[1]

    def _stored_index(self, frame, by, index_frame):
        """The point index of ``frame`` by ``by``: from :attr:`PYRAMID_POINTS` points of a cached projection, opened
        from (or built and stored in) the cache folder (``pointindex/``, keyed as the pyramid), memory-mapped; built
        in memory otherwise, or when storing fails."""
        from engine.render import open_point_index, save_point_index
        from engine.settings import pyramid_points

        if len(frame) < pyramid_points(self.PYRAMID_POINTS):
            return index_frame(frame, by)
        token = self._stored_token(frame, by)
        if token is None:
            return index_frame(frame, by)
        return _open_or_store(self.cache_dir / "pointindex" / token, open_point_index,
                              lambda: index_frame(frame, by), save_point_index, "point index")

    def _stored_token(self, frame, by) -> str | None:
        """The cache name of what is derived from ``frame`` coloured by ``by`` (its pyramid, its point index): the
        cached projection, the column, its categories and codes; None for a projection that is not cached. Found
        once per table and column (hashing the codes of 100M points takes a tenth of a second)."""
        import hashlib

        from engine.reduce.cache import array_digest

        key = getattr(self.reducer, "cache_key_", None)
        if key is None:
            return None

        got = self._tokens.get((id(frame), by))
        if got is not None and got[0]() is frame:  # the id of a table since freed may have been reused
            return got[1]
        codes = frame[by].cat.codes.to_numpy()
        categories = [str(c) for c in frame[by].cat.categories]
        token = hashlib.sha256(f"{key}|{by}|{categories}|{array_digest(codes)}".encode()).hexdigest()[:24]
        alive = {k: v for k, v in self._tokens.items() if v[0]() is not None}  # the freed tables' names go
        alive[id(frame), by] = (weakref.ref(frame), token)  # not keeping the table alive
        self._tokens = alive
        return token

    #: A table of this many points or more is drawn zoomed out from a :meth:`pyramid` (fewer: from the points,
    #: already faster; ``benchmarks/cases/render.py`` measures both). ``LATENT_INSPECTOR_PYRAMID_POINTS`` overrides.
    PYRAMID_POINTS = 2_000_000

    def pyramid(self, frame=None, by: str = "label", *, wait: bool = True):
        """The :class:`~engine.render.Pyramid` of a table of this inspection's points (default :attr:`frame`)
        coloured by its categorical column ``by``, or None below :attr:`PYRAMID_POINTS` points.

        Built once per table and column; stored in the cache folder (``pyramids/``) when the embedding is a cached
        projection, keyed by it, the column and its codes, and opened from there by later inspections. ``wait``
        False (the dashboard, whose first picture must not wait seconds for it): None until it is ready, built on a
        thread of its own meanwhile. A build that fails leaves None (the views read the points), once.
        """
        from engine.settings import pyramid_mode, pyramid_points

        frame = self.frame if frame is None else frame
        if len(frame) < pyramid_points(self.PYRAMID_POINTS) or by not in frame or not hasattr(frame[by], "cat") \
                or pyramid_mode() == "off":
            return None
        key = (id(frame), by, "pyramid")

        def build():
            return frame, self._pyramid(frame, by)

        if wait:
            return self._indexes.get(key, build)[1]
        got = self._indexes.recall(key)
        if got is None and key not in self._indexes.building:
            import threading

            threading.Thread(target=self._indexes.get, args=(key, build), name="pyramid", daemon=True).start()
        return None if got is None else got[1]

    def _pyramid(self, frame, by):
        """Open the stored pyramid of ``frame`` coloured by ``by``, or build (and store) it; None when that fails
        (logged: the views then read the points)."""
        try:
            return self._open_or_build_pyramid(frame, by)
        except Exception:  # disk full, an unwritable cache: the plot still draws, from the points
            import logging

            logging.getLogger(__name__).exception("no pyramid for %s coloured by %r", self.project.name, by)
            return None

    def _open_or_build_pyramid(self, frame, by):
        from engine.render import build_pyramid, open_pyramid, save_pyramid

        codes = frame[by].cat.codes.to_numpy()
        categories = [str(c) for c in frame[by].cat.categories]
        x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
        token = self._stored_token(frame, by)
        if token is None:
            return build_pyramid(x, y, codes, categories)
        path = self.cache_dir / "pyramids" / f"{token}.zarr"
        path.parent.mkdir(parents=True, exist_ok=True)
        return _open_or_store(path, open_pyramid, lambda: build_pyramid(x, y, codes, categories), save_pyramid,
                              "pyramid")

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


def _open_or_store(path, open_, build, save, what: str):
    """What is derived and stored at ``path`` in the cache folder (seconds to minutes of work at 100M points):
    ``open_(path)``, or where there is none yet, it is unreadable (``open_`` raises, or returns None for an entry
    that does not fit), ``build()`` stored by ``save(value, path)``, which returns what to keep (the value, or it
    opened from the disk). A value that cannot be stored (disk full, an unwritable cache) is logged and kept in
    memory; it is built again next time. The writers write a temporary renamed into place, so no half-written
    entry is ever opened."""
    if path.exists():
        try:
            got = open_(path)
            if got is not None:
                return got
        except (InspectorError, OSError, ValueError, EOFError):
            pass  # unreadable: built again, and stored over it
    value = build()
    try:
        return save(value, path)
    except Exception:  # disk full, an unwritable cache
        import logging

        logging.getLogger(__name__).warning("%s: the %s was not stored (built again next time)", path, what,
                                            exc_info=True)
        return value


def _index_all(embedding):
    """A :class:`~engine.render.PointIndex` of every point of ``embedding``, in one category."""
    from engine.render import index_points

    return index_points(embedding[:, 0], embedding[:, 1], np.zeros(len(embedding), np.uint8), ["all"])


def _flat_rows(activations):
    """Activations as (n, units) rows: a NumPy view, or for a store of more axes, its Dask array reshaped."""
    if backends.is_chunked(activations):
        if len(activations.shape) == 2:
            return activations
        array = activations.array() if hasattr(activations, "array") else activations
        return array.reshape((array.shape[0], -1))
    return activations.reshape(len(activations), -1)
