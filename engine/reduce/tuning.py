"""Self-tuning of one neighbourhood-size parameter by trustworthiness, within a time budget.

UMAP's ``n_neighbors`` and t-SNE's ``perplexity`` decide how local the picture is. Instead of a fixed default we
embed a subsample once per grid value, score each embedding with
:func:`sklearn.manifold.trustworthiness` (k=10) and keep the best. The default value is tried first; further
values are tried only while the time budget is expected to hold (the next fit is predicted to take as long as
the slowest so far), so the search never runs much past ``seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.manifold import trustworthiness

__all__ = ["Tuning", "tune_parameter"]


@dataclass
class Tuning:
    """What the self-tuning tried, what it scored, and what it chose.

    Attributes
    ----------
    param : str
        Name of the tuned parameter (``"n_neighbors"``, ``"perplexity"``).
    grid : tuple
        The candidate values, as given.
    scores : dict
        Trustworthiness (k=``n_neighbors``) of each value that was tried.
    chosen : int or float
        The value with the best score.
    seconds : dict
        Fit time of each value that was tried.
    skipped : tuple
        Values not tried because the time budget would have run out.
    budget_seconds : float
    sample_size : int
        Rows of the subsample the candidates were fitted on.
    n_neighbors : int
        k of the trustworthiness score.
    """

    param: str
    grid: tuple
    scores: dict = field(default_factory=dict)
    chosen: object = None
    seconds: dict = field(default_factory=dict)
    skipped: tuple = ()
    budget_seconds: float = 0.0
    sample_size: int = 0
    n_neighbors: int = 10

    def to_dict(self) -> dict:
        d = asdict(self)
        d["grid"] = list(self.grid)
        d["skipped"] = list(self.skipped)
        d["scores"] = {str(k): v for k, v in self.scores.items()}
        d["seconds"] = {str(k): v for k, v in self.seconds.items()}
        return d

    def to_text(self) -> str:
        tried = ", ".join(f"{k}: {v:.3f}" for k, v in self.scores.items())
        text = (
            f"{self.param} = {self.chosen} chosen by trustworthiness@{self.n_neighbors} "
            f"on {self.sample_size} rows ({tried})"
        )
        if self.skipped:
            text += f"; not tried within {self.budget_seconds:g} s: {', '.join(map(str, self.skipped))}"
        return text

    __str__ = to_text


def tune_parameter(
    fit_embed: Callable[[np.ndarray, object], tuple[object, np.ndarray]],
    X: np.ndarray,
    *,
    param: str,
    grid,
    default,
    seconds: float,
    n_neighbors: int = 10,
    progress: Callable[[int, int], object] | None = None,
) -> tuple[Tuning, dict]:
    """Try each value of ``grid`` (``default`` first) on ``X`` and score it by trustworthiness.

    Parameters
    ----------
    fit_embed : callable
        ``fit_embed(X, value) -> (model, embedding)``.
    X : ndarray of shape (m, d)
        The (already subsampled) rows to tune on.
    param : str
        Name of the parameter, for the report.
    grid : sequence
        Candidate values.
    default : value
        Tried first (it is also tried when not in ``grid``).
    seconds : float
        Time budget; at least one value is always tried.
    n_neighbors : int
        k of the trustworthiness score.
    progress : callable(done, total), optional
        Called before the first trial and after each, with the values tried and the values of the grid; with
        ``done == total`` at the end (values skipped for the time budget count as done).

    Returns
    -------
    tuning : Tuning
    fitted : dict
        ``{value: (model, embedding)}`` of the best value only, so a caller tuning on its whole fit sample can
        reuse that fit instead of repeating it.
    """
    order = [default] + [v for v in grid if v != default]
    tuning = Tuning(
        param=param, grid=tuple(grid), budget_seconds=float(seconds), sample_size=len(X), n_neighbors=n_neighbors
    )
    k = min(n_neighbors, max(1, (len(X) - 1) // 2 - 1))
    best, best_fit = None, None
    start = time.perf_counter()
    if progress is not None:
        progress(0, len(order))
    for i, value in enumerate(order):
        elapsed = time.perf_counter() - start
        slowest = max(tuning.seconds.values(), default=0.0)
        if i > 0 and elapsed + slowest > seconds:
            tuning.skipped = tuple(order[i:])
            break
        if i > 0 and progress is not None:
            progress(i, len(order))
        t0 = time.perf_counter()
        model, embedding = fit_embed(X, value)
        tuning.seconds[value] = round(time.perf_counter() - t0, 3)
        score = float(trustworthiness(X, embedding, n_neighbors=k))
        tuning.scores[value] = round(score, 5)
        if best is None or score > tuning.scores[best]:
            best, best_fit = value, (model, embedding)
    tuning.chosen = best
    tuning.n_neighbors = k
    if progress is not None:
        progress(len(order), len(order))
    return tuning, {best: best_fit}
