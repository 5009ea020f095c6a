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
*the map, on held-out data:*
Cons_d                        >= 90%         >= 70%              < 70%               --
class stability               >= 90%         >= 70%              < 70%               --
error / activation variance   <= 1           <= 1                > 1                 --
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

The last three rows are the map's own quality, measured once for the whole map on its held-out samples by the
quality report (:class:`~engine.reduce.quality.QualityReport`, ``quality=`` below): they say what *among the data*
can promise, so a map that fails them cannot give it, wherever the point lies.

* *Cons_d*: the share of held-out samples whose decoded point keeps the class the model (or the probe) gives the
  sample itself. Below 90%, one real sample in ten or more changes class when it is mapped and decoded: a decode
  among the data is plausible, not what the model does there (the inverses the README compares reach 90-92% on the
  MNIST bottleneck with UMAP or t-SNE, 46-50% with PCA's 2 axes). Below 70%, about one in three or more: not even
  "usually plausible", the meaning of *near the data*.
* *class stability*: the share of held-out samples whose class survives every one of the report's project-decode
  round trips, with the same bounds as Cons_d (a map that drifts samples to another class when they go round).
* *error / activation variance*: the map's mean squared round-trip error on held-out samples over the activations'
  variance; above 1 the map decodes real samples no closer than the mean activation would be.
* ACC_M (the decoded point gets the sample's true label) is quoted but sets no level: it counts the model's own
  mistakes too, so a perfect map of a model right 80% of the time has an ACC_M near 80%.

When the report is given and sets no cap, the meaning of *among the data* quotes these measures. A measure the
report does not have (no classes to keep without class scores, labels or a probe; no round trips) says nothing,
and without a report (``quality=None``) the verdict is the point's alone; :data:`PENDING` says the report is still
being computed, and the verdict says so where the report could still lower it.

Levels are ordered: ``LEVELS[0]`` is the most trustworthy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["DISTANCE_LEVELS", "ERROR_LEVELS", "FOLD_LEVELS", "KEPT_LEVELS", "LEVELS", "NOT_MEASURED", "PENDING",
           "Verdict", "typical_relative_error", "verdict"]

#: The verdicts, most trustworthy first.
LEVELS = ("among the data", "near the data", "extrapolating", "far outside")
#: Upper bounds of distance / typical spacing for the first three levels.
DISTANCE_LEVELS = (2.0, 5.0, 20.0)
#: Upper bounds of error / the map's median held-out error for the first three levels.
ERROR_LEVELS = (2.0, 5.0, 20.0)
#: Upper bounds of the fold (gradient / the map's median gradient) for the first two levels.
FOLD_LEVELS = (3.0, 10.0)
#: Above this error / activation variance, the decode is "far outside" whatever else; above it on the map's
#: held-out samples, no decode of the map is better than "extrapolating".
GUESS_ERROR = 1.0
#: Lower bounds of the map's Cons_d and class stability (shares of held-out samples) for the first two levels.
KEPT_LEVELS = (0.9, 0.7)
#: ``quality=PENDING``: the map's quality report is being computed; the verdict's note says :data:`NOT_MEASURED`.
PENDING = "pending"
#: The verdict's note while the map's quality report is not there yet.
NOT_MEASURED = "map quality not measured yet"

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
        The measures that set the level, with their values and scales (e.g. ``"7.7 x the typical spacing"``), the
        worst first.
    note : str
        What the verdict could not weigh yet: :data:`NOT_MEASURED` while the map's quality report is being computed
        and could still lower the level; ``""`` otherwise.
    """

    level: int
    words: str
    meaning: str
    reasons: tuple[str, ...]
    note: str = ""


def _level(value: float, bounds) -> int:
    return next((i for i, bound in enumerate(bounds) if value <= bound), len(bounds))


def typical_relative_error(trust_model) -> float:
    """The median held-out round-trip error of a fitted :class:`~engine.reduce.trust.TrustModel`'s inverse map,
    relative to the activations' variance (NaN when the map reported none)."""
    errors, variance = getattr(trust_model, "errors_", None), getattr(trust_model, "variance_", float("nan"))
    if errors is None or len(errors) == 0 or not variance or not math.isfinite(variance):
        return float("nan")
    return float(np.median(errors)) / variance


def _number(quality, name):
    """``quality``'s measure ``name`` (a report's attribute or a dict's key) as a finite float, else None."""
    value = quality.get(name) if isinstance(quality, Mapping) else getattr(quality, name, None)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _map_levels(quality):
    """The map-wide measures of a quality report: ``(caps, quote)``, where caps are ``(level, reason, why)`` for each
    measure that forbids a better level (``why`` completes "but this map ..."), and quote their values in words."""
    consistency, accuracy = _number(quality, "consistency"), _number(quality, "decoded_accuracy")
    stability, error = _number(quality, "class_stability"), _number(quality, "inverse_error")
    rounds, held = int(_number(quality, "stability_rounds") or 0), int(_number(quality, "inverse_holdout") or 0)
    caps, quote = [], []

    def bound(lvl):
        return f"below {KEPT_LEVELS[lvl - 1]:.0%}: at best {LEVELS[lvl]}"

    if consistency is not None:
        quote.append(f"{100 * consistency:.3g}% keep their class when decoded (Cons_d)")
        lvl = _level(-consistency, [-b for b in KEPT_LEVELS])  # the best level a share of kept classes allows
        if lvl:
            caps.append((lvl, f"the map's decodes of held-out samples keep their class for {100 * consistency:.3g}% "
                              f"(Cons_d; {bound(lvl)})",
                         f"keeps the class of only {100 * consistency:.3g}% of the real samples it decodes"))
    if accuracy is not None:
        quote.append(f"{100 * accuracy:.3g}% get their true label (ACC_M)")
    if stability is not None and rounds > 0:
        trips = f"{rounds} round trip" + ("s" if rounds > 1 else "")
        quote.append(f"{100 * stability:.3g}% keep it over {trips}")
        lvl = _level(-stability, [-b for b in KEPT_LEVELS])
        if lvl:
            caps.append((lvl, f"{100 * stability:.3g}% of held-out samples keep their class over {trips} through "
                              f"the map (class stability; {bound(lvl)})",
                         f"keeps the class of only {100 * stability:.3g}% of real samples over {trips}"))
    if error is not None:
        quote.append(f"round-trip error {error:.2g} x the activations' variance")
        if error > GUESS_ERROR:
            caps.append((2, f"the map's error on held-out samples is {error:.3g} x the activations' variance "
                            f"(above 1: no better than the mean activation; at best {LEVELS[2]})",
                         "decodes real samples no closer than the mean activation"))
    if quote:
        quote[0] = (f"on {held:,} held-out samples, " if held else "on held-out samples, ") + quote[0]
    caps.sort(key=lambda c: -c[0])
    return caps, "; ".join(quote)


def verdict(record: dict, typical_error: float = float("nan"), quality=None) -> Verdict:
    """The verdict of one decode from its trust measures and, when given, the map's quality on held-out samples.

    Parameters
    ----------
    record : dict
        ``Trust.record(i)``: ``relative_distance``, ``outside_hull``, ``outside_support``, ``relative_error``, and
        ``fold`` (:meth:`engine.explore.inspection.Inspection.fold`); each optional: a missing or NaN measure does
        not count.
    typical_error : float
        The map's median held-out relative error (:func:`typical_relative_error`); NaN to leave that measure out.
    quality : QualityReport, dict, PENDING or None
        The map's quality report (:meth:`engine.explore.inspection.Inspection.quality`, or its ``to_dict()``):
        its ``consistency`` (Cons_d), ``class_stability`` and ``inverse_error`` cap the level (see the module's
        table), and with ``decoded_accuracy`` they are quoted in the meaning of *among the data*; a missing measure
        says nothing. :data:`PENDING` while the report is being computed (the verdict's ``note`` is then
        :data:`NOT_MEASURED`); None (the default) leaves the map's quality out.

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
    >>> v = verdict({"relative_distance": 0.8}, quality={"consistency": 0.8, "inverse_holdout": 300})
    >>> v.words
    'near the data'
    >>> v.reasons[0]
    "the map's decodes of held-out samples keep their class for 80% (Cons_d; below 90%: at best near the data)"
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
    point = level  # the level the point's own measures give
    pending = isinstance(quality, str) and quality == PENDING
    caps, quote = _map_levels(quality) if quality is not None and not pending else ([], "")
    for lvl, text, _ in caps:
        worse(lvl, text)
    reasons.sort(key=lambda r: -r[0])
    # the report caps at "extrapolating": it could not make a worse verdict better
    note = NOT_MEASURED if pending and level < 2 else ""
    words = LEVELS[level]
    meaning = _MEANINGS[words]
    if level > point:  # the map, not the point, sets the level: say so, or the words would misplace the point
        why = next(why for lvl, _, why in caps if lvl == level)
        meaning = (f"the point lies {LEVELS[point]}, but this map {why}: "
                   + ("the decode is plausible, not exact" if level == 1 else "read the decode with care"))
    elif level == 0 and quote:
        meaning += f": {quote}"
    return Verdict(level, words, meaning, tuple(text for _, text in reasons), note)
