"""Labels as one categorical column per row: checked once, for the latent plot, parallel coordinates and the Dask
frames alike.

Integer labels are class codes named by ``class_names`` (every code must have a name); any other labels (text, or
codes without names) are named by their text. The result is a :class:`pandas.Categorical` whose categories are the
class names in code order, so every picture colours a class the same way.
"""

from __future__ import annotations

import numpy as np

from engine.errors import DataError

__all__ = ["label_column"]


def label_column(labels, n: int, class_names=None, *, where: str = "labels", error: type[Exception] = DataError):
    """The categorical label of each of ``n`` rows.

    Parameters
    ----------
    labels : array-like of shape (n,)
        Integer class codes (named by ``class_names``) or any values (named by ``str``).
    n : int
        Rows the labels belong to.
    class_names : sequence of str, optional
        Name of each class code; with it, integer codes outside ``0..len(class_names) - 1`` are refused.
    where : str
        What the labels label, for the message (``"points_frame"``, ``"parallel coordinates"``...).
    error : exception class
        Raised, naming ``where``, when the labels do not fit (a subclass of :class:`~engine.errors.InspectorError`).

    Returns
    -------
    pandas.Categorical

    Example
    -------
    >>> label_column(np.array([1, 0, 1]), 3, ["cat", "dog"]).tolist()
    ['dog', 'cat', 'dog']
    """
    import pandas as pd

    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        count = len(labels) if labels.ndim else 1
        raise error(f"{where}: {count} labels for {n} samples; expected one per sample")
    if class_names is not None and labels.dtype.kind in "iu":
        names = [str(c) for c in class_names]
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise error(f"{where}: labels range {labels.min()}..{labels.max()} but there are {len(names)} class names")
        return pd.Categorical.from_codes(labels.astype(np.int64, copy=False), categories=names)
    return pd.Categorical([str(v) for v in labels])
