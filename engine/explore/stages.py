"""A first picture in seconds, then the refined one: the stages in which an inspection is built for a user waiting.

A UMAP or t-SNE picture with the engine's defaults self-tunes its neighbourhood size (several fits on a subsample)
and trains the learned inverse map (a neural network): minutes on a laptop for a 10,000-sample layer, most of it
not needed to see the picture. :func:`stages` splits such a request in two:

1. **first picture**: the tuned parameter at its default (15 neighbours, perplexity 30), the other parameters as
   asked, and the k-nearest-neighbour inverse (fitted in milliseconds): a map to look at and tap at once;
2. **refined**: the request as asked (self-tuned, learned inverse). When the tuning keeps the default (or the
   parameter was given), the refined fit reads the first picture's fitted model and embedding from the projection
   cache's model entries (:func:`engine.reduce.cache.model_key`) instead of fitting again, so the map does not move
   and only the inverse map is trained.

A request that is quick already (PCA, or an explicit parameter with the k-NN, exact or native inverse) is one stage.
Each stage is built as ``Inspection(project, layer, method=method, inverse=stage.inverse, params=stage.params)``
with the same seed and cache folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import ReducerValueError
from engine.reduce.names import INVERSES, method_key, method_label

__all__ = ["QUICK_INVERSES", "TUNED", "Stage", "stages"]

#: The parameter each reducer self-tunes, and its default (the value of the first picture).
TUNED = {"umap": ("n_neighbors", 15), "tsne": ("perplexity", 30)}
#: Inverse maps that fit in about no time (umap-learn's native inverse is slow to decode, not to fit).
QUICK_INVERSES = ("knn", "exact", "native")


@dataclass(frozen=True)
class Stage:
    """One stage of building an inspection.

    Attributes
    ----------
    name : str
        ``"first picture"``, ``"refined"``, or ``"final"`` when the request is built in one stage.
    inverse : str
        The inverse map to build it with.
    params : dict
        The reducer's parameters to build it with.
    words : str
        What it is, for the user ("UMAP, n_neighbors 15 (default), nearest-neighbours inverse").
    """

    name: str
    inverse: str
    params: dict = field(default_factory=dict)
    words: str = ""


def _words(method: str, inverse: str, params: dict, default=None) -> str:
    parts = [method_label(method)]
    if method in TUNED and TUNED[method][0] not in params:
        parts.append(f"{TUNED[method][0]} self-tuned")
    for name, value in sorted(params.items()):
        parts.append(f"{name} {value}" + (" (default)" if default == (name, value) else ""))
    if inverse == "auto":
        inverse = "exact" if method == "pca" else "mlp"
    parts.append(f"{INVERSES.get(inverse, inverse)} inverse")
    return ", ".join(parts)


def stages(method: str, inverse: str = "auto", params: dict | None = None) -> tuple[Stage, ...]:
    """The stages to build the inspection ``(method, inverse, params)`` in.

    Parameters
    ----------
    method : {"pca", "umap", "tsne"}
    inverse : str
        The inverse map asked for (``"auto"``: the learned one for UMAP and t-SNE).
    params : dict, optional
        The reducer's parameters asked for; the tuned one absent or ``"auto"`` means self-tuned.

    Returns
    -------
    tuple of Stage
        One stage (``"final"``) for a quick request; else ``"first picture"`` then ``"refined"``, whose
        inverse and parameters are the request's.

    Raises
    ------
    ReducerValueError
        An unknown method or inverse map, or t-SNE with the native inverse (it has none): refused here rather than
        after a first picture.

    Examples
    --------
    >>> [s.name for s in stages("pca")]
    ['final']
    >>> first, refined = stages("umap", "auto", {"min_dist": 0.1})
    >>> first.inverse, first.params, refined.params
    ('knn', {'min_dist': 0.1, 'n_neighbors': 15}, {'min_dist': 0.1})
    >>> first.words
    'UMAP, min_dist 0.1, n_neighbors 15 (default), nearest neighbours inverse'
    >>> refined.words
    'UMAP, n_neighbors self-tuned, min_dist 0.1, learned (MLP) inverse'
    >>> [s.name for s in stages("tsne", "knn", {"perplexity": 50})]
    ['final']
    """
    method = method_key(method)
    if inverse not in INVERSES:
        raise ReducerValueError(f"inverse must be one of {tuple(INVERSES)}, got {inverse!r}.")
    if method == "tsne" and inverse == "native":
        raise ReducerValueError("TSNEReducer has no native inverse; use inverse='mlp' (default) or 'knn'.")
    params = {k: v for k, v in (params or {}).items() if v != "auto"}
    asked = Stage("final", inverse, dict(params), _words(method, inverse, params))
    if method not in TUNED:
        return (asked,)
    name, default = TUNED[method]
    tuned = name not in params
    quick_inverse = inverse in QUICK_INVERSES
    if not tuned and quick_inverse:
        return (asked,)
    first_params = {**params, name: params.get(name, default)}
    first_inverse = inverse if quick_inverse else "knn"
    first = Stage("first picture", first_inverse, first_params,
                  _words(method, first_inverse, first_params, (name, default) if tuned else None))
    refined = Stage("refined", inverse, dict(params), _words(method, inverse, params))
    return first, refined
