"""The first hour's pieces that need no browser: the page address's checked choices, the decode verdict's levels and
thresholds, the progress line's estimate of time left, and the session following a link (outside a server the
dashboard's work runs synchronously, so each assertion follows its action)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from dashboard.jobs import Progress
from dashboard.urlstate import MAX_VALUE, read_query
from engine.reduce.verdict import DISTANCE_LEVELS, LEVELS, typical_relative_error, verdict

# -- the page's address -------------------------------------------------------------------------------------------

def test_a_link_gives_its_choices_view_and_tapped_point():
    q = read_query({"project": [b"mnist"], "layer": [b"bottleneck"], "method": [b"umap"], "n_neighbors": [b"30"],
                    "min_dist": [b"0.25"], "perplexity": [b"auto"], "color": [b"label"],
                    "view": [b"-3.5,4,-2,5.5"], "tap": [b"0.5,1.25"]})
    assert q.problems == []
    assert q.choices == {"project": "mnist", "layer": "bottleneck", "method": "umap", "n_neighbors": 30,
                         "min_dist": 0.25, "perplexity": "auto", "color_by": "label"}
    assert q.view == (-3.5, 4.0, -2.0, 5.5) and q.tap == (0.5, 1.25)


@pytest.mark.parametrize(("args", "problem"), [
    ({"view": [b"1,0,0,1"]}, "x0 < x1"),
    ({"view": [b"0,1,2"]}, "4 finite numbers"),
    ({"tap": [b"nan,1"]}, "2 finite numbers"),
    ({"tap": [b"1e300,1"]}, "2 finite numbers"),
    ({"tap": [b"inf,1"]}, "2 finite numbers"),
    ({"n_neighbors": [b"12.5"]}, "whole number"),
    ({"min_dist": [b"lots"]}, "a finite number"),
    ({"layer": [b"\xff\xfe"]}, "not UTF-8"),
    ({"layer": [b"a\x00b"]}, "control characters"),
    ({"project": [b"x" * (MAX_VALUE + 1)]}, f"at most {MAX_VALUE}"),
])
def test_a_hostile_or_wrong_value_is_left_out_and_named(args, problem):
    q = read_query(args)
    (name,) = args
    assert len(q.problems) == 1 and problem in q.problems[0] and q.problems[0].startswith(name)
    assert q.view is None and q.tap is None and q.choices == {}


def test_a_session_follows_a_link_and_names_what_it_could_not(mnist_root):
    """Outside a server the work is synchronous: the link's layer, reducer, colouring and tapped point apply; a value
    that is not a choice is named in the session's error, the rest still applies."""
    from dashboard.inspector.state import Inspector

    link = read_query({"project": [b"mnist"], "layer": [b"bottleneck"], "method": [b"pca"], "color": [b"none"],
                       "inverse": [b"bogus"], "tap": [b"1,2"], "view": [b"-5,5,-4,4"]})
    store = Inspector(link=link)
    assert (store.project, store.layer, store.method, store.color_by) == ("mnist", "bottleneck", "pca", "none")
    assert store.decode is not None and store.decode.xy == (1.0, 2.0)
    assert "inverse 'bogus' is not one of the choices" in store.error
    assert store.view == (-5.0, 5.0, -4.0, 4.0)  # kept for the plot of that picture
    assert store.quality is not None and store.shown == "PCA" and store.pending == ""

    wrong = Inspector(link=read_query({"project": [b"mnist"], "layer": [b"../../etc/passwd"]}))
    assert "layer '../../etc/passwd' is not a layer of 'mnist'" in wrong.error
    assert wrong.layer == wrong.project_obj.default_layer and wrong.inspection is not None


def test_a_link_that_injects_markup_is_shown_as_text(mnist_root):
    """A value of the link is named in the page's error as the user wrote it, but as text: markup in it (an image
    whose error handler runs script, a script tag) is escaped, never rendered."""
    from dashboard.inspector.state import Inspector
    from dashboard.widgets import error_html

    hostile = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    store = Inspector(link=read_query({"project": [b"mnist"], "layer": [hostile.encode()],
                                       "color": [b"<b>label</b>"]}))
    assert f"layer {hostile!r} is not a layer of 'mnist'" in store.error
    shown = error_html(store.error)
    assert "<img" not in shown and "<script" not in shown and "<b>" not in shown
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;" in shown
    assert store.color_by != "<b>label</b>" and store.inspection is not None  # the page still works


# -- the verdict of a decode --------------------------------------------------------------------------------------

def test_each_measure_sets_the_level_its_thresholds_say():
    assert verdict({"relative_distance": 1.0}).words == "among the data"
    assert [verdict({"relative_distance": b + 0.01}).level for b in DISTANCE_LEVELS] == [1, 2, 3]
    assert verdict({"relative_distance": 1.0, "outside_hull": True}).words == "extrapolating"
    # the error against the map's own error on real samples: a coarse map is not "extrapolating" among its data
    assert verdict({"relative_distance": 1.0, "relative_error": 0.6}, typical_error=0.5).words == "among the data"
    assert verdict({"relative_distance": 1.0, "relative_error": 0.6}, typical_error=0.02).words == "far outside"
    # above the activations' variance the decode is no better than a guess, whatever the distance
    v = verdict({"relative_distance": 7.7, "relative_error": 1.19, "outside_hull": False}, typical_error=0.1)
    assert v.words == "far outside" and v.reasons[0].startswith("estimated error 1.19")
    assert any("7.7 x the typical spacing" in r for r in v.reasons)


def test_missing_or_nan_measures_do_not_count():
    assert verdict({}).words == LEVELS[0]
    assert verdict({"relative_distance": math.nan, "relative_error": math.nan}).words == LEVELS[0]


def test_verdicts_follow_distance_on_a_real_fit():
    """On a fitted reducer, a point on a sample is among the data and a point far away is far outside."""
    from engine.reduce import make_reducer

    X = np.random.default_rng(0).normal(size=(400, 6)).astype(np.float32)
    reducer = make_reducer("pca", random_state=0).fit(X)
    typical = typical_relative_error(reducer.trust_)
    assert 0 < typical < 1
    on_sample = reducer.trust(reducer.embedding_[:1]).record(0)
    far = reducer.trust(reducer.embedding_[:1] + 100.0).record(0)
    assert verdict(on_sample, typical).level == 0
    assert verdict(far, typical).words == "far outside"


# -- the map's own quality in the verdict ------------------------------------------------------------------------

#: A map measured on its held-out samples, as the quality report's dict has it: no measure below its bound.
GOOD_MAP = {"consistency": 0.963, "decoded_accuracy": 0.95, "class_stability": 0.97, "stability_rounds": 2,
            "inverse_error": 0.18, "inverse_holdout": 300}
AMONG = {"relative_distance": 1.0, "relative_error": 0.05}


def test_a_map_that_loses_classes_cannot_give_among_the_data_and_says_why():
    low = verdict(AMONG, 0.04, quality={**GOOD_MAP, "consistency": 0.85})
    assert low.words == "near the data"
    assert low.reasons[0] == ("the map's decodes of held-out samples keep their class for 85% (Cons_d; below 90%: at "
                              "best near the data)")
    assert low.meaning.startswith("the point lies among the data, but this map keeps the class of only 85% of the "
                                  "real samples it decodes")
    lower = verdict(AMONG, 0.04, quality={**GOOD_MAP, "consistency": 0.474, "class_stability": 0.51})
    assert lower.words == "extrapolating" and "47.4% (Cons_d; below 70%: at best extrapolating)" in lower.reasons[0]
    assert "51% of held-out samples keep their class over 2 round trips" in lower.reasons[1]
    drifting = verdict(AMONG, 0.04, quality={**GOOD_MAP, "class_stability": 0.8})
    assert drifting.words == "near the data" and "(class stability; below 90%" in drifting.reasons[0]
    coarse = verdict(AMONG, 0.04, quality={**GOOD_MAP, "inverse_error": 1.3})
    assert coarse.words == "extrapolating" and "1.3 x the activations' variance" in coarse.reasons[0]


def test_a_good_map_quotes_its_measures_in_the_meaning_of_among_the_data():
    v = verdict(AMONG, 0.04, quality=GOOD_MAP)
    assert v.level == 0 and v.reasons == verdict(AMONG, 0.04).reasons
    assert v.meaning == ("the decode is as reliable as the map is on real samples: on 300 held-out samples, 96.3% keep "
                         "their class when decoded (Cons_d); 95% get their true label (ACC_M); 97% keep it over 2 "
                         "round trips; round-trip error 0.18 x the activations' variance")
    # ACC_M counts the model's own mistakes: quoted, never a cap
    assert verdict(AMONG, 0.04, quality={**GOOD_MAP, "decoded_accuracy": 0.1}).level == 0


@pytest.mark.parametrize(("measure", "value", "level"), [
    ("consistency", 0.9, 0), ("consistency", 0.899, 1), ("consistency", 0.7, 1), ("consistency", 0.699, 2),
    ("consistency", 0.0, 2),
    ("class_stability", 0.9, 0), ("class_stability", 0.899, 1), ("class_stability", 0.7, 1),
    ("class_stability", 0.699, 2),
    ("inverse_error", 1.0, 0), ("inverse_error", 1.001, 2), ("inverse_error", 50.0, 2),
])
def test_the_map_caps_at_the_documented_bounds(measure, value, level):
    assert verdict(AMONG, 0.04, quality={**GOOD_MAP, measure: value}).level == level


def test_the_map_bounds_are_the_ones_the_module_documents():
    import engine.reduce.verdict as module
    from engine.reduce.verdict import GUESS_ERROR, KEPT_LEVELS

    rows = {line[:30].strip(): line[30:].split() for line in module.__doc__.splitlines()}
    kept = [f">= {b:.0%}" for b in KEPT_LEVELS] + [f"< {KEPT_LEVELS[-1]:.0%}", "--"]
    assert KEPT_LEVELS == (0.9, 0.7) and GUESS_ERROR == 1.0
    assert [" ".join(rows["Cons_d"][i:i + 2]) for i in (0, 2, 4)] + [rows["Cons_d"][6]] == kept
    assert rows["class stability"] == rows["Cons_d"]
    assert rows["error / activation variance"] == ["<=", "1", "<=", "1", ">", "1", "--"]  # the map's row, the last


def test_without_a_report_or_its_measures_the_verdict_is_the_points_alone():
    records = [AMONG, {"relative_distance": 3.0}, {"relative_distance": 1.0, "outside_hull": True},
               {"relative_distance": 7.7, "relative_error": 1.19}, {}]
    for record in records:
        before = verdict(record, 0.04)
        assert verdict(record, 0.04, quality=None) == before
        # no classes to keep (no class scores, labels or probe) and no inverse: the report says nothing
        assert verdict(record, 0.04, quality={"consistency": None, "class_stability": None, "inverse_error": None,
                                              "decoded_accuracy": float("nan")}) == before
    assert verdict(AMONG, 0.04).meaning == "the decode is as reliable as the map is on real samples"
    # stability without its round trips is not a measure
    assert verdict(AMONG, 0.04, quality={"class_stability": 0.2, "stability_rounds": 0}).level == 0


def test_the_map_never_makes_a_point_verdict_better_nor_rewords_it():
    far = {"relative_distance": 30.0}
    v = verdict(far, 0.04, quality={**GOOD_MAP, "consistency": 0.3})
    assert v.words == "far outside" and v.meaning == verdict(far, 0.04).meaning
    assert v.reasons[0] == "30 x the typical spacing of samples" and "Cons_d" in v.reasons[1]
    near = verdict({"relative_distance": 3.0}, 0.04, quality={**GOOD_MAP, "consistency": 0.5})
    assert near.words == "extrapolating" and near.meaning.startswith("the point lies near the data, but this map")


def test_a_report_being_computed_is_named_where_it_could_change_the_verdict():
    from engine.reduce.verdict import NOT_MEASURED, PENDING

    v = verdict(AMONG, 0.04, quality=PENDING)
    assert (v.level, v.note) == (0, NOT_MEASURED) and v.meaning == verdict(AMONG, 0.04).meaning
    assert v.reasons == verdict(AMONG, 0.04).reasons and verdict(AMONG, 0.04).note == ""
    assert verdict({"relative_distance": 3.0}, quality=PENDING).note == NOT_MEASURED
    assert verdict({"relative_distance": 30.0}, quality=PENDING).note == ""  # the report could not lower it


def test_a_real_quality_report_feeds_the_verdict():
    """The engine's QualityReport itself (attributes, or its dict): PCA of 6 noise features keeps 1 axis's sign
    through its 2-D map, so every decode keeps that class; a feature it does not keep loses 4 classes in 10, and no
    decode of the map is then "among the data"."""
    from engine.reduce import make_reducer, quality_report

    X = np.random.default_rng(0).normal(size=(400, 6)).astype(np.float32)
    reducer = make_reducer("pca", random_state=0).fit(X)
    typical = typical_relative_error(reducer.trust_)
    on_sample = reducer.trust(reducer.embedding_[:1]).record(0)
    assert verdict(on_sample, typical).level == 0

    kept = quality_report(reducer, X, classify=lambda a: reducer.transform(a)[:, 0] > 0)
    v = verdict(on_sample, typical, quality=kept)
    assert kept.consistency == 1.0 and v.level == 0 and "100% keep their class when decoded (Cons_d)" in v.meaning
    assert verdict(on_sample, typical, quality=kept.to_dict()) == v

    lost = quality_report(reducer, X, classify=lambda a: np.asarray(a)[:, 1] > 0)
    assert lost.consistency < 0.7
    v = verdict(on_sample, typical, quality=lost)
    assert v.words == "extrapolating" and f"{100 * lost.consistency:.3g}% (Cons_d" in v.reasons[0]


# -- progress -----------------------------------------------------------------------------------------------------

def test_the_time_left_is_extrapolated_from_the_stage_pace(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    p = Progress("UMAP of bottleneck")
    p("fitting", 0, 100)
    clock[0] += 10
    p("fitting", 25, 100)
    assert p.remaining == pytest.approx(30.0)
    assert "about 30 s left" in p.text and "25%" in p.text
    p("training the inverse map", 0, 50)  # a new stage: a new clock, no estimate until its pace is known
    assert p.remaining is None and "left" not in p.text


@pytest.fixture
def mnist_root(monkeypatch):
    from engine.data.project import projects_root

    if not (projects_root() / "mnist" / "project.toml").is_file():
        pytest.skip("projects/mnist is not built")
    return projects_root()


# -- a first picture in seconds -----------------------------------------------------------------------------------

def test_a_self_tuned_or_learned_request_gets_a_quick_first_stage():
    from engine.explore.stages import stages

    first, refined = stages("tsne", "mlp", {})
    assert (first.name, first.inverse, first.params) == ("first picture", "knn", {"perplexity": 30})
    assert (refined.name, refined.inverse, refined.params) == ("refined", "mlp", {})
    first, refined = stages("umap", "knn", {"min_dist": 0.3})  # tuned only: the first picture keeps the inverse
    assert first.inverse == "knn" and first.params == {"min_dist": 0.3, "n_neighbors": 15}
    assert [s.name for s in stages("umap", "native", {"n_neighbors": 30})] == ["final"]
    assert [s.name for s in stages("pca", "auto", {})] == ["final"]


def test_tsne_reports_its_layout_as_it_forms():
    from engine.reduce import make_reducer
    from engine.reduce.tsne import SNAPSHOT_EVERY

    X = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    seen, reports = [], []
    reducer = make_reducer("tsne", perplexity=20, n_iter=100, early_exaggeration_iter=50, inverse="knn",
                           random_state=0, snapshot=lambda e, i, d, t: seen.append((e.shape, len(i), d, t)),
                           progress=lambda stage, d, t: reports.append((stage, d, t)))
    reducer.fit(X)
    assert [s[2] for s in seen] == list(range(SNAPSHOT_EVERY, 151, SNAPSHOT_EVERY))
    assert all(shape == (300, 2) and rows == 300 and total == 150 for shape, rows, _, total in seen)
    assert ("optimising the t-SNE layout", 150, 150) in reports

    def broken(*_):
        raise RuntimeError("the plot went away")

    with pytest.raises(RuntimeError, match="the plot went away"):  # the caller's error, not a silent stop
        make_reducer("tsne", perplexity=20, n_iter=50, early_exaggeration_iter=25, inverse="knn", random_state=0,
                     snapshot=broken).fit(X)


def test_umap_on_exact_neighbours_embeds_new_rows_too():
    """From 4,096 rows the neighbours come from scikit-learn (no NN-descent to compile); transform() builds the
    search index when first asked, and places a fitted row next to where it was embedded."""
    from sklearn.manifold import trustworthiness

    from engine.reduce import make_reducer

    rng = np.random.default_rng(1)
    centres = rng.normal(scale=6, size=(5, 4))
    X = (centres[rng.integers(0, 5, 4200)] + rng.normal(size=(4200, 4))).astype(np.float32)
    reducer = make_reducer("umap", n_neighbors=10, n_epochs=60, inverse="knn", random_state=0).fit(X)
    assert reducer.model_._knn_search_index is None  # fitted on the exact neighbours
    assert trustworthiness(X[:1000], reducer.embedding_[:1000], n_neighbors=10) > 0.9
    placed = reducer.transform(X[:20] + 1e-3)
    spread = np.ptp(reducer.embedding_, axis=0).max()
    assert np.abs(placed - reducer.embedding_[:20]).max() < 0.1 * spread


def test_the_probe_guess_sits_under_the_label_it_fills(mnist_root):
    """The probe's reading of a decode is shown in the decoded output's card, not only in the probe's card a screen
    below."""
    from dashboard.template import Dashboard

    dash = Dashboard(project="mnist")
    dash.datasets.train_probe()
    x, y = (float(v) for v in dash.store.inspection.embedding[5])
    dash.latent.tap.event(x=x, y=y)
    prediction = dash.datasets.prediction
    text = dash.label._guess_html(prediction)
    best = max(prediction.probabilities.values())
    assert f"the probe reads <b>{prediction.name}</b> ({best:.1%})" in text
    assert dash.label.label.value == prediction.name  # and it fills the label box


def test_a_new_picture_and_its_colouring_reach_the_plot_in_one_update(mnist_root):
    """The plot is drawn from the table and its colouring together: a new layer's picture whose colouring falls back
    (the probe's predictions are not offered there) changes both in one update, so the page gets one figure. Two
    updates drew a figure and replaced it a moment later, and a tap on the first one was lost (CI's lost decode)."""
    from dashboard.template import Dashboard

    dash = Dashboard(project="mnist")
    store = dash.store
    dash.datasets.train_probe()
    store.color_by = "prediction"
    updates = []
    store.param.watch(lambda *events: updates.append(sorted(e.name for e in events)), ["points", "color_by"])
    store.layer = "encoder_dense"
    assert store.inspection.layer == "encoder_dense" and "prediction" not in store.param.color_by.objects
    assert store.color_by == "label"
    assert updates[-1] == ["color_by", "points"] and all(u != ["color_by"] for u in updates), updates
