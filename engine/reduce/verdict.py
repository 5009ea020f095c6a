"""One plain verdict per decode: how far to trust what the inverse map and the suffix made of a 2-D point.

The trust measures of a point (:class:`~engine.reduce.trust.Trust`) are several numbers on different scales: the
distance to the nearest embedded sample in units of the embedding's typical spacing, whether the point lies outside
the data's convex hull or density support, and the inverse map's estimated round-trip error. A user reads one word.
:func:`verdict` combines them into four levels, each measure giving a level by the thresholds below and the verdict
being the worst of them:

============================  =============  ==================  ==================  ==============
measure                       among the data near the data       extrapolating       far outside
============================  =============  ==================  ==================  ==============
distance / typical spacing    <= 2           <= 5                <= 20               > 20
outside hull or support       no             no                  yes                 --
error / the map's own error   <= 2           <= 5                <= 20               > 20
error / activation variance   --             --                  <= 1                > 1
fold (gradient / median)      <= 3           <= 10               > 10                --
============================  =============  ==================  ==================  ==============

* *distance / typical spacing*: the typical spacing is the median distance between an embedded sample and its
  nearest neighbour, so 1 is "as close as samples are to each other".
* *error / the map's own error*: the estimated round-trip error at the point over the median error of the map on
  its held-out samples: how much worse than usual the inverse map does here. A map that is coarse everywhere (PCA
  keeping 40% of the variance) is not "extrapolating" among its own data.
* *error / activation variance*: above 1 the decode is further from the truth than the mean activation would be; it
  is no better than a guess, whatever the distance says.

* *fold*: the gradient map at the point (how fast the decoded point moves per unit of map distance,
  :func:`engine.reduce.metrics.gradient_map`) over its median over the data: where the inverse map folds or tears,
  two taps a few pixels apart decode to very different points, and neither is more than a guess between the two sides.

Levels are ordered: ``LEVELS[0]`` is the most trustworthy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["DISTANCE_LEVELS", "ERROR_LEVELS", "FOLD_LEVELS", "LEVELS", "Verdict", "typical_relative_error", "verdict"]

#: The verdicts, most trustworthy first.
LEVELS = ("among the data", "near the data", "extrapolating", "far outside")
#: Upper bounds of distance / typical spacing for the first three levels.
DISTANCE_LEVELS = (2.0, 5.0, 20.0)
#: Upper bounds of error / the map's median held-out error for the first three levels.
ERROR_LEVELS = (2.0, 5.0, 20.0)
#: Upper bounds of the fold (gradient / the map's median gradient) for the first two levels.
FOLD_LEVELS = (3.0, 10.0)
#: Above this error / activation variance, the decode is "far outside" whatever else.
GUESS_ERROR = 1.0

_MEANINGS = {
    "among the data": "the decode is as reliable as the map is on real samples",
    "near the data": "close to real samples: the decode is interpolated and usually plausible",
    "extrapolating": "beyond the data: the inverse map invents here, read the decode with care",
    "far outside": "far from anything the map learned: the decode is not evidence of what the model does",
}


@dataclass(frozen=True)
class Verdict:
    """The verdict of one decode.

    Attributes
    ----------
    level : int
        Index into :data:`LEVELS` (0 most trustworthy).
    words : str
        ``LEVELS[level]``.
    meaning : str
        What the level means for the decode, in one sentence.
    reasons : tuple of str
        The measures that set the level, with their values and scales (e.g. ``"7.7 x the typical spacing"``).
    """

    level: int
    words: str
    meaning: str
    reasons: tuple[str, ...]


def _level(value: float, bounds) -> int:
    return next((i for i, bound in enumerate(bounds) if value <= bound), len(bounds))


def typical_relative_error(trust_model) -> float:
    """The median held-out round-trip error of a fitted :class:`~engine.reduce.trust.TrustModel`'s inverse map,
    relative to the activations' variance (NaN when the map reported none)."""
    errors, variance = getattr(trust_model, "errors_", None), getattr(trust_model, "variance_", float("nan"))
    if errors is None or len(errors) == 0 or not variance or not math.isfinite(variance):
        return float("nan")
    return float(np.median(errors)) / variance


def verdict(record: dict, typical_error: float = float("nan")) -> Verdict:
    """The verdict of one decode from its trust measures.

    Parameters
    ----------
    record : dict
        ``Trust.record(i)``: ``relative_distance``, ``outside_hull``, ``outside_support``, ``relative_error``, and
        ``fold`` (:meth:`engine.explore.inspection.Inspection.fold`); each optional: a missing or NaN measure does
        not count.
    typical_error : float
        The map's median held-out relative error (:func:`typical_relative_error`); NaN to leave that measure out.

    Returns
    -------
    Verdict

    Examples
    --------
    >>> verdict({"relative_distance": 0.8, "relative_error": 0.05}, typical_error=0.04).words
    'among the data'
    >>> v = verdict({"relative_distance": 7.7, "relative_error": 1.19, "outside_hull": False}, typical_error=0.1)
    >>> v.words, v.reasons[0]
    ('far outside', "estimated error 1.19 x the activations' variance (above 1: no better than a guess)")
    """
    level, reasons = 0, []  # reasons: (level, text), the worst kept first

    def worse(lvl, text):
        nonlocal level
        reasons.append((lvl, text))
        level = max(level, lvl)

    distance = record.get("relative_distance")
    if distance is not None and math.isfinite(distance):
        worse(_level(distance, DISTANCE_LEVELS), f"{distance:.3g} x the typical spacing of samples")
    outside = [name for key, name in (("outside_hull", "convex hull"), ("outside_support", "density support"))
               if record.get(key)]
    if outside:
        worse(2, "outside the data's " + " and ".join(outside))
    error = record.get("relative_error")
    if error is not None and math.isfinite(error):
        if error > GUESS_ERROR:
            worse(3, f"estimated error {error:.3g} x the activations' variance (above 1: no better than a guess)")
        elif typical_error and math.isfinite(typical_error) and typical_error > 0:
            ratio = error / typical_error
            worse(_level(ratio, ERROR_LEVELS), f"estimated error {ratio:.3g} x the map's error on real samples")
    fold = record.get("fold")
    if fold is not None and math.isfinite(fold) and fold > FOLD_LEVELS[0]:
        worse(_level(fold, FOLD_LEVELS), f"the map folds here: the decode moves {fold:.3g} x faster than on the map's "
                                         "median")
    reasons.sort(key=lambda r: -r[0])
    words = LEVELS[level]
    return Verdict(level, words, _MEANINGS[words], tuple(text for _, text in reasons))
