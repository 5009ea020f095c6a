"""Warm a process up for a reducer: import its libraries and compile (or load from numba's disk cache) the code its
fit runs, on a small synthetic input, so that a user's first fit in this process does not pay for it.

A server calls :func:`warm_up` in the background when it starts; a user asking for UMAP seconds later then finds
umap-learn imported and its numba code compiled. What a warm-up covers, for UMAP: the exact-neighbour fit of 4,096
rows and more (:mod:`engine.reduce.umap_`), the fit of fewer rows (the self-tuning's trials on 2,000 rows),
``transform`` (the latent editor places edited points with it); for t-SNE: openTSNE's affinities (Annoy), both
phases of its optimisation and ``transform``; for both, Keras, which the learned inverse map trains with. Not covered:
NN-descent (umap-learn's neighbours above :data:`~engine.reduce.umap_.EXACT_KNN_WORK`), whose compilation takes
longer (20-30 s on two cores) than the fits it speeds up at the sizes a server meets first.
"""

from __future__ import annotations

import time

import numpy as np

from engine.progress import ProgressFn, report
from engine.reduce.names import METHODS, method_key

__all__ = ["import_libraries", "warm_up"]


def _clusters(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    """``n`` rows around 8 centres: a graph with structure, as real activations have (pure noise makes spectral
    initialisation slow)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(8, d))
    return (centres[rng.integers(0, 8, n)] + rng.normal(size=(n, d))).astype(np.float32)


def _steps(method: str) -> list:
    from engine.reduce import make_reducer

    if method == "umap":
        def umap_fits():
            from engine.reduce.umap_ import EXACT_KNN_MIN_ROWS

            large = make_reducer("umap", n_neighbors=15, n_epochs=10, inverse=None, random_state=0)
            large.fit(_clusters(EXACT_KNN_MIN_ROWS + 100))
            large.transform(_clusters(5, seed=1))
            make_reducer("umap", n_neighbors=15, n_epochs=10, inverse=None, random_state=0).fit(_clusters(300))

        return [("importing umap-learn", lambda: import_libraries(["umap"])), ("compiling UMAP", umap_fits)]
    if method == "tsne":
        def tsne_fit():
            reducer = make_reducer("tsne", perplexity=30, n_iter=10, early_exaggeration_iter=10, inverse=None,
                                   random_state=0).fit(_clusters(1_200))
            reducer.transform(_clusters(5, seed=1))

        return [("importing openTSNE", lambda: import_libraries(["tsne"])), ("running t-SNE", tsne_fit)]
    return [("running PCA", lambda: make_reducer("pca", inverse=None, random_state=0).fit(_clusters(200)))]


def import_libraries(methods=("umap", "tsne")) -> None:
    """Import the libraries of the fits of ``methods`` ("umap", "tsne", "pca"), compiling nothing: about 2 s and
    225,000 objects for UMAP's and t-SNE's (umap-learn, pynndescent, numba, openTSNE). A server imports them before it
    freezes what its libraries made (``dashboard.serve``), so that its full garbage collections never walk them."""
    for method in methods:
        key = method_key(method, "import_libraries")
        if key == "umap":
            from engine.reduce.umap_ import import_umap

            import_umap()
        elif key == "tsne":
            import openTSNE  # noqa: F401


def warm_up(method: str, progress: ProgressFn | None = None) -> dict:
    """Import and compile what a fit of ``method`` needs, on a small synthetic input (seconds; safe to call again,
    and from a background thread).

    Parameters
    ----------
    method : {"pca", "umap", "tsne"}
    progress : callable(stage, done, total), optional
        Stage ``"warming up UMAP"`` (or t-SNE, PCA): steps done of the steps.

    Returns
    -------
    dict
        Seconds each step took, by name (``"importing umap-learn"``, ``"compiling UMAP"``, ``"importing Keras"``...):
        the time a first fit in this process no longer spends.

    Raises
    ------
    ReducerValueError
        For an unknown method.

    Example
    -------
    >>> import threading
    >>> threading.Thread(target=warm_up, args=("umap",), daemon=True).start()   # doctest: +SKIP
    """
    key = method_key(method, "warm_up")
    steps = _steps(key)
    if key != "pca":  # the learned inverse map (the default for UMAP and t-SNE) trains with Keras
        steps.append(("importing Keras", lambda: __import__("keras")))
    stage, seconds = f"warming up {METHODS[key]}", {}
    report(progress, stage, 0, len(steps))
    for i, (name, step) in enumerate(steps, 1):
        t0 = time.perf_counter()
        step()
        seconds[name] = round(time.perf_counter() - t0, 3)
        report(progress, stage, i, len(steps))
    return seconds
