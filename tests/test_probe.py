"""The probe classifier: real scikit-learn on real activations (the MNIST bottleneck), binary and multiclass, and a
clear reason whenever no probe can be trained."""

import numpy as np
import pytest
from builders import build_models, write_project
from sklearn.exceptions import NotFittedError

from engine.data.project import load_project
from engine.errors import DataError, ProbeUnavailable
from engine.explore.probe import Prediction, Probe, probe_status, train_probe
from engine.propagate import activations


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    project = load_project("mnist")
    z = np.asarray(activations(project, "bottleneck", cache_dir=tmp_path_factory.mktemp("cache")))
    holdout = np.load(project.path / "holdout.npy")
    return project, z, project.labels(), holdout


def test_probe_on_the_mnist_bottleneck_is_well_above_chance_on_held_out_digits(mnist):
    project, z, y, holdout = mnist
    train = np.setdiff1d(np.arange(len(z)), holdout)
    probe = Probe(random_state=0, class_names=project.label_names()).fit(z[train], y[train])

    assert probe.class_names_ == tuple(str(d) for d in range(10)) and not probe.binary_
    assert probe.confusion_matrix_.shape == (10, 10)
    assert probe.confusion_matrix_.sum() == len(probe.validation_index_) == int(np.ceil(0.2 * len(train)))
    assert np.isclose(np.trace(probe.confusion_matrix_) / probe.confusion_matrix_.sum(), probe.validation_accuracy_)
    assert set(probe.train_index_).isdisjoint(probe.validation_index_)
    # the 1,000 digits held out from the autoencoder's training and from the probe's
    held_out = probe.score(z[holdout], y[holdout])
    print(f"\nMNIST bottleneck probe: validation {probe.validation_accuracy_:.3f}, held-out digits {held_out:.3f} "
          f"(chance {probe.chance_:.3f}); {probe.summary()}")
    assert held_out > 0.5 and probe.validation_accuracy_ > 0.5 and probe.chance_ < 0.15
    assert probe.converged_

    proba = probe.predict_proba(z[holdout[:50]])
    assert proba.shape == (50, 10) and np.allclose(proba.sum(axis=1), 1)
    assert np.array_equal(probe.predict_names(z[holdout[:50]]), np.array(project.label_names())[proba.argmax(1)])
    wrong = probe.misclassified(z[holdout], y[holdout])
    assert wrong.dtype == bool and np.isclose(wrong.mean(), 1 - held_out)


def test_predict_one_labels_a_single_activation(mnist):
    project, z, y, _ = mnist
    probe = Probe(class_names=project.label_names()).fit(z[:3000], y[:3000])
    p = probe.predict_one(z[5000])
    assert isinstance(p, Prediction) and isinstance(p.label, int)
    assert p.name == project.label_names()[p.label] and list(p.probabilities) == list(probe.class_names_)
    assert np.isclose(sum(p.probabilities.values()), 1) and p.probabilities[p.name] == max(p.probabilities.values())
    assert np.allclose(list(p.probabilities.values()), probe.predict_proba(z[5000:5001])[0])


def test_binary_probe_with_text_labels_on_a_non_flat_layer():
    rng = np.random.default_rng(0)
    n = 400
    y = np.where(rng.random(n) < 0.3, "cat", "dog")  # unbalanced: stratification keeps the ratio
    X = rng.normal(size=(n, 4, 3)).astype(np.float32)
    X[:, 0, 0] += np.where(y == "cat", 3.0, -3.0)
    probe = Probe(validation_fraction=0.25, random_state=1).fit(X, y)

    assert probe.binary_ and probe.classes_.tolist() == ["cat", "dog"] and probe.n_features_in_ == 12
    assert probe.class_names_ == ("cat", "dog") and probe.validation_accuracy_ > 0.95
    assert probe.predict_proba(X).shape == (n, 2)
    val = probe.validation_index_
    assert len(val) == 100 and abs(np.mean(y[val] == "cat") - np.mean(y == "cat")) < 0.02
    assert np.isclose(probe.chance_, np.mean(y[val] == "dog"))
    assert probe.predict_one(X[np.argmax(y == "cat")]).label == "cat"


def test_multiclass_probe_and_sample_weights():
    rng = np.random.default_rng(2)
    centers = rng.normal(scale=4, size=(4, 6))
    y = rng.integers(0, 4, 600)
    X = centers[y] + rng.normal(size=(600, 6))
    probe = Probe(class_names={0: "n", 1: "e", 2: "s", 3: "w"}).fit(X, y)
    assert not probe.binary_ and probe.class_names_ == ("n", "e", "s", "w") and probe.validation_accuracy_ > 0.9
    assert probe.confusion_matrix_.shape == (4, 4)
    # heavy weights on class 3 pull ambiguous points towards it
    w = np.where(y == 3, 50.0, 1.0)
    midpoint = (centers[0] + centers[3]) / 2
    p_plain = Probe().fit(X, y).predict_proba(midpoint[None])[0, 3]
    p_weighted = Probe().fit(X, y, sample_weight=w).predict_proba(midpoint[None])[0, 3]
    assert p_weighted > p_plain


def test_errors_say_why_no_probe_can_be_trained():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    with pytest.raises(ProbeUnavailable, match=r"one class \('7'\)"):
        Probe().fit(X, np.full(40, "7"))
    with pytest.raises(ProbeUnavailable, match="each of the 3 classes has a single sample"):
        Probe().fit(X[:3], ["a", "b", "c"])
    with pytest.raises(ProbeUnavailable, match="no labels were given"):
        train_probe(X)
    with pytest.raises(DataError, match="39 labels for 40 activation rows"):
        Probe().fit(X, np.arange(39) % 2)
    with pytest.raises(DataError, match="NaN or inf .first at sample 3"):
        Probe().fit(np.where(np.arange(40)[:, None] == 3, np.nan, X), np.arange(40) % 2)
    with pytest.raises(ValueError, match="validation_fraction must be a number in"):
        Probe(validation_fraction=1.5).fit(X, np.arange(40) % 2)
    with pytest.raises(NotFittedError):
        Probe().predict(X)
    probe = Probe().fit(X, np.arange(40) % 2)
    with pytest.raises(DataError, match="trained on 3 activation values per sample, got 5"):
        probe.predict(np.zeros((2, 5)))


def test_a_project_without_labels_says_why_the_probe_is_unavailable(tmp_path):
    from engine.explore.inspection import Inspection

    model, _ = build_models()["sequential"]
    rng = np.random.default_rng(0)
    write_project(tmp_path, "unlabelled", model, rng.normal(size=(80, 12)).astype("float32"))
    write_project(tmp_path, "oneclass", model, rng.normal(size=(80, 12)).astype("float32"), np.zeros(80, int))
    project = load_project("unlabelled", tmp_path)

    reason = probe_status(project)
    assert "project 'unlabelled' has no labels" in reason and "y*.npy" in reason and "labels = " in reason
    insp = Inspection(project, "bottleneck", method="pca", cache_dir=tmp_path / "cache")
    with pytest.raises(ProbeUnavailable, match="project 'unlabelled' has no labels"):
        train_probe(insp)
    assert "project 'oneclass': all 80 labels are one class" in probe_status(load_project("oneclass", tmp_path))
    assert probe_status(load_project("mnist")) is None


def test_train_probe_from_an_inspection_uses_the_project_labels_and_names(tiny_project, tmp_path):
    from engine.explore.inspection import Inspection

    insp = Inspection(load_project("tiny", tiny_project), "bottleneck", method="pca", cache_dir=tmp_path)
    probe = train_probe(insp, C=0.5, random_state=3)
    assert probe.class_names_ == ("a", "b", "c") and probe.C == 0.5 and probe.n_features_in_ == 5
    assert len(probe.train_index_) + len(probe.validation_index_) == len(insp.activations)
    renamed = train_probe(insp, class_names=["x", "y", "z"])
    assert renamed.class_names_ == ("x", "y", "z")
    assert train_probe(insp, labels=insp.labels % 2).binary_


def test_a_class_with_a_single_sample_is_trained_on_and_the_report_says_it_was_not_validated():
    """A new label saved once (issue 17): no stratified split can hold it out, so it is trained on; the rest is
    split stratified, and the report says on how many held-out samples the probe was scored."""
    rng = np.random.default_rng(4)
    centres = rng.normal(scale=5, size=(3, 4))
    y = np.array(["a"] * 50 + ["b"] * 50 + ["new"])
    X = centres[np.searchsorted(["a", "b", "new"], y)] + rng.normal(size=(101, 4))
    probe = Probe(random_state=0).fit(X, y, sample_weight=np.r_[np.ones(100), 10.0])

    assert probe.classes_.tolist() == ["a", "b", "new"] and probe.stratified_
    assert probe.unvalidated_classes_ == ("new",) and 100 in probe.train_index_
    assert len(probe.validation_index_) == 20 and np.mean(y[probe.validation_index_] == "a") == 0.5
    assert probe.confusion_matrix_.shape == (3, 3) and probe.confusion_matrix_[2].sum() == 0
    assert probe.predict(centres[2:3]).tolist() == ["new"]
    assert "on 20 held-out samples" in probe.summary()
    assert "class 'new' is trained on, not validated (no held-out sample)" in probe.summary()
    assert Probe().fit(X[:100], y[:100]).unvalidated_note() == ""


def test_too_few_samples_to_stratify_hold_out_some_each_class_keeping_one_in_training():
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.repeat(np.arange(4), 10)
    probe = Probe(validation_fraction=0.05, random_state=0).fit(X, y)  # 2 held out, 4 classes
    assert not probe.stratified_ and len(probe.validation_index_) == 2
    assert "not stratified" in probe.summary()
    tiny = Probe(random_state=1).fit(X[:5], ["a", "a", "b", "b", "c"])  # 1 of 4 samples held out, 'c' trained on
    assert len(tiny.validation_index_) == 1 and not tiny.stratified_
    assert set(tiny.classes_) == {"a", "b", "c"} and "c" in tiny.unvalidated_classes_
    assert len(tiny.unvalidated_classes_) == 2  # the class not drawn for validation is not validated either


def test_finetune_probe_with_one_record_of_a_new_label(tmp_path):
    """The dashboard's refit after saving ONE record with a new label: the project's samples plus that record."""
    from engine.data.generated import GeneratedDataset, record_from_decode
    from engine.explore.inspection import Inspection
    from engine.explore.probe import finetune_probe

    root = tmp_path / "root"
    root.mkdir()
    model, _ = build_models()["sequential"]
    rng = np.random.default_rng(0)
    write_project(root, "small", model, rng.normal(size=(60, 12)).astype("float32"), np.repeat([0, 1, 2], 20))
    project = load_project("small", root)
    insp = Inspection(project, "bottleneck", method="pca", cache_dir=tmp_path / "cache")
    decoded = insp.decode(0.0, 0.0)
    GeneratedDataset(project, "once").save(record_from_decode(insp, decoded, "not a number", None))

    probe = finetune_probe(project, "once", record_weight=10.0, cache_dir=tmp_path / "cache", random_state=0)
    assert "not a number" in probe.classes_.tolist() and probe.unvalidated_classes_ == ("not a number",)
    assert len(probe.validation_index_) == 12 and len(probe.train_index_) == 49
    assert "on 12 held-out samples" in probe.summary() and "'not a number' is trained on" in probe.summary()
