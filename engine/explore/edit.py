"""Latent editor: set an activation of the inspected layer by hand, one control at a time, and decode it.

The editor decides the controls from the layer's activations:

* ``"units"`` basis, for a layer of at most ``max_units`` scalar activations (64 by default): one control per unit,
  its value the unit's activation;
* ``"principal"`` basis, for a larger layer: one control per top principal direction of the activations
  (``n_directions``, 16 by default), its value the coordinate along that direction around the data's mean. An
  edit rebuilds ``activation = mean + values @ components + residual``, where the residual is what the start
  sample holds outside the kept directions, so that an edit of one direction keeps the sample's other detail (and
  no edit at all gives the sample back). A convolutional feature map (a layer shape of two or more axes, channels
  last) adds one scale control per channel, multiplying that channel's feature map after the directions.

Every control carries the range the data covers (``observed``) and a wider slider range (``range``: the observed
span extended by ``extend`` of itself on each side, 50% by default) so that values beyond the data can be probed;
:meth:`LatentEditor.out_of_range` flags them. Everything the sliders need is precomputed in ``fit``: an edit is a
``(k,) @ (k, d)`` product, cheap enough for every slider move.

:func:`decode_edit` turns an edited activation into the same :class:`~engine.explore.inspection.Decode` a tap
gives, so it can be shown, and saved, like any decode.

Example
-------
>>> editor = LatentEditor.from_inspection(insp)                              # doctest: +SKIP
>>> start = editor.start(12)                      # sample 12 loads into the editor  # doctest: +SKIP
>>> values = start.values.copy(); values[0] += 2.0                           # doctest: +SKIP
>>> insp.decode_activation(editor.activation(values, start=start))           # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from engine.errors import EditError
from engine.reduce import PrincipalDirections

__all__ = ["Control", "EditStart", "LatentEditor", "decode_edit"]

_TINY = 1e-12


@dataclass(frozen=True)
class Control:
    """One slider of the editor.

    Attributes
    ----------
    name : str
        ``"unit 3"`` (``"unit (1, 2, 0)"`` in a multi-axis layer), ``"PC 1"`` or ``"channel 5 scale"``.
    kind : {"unit", "principal", "channel"}
    index : int
        Position of the control's value in ``values`` (units, directions) or in ``channel_scales`` (channels).
    observed : tuple of float
        ``(min, max)`` of the value over the data. For a channel scale: the scales at which the channel's
        magnitude (root mean square over its feature map) stays within the magnitudes the data shows, relative to
        the start's magnitude.
    range : tuple of float
        Slider bounds: ``observed`` extended by ``extend`` of its span on each side (a channel scale never goes
        below 0).
    default : float
        The start's value (1.0 for a channel scale); the data's mean without a start.
    active : bool
        False for a channel that is all zero at the start: scaling it changes nothing and it is never flagged.
    """

    name: str
    kind: str
    index: int
    observed: tuple[float, float]
    range: tuple[float, float]
    default: float
    active: bool = True


@dataclass(frozen=True)
class EditStart:
    """Where an edit starts: a sample or an activation, loaded into the editor by :meth:`LatentEditor.start`.

    Attributes
    ----------
    values : ndarray of shape (k,), float64
        The start's value of each basis control (the sliders' initial positions).
    channel_scales : ndarray of shape (channels,) or None
        All ones for a feature map in the principal basis, else None.
    residual : ndarray of shape (d,), float64
        What the start holds outside the kept principal directions (zeros in the units basis).
    activation : ndarray
        The start's activation in the layer's shape (float32).
    sample : int or None
        The sample id, when the start is a sample.
    controls : tuple of Control
        The basis controls (defaults at the start's values), then the channel controls.
    channel_rms : ndarray of shape (channels,) or None
        The start's per-channel magnitude (root mean square over each feature map).
    """

    values: np.ndarray
    channel_scales: np.ndarray | None
    residual: np.ndarray
    activation: np.ndarray
    sample: int | None
    controls: tuple
    channel_rms: np.ndarray | None = None


def _extend(lo: float, hi: float, extend: float) -> tuple[float, float]:
    span = hi - lo if hi > lo else max(abs(lo), 1.0)
    return lo - extend * span, hi + extend * span


class LatentEditor(BaseEstimator):
    """Controls for setting a layer's activation by hand: per unit, or per principal direction plus channel scales.

    Parameters
    ----------
    max_units : int, default=64
        A layer of at most this many scalar activations gets one control per unit; a larger one gets principal
        directions.
    n_directions : int, default=16
        Principal directions kept for a larger layer (fewer if the layer or the data is smaller).
    extend : float, default=0.5
        Slider ranges reach ``extend`` times the observed span beyond each end of the observed range.
    scale_channels : bool, default=True
        Offer a scale control per channel for a feature map (layer shape of two or more axes, channels last) in the
        principal basis.
    fit_sample : int or None, default=20_000
        Rows the principal directions are fitted on (coordinates and ranges are still computed over every row).
    chunk_size : int, default=4096
    random_state : int, default=0
    layer : str, optional
        The layer's name, for messages.

    Attributes
    ----------
    basis_ : {"units", "principal"}
    latent_shape_ : tuple of int
    n_features_in_ : int
        Scalar activations per sample (``prod(latent_shape_)``).
    n_samples_ : int
    directions_ : PrincipalDirections or None
    coords_ : ndarray of shape (n, k), float32, or None
        Every sample's coordinates along the directions (principal basis).
    observed_ : ndarray of shape (k, 2)
        Observed ``(min, max)`` of each basis control.
    controls_ : tuple of Control
        Basis controls with defaults at the data's mean.
    n_channels_ : int
        Channels with a scale control (0 when there are none).
    channel_rms_range_, channel_rms_mean_ : ndarray of shape (channels, 2) and (channels,)
        Observed range and mean of each channel's per-sample magnitude.

    Example
    -------
    >>> X = np.random.default_rng(0).normal(size=(100, 5)).astype(np.float32)
    >>> ed = LatentEditor().fit(X, latent_shape=(5,))
    >>> ed.basis_, [c.name for c in ed.controls()][:2]
    ('units', ['unit 0', 'unit 1'])
    """

    def __init__(self, max_units=64, n_directions=16, extend=0.5, scale_channels=True, fit_sample=20_000,
                 chunk_size=4096, random_state=0, layer=None):
        self.max_units = max_units
        self.n_directions = n_directions
        self.extend = extend
        self.scale_channels = scale_channels
        self.fit_sample = fit_sample
        self.chunk_size = chunk_size
        self.random_state = random_state
        self.layer = layer

    @classmethod
    def from_inspection(cls, inspection, **params) -> LatentEditor:
        """An editor fitted on an :class:`~engine.explore.inspection.Inspection`'s activations and layer shape.

        Example
        -------
        >>> editor = LatentEditor.from_inspection(insp, n_directions=8)   # doctest: +SKIP
        """
        params.setdefault("layer", inspection.layer)
        return cls(**params).fit(inspection.activations, latent_shape=inspection.latent_shape)

    # -- fitting --------------------------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"layer {self.layer!r}" if self.layer else "the layer"

    def fit(self, X, y=None, *, latent_shape=None):
        """Decide the basis and precompute every control's range.

        Parameters
        ----------
        X : array of shape (n, d)
            Flattened activations, one sample per row (a memmap is read in chunks).
        y : ignored
        latent_shape : tuple of int, optional
            The layer's shape without the batch axis (default ``(d,)``); a feature map is channels last.

        Returns
        -------
        self

        Raises
        ------
        EditError
            ``X`` is not (n >= 2, d), ``latent_shape`` does not hold ``d`` values, or a parameter is invalid.

        Example
        -------
        >>> X = np.random.default_rng(0).normal(size=(50, 4 * 4 * 8))
        >>> ed = LatentEditor(n_directions=6).fit(X, latent_shape=(4, 4, 8))
        >>> ed.basis_, len(ed.controls_), ed.n_channels_
        ('principal', 6, 8)
        """
        if getattr(X, "ndim", None) != 2:
            X = np.asarray(X)
        if X.ndim != 2 or len(X) < 2:
            raise EditError(
                f"{self._where}: the editor needs activations of shape (samples >= 2, units), got {X.shape}"
            )
        n, d = X.shape
        shape = (d,) if latent_shape is None else tuple(int(s) for s in latent_shape)
        if int(np.prod(shape)) != d:
            raise EditError(f"{self._where}: latent_shape {shape} holds {int(np.prod(shape))} values, "
                                 f"the activations have {d} per sample")
        for name in ("max_units", "n_directions", "chunk_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise EditError(f"LatentEditor: {name} must be a positive integer, got {value!r}")
        if not (isinstance(self.extend, (int, float)) and self.extend >= 0):
            raise EditError(f"LatentEditor: extend must be a number >= 0, got {self.extend!r}")

        self.latent_shape_, self.n_features_in_, self.n_samples_ = shape, d, n
        self._X = X
        step = int(self.chunk_size)
        if d <= self.max_units:
            self.basis_ = "units"
            self.directions_ = self.coords_ = None
            lo, hi = np.full(d, np.inf), np.full(d, -np.inf)
            total = np.zeros(d)
            for a in range(0, n, step):
                block = np.asarray(X[a : a + step], dtype=np.float64)
                lo, hi = np.minimum(lo, block.min(axis=0)), np.maximum(hi, block.max(axis=0))
                total += block.sum(axis=0)
            mean = total / n
            names = [f"unit {i}" if len(shape) == 1 else f"unit {tuple(int(j) for j in np.unravel_index(i, shape))}"
                     for i in range(d)]
            kind = "unit"
        else:
            self.basis_ = "principal"
            self.directions_ = PrincipalDirections(
                n_components=int(self.n_directions), fit_sample=self.fit_sample, chunk_size=step,
                random_state=self.random_state,
            ).fit(X)
            self.coords_ = self.directions_.transform(X)
            lo = self.coords_.min(axis=0).astype(np.float64)
            hi = self.coords_.max(axis=0).astype(np.float64)
            mean = self.coords_.mean(axis=0, dtype=np.float64)
            names = [f"PC {i + 1}" for i in range(self.coords_.shape[1])]
            kind = "principal"
        self.observed_ = np.c_[lo, hi]
        self.controls_ = tuple(
            Control(names[i], kind, i, (float(lo[i]), float(hi[i])), _extend(float(lo[i]), float(hi[i]), self.extend),
                    float(mean[i]))
            for i in range(len(names))
        )

        self.n_channels_ = 0
        self.channel_rms_range_ = self.channel_rms_mean_ = None
        if self.basis_ == "principal" and self.scale_channels and len(shape) >= 2:
            C = shape[-1]
            lo, hi, total = np.full(C, np.inf), np.full(C, -np.inf), np.zeros(C)
            for a in range(0, n, step):
                rms = self._channel_rms(np.asarray(X[a : a + step], dtype=np.float64))
                lo, hi = np.minimum(lo, rms.min(axis=0)), np.maximum(hi, rms.max(axis=0))
                total += rms.sum(axis=0)
            self.n_channels_ = C
            self.channel_rms_range_ = np.c_[lo, hi]
            self.channel_rms_mean_ = total / n
        return self

    def _channel_rms(self, flat) -> np.ndarray:
        """Per-sample, per-channel root mean square over the feature map: (b, d) -> (b, channels)."""
        C = self.latent_shape_[-1]
        return np.sqrt(np.mean(np.square(flat.reshape(len(flat), -1, C)), axis=1))

    # -- what the sliders show ------------------------------------------------------------------------------------

    def controls(self, start: EditStart | None = None) -> tuple[Control, ...]:
        """The controls, basis first then channel scales; with ``start``, defaults are the start's values.

        Example
        -------
        >>> [c.name for c in editor.controls()][:3]   # doctest: +SKIP
        ['PC 1', 'PC 2', 'PC 3']
        """
        check_is_fitted(self, "controls_")
        if start is not None:
            return start.controls
        return self.controls_ + self._channel_controls(self.channel_rms_mean_)

    def _channel_controls(self, reference) -> tuple[Control, ...]:
        if not self.n_channels_:
            return ()
        out = []
        for c in range(self.n_channels_):
            ref = float(reference[c])
            if ref <= _TINY:
                observed, rng, active = (1.0, 1.0), (0.0, 2.0), False
            else:
                observed = (float(self.channel_rms_range_[c, 0] / ref), float(self.channel_rms_range_[c, 1] / ref))
                lo, hi = _extend(*observed, self.extend)
                rng, active = (max(0.0, lo), hi), True
            out.append(Control(f"channel {c} scale", "channel", c, observed, rng, 1.0, active))
        return tuple(out)

    def start(self, start) -> EditStart:
        """Load a sample (by id) or an activation into the editor.

        Parameters
        ----------
        start : int or array-like
            A sample id, or an activation of the layer (its shape or flattened), e.g. a tap's
            ``Inspection.decode(x, y).activation``.

        Returns
        -------
        EditStart
            Its ``values`` are the sliders' initial positions; pass it as ``start=`` to :meth:`activation`.

        Raises
        ------
        EditError
            An id outside ``0..n-1`` or an activation of the wrong size.

        Example
        -------
        >>> s = editor.start(12); s.values.shape, s.sample   # doctest: +SKIP
        ((5,), 12)
        """
        check_is_fitted(self, "controls_")
        d = self.n_features_in_
        sample = None
        if isinstance(start, (int, np.integer)) and not isinstance(start, bool):
            sample = int(start)
            if not 0 <= sample < self.n_samples_:
                raise EditError(f"{self._where}: sample id {sample} is outside 0..{self.n_samples_ - 1}")
            flat = np.asarray(self._X[sample], dtype=np.float64).reshape(d)
        else:
            flat = np.asarray(start, dtype=np.float64)
            if flat.size != d:
                raise EditError(
                    f"{self._where}: an activation to edit must hold {d} values (shape {self.latent_shape_}), "
                    f"got shape {flat.shape}"
                )
            flat = flat.reshape(d)
        if self.basis_ == "units":
            values, residual = flat.copy(), np.zeros(d)
        else:
            coords = self.coords_[sample] if sample is not None else self.directions_.transform(flat[None])[0]
            values = coords.astype(np.float64)
            residual = flat - self.directions_.inverse_transform(values)[0]
        basis = tuple(
            Control(c.name, c.kind, c.index, c.observed, c.range, float(values[c.index])) for c in self.controls_
        )
        rms = self._channel_rms(flat[None])[0] if self.n_channels_ else None
        return EditStart(
            values=values,
            channel_scales=np.ones(self.n_channels_) if self.n_channels_ else None,
            residual=residual,
            activation=flat.astype(np.float32).reshape(self.latent_shape_),
            sample=sample,
            controls=basis + self._channel_controls(rms),
            channel_rms=rms,
        )

    # -- editing --------------------------------------------------------------------------------------------------

    def _check_values(self, values) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(v) != len(self.controls_):
            raise EditError(
                f"{self._where}: expected {len(self.controls_)} values ({self.basis_} basis), got {len(v)}"
            )
        return v

    def _check_scales(self, channel_scales):
        if channel_scales is None:
            return None
        s = np.asarray(channel_scales, dtype=np.float64).reshape(-1)
        if not self.n_channels_:
            raise EditError(f"{self._where}: this editor has no channel scales ({self.basis_} basis, "
                                 f"layer shape {self.latent_shape_})")
        if len(s) != self.n_channels_:
            raise EditError(f"{self._where}: expected {self.n_channels_} channel scales, got {len(s)}")
        return s

    def activation(self, values, channel_scales=None, *, start: EditStart | None = None) -> np.ndarray:
        """The activation the controls describe, in the layer's shape (float32).

        Parameters
        ----------
        values : array-like of shape (k,)
            One value per basis control.
        channel_scales : array-like of shape (channels,), optional
            One multiplier per channel, applied last (feature maps in the principal basis only).
        start : EditStart, optional
            Principal basis: adds the start's residual, so directions without a control keep the start's detail
            (without it, the activation is ``mean + values @ components``). Ignored in the units basis.

        Returns
        -------
        ndarray of shape ``latent_shape_``, float32

        Raises
        ------
        EditError
            Wrong number of values or scales.

        Example
        -------
        >>> s = editor.start(3); v = s.values.copy(); v[1] = 0.0   # doctest: +SKIP
        >>> editor.activation(v, start=s).shape                     # doctest: +SKIP
        (5,)
        """
        check_is_fitted(self, "controls_")
        v = self._check_values(values)
        s = self._check_scales(channel_scales)
        if self.basis_ == "units":
            flat = v
        else:
            flat = self.directions_.inverse_transform(v)[0]
            if start is not None:
                flat = flat + start.residual
        out = flat.reshape(self.latent_shape_)
        if s is not None:
            out = out * s
        return out.astype(np.float32)

    def out_of_range(self, values, channel_scales=None, *, start: EditStart | None = None) -> np.ndarray:
        """Which controls are outside the range the data covers (strictly: a value at a bound is inside).

        Parameters
        ----------
        values : array-like of shape (k,)
        channel_scales : array-like of shape (channels,), optional
            Checked against the channel controls' ``observed`` scale ranges of ``start`` (of the data's mean
            magnitudes without one); inactive channels are never flagged.
        start : EditStart, optional

        Returns
        -------
        ndarray of bool
            Aligned with :meth:`controls`: ``k`` basis flags, then one per channel when ``channel_scales`` is given.

        Example
        -------
        >>> editor.out_of_range(editor.start(0).values).any()   # doctest: +SKIP
        False
        """
        check_is_fitted(self, "controls_")
        v = self._check_values(values)
        flags = (v < self.observed_[:, 0]) | (v > self.observed_[:, 1])
        s = self._check_scales(channel_scales)
        if s is None:
            return flags
        channels = self.controls(start)[len(self.controls_):]
        lo = np.array([c.observed[0] for c in channels])
        hi = np.array([c.observed[1] for c in channels])
        active = np.array([c.active for c in channels])
        return np.concatenate([flags, active & ((s < lo) | (s > hi))])


def decode_edit(inspection, activation):
    """An edited (or interpolated) activation as a :class:`~engine.explore.inspection.Decode`, like a tap's.

    The point's ``xy`` is where the activation projects on the latent plot (the reducer's ``transform``), its
    ``trust`` that of ``xy``, its ``nearest`` the embedded sample nearest to ``xy``; ``activation`` is the edited
    activation itself and ``output`` its decode through the suffix.

    Parameters
    ----------
    inspection : Inspection
    activation : array-like
        In the layer's shape, or flattened.

    Returns
    -------
    Decode

    Raises
    ------
    EditError
        An activation of the wrong size.
    ReducerError
        The reducer cannot embed new points (a GPU-fitted t-SNE).

    Example
    -------
    >>> d = decode_edit(insp, editor.activation(values, start=start))   # doctest: +SKIP
    >>> d.output.shape, d.xy                                            # doctest: +SKIP
    ((16, 16, 1), (0.42, -1.3))
    """
    from engine.explore.inspection import Decode

    t0 = time.perf_counter()
    a = np.asarray(activation, dtype=np.float32)
    size = int(np.prod(inspection.latent_shape))
    if a.size != size:
        raise EditError(f"layer {inspection.layer!r}: an activation must hold {size} values "
                             f"(shape {inspection.latent_shape}), got shape {a.shape}")
    a = a.reshape(inspection.latent_shape)
    xy = np.asarray(inspection.reducer.transform(a.reshape(1, -1)), dtype=np.float32)
    output = inspection.decode_activation(a)
    x, y = float(xy[0, 0]), float(xy[0, 1])
    return Decode((x, y), a, output, inspection.reducer.trust(xy), inspection.nearest(x, y), time.perf_counter() - t0)
