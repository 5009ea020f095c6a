"""How good is a projection and its inverse map: one report for the CLI (text) and the dashboard (dict/JSON).

* PCA: explained variance ratio of each component.
* Every method: trustworthiness (are 2-D neighbours true neighbours?) and continuity (are true neighbours still
  2-D neighbours?) with k=10 on a seeded subsample. Continuity is trustworthiness with the two spaces swapped
  (Venna & Kaski, 2001).
* The inverse map: round-trip error ``x -> embedding -> inverse -> x'`` on held-out samples, as mean squared error
  per feature and relative to the activations' variance (0 is perfect, 1 is no better than the mean activation);
  and, given ``decode`` (activations -> model outputs), the same in output space against the true outputs or
  against the decodes of the true activations.
* Given ``classify`` (activations -> classes: the model's class scores or a probe), the inverse-projection
  literature's measures (:mod:`engine.reduce.metrics`) on the same held-out rows: Cons_d (the decoded point keeps
  the sample's class), ACC_M (the decoded point gets the sample's true label), the class stability over repeated
  project-decode round trips; and for every inverse the gradient map's statistics over the data's box and the time
  per decoded point.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.manifold import trustworthiness
from sklearn.utils import check_random_state

from engine import backends
from engine.errors import ReducerValueError
from engine.reduce.validation import check_fitted

__all__ = ["QualityReport", "continuity", "quality_report"]


def continuity(X, X_embedded, n_neighbors: int = 10) -> float:
    """Continuity of an embedding: trustworthiness with the roles of the two spaces swapped.

    Parameters
    ----------
    X : array of shape (n, d)
    X_embedded : array of shape (n, 2)
    n_neighbors : int

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(100, 3))
    >>> round(continuity(X, X[:, :2]), 2) > 0.5
    True
    """
    return float(trustworthiness(X_embedded, X, n_neighbors=n_neighbors))


@dataclass
class QualityReport:
    """Quality of a fitted reducer and its inverse map.

    Attributes
    ----------
    method, backend, inverse : str
    n_samples, n_features : int
    explained_variance_ratio : list of float or None
        PCA only.
    trustworthiness, continuity : float
        At k = ``n_neighbors`` on ``metric_sample`` rows.
    inverse_error : float or None
        Held-out round-trip MSE in layer space relative to the activations' variance.
    inverse_mse : float or None
        The same, absolute (mean squared error per feature).
    inverse_holdout : int
        Held-out samples it was measured on.
    output_error, output_mse : float or None
        The same in the model's output space (only when a ``decode`` was given).
    output_reference : str or None
        ``"outputs"`` (true outputs given) or ``"decoded activations"``.
    consistency : float or None
        Cons_d: share of held-out samples whose decoded point gets the class of the sample itself.
    decoded_accuracy : float or None
        ACC_M: share of held-out samples whose decoded point gets the sample's true label.
    class_stability : float or None
        Share of held-out samples whose class survives ``stability_rounds`` project-decode round trips.
    classes_from : str or None
        Where the classes of those three come from (the model's output, or a probe).
    gradient : dict or None
        Gradient map of the inverse over the data's box (:func:`engine.reduce.metrics.gradient_stats`).
    seconds_per_point : float or None
        The inverse's time per point, decoding the held-out points in one batch.
    tuning : dict or None
        The self-tuning report (see :class:`~engine.reduce.tuning.Tuning`).
    fit_seconds : float or None
    cache_hit : bool
    """

    method: str
    backend: str
    inverse: str
    n_samples: int
    n_features: int
    trustworthiness: float
    continuity: float
    n_neighbors: int = 10
    metric_sample: int = 0
    explained_variance_ratio: list | None = None
    inverse_error: float | None = None
    inverse_mse: float | None = None
    inverse_holdout: int = 0
    output_error: float | None = None
    output_mse: float | None = None
    output_reference: str | None = None
    consistency: float | None = None
    decoded_accuracy: float | None = None
    class_stability: float | None = None
    stability_rounds: int = 0
    classes_from: str | None = None
    gradient: dict | None = None
    seconds_per_point: float | None = None
    tuning: dict | None = None
    fit_seconds: float | None = None
    cache_hit: bool = False
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain Python values, JSON-ready."""
        return json.loads(json.dumps(asdict(self), default=float))

    def to_text(self) -> str:
        """A few aligned lines for the CLI."""
        rows = [("projection", f"{self.method} ({self.backend}), {self.n_samples} x {self.n_features} activations")]
        if self.explained_variance_ratio is not None:
            ratios = ", ".join(f"{r:.1%}" for r in self.explained_variance_ratio)
            rows.append(("explained variance", f"{ratios} (total {sum(self.explained_variance_ratio):.1%})"))
        rows.append(
            (
                f"trustworthiness@{self.n_neighbors}",
                f"{self.trustworthiness:.3f}   continuity@{self.n_neighbors} {self.continuity:.3f}"
                f"   ({self.metric_sample} rows)",
            )
        )
        if self.inverse_error is not None:
            rows.append(
                (
                    f"inverse ({self.inverse})",
                    f"round-trip error {self.inverse_error:.1%} of activation variance "
                    f"(MSE {self.inverse_mse:.4g}, {self.inverse_holdout} held-out rows)",
                )
            )
        else:
            rows.append(("inverse", "none"))
        if self.output_error is not None:
            rows.append(
                (
                    "in output space",
                    f"{self.output_error:.1%} of output variance "
                    f"(MSE {self.output_mse:.4g}, vs {self.output_reference})",
                )
            )
        if self.consistency is not None:
            acc = "" if self.decoded_accuracy is None else f"   ACC_M {self.decoded_accuracy:.1%}"
            stable = "" if self.class_stability is None else (
                f"   stable over {self.stability_rounds} round trips {self.class_stability:.1%}")
            rows.append(("classes kept", f"Cons_d {self.consistency:.1%}{acc}{stable} (classes from "
                                         f"{self.classes_from})"))
        if self.gradient:
            g = self.gradient
            rows.append(("gradient map", f"median {g['median']:.3g}, max {g['max']:.3g} data spreads per box width; "
                                         f"{g['steep_share']:.1%} of the box steeper than {g['steep_factor']:g}x the "
                                         "median"))
        if self.seconds_per_point is not None:
            rows.append(("inverse speed", f"{self.seconds_per_point * 1e6:.3g} µs per point (batch of "
                                          f"{self.inverse_holdout})"))
        if self.tuning:
            t = self.tuning
            scores = ", ".join(f"{k}: {v:.3f}" for k, v in t["scores"].items())
            rows.append(("tuned", f"{t['param']} = {t['chosen']} ({scores})"))
        if self.fit_seconds is not None:
            rows.append(("fit time", f"{self.fit_seconds:.1f} s" + (" (read from cache)" if self.cache_hit else "")))
        rows += [("note", note) for note in self.notes]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)

    __str__ = to_text


def _relative_mse(pred, truth) -> tuple[float, float]:
    pred = np.asarray(pred, np.float64).reshape(len(pred), -1)
    truth = np.asarray(truth, np.float64).reshape(len(truth), -1)
    mse = float(np.mean((pred - truth) ** 2))
    var = float(np.mean((truth - truth.mean(axis=0)) ** 2))
    return mse / var if var > 0 else float("nan"), mse


def quality_report(
    reducer,
    X,
    *,
    decode: Callable[[np.ndarray], np.ndarray] | None = None,
    outputs=None,
    n_neighbors: int = 10,
    sample: int = 2_000,
    random_state=0,
    classify: Callable[[np.ndarray], np.ndarray] | None = None,
    classes_from: str | None = None,
    labels=None,
    stability_rounds: int = 2,
    stability_rows: int = 100,
    gradient_grid: int = 100,
) -> QualityReport:
    """Measure a fitted reducer (and its inverse map) on the activations it was fitted on.

    Parameters
    ----------
    reducer : fitted PCAReducer, UMAPReducer or TSNEReducer
    X : array of shape (n, d)
        The activations passed to ``fit``.
    decode : callable, optional
        ``decode(activations (k, d)) -> outputs (k, ...)``: the rest of the model. Enables the output-space
        error.
    outputs : array of shape (n, ...), optional
        The true outputs of each row. Without it, the decodes of the true activations are the reference.
    n_neighbors : int, default=10
        k of trustworthiness and continuity.
    sample : int, default=2_000
        Rows used for trustworthiness/continuity, and held-out rows used at most for the errors.
    random_state : int, default=0
    classify : callable, optional
        ``classify(activations (k, d)) -> classes (k,)``: enables Cons_d, ACC_M (with ``labels``) and the class
        stability (``stability_rounds`` round trips of ``stability_rows`` held-out rows through ``reducer.transform``;
        0 rounds skips it).
    classes_from : str, optional
        Where ``classify``'s classes come from, in words, for the report.
    labels : array of shape (n,), optional
        Every row's true label, in ``classify``'s classes.
    gradient_grid : int, default=100
        Cells per side of the gradient map (fewer for the native inverse, which decodes slowly).

    Returns
    -------
    QualityReport

    Raises
    ------
    ReducerValueError
        If ``X`` or ``outputs`` does not match the fitted data.
    """
    check_fitted(reducer, "embedding_")
    if not backends.is_chunked(X):
        X = np.asanyarray(X)
        X = X.reshape(len(X), -1)
    E = reducer.embedding_
    if len(X) != len(E) or X.shape[1] != reducer.n_features_in_:
        raise ReducerValueError(
            f"quality_report needs the activations the reducer was fitted on, shape ({len(E)}, "
            f"{reducer.n_features_in_}); got {X.shape}."
        )
    rng = check_random_state(random_state)
    rows = np.sort(rng.choice(len(X), size=min(sample, len(X)), replace=False))
    k = min(n_neighbors, max(1, len(rows) // 2 - 1))
    Xs = backends.take_rows(X, rows).astype(np.float32)
    report = QualityReport(
        method=reducer.method,
        backend=reducer.backend_,
        inverse="none" if reducer.inverse_ is None else reducer.inverse_.kind,
        n_samples=len(X),
        n_features=X.shape[1],
        trustworthiness=round(float(trustworthiness(Xs, E[rows], n_neighbors=k)), 5),
        continuity=round(continuity(Xs, E[rows], n_neighbors=k), 5),
        n_neighbors=k,
        metric_sample=len(rows),
        explained_variance_ratio=(
            [float(r) for r in reducer.explained_variance_ratio_]
            if hasattr(reducer, "explained_variance_ratio_")
            else None
        ),
        tuning=reducer.tuning_.to_dict() if reducer.tuning_ is not None else None,
        fit_seconds=getattr(reducer, "fit_seconds_", None),
        cache_hit=bool(getattr(reducer, "cache_hit_", False)),
    )
    inverse = reducer.inverse_
    if inverse is None:
        return report
    which = np.arange(len(inverse.holdout_index_))
    if len(which) > sample:
        which = np.sort(rng.choice(which, size=sample, replace=False))
    held = getattr(reducer, "inverse_index_", reducer.fit_index_)[inverse.holdout_index_[which]]
    truth = backends.take_rows(X, held).astype(np.float32)
    recon = inverse.holdout_predict(which)
    from engine.reduce.metrics import inverse_metrics

    rows_labels = None
    if classify is not None and labels is not None:
        rows_labels = np.asarray(labels)[held]
    measured = inverse_metrics(
        reducer.inverse_transform, E[held], truth, embedding=E, variance=reducer.activation_variance_,
        classify=classify, labels=rows_labels,
        project=reducer.transform if stability_rounds > 0 else None, stability_rounds=stability_rounds,
        stability_rows=stability_rows, grid=gradient_grid if inverse.kind != "native" else min(gradient_grid, 20),
        decoded=recon,
    )
    mse = measured.mse
    report.inverse_mse = mse
    report.inverse_error = mse / reducer.activation_variance_ if reducer.activation_variance_ > 0 else float("nan")
    report.inverse_holdout = len(held)
    report.gradient = measured.gradient
    report.seconds_per_point = measured.seconds_per_point
    if classify is not None:
        report.consistency, report.decoded_accuracy = measured.consistency, measured.decoded_accuracy
        report.class_stability = measured.class_stability
        report.stability_rounds = stability_rounds if measured.class_stability is not None else 0
        report.classes_from = classes_from or "the given classifier"
    if inverse.kind in ("exact", "native"):
        report.notes.append(f"the {inverse.kind} inverse learns nothing from the pairs: every row counts as held out")
    if decode is not None:
        if outputs is not None:
            outputs = np.asanyarray(outputs)
            if len(outputs) != len(X):
                raise ReducerValueError(
                    f"quality_report: outputs has {len(outputs)} rows but the activations have {len(X)}."
                )
            reference, report.output_reference = np.asarray(outputs[held]), "outputs"
        else:
            reference, report.output_reference = np.asarray(decode(truth)), "decoded activations"
        report.output_error, report.output_mse = _relative_mse(np.asarray(decode(np.asarray(recon))), reference)
    return report
