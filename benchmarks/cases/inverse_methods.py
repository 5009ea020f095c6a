"""Inverse maps side by side with the published ones (issue 18): ours against NNinv, ILAMP and RBFinv, same split.

The published methods are those of the PyPI package ``inverse-projections`` 0.1.3 (``pip install -e '.[bench]'``):
``NNinv`` (Espadoto et al. 2019, PyTorch), ``ILAMP`` (inverse LAMP, k = 6) and ``RBFinv`` (radial basis functions,
multiquadric with c = 0), each with ``fit(X_2d, X)`` and ``transform(X_2d)``. Without the package every row says so
and nothing is measured.

For each dataset and each projection (PCA, UMAP with 15 neighbours, t-SNE with perplexity 30: the engine's reducers,
fitted once on every row, no inverse, no projection cache), one seeded held-out split of the (point, activation)
pairs: every inverse map is fitted on the same 80 % and measured on the same 20 % by the one code path of
:func:`engine.reduce.metrics.inverse_metrics`:

* relative MSE: held-out mean squared error per feature over the activations' mean per-feature variance;
* output relative MSE: the same after the model's suffix (the autoencoders' reconstructions);
* Cons_d: the share of held-out samples whose decoded point gets the class the probe gives the sample itself; ACC_M:
  the share that gets the sample's true label. The classifier is the project's probe (:class:`Probe`, a logistic
  regression on the layer's activations) fitted on the training rows only: both models are autoencoders;
* steep share of the gradient map (100 x 100 cells over the data's box): cells above 3x the map's median gradient
  (folds and tears);
* class stability: the share of (up to 200) held-out samples whose class survives 3 project-decode round trips
  (``reducer.transform``, for every projection: openTSNE's transform of 200 new rows against MNIST's 10,000-row
  embedding took 7.5-9.5 s a call here, so t-SNE's 3 rounds x 5 maps add ~2.5 minutes per MNIST layer);
* points per second: one call on 2,000 held-out points (BasicMotions' 16 repeated), 7 times, ours and theirs
  alternating; and the time of the fit.

Ours is the engine's default inverse of each projection: PCA's exact inverse for PCA, :class:`MLPInverse` (its
defaults) for UMAP and t-SNE. Our other maps (k-NN, and the MLP on PCA) are measured too and listed in each row's
notes. Datasets (:data:`DATASETS`): the MNIST autoencoder's bottleneck (10,000 x 10), its ``encoder_dense`` layer
(10,000 x 64, the layer before the bottleneck, decoded by the model's suffix from there) and BasicMotions' bottleneck
(80 x 8: 16 held-out samples, so its shares move in steps of 1/16).

Fairness, as written in each row's notes: NNinv ends in a sigmoid (its papers scale the data to [0, 1]), so it is
fitted on the activations min-max scaled on the training rows and its output is scaled back; it trains its default
150 epochs (its ``early_stop`` and ``patience`` arguments are not used by its code), by the statements of its fit run
epoch by epoch so that a time limit (``NNINV_MAX_SECONDS``) can stop it on a busy machine. RBFinv solves an n x n
system: its training rows are capped at ``RBF_MAX_ROWS`` (not reached here). BasicMotions' probe is weak (its 8-unit
bottleneck separates the 4 activities at ~55 % in cross-validation), so its Cons_d and ACC_M say little. A full run
took 28 minutes on two cores at a load average of 1.5-3.7 (an estimated ~13 idle); under load NNinv's time limit stops
it before its 150 epochs on the MNIST layers, as its notes say. ``--quick``: 600 rows of MNIST's bottleneck, PCA only, a
few epochs.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from benchmarks.harness import Comparison, Side, alternate

CASE = "inverse methods"
THEIRS = ("NNinv", "ILAMP", "RBFinv")
PARAMS = {"pca": {}, "umap": {"n_neighbors": 15}, "tsne": {"perplexity": 30}}
NAMES = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
HOLDOUT = 0.2
SEED = 0
#: NNinv's epochs: its default, 150 (it has no early stopping); 3 in --quick.
NNINV_EPOCHS = {"full": 150, "quick": 3}
#: NNinv's training stops after the epoch that ends past this many seconds (~0.5 s an epoch on MNIST's 8,000 training
#: rows on 2 idle cores, up to ten times that when other work shares them).
NNINV_MAX_SECONDS = 150.0
#: Rows RBFinv is fitted on at most (its dense n x n solve: 8,000 rows take ~20 s and 1 GB).
RBF_MAX_ROWS = 8_000
#: (project, layer) of the full run; None is the project's default layer. --quick: the first, on 600 rows.
DATASETS = (("mnist", "bottleneck"), ("mnist", "encoder_dense"), ("basicmotions", None))
#: Points per timed call of an inverse map.
TIMED_BATCH = 2_000
SKIP_QUICK = "--quick ({}: full run only)"


@dataclass
class Figure(Comparison):
    """A comparison of one quality figure: ``higher`` says which way is better (the harness's own rule reads the
    unit: rates are higher-better, times lower-better), and a zero or missing figure gives no ratio, not an error."""

    higher: bool = False

    @property
    def higher_is_better(self) -> bool:
        return self.higher

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline.samples or not self.ours.samples:
            return None
        a, b = self.ours.median, self.baseline.median
        num, den = (a, b) if self.higher else (b, a)
        if not (math.isfinite(num) and math.isfinite(den)):
            return None
        if den == 0 or num == 0:  # a zero on one side only has no finite ratio (the harness divides by it)
            return 1.0 if num == den else None
        return num / den


# ---- the published methods, behind one interface ---------------------------------------------------------------------

@contextlib.contextmanager
def _quiet():
    """NNinv prints its device; ILAMP and RBFinv draw tqdm bars on every call."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        yield


def _published():
    """The ``inverse_projections`` module. Importing it changes the working directory (0.1.3's ``multilateration``
    runs ``os.chdir`` to its own folder at import): this puts it back, so relative paths (``projects/``, ``--results``)
    keep meaning what they meant."""
    cwd = os.getcwd()
    try:
        with _quiet():
            import inverse_projections
    finally:
        os.chdir(cwd)
    return inverse_projections


def published_available() -> str:
    """'' when ``inverse_projections`` imports, else why not."""
    try:
        _published()
    except Exception as exc:  # ImportError, or a broken torch
        return f"inverse-projections is not installed ({type(exc).__name__}: {exc}); pip install -e '.[bench]'"
    return ""


def _train_nninv(nninv, E, Y, epochs: int, max_seconds: float) -> tuple[int, str]:
    """``NNinv.fit(E, Y, epochs=epochs)`` of inverse-projections 0.1.3, the same statements epoch by epoch, stopped
    after the first epoch that ends past ``max_seconds`` (its own fit has no limit: 150 epochs take ~80 s on an idle
    2-core machine, ten times that on a busy one). Returns ``(epochs done, why it stopped)``."""
    import torch
    from sklearn.preprocessing import MinMaxScaler

    nninv.reset()
    nninv.scaler = MinMaxScaler()
    E = torch.tensor(nninv.scaler.fit_transform(E), dtype=torch.float32).to(nninv.device)
    Y = torch.tensor(Y, dtype=torch.float32).to(nninv.device)
    nninv.model = nninv.create_model(Y.shape[1])
    batch_size, start = 128, time.perf_counter()
    for epoch in range(epochs):
        for i in range(0, len(E), batch_size):
            nninv.optimizer.zero_grad()
            loss = nninv.loss_fn(nninv.model(E[i:i + batch_size]), Y[i:i + batch_size])
            loss.backward()
            nninv.optimizer.step()
            loss.item()  # as its fit does (it sums the epoch's loss)
        if time.perf_counter() - start > max_seconds and epoch + 1 < epochs:
            return epoch + 1, f"time limit {max_seconds:g} s"
    return epochs, "its default" if epochs == 150 else "capped"


class _Theirs:
    """A method of ``inverse-projections``, fitted on (E, X), called as ``inverse(xy) -> activations``."""

    def __init__(self, name: str, epochs: int):
        self.name, self.epochs, self.note = name, epochs, ""

    def fit(self, E, X):
        ip = _published()
        E, X = np.asarray(E, np.float64), np.asarray(X, np.float64)
        with _quiet():
            if self.name == "NNinv":
                import torch

                torch.manual_seed(SEED)
                # the network ends in a sigmoid: targets in [0, 1], as in the method's papers
                self.lo, span = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
                self.span = np.where(span > 0, span, 1.0)
                self.model = ip.NNinv()
                done, reason = _train_nninv(self.model, E, (X - self.lo) / self.span, self.epochs, NNINV_MAX_SECONDS)
                self.note = (f"{done} of {self.epochs} epochs ({reason}; its fit's early_stop and patience are not "
                             "used by its code), batch 128, targets min-max scaled on the training rows")
            elif self.name == "ILAMP":
                self.model = ip.ILAMP()
                self.model.fit(E, X)
                self.note = f"k = {self.model.k}"
            else:
                rows = np.arange(len(E))
                if len(E) > RBF_MAX_ROWS:
                    rows = np.sort(np.random.default_rng(SEED).choice(len(E), RBF_MAX_ROWS, replace=False))
                self.model = ip.RBFinv()
                self.model.fit(E[rows], X[rows])
                self.note = (f"multiquadric, c = 0; {len(rows):,} training rows"
                             + (f" (capped from {len(E):,})" if len(rows) < len(E) else ""))
        return self

    def __call__(self, xy):
        with _quiet():
            out = self.model.transform(np.asarray(xy, np.float64))
        out = np.asarray(out, np.float64)
        if self.name == "NNinv":
            out = out * self.span + self.lo
        return out.astype(np.float32)


# ---- one dataset ---------------------------------------------------------------------------------------------------

def _dataset(name: str, layer: str | None, quick: bool):
    """``(title, activations (n, d), labels, decode)`` of a project's layer (None: its default), decoded by the
    model's suffix from that layer."""
    from engine.data.project import load_project
    from engine.model import split
    from engine.propagate import activations

    project = load_project(name)
    layer = layer or project.default_layer
    n = len(project.inputs())
    X = np.asarray(activations(project, layer), dtype=np.float32).reshape(n, -1)
    y = np.asarray(project.labels())
    if quick:  # the digits are sorted by class: a seeded sample of them
        rows = np.sort(np.random.default_rng(SEED).choice(len(X), 600, replace=False))
        X, y = X[rows], y[rows]
    cut = split(project.model(), layer)
    title = f"{project.title.split(' (')[0]} {layer} ({len(X):,} x {X.shape[1]})"
    return title, X, y, lambda z: cut.decode_heads(np.asarray(z, np.float32))[0]


def _fit_ours(kind: str, E, X, reducer, quick: bool):
    from engine.reduce import KNNInverse, MLPInverse, PCAInverse

    if kind == "exact":
        inv = PCAInverse()
    elif kind == "knn":
        inv = KNNInverse()
    else:
        inv = MLPInverse(random_state=SEED, **({"max_epochs": 3, "patience": 2} if quick else {}))
    return inv.fit(E, X, reducer=reducer)


def _measure(inverse, E_test, X_test, common) -> dict:
    """:func:`inverse_metrics` of one map, as a dict (``{"error": ...}`` when the map fails on this projection)."""
    from engine.reduce.metrics import inverse_metrics

    try:
        with _quiet():
            return inverse_metrics(inverse, E_test, X_test, **common).to_dict()
    except Exception as exc:  # a published method that fails here is reported, not fatal
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}


#: (key, label, unit, scale, higher is better): the rows of each projection, in this order.
METRICS = (
    ("relative_mse", "held-out MSE / variance", "x1e-4", 1e4, False),
    ("consistency", "Cons_d (decoded point keeps the sample's probe class)", "per 1,000", 1e3, True),
    ("points_per_s", "inverse of a batch of 2,000 held-out points", "points/s", 1.0, True),
    ("output_relative_mse", "held-out output MSE / variance (after the suffix)", "x1e-4", 1e4, False),
    ("decoded_accuracy", "ACC_M (decoded point gets the true label)", "per 1,000", 1e3, True),
    ("steep_share", "gradient map: cells > 3x median gradient", "per 1,000", 1e3, False),
    ("class_stability", "class stability, 3 round trips", "per 1,000", 1e3, True),
    ("fit_s", "fit on the training pairs", "s", 1.0, False),
)


def _value(result: dict, key: str):
    if "error" in result:
        return None
    if key == "steep_share":
        return result["gradient"]["steep_share"]
    return result.get(key)


def _projection(title, method, X, y, decode, train, test, quick) -> list[Comparison]:
    from engine.explore.probe import Probe
    from engine.reduce import make_reducer

    t0 = time.perf_counter()
    reducer = make_reducer(method, inverse=None, random_state=SEED, cache_dir=None, **PARAMS[method]).fit(X)
    fit_reducer = time.perf_counter() - t0
    E = reducer.embedding_
    E_train, E_test, X_train, X_test = E[train], E[test], X[train], X[test]
    probe = Probe(random_state=SEED).fit(X_train, y[train])
    common = {
        "embedding": E, "variance": float(X.var(axis=0).mean()), "classify": probe.predict, "labels": y[test],
        "decode": decode, "project": reducer.transform, "stability_rows": 200,
        "grid": 40 if quick else 100,
    }
    epochs = NNINV_EPOCHS["quick" if quick else "full"]
    default = "exact" if method == "pca" else "mlp"
    ours_kinds = (default, *(k for k in ("mlp", "knn") if k != default))
    maps, fit_s, notes = {}, {}, {}
    for kind in ours_kinds:
        t = time.perf_counter()
        inv = _fit_ours(kind, E_train, X_train, reducer, quick)
        fit_s[kind] = time.perf_counter() - t
        maps[kind] = inv.transform
        if kind == "mlp":
            notes[kind] = f"{inv.n_epochs_} epochs ({inv.stop_reason_})"
    for name in THEIRS:
        t = time.perf_counter()
        try:
            maps[name] = _Theirs(name, epochs).fit(E_train, X_train)
            notes[name] = maps[name].note
        except Exception as exc:
            maps[name] = None
            notes[name] = f"fit failed: {type(exc).__name__}: {exc}"[:200]
        fit_s[name] = time.perf_counter() - t
    results = {k: (_measure(f, E_test, X_test, common) if f is not None else {"error": notes[k]})
               for k, f in maps.items()}
    for k in results:
        results[k]["fit_s"] = fit_s[k]
    # time per point: a batch of the held-out points (repeated up to TIMED_BATCH: a few points measure the cost of a
    # call, not of a point), ours and each of theirs alternating
    queries = np.tile(E_test, (-(-TIMED_BATCH // len(E_test)), 1))[:max(TIMED_BATCH, len(E_test))]
    repeats = 3 if quick else 7
    speed = {}
    for name in THEIRS:
        if maps.get(name) is None or "error" in results[name]:
            continue
        a, b = alternate(lambda: maps[default](queries), lambda n=name: maps[n](queries), repeats=repeats,
                         per_call=len(queries))
        speed[name] = ([1.0 / s for s in a], [1.0 / s for s in b])
    for kind in ours_kinds[1:]:
        a, _ = alternate(lambda k=kind: maps[k](queries), None, repeats=repeats, per_call=len(queries))
        results[kind]["points_per_s"] = float(np.median([1.0 / s for s in a]))
    if speed:
        results[default]["points_per_s"] = float(np.median([v for pair in speed.values() for v in pair[0]]))
    for name, (_, b) in speed.items():
        results[name]["points_per_s"] = float(np.median(b))

    where = f"{title}, {NAMES[method]}"
    context = {"n_train": len(train), "n_holdout": len(test), "reducer_fit_s": round(fit_reducer, 1),
               "probe_validation_accuracy": round(probe.validation_accuracy_, 4),
               "probe_chance": round(probe.chance_, 4)}
    rows = []
    ours_name = {"exact": "ours: PCA exact inverse", "mlp": "ours: MLPInverse (NNInv-style)"}[default]
    for key, what, unit, scale, higher in METRICS:
        every = {k: _value(r, key) for k, r in results.items()}
        listed = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in every.items()}
        ours_value = every[default]
        for name in THEIRS:
            label = f"{where}: {what}"
            if ours_value is None:
                why = results[default].get("error", "not measured")
                rows.append(Figure(CASE, f"{label}, vs {name}", unit, Side(ours_name), Side(name),
                                   skipped=why, higher=higher))
                continue
            if key == "points_per_s" and name in speed:
                ours_samples, theirs_samples = speed[name]
            else:
                ours_samples = [ours_value * scale]
                theirs_samples = [] if every.get(name) is None else [every[name] * scale]
            theirs_note = notes.get(name, "") if every.get(name) is not None else (
                results.get(name, {}).get("error") or notes.get(name, "") or "not measured")
            target, met = "", None
            if key in ("relative_mse", "consistency") and theirs_samples:
                target = "ours >= theirs" if higher else "ours <= theirs"
                met = bool(ours_samples[0] >= theirs_samples[0]) if higher else bool(ours_samples[0]
                                                                                     <= theirs_samples[0])
            elif key == "points_per_s" and theirs_samples:
                target = ">= 10x theirs"
                met = bool(np.median(ours_samples) >= 10 * np.median(theirs_samples))
            extra = {"all_maps": listed, **({"ours_note": notes[default]} if default in notes else {})}
            if key == "relative_mse" and name == THEIRS[0]:  # the projection's context, once
                extra.update(context)
                extra["notes"] = {k: v for k, v in notes.items() if v}
            rows.append(Figure(CASE, f"{label}, vs {name}", unit, Side(ours_name, ours_samples),
                               Side(name, theirs_samples, note=theirs_note), target=target, met=met, extra=extra,
                               higher=higher))
    return rows


def run(quick: bool) -> list[Comparison]:
    why = published_available()
    datasets = DATASETS[:1] if quick else DATASETS
    if why:
        return [Comparison(CASE, f"{d} {layer or 'default layer'}: ours vs {', '.join(THEIRS)}", "points/s",
                           Side("ours"), skipped=why) for d, layer in datasets]
    results = []
    for name, layer in datasets:
        title, X, y, decode = _dataset(name, layer, quick)
        rng = np.random.default_rng(SEED)
        order = rng.permutation(len(X))
        n_test = int(round(HOLDOUT * len(X)))
        test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
        for method in ("pca",) if quick else ("pca", "umap", "tsne"):
            t0 = time.perf_counter()
            results += _projection(title, method, X, y, decode, train, test, quick)
            print(f"{title}, {NAMES[method]}: {time.perf_counter() - t0:.0f} s", flush=True)
    if quick:
        results.append(Comparison(CASE, "UMAP, t-SNE; MNIST encoder_dense; BasicMotions; MNIST's 10,000 rows",
                                  "points/s", Side("ours"),
                                  skipped=SKIP_QUICK.format("NNinv's 150 epochs on 8,000 rows, t-SNE's fit: minutes")))
    return results
