"""Interpolation between two points of a layer, in the layer's own space (not in the 2-D plane).

Two endpoints -- samples, taps on the latent plot, or activations -- are resolved to activations of the layer
(:func:`resolve_endpoint`); :func:`interpolate` walks the straight line between them, or the spherical path;
:func:`interpolation_path` also decodes every step through the suffix and projects the path onto the latent plot
with the reducer's ``transform``, so it can be drawn over the embedding.

Spherical interpolation (``method="spherical"``) moves the direction along the great circle between the two
flattened vectors and the norm linearly between their norms: ``|v(t)| = (1 - t) |a| + t |b|``. When a direction
is undefined (a zero endpoint) or the two are parallel this is the straight line; for opposite vectors the circle
passes through a fixed perpendicular direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import EditError

__all__ = ["METHODS", "Endpoint", "InterpolationPath", "interpolate", "interpolation_path", "resolve_endpoint"]

METHODS = ("linear", "spherical")
_EPS = 1e-7


@dataclass(frozen=True)
class Endpoint:
    """A resolved endpoint: the activation a user pointed at, and how they pointed at it.

    Attributes
    ----------
    kind : {"sample", "tap", "activation"}
    activation : ndarray
        In the layer's shape, float32.
    sample : int or None
        The sample id, for ``kind="sample"``.
    xy : tuple of float or None
        The point on the latent plot: the sample's embedding, or the tap.
    """

    kind: str
    activation: np.ndarray
    sample: int | None = None
    xy: tuple[float, float] | None = None

    @classmethod
    def tap(cls, inspection, x: float, y: float) -> Endpoint:
        """The activation the inverse map gives at ``(x, y)`` of the latent plot.

        Example
        -------
        >>> Endpoint.tap(insp, 1.5, -0.3).kind   # doctest: +SKIP
        'tap'
        """
        flat = inspection.reducer.inverse_transform(np.array([[x, y]], dtype=np.float32))
        act = np.asarray(flat, dtype=np.float32).reshape(inspection.latent_shape)
        return cls("tap", act, None, (float(x), float(y)))

    @classmethod
    def of_sample(cls, inspection, sample: int) -> Endpoint:
        """Sample ``sample``'s own activation at the layer.

        Example
        -------
        >>> Endpoint.of_sample(insp, 12).xy == tuple(map(float, insp.embedding[12]))   # doctest: +SKIP
        True
        """
        n = len(inspection.activations)
        i = int(sample)
        if not 0 <= i < n:
            raise EditError(f"layer {inspection.layer!r}: sample id {i} is outside 0..{n - 1}")
        act = np.asarray(inspection.activations[i], dtype=np.float32).reshape(inspection.latent_shape)
        return cls("sample", act, i, tuple(float(v) for v in inspection.embedding[i]))

    @classmethod
    def of_activation(cls, inspection, activation) -> Endpoint:
        """An activation given directly (an edited one, say), in the layer's shape or flattened.

        Example
        -------
        >>> Endpoint.of_activation(insp, editor.activation(values, start=start)).kind   # doctest: +SKIP
        'activation'
        """
        a = np.asarray(activation, dtype=np.float32)
        size = int(np.prod(inspection.latent_shape))
        if a.size != size:
            raise EditError(
                f"layer {inspection.layer!r}: an activation must hold {size} values (shape {inspection.latent_shape}), "
                f"got shape {a.shape}"
            )
        return cls("activation", a.reshape(inspection.latent_shape), None, None)


def resolve_endpoint(inspection, spec) -> Endpoint:
    """Turn what a user pointed at into an :class:`Endpoint`.

    Parameters
    ----------
    inspection : Inspection
    spec : int, Endpoint, array-like or (x, y)
        An ``int`` is a sample id; an :class:`Endpoint` is returned as is; an array holding as many values as the
        layer is an activation; otherwise a pair ``(x, y)`` is a tap on the latent plot. (For a layer of exactly
        two units a pair is an activation: use :meth:`Endpoint.tap` for a tap.)

    Returns
    -------
    Endpoint

    Raises
    ------
    EditError
        An id out of range, or an array that is neither an activation of the layer nor a 2-D point.

    Example
    -------
    >>> resolve_endpoint(insp, 7).sample, resolve_endpoint(insp, (0.5, 1.0)).kind   # doctest: +SKIP
    (7, 'tap')
    """
    if isinstance(spec, Endpoint):
        return spec
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return Endpoint.of_sample(inspection, int(spec))
    a = np.asarray(spec, dtype=np.float32)
    size = int(np.prod(inspection.latent_shape))
    if a.size == size:
        return Endpoint.of_activation(inspection, a)
    if a.size == 2:
        return Endpoint.tap(inspection, float(a.reshape(2)[0]), float(a.reshape(2)[1]))
    raise EditError(
        f"layer {inspection.layer!r}: an endpoint is a sample id, a 2-D point (x, y) or an activation of {size} "
        f"values (shape {inspection.latent_shape}); got an array of shape {a.shape}"
    )


def _perpendicular(u: np.ndarray) -> np.ndarray:
    """A fixed unit vector perpendicular to unit vector ``u`` (Gram-Schmidt on the axis least aligned with it)."""
    e = np.zeros_like(u)
    e[int(np.argmin(np.abs(u)))] = 1.0
    p = e - (e @ u) * u
    return p / np.linalg.norm(p)


def interpolate(a, b, steps: int = 8, method: str = "linear") -> np.ndarray:
    """``steps`` points from ``a`` to ``b`` (both included), in the space of ``a`` and ``b``.

    Parameters
    ----------
    a, b : array-like of the same shape
        Two activations (any shape; spherical interpolation works on the flattened vectors).
    steps : int, default=8
        At least 2; the first point is exactly ``a``, the last exactly ``b``.
    method : {"linear", "spherical"}
        ``"linear"``: ``(1 - t) a + t b``. ``"spherical"``: the direction along the great circle, the norm
        linearly from ``|a|`` to ``|b|`` (see the module's notes on zero, parallel and opposite vectors).

    Returns
    -------
    ndarray of shape (steps, *a.shape), float32

    Raises
    ------
    EditError
        Shapes differ, ``steps < 2`` or an unknown method.

    Example
    -------
    >>> interpolate([1.0, 0.0], [0.0, 2.0], steps=3, method="spherical").round(3)
    array([[1.   , 0.   ],
           [1.061, 1.061],
           [0.   , 2.   ]], dtype=float32)
    """
    A, B = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if A.shape != B.shape:
        raise EditError(f"interpolate: the endpoints have shapes {A.shape} and {B.shape}; expected the same")
    if not isinstance(steps, (int, np.integer)) or steps < 2:
        raise EditError(f"interpolate: steps must be an integer >= 2 (both endpoints included), got {steps!r}")
    if method not in METHODS:
        raise EditError(f"interpolate: method must be one of {', '.join(METHODS)}, got {method!r}")
    t = np.linspace(0.0, 1.0, int(steps))[:, None]
    fa, fb = A.reshape(-1), B.reshape(-1)
    if method == "linear":
        out = (1.0 - t) * fa + t * fb
    else:
        na, nb = np.linalg.norm(fa), np.linalg.norm(fb)
        if na <= _EPS or nb <= _EPS:
            out = (1.0 - t) * fa + t * fb  # no direction to follow: the line (its norm is interpolated too)
        else:
            ua, ub = fa / na, fb / nb
            cos = float(np.clip(ua @ ub, -1.0, 1.0))
            omega = np.arccos(cos)
            if np.sin(omega) <= _EPS:
                if cos > 0:  # parallel: the direction stays put
                    direction = np.repeat(ua[None], len(t), axis=0)
                else:  # opposite: half a turn through a fixed perpendicular direction
                    p = _perpendicular(ua)
                    direction = np.cos(np.pi * t) * ua + np.sin(np.pi * t) * p
            else:
                direction = (np.sin((1.0 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
                direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            out = ((1.0 - t) * na + t * nb) * direction
    out[0], out[-1] = fa, fb
    return out.reshape((len(t), *A.shape)).astype(np.float32)


@dataclass(frozen=True)
class InterpolationPath:
    """A path through the layer, decoded and projected.

    Attributes
    ----------
    t : ndarray of shape (steps,)
        Position along the path, 0 at ``start`` and 1 at ``end``.
    activations : ndarray of shape (steps, *latent_shape), float32
    outputs : ndarray of shape (steps, *output_shape)
        The suffix's output at every step (the decoded strip).
    xy : ndarray of shape (steps, 2), float32
        The path projected onto the latent plot by the reducer's ``transform`` (a tap endpoint lands where its
        activation projects, which differs from the tap by the inverse map's round-trip error).
    start, end : Endpoint
    method : str
    """

    t: np.ndarray
    activations: np.ndarray
    outputs: np.ndarray
    xy: np.ndarray
    start: Endpoint
    end: Endpoint
    method: str


def interpolation_path(inspection, a, b, steps: int = 8, method: str = "linear") -> InterpolationPath:
    """Interpolate between two endpoints in the layer's space, decode every step and project the path to 2-D.

    Parameters
    ----------
    inspection : Inspection
    a, b : int, Endpoint, array-like or (x, y)
        Endpoints as accepted by :func:`resolve_endpoint` (sample id, tap, activation).
    steps : int, default=8
    method : {"linear", "spherical"}

    Returns
    -------
    InterpolationPath

    Raises
    ------
    EditError
        Bad endpoints, ``steps`` or method.
    ReducerError
        The reducer cannot embed new points (a GPU-fitted t-SNE).

    Example
    -------
    >>> path = interpolation_path(insp, 3, (1.0, -2.0), steps=10, method="spherical")   # doctest: +SKIP
    >>> path.outputs.shape, path.xy.shape                                              # doctest: +SKIP
    ((10, 28, 28, 1), (10, 2))
    """
    start, end = resolve_endpoint(inspection, a), resolve_endpoint(inspection, b)
    acts = interpolate(start.activation, end.activation, steps, method)
    outputs = inspection.decode_outputs(acts)
    xy = np.asarray(inspection.reducer.transform(acts.reshape(len(acts), -1)), dtype=np.float32)
    return InterpolationPath(np.linspace(0.0, 1.0, len(acts)), acts, np.asarray(outputs), xy, start, end, method)
