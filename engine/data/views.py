"""How one sample is drawn: a view kind and shape, from the project's manifest or inferred from the model and data.

A project's ``[input_view]`` / ``[output_view]`` (and ``[output_view.HEAD]`` for a model with several outputs) say
it; without them the view is inferred (:func:`infer_view`) from the per-sample shape, the model's final activation
and the values themselves, and ``latent-inspector info`` prints what was inferred and why. A manifest view whose
shape does not hold the model's values is an error naming both (:func:`check_view`), never striped noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["VIEW_KINDS", "ViewSpec", "check_view", "infer_view"]

VIEW_KINDS = ("image", "series", "vector", "probabilities")


@dataclass(frozen=True)
class ViewSpec:
    """How to draw one sample: ``image`` (``shape`` [H, W] or [H, W, C]), ``series`` ([T, C] with channel names),
    ``vector`` or ``probabilities`` (bars, with class names). ``why`` says how an inferred view was chosen (empty
    for a view the manifest gave)."""

    kind: str
    shape: tuple[int, ...] | None = None
    channels: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    why: str = ""

    def describe(self) -> str:
        """``image 28x28 (inferred: ...)``: the view in one phrase."""
        text = self.kind + (f" {'x'.join(map(str, self.shape))}" if self.shape else "")
        if self.class_names and self.kind == "probabilities":
            shown = ", ".join(self.class_names[:6]) + (", ..." if len(self.class_names) > 6 else "")
            text += f" ({shown})"
        return text + (f"  (inferred: {self.why})" if self.why else "")


def _size(shape) -> int:
    return int(np.prod([d for d in shape if d is not None], dtype=np.int64)) if shape else 0


def infer_view(shape, *, activation: str | None = None, sample=None, like: ViewSpec | None = None,
               class_names=None) -> ViewSpec:
    """The view of samples of per-sample ``shape``, when the manifest gives none.

    Parameters
    ----------
    shape : tuple of int
        Per-sample shape (no batch axis).
    activation : str, optional
        The final activation of the model output (``"softmax"``, ``"sigmoid"``...), for an output.
    sample : array-like, optional
        A few samples (values), to recognise probabilities.
    like : ViewSpec, optional
        The input's view: an output of the same size (an autoencoder's flat reconstruction) is drawn like it.
    class_names : sequence of str, optional
        Names for probability bars (only used when their count matches).

    Returns
    -------
    ViewSpec
        With ``why`` saying what decided it.

    Example
    -------
    >>> infer_view((28, 28, 1)).describe()
    'image 28x28x1  (inferred: (28, 28, 1) has height, width and 1 channel)'
    """
    shape = tuple(int(d) for d in shape if d is not None)
    size = _size(shape)
    squeezed = tuple(d for d in shape if d != 1)
    if len(shape) == 3 and shape[-1] in (1, 3, 4) and min(shape[:2]) >= 4:
        return ViewSpec("image", shape, why=f"{shape} has height, width and {shape[-1]} channel"
                        + ("s" if shape[-1] > 1 else ""))
    if len(squeezed) == 2:
        t, c = squeezed
        if c <= 16 and t > c:
            return ViewSpec("series", squeezed, why=f"{shape}: {t} time steps of {c} channel" + ("s" if c > 1 else ""))
        if min(t, c) >= 8:
            return ViewSpec("image", squeezed, why=f"{shape} is a 2-D grid")
    if len(squeezed) <= 1 and size >= 2:
        if activation == "softmax":
            return _probabilities(size, class_names, "the output ends in a softmax")
        if activation is None and sample is not None and _sums_to_one(sample, size):
            return _probabilities(size, class_names, "each sample's values are non-negative and sum to 1")
        if like is not None and like.shape and _size(like.shape) == size and like.kind in ("image", "series"):
            why = f"{size} values, as many as the input's {like.kind} {like.shape}"
            return replace(like, why=why, class_names=None)
        side = math.isqrt(size)
        if side * side == size and side >= 8:
            return ViewSpec("image", (side, side), why=f"{size} values are a {side}x{side} square")
    return ViewSpec("vector", why=f"{shape}: no image, series or probability shape")


def _probabilities(size: int, class_names, why: str) -> ViewSpec:
    names = tuple(class_names) if class_names is not None and len(class_names) == size else None
    return ViewSpec("probabilities", (size,), class_names=names, why=why)


def _sums_to_one(sample, size: int) -> bool:
    a = np.asarray(sample, dtype=np.float64).reshape(-1, size)
    return bool(a.size and np.all(a >= -1e-6) and np.allclose(a.sum(axis=1), 1.0, atol=1e-3))


def check_view(view: ViewSpec, shape, where: str, what: str) -> str | None:
    """Why ``view`` cannot draw samples of per-sample ``shape`` (a manifest view whose shape holds another number
    of values), naming both; None when it can."""
    if view.shape is None:
        return None
    size, want = _size(shape), _size(view.shape)
    if size == want:
        return None
    return (f"{where}: shape = {list(view.shape)} ({want:,} values) does not match {what} {tuple(shape)} "
            f"({size:,} values)")
