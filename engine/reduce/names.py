"""The reducers and inverse maps by name, with the words a user reads for each: the one table the CLI's choices, the
dashboard's menus and :func:`engine.reduce.make_reducer` read. Importing it imports nothing heavy."""

__all__ = ["INVERSES", "METHODS", "METHOD_PARAMS", "method_key", "method_label"]

#: Every reducer by name, with its label.
METHODS = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
#: The parameters of each reducer a user tunes by hand (the others keep their defaults, or are self-tuned).
METHOD_PARAMS = {"pca": (), "umap": ("n_neighbors", "min_dist"), "tsne": ("perplexity",)}
#: Every inverse map by name, with its label.
INVERSES = {
    "auto": "auto",
    "exact": "exact (PCA)",
    "mlp": "learned (MLP)",
    "knn": "nearest neighbours",
    "native": "native (UMAP)",
}


def method_key(method, caller: str = "") -> str:
    """The key of :data:`METHODS` a user's ``method`` names ("t-SNE" and "TSNE" are "tsne"); a
    :class:`~engine.errors.ReducerValueError` naming the known ones otherwise (after ``caller``, where given).

    >>> method_key("t-SNE")
    'tsne'
    """
    from engine.errors import ReducerValueError

    key = str(method).lower().replace("-", "")
    if key not in METHODS:
        raise ReducerValueError(f"{caller + ': ' if caller else ''}method must be one of {sorted(METHODS)}, "
                                f"got {method!r}.")
    return key


def method_label(method: str) -> str:
    """The reducer's name as a user reads it (``t-SNE``, not ``TSNE``).

    >>> method_label("tsne"), method_label("umap")
    ('t-SNE', 'UMAP')
    """
    return METHODS.get(str(method), str(method).upper())
