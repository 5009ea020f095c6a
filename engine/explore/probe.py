"""Probe classifier: what a linear read-out of the inspected layer says an activation is.

A :class:`Probe` is a logistic regression on standardized activations, trained with the project's labels. Its
validation accuracy says how linearly the layer separates the classes; its predictions label every decode, color
the latent space and flag the samples it gets wrong.

``fit`` makes a stratified train/validation split and trains on the training part only, so the reported
``validation_accuracy_`` and ``confusion_matrix_`` describe exactly the classifier that predicts afterwards. A class
with a single sample (a new label saved once) cannot be split: its sample is trained on and not held out, and
``unvalidated_classes_`` names it; when too few samples are left to hold out one of every class, the held-out part is
drawn without stratification (``stratified_`` is False), each class keeping a sample in training. Two classes give a
binary logistic regression, more a multinomial one: scikit-learn chooses from the labels, and ``binary_`` records
which.

Example
-------
>>> probe = train_probe(inspection)                                  # doctest: +SKIP
>>> probe.validation_accuracy_, probe.class_names_[:3]               # doctest: +SKIP
(0.87, ('0', '1', '2'))
>>> probe.predict_one(inspection.decode(1.0, 2.0).activation).name   # doctest: +SKIP
'7'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from engine.data.generated import GeneratedDataset
from engine.errors import DataError, ProbeUnavailable

__all__ = ["Prediction", "Probe", "finetune_probe", "probe_status", "train_probe"]


@dataclass(frozen=True)
class Prediction:
    """The probe's answer for one activation.

    Attributes
    ----------
    label : int or str
        The predicted class, as it appears in ``Probe.classes_`` (a class code or a text label).
    name : str
        Its display name.
    probabilities : dict of str to float
        Probability of every class, by display name, in the order of ``Probe.classes_``.
    """

    label: int | str
    name: str
    probabilities: dict[str, float]


def _flat(X, what: str = "activations") -> np.ndarray:
    X = np.asarray(X)
    if X.ndim < 1 or len(X) == 0:
        raise DataError(f"{what} have shape {X.shape}; expected (samples, features...) with at least one sample")
    if X.dtype.kind not in "biuf":
        raise DataError(f"{what} hold {X.dtype} values; expected numbers")
    X = X.reshape(len(X), -1)
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        row = int(np.argwhere(~np.isfinite(X))[0, 0])
        raise DataError(f"{what} contain NaN or inf (first at sample {row}); expected finite numbers")
    return X


def _labels(y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    y = y.reshape(len(y)) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1:
        raise DataError(f"labels have shape {y.shape}; expected one label per sample, shape ({n},)")
    if len(y) != n:
        raise DataError(f"{len(y)} labels for {n} activation rows; expected one label per sample")
    if y.dtype.kind == "O":
        y = y.astype(str)
    return y


def _check_fraction(value) -> float:
    if isinstance(value, bool) or not isinstance(value, float | int) or not 0 < value < 1:
        raise ValueError(f"Probe: validation_fraction must be a number in (0, 1), got {value!r}")
    return float(value)


def _why_unavailable(y, where: str) -> str | None:
    """Why no probe can be trained and validated on labels ``y`` (None when one can)."""
    classes, counts = np.unique(y, return_counts=True)
    classes = classes.tolist()  # plain Python values, so messages read 'x', not np.str_('x')
    n, k = len(y), len(classes)
    if k < 2:
        only = f" ({classes[0]!r})" if k else ""
        return (
            f"{where}: all {n} labels are one class{only}; a probe needs at least two classes "
            "(label samples of another class)"
        )
    if counts.max() < 2:
        return (
            f"{where}: each of the {k} classes has a single sample; holding one out to validate the probe would "
            "leave its class out of training (label a second sample of any class)"
        )
    return None


def _split(y: np.ndarray, fraction: float, random_state) -> tuple[np.ndarray, np.ndarray, bool]:
    """Rows to train on and rows to validate on (sorted), and whether the split is stratified.

    Only classes with at least 2 samples are split: ``ceil(fraction * their samples)`` rows of them are held out,
    stratified by class when that leaves at least one sample of each in both parts. Otherwise the held-out rows are
    drawn at random, at most all but one sample of each class. A class with a single sample is trained on.
    """
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    rows = np.flatnonzero(counts[inverse] >= 2)
    k = int(np.count_nonzero(counts >= 2))
    n_val = math.ceil(fraction * len(rows))
    if k <= n_val <= len(rows) - k:
        _, val = train_test_split(rows, test_size=n_val, stratify=y[rows], random_state=random_state)
        stratified = True
    else:  # too few to hold out one sample of every class: each class keeps one in training
        room, picked = counts - 1, []
        for row in check_random_state(random_state).permutation(rows):
            if len(picked) == min(n_val, len(rows) - k):
                break
            if room[inverse[row]] > 0:
                room[inverse[row]] -= 1
                picked.append(row)
        val, stratified = np.asarray(picked, dtype=rows.dtype), False
    val = np.sort(val)
    return np.setdiff1d(np.arange(len(y)), val), val, stratified


def _no_labels_message(project) -> str:
    return (
        f"project {project.name!r} has no labels: add a y*.npy or labels* file to {project.path}, or "
        '`labels = "..."` in its project.toml'
    )


def probe_status(project, validation_fraction: float = 0.2) -> str | None:
    """Why a probe cannot be trained on ``project``, or None when it can.

    What the dashboard shows in place of the "Train probe" button.

    Parameters
    ----------
    project : Project
    validation_fraction : float

    Returns
    -------
    str or None

    Raises
    ------
    DataError
        The project's labels file is unreadable or malformed.

    Example
    -------
    >>> probe_status(load_project("basicmotions"))  # doctest: +SKIP
    "project 'basicmotions' has no labels: add a y*.npy or labels* file to ..., or `labels = \\"...\\"` ..."
    """
    _check_fraction(validation_fraction)
    y = project.labels()
    if y is None:
        return _no_labels_message(project)
    return _why_unavailable(y, f"project {project.name!r}")


class Probe(ClassifierMixin, BaseEstimator):
    """Logistic regression on a layer's standardized activations, validated on a held-out part stratified by class.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularization strength of the logistic regression.
    validation_fraction : float, default=0.2
        Share of the samples held out (stratified by class) to measure the accuracy; the classifier is trained on
        the rest. Classes with a single sample are not split: they are trained on.
    max_iter : int, default=1000
        Iterations of the solver (lbfgs).
    random_state : int or None, default=0
        Seed of the train/validation split.
    class_names : sequence or mapping, optional
        Display names: ``class_names[code]`` for integer class codes (``Project.label_names()``), or a mapping
        from label to name. Text labels are their own names.

    Attributes
    ----------
    classes_ : ndarray
        The classes, sorted (class codes or text labels).
    class_names_ : tuple of str
        Display name of each class, in the order of ``classes_``.
    binary_ : bool
        Two classes (binary logistic regression) rather than more (multinomial).
    pipeline_ : sklearn.pipeline.Pipeline
        ``StandardScaler`` then ``LogisticRegression``.
    validation_accuracy_ : float
        Accuracy on the validation part.
    confusion_matrix_ : ndarray of shape (n_classes, n_classes), int
        Validation confusion matrix: row = true class, column = predicted class, in the order of ``classes_``.
    chance_ : float
        Accuracy of always answering the most frequent class, on the validation part (the baseline).
    train_index_, validation_index_ : ndarray of int
        Which rows of ``X`` trained and validated the probe.
    stratified_ : bool
        Whether the held-out part was stratified by class (False when too few samples were left to hold out one of
        every class: it was then drawn at random, each class keeping a sample in training).
    unvalidated_classes_ : tuple
        The classes (values of ``classes_``) with no held-out sample: trained on, never validated (a class with a
        single sample, such as a new label saved once).
    n_features_in_ : int
        Activation values per sample (the layer's shape, flattened).
    converged_ : bool
        Whether the solver converged within ``max_iter``.

    Raises
    ------
    ProbeUnavailable
        From ``fit``: no labels, a single class, or no class with two samples (nothing to hold out).
    DataError
        From ``fit``: activations with NaN/inf, or a number of labels different from the number of rows.

    Example
    -------
    >>> probe = Probe(random_state=0).fit(activations, labels)       # doctest: +SKIP
    >>> probe.validation_accuracy_, probe.confusion_matrix_.shape    # doctest: +SKIP
    (0.81, (10, 10))
    """

    def __init__(self, C=1.0, validation_fraction=0.2, max_iter=1000, random_state=0, class_names=None):
        self.C = C
        self.validation_fraction = validation_fraction
        self.max_iter = max_iter
        self.random_state = random_state
        self.class_names = class_names

    def fit(self, X, y, sample_weight=None):
        """Train on a part of ``(X, y)`` and measure the accuracy on the rest, held out stratified by class (a class
        with a single sample is only trained on; see ``unvalidated_classes_`` and ``stratified_``).

        Parameters
        ----------
        X : array-like of shape (n, ...)
            Activations in any layer shape; flattened to (n, features).
        y : array-like of shape (n,)
            Class codes or text labels (one-hot rows are taken as their argmax).
        sample_weight : array-like of shape (n,), optional
            Weight of each sample in training (the validation accuracy is unweighted).

        Returns
        -------
        self
        """
        _check_fraction(self.validation_fraction)
        if y is None:
            raise ProbeUnavailable("no labels were given: a probe is trained on activations with their class labels")
        X = _flat(X)
        y = _labels(y, len(X))
        reason = _why_unavailable(y, "the labels")
        if reason is not None:
            raise ProbeUnavailable(reason)
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
            if len(w) != len(X):
                raise DataError(f"{len(w)} sample weights for {len(X)} activation rows; expected one per sample")

        train, val, stratified = _split(y, self.validation_fraction, self.random_state)
        pipeline = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)
        )
        fit_params = {} if w is None else {"logisticregression__sample_weight": w[train]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline.fit(X[train], y[train], **fit_params)

        self.pipeline_ = pipeline
        self.classes_ = pipeline.classes_
        self.binary_ = len(self.classes_) == 2
        self.class_names_ = tuple(self._name(c) for c in self.classes_)
        self.n_features_in_ = X.shape[1]
        self.train_index_, self.validation_index_, self.stratified_ = train, val, stratified
        self.unvalidated_classes_ = tuple(c.item() if isinstance(c, np.generic) else c
                                          for c in np.setdiff1d(self.classes_, y[val]))
        predicted = pipeline.predict(X[val])
        self.validation_accuracy_ = float(np.mean(predicted == y[val]))
        self.confusion_matrix_ = confusion_matrix(y[val], predicted, labels=self.classes_)
        self.chance_ = float(np.unique(y[val], return_counts=True)[1].max() / len(val))
        self.converged_ = bool(np.all(pipeline[-1].n_iter_ < self.max_iter))
        return self

    def _name(self, label) -> str:
        names = self.class_names
        if names is None:
            return str(label)
        if isinstance(names, Mapping):
            return str(names.get(label, label))
        if isinstance(label, int | np.integer) and 0 <= int(label) < len(names):
            return str(names[int(label)])
        return str(label)

    def _check(self, X) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        X = _flat(X)
        if X.shape[1] != self.n_features_in_:
            raise DataError(
                f"the probe was trained on {self.n_features_in_} activation values per sample, got {X.shape[1]} "
                f"(shape {X.shape}); probe the layer it was trained on"
            )
        return X

    def predict(self, X) -> np.ndarray:
        """Predicted class of each activation (values of ``classes_``)."""
        X = self._check(X)
        return self.pipeline_.predict(X)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in the order of ``classes_``."""
        X = self._check(X)
        return self.pipeline_.predict_proba(X)

    def predict_names(self, X) -> np.ndarray:
        """Display name of the predicted class of each activation (array of str)."""
        codes = np.searchsorted(self.classes_, self.predict(X))
        return np.asarray(self.class_names_, dtype=str)[codes]

    def predict_one(self, activation) -> Prediction:
        """The prediction for one activation in the layer's shape (no batch axis), e.g. ``Decode.activation``.

        Example
        -------
        >>> p = probe.predict_one(decode.activation); p.name, p.probabilities[p.name]  # doctest: +SKIP
        ('7', 0.93)
        """
        a = np.asarray(activation).reshape(1, -1)
        proba = self.predict_proba(a)[0]
        best = int(np.argmax(proba))
        label = self.classes_[best]
        label = label.item() if isinstance(label, np.generic) else label
        return Prediction(label, self.class_names_[best], dict(zip(self.class_names_, map(float, proba))))

    def misclassified(self, X, y) -> np.ndarray:
        """Boolean mask of the samples whose predicted class differs from their label ``y``."""
        X = self._check(X)
        return self.pipeline_.predict(X) != _labels(y, len(X))

    def summary(self) -> str:
        """One line: validation accuracy, how many samples and classes, and chance."""
        check_is_fitted(self, "pipeline_")
        kind = "binary" if self.binary_ else f"{len(self.classes_)} classes"
        split = "" if self.stratified_ else ", not stratified: too few samples to hold out one of every class"
        return (
            f"validation accuracy {self.validation_accuracy_:.3f} on {len(self.validation_index_):,} held-out "
            f"samples{split} ({kind}; chance {self.chance_:.3f}; trained on {len(self.train_index_):,})"
            + (f"; {self.unvalidated_note()}" if self.unvalidated_classes_ else "")
        )

    def unvalidated_note(self) -> str:
        """The classes trained on but never validated, in words ('' when every class was validated).

        Example
        -------
        >>> probe.unvalidated_note()                                      # doctest: +SKIP
        "class 'not a number' is trained on, not validated (no held-out sample)"
        """
        check_is_fitted(self, "pipeline_")
        missing = self.unvalidated_classes_
        if not missing:
            return ""
        names = dict(zip(self.classes_.tolist(), self.class_names_))
        shown = ", ".join(repr(names[c]) for c in missing[:5]) + (f" and {len(missing) - 5} more"
                                                                   if len(missing) > 5 else "")
        verb = "class {} is" if len(missing) == 1 else "classes {} are"
        return f"{verb.format(shown)} trained on, not validated (no held-out sample)"


def train_probe(source, labels=None, *, class_names=None, **params) -> Probe:
    """Train a :class:`Probe` on an inspection's layer (or on given activations).

    Parameters
    ----------
    source : Inspection or array-like of shape (n, ...)
        An :class:`~engine.explore.inspection.Inspection` gives its activations, its project's labels and class names.
    labels : array-like of shape (n,), optional
        Overrides the inspection's labels; required with an array.
    class_names : sequence or mapping, optional
        Overrides the project's class names.
    **params
        :class:`Probe` parameters (``C``, ``validation_fraction``, ``max_iter``, ``random_state``).

    Returns
    -------
    Probe
        Fitted.

    Raises
    ------
    ProbeUnavailable
        The project has no labels (the message says how to add them), or they hold a single class, or no class
        with two samples.

    Example
    -------
    >>> probe = train_probe(Inspection(load_project("mnist"), "bottleneck"))  # doctest: +SKIP
    >>> print(probe.summary())                                                # doctest: +SKIP
    validation accuracy 0.84 on 2,000 held-out samples (10 classes; chance 0.114; trained on 8,000)
    """
    project = getattr(source, "project", None)
    if project is not None and hasattr(source, "activations"):
        X = source.activations
        if labels is None:
            labels = source.labels
            if labels is None:
                raise ProbeUnavailable(_no_labels_message(project))
            if class_names is None:
                class_names = project.label_names()
        where = f"project {project.name!r} at layer {source.layer!r}"
    else:
        X = source
        if labels is None:
            raise ProbeUnavailable("no labels were given: a probe is trained on activations with their class labels")
        where = "the labels"
    probe = Probe(class_names=class_names, **params)
    y = _labels(labels, len(X))
    _check_fraction(probe.validation_fraction)
    reason = _why_unavailable(y, where)
    if reason is not None:
        raise ProbeUnavailable(reason)
    return probe.fit(X, y)


def finetune_probe(project, dataset, *, include_project: bool = True, record_weight: float = 1.0, cache_dir=None,
                   **probe_params):
    """Refit the probe on the project's labelled activations plus a generated dataset's records.

    Labels are text: the project's class codes become their class names, so a record labelled "3" joins class
    "3" and a new label ("not a number") becomes a new class. A label saved once is trained on, not held out: the
    probe's ``unvalidated_classes_`` names it, and ``summary()`` says on how many held-out samples it was scored.

    Parameters
    ----------
    project : Project
    dataset : GeneratedDataset or str
    include_project : bool
        Train on the project's own labelled samples too (when it has labels); else on the records alone.
    record_weight : float
        Training weight of each record relative to a project sample (a few corrections among thousands of
        samples barely move a probe at weight 1).
    cache_dir : str or Path, optional
        Where the project's activations are cached (:func:`engine.propagate.activations`).
    **probe_params
        :class:`~engine.explore.probe.Probe` parameters.

    Returns
    -------
    Probe
        Fitted; ``classes_`` are text labels.

    Raises
    ------
    ProbeUnavailable
        A single class, or no class with two samples.
    DataError
        An empty dataset.

    Example
    -------
    >>> probe = finetune_probe(load_project("mnist"), "corrections", record_weight=20)  # doctest: +SKIP
    >>> "not a number" in probe.class_names_                                           # doctest: +SKIP
    True
    """
    ds = GeneratedDataset.with_records(project, dataset)
    layer = ds.manifest()["layer"]
    records = ds.records()
    X = [np.stack([r.activation for r in records]).reshape(len(records), -1)]
    y = [np.array([r.user_label for r in records], dtype=object)]
    w = [np.full(len(records), float(record_weight))]
    labels = project.labels() if include_project else None
    if labels is not None:
        from engine.propagate import activations

        acts = np.asarray(activations(project, layer, cache_dir=cache_dir))
        acts = acts.reshape(len(acts), -1)
        if acts.shape[1] != X[0].shape[1]:
            raise DataError(
                f"{ds.path}: records have {X[0].shape[1]} activation values, layer {layer!r} of project "
                f"{project.name!r} has {acts.shape[1]}"
            )
        names = np.asarray(project.label_names(), dtype=object)
        X.insert(0, acts)
        y.insert(0, names[labels])
        w.insert(0, np.ones(len(acts)))
    return Probe(**probe_params).fit(np.concatenate(X), np.concatenate(y).astype(str), sample_weight=np.concatenate(w))
