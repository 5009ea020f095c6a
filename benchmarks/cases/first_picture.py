"""Time to a first picture of UMAP and t-SNE on MNIST 10k (issue 17): the staged plan against today's one Inspection.

Every figure is one fresh Python process (``python -m benchmarks.cases.first_picture measure ...``), timed from its
start: the interpreter's start, the imports, loading the model, propagating, reducing, as a user's first request in a
new server. Each process gets an empty cache folder (``LATENT_INSPECTOR_CACHE``: no activations, no projections) and

* a **cold** numba cache: an empty ``NUMBA_CACHE_DIR`` (a first run on a new machine: everything compiled), or
* a **warm** one: the project's ``.cache/numba`` after :func:`engine.reduce.warm_up` ran once in another process
  (what a user has after a setup that warms it).

Paths, in the same run, alternating:

* **staged** (ours, :func:`engine.explore.stages.stages`): the first stage's Inspection (default neighbourhood size,
  k-NN inverse); for t-SNE the first picture is its first layout snapshot (25 iterations); then the refined stage
  (self-tuned, learned inverse: it reads the first stage's model when the tuning keeps the default) and its quality
  report;
* **today**: one ``Inspection(project, "bottleneck", method=...)`` (self-tuned, learned inverse), then ``.quality``.

Also: the staged first picture in a process that ran :func:`engine.reduce.warm_up` before the request (a server that
warmed up at start), timed from the request; and UMAP's fit of the 10,000 rows in a fresh process with the exact
neighbours against NN-descent, with the trustworthiness of both. ``--quick``: 2,000 MNIST rows, UMAP, warm cache, the
staged first picture only.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()  # the measuring child's clock starts here, before its heavy imports

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks.harness import Comparison, Side  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NUMBA_CACHE = REPO / ".cache" / "numba"
LABELS = {"umap": "UMAP", "tsne": "t-SNE"}
TARGET = 30.0  # seconds to a first picture


# ---- the measuring child -------------------------------------------------------------------------------------------

def _measure(path: str, method: str, root: str, warm: bool) -> dict:
    """One request in this fresh process; seconds since its start (or since the request, after a warm-up)."""
    events, stages_seen = {}, {}
    start = _T0
    if warm:
        from engine.reduce import warm_up

        t = time.perf_counter()
        events["warm_up_steps"] = warm_up(method)
        events["warm_up"] = time.perf_counter() - t
        start = time.perf_counter()

    def now():
        return round(time.perf_counter() - start, 3)

    def progress(stage, done, total):
        stages_seen.setdefault(stage, now())

    def snapshot(embedding, fit_index, done, total):
        events.setdefault("first_snapshot", now())
        events.setdefault("first_snapshot_rows", len(fit_index))

    from engine.data.project import load_project
    from engine.explore.inspection import Inspection
    from engine.explore.stages import stages

    project = load_project("mnist", root=root)
    if path == "staged":
        plan = stages(method, "auto", {})
        first = Inspection(project, "bottleneck", method=method, inverse=plan[0].inverse, params=plan[0].params,
                           progress=progress, snapshot=snapshot)
        events["first_picture"] = now()
        events["first_words"] = plan[0].words
        if len(plan) > 1 and not os.environ.get("FIRST_PICTURE_ONLY"):
            refined = Inspection(project, "bottleneck", method=method, inverse=plan[1].inverse,
                                 params=plan[1].params, progress=progress)
            events["refined_picture"] = now()
            refined.quality  # noqa: B018
            events["refined"] = now()
            events["model_source"] = refined.reducer.model_source_
            events["tuning"] = refined.reducer.tuning_.to_text() if refined.reducer.tuning_ else ""
            events["same_map"] = bool((refined.embedding == first.embedding).all())
    else:
        today = Inspection(project, "bottleneck", method=method, progress=progress)
        events["first_picture"] = now()
        today.quality  # noqa: B018
        events["refined"] = now()
        events["tuning"] = today.reducer.tuning_.to_text() if today.reducer.tuning_ else ""
    events["stages_started"] = stages_seen
    return events


def _fit(method: str, root: str, exact: bool) -> dict:
    """UMAP's import and fit of the MNIST bottleneck in this fresh process (after the model is loaded, as in an
    Inspection), exact neighbours or NN-descent, and the map's trustworthiness."""
    import numpy as np
    from sklearn.manifold import trustworthiness

    from engine.data.project import load_project
    from engine.propagate import activations

    project = load_project("mnist", root=root)
    X = np.asarray(activations(project, "bottleneck")).reshape(len(project.inputs()), -1)
    t = time.perf_counter()
    import engine.reduce.umap_ as umap_module
    from engine.reduce import make_reducer

    umap_module.import_umap()
    imported = time.perf_counter() - t
    if not exact:
        umap_module.EXACT_KNN_WORK = 0.0
    reducer = make_reducer(method, n_neighbors=15, inverse=None, random_state=0).fit(X)
    fit_s = time.perf_counter() - t - imported
    rows = np.random.default_rng(0).choice(len(X), 5_000, replace=False)
    return {"import": imported, "fit": fit_s,
            "trustworthiness": float(trustworthiness(X[rows], reducer.embedding_[rows], n_neighbors=10))}


def main(argv) -> int:
    what, *rest = argv
    if what == "measure":
        path, method, root, warm = rest
        out = _measure(path, method, root, warm == "warmed")
    elif what == "fit":
        method, root, how = rest
        out = _fit(method, root, exact=how == "exact")
    else:  # "warmup": fill the numba cache
        from engine.reduce import warm_up

        out = {m: warm_up(m) for m in rest}
    out["child_started_at"] = time.time() - (time.perf_counter() - _T0)
    print(json.dumps(out, default=str))
    return 0


# ---- the parent: one fresh process per figure -----------------------------------------------------------------------

def _child(args: list, numba_cache: Path, cache: Path, env: dict | None = None, timeout: float = 1800) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache), LATENT_INSPECTOR_CACHE=str(cache),
               TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    spawned = time.time()
    done = subprocess.run([sys.executable, "-m", "benchmarks.cases.first_picture", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"first_picture {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["startup"] = round(out["child_started_at"] - spawned, 3)  # interpreter start, before the child's clock
    out["process"] = round(time.time() - spawned, 3)
    return out


def _small_root(tmp: Path, rows: int) -> Path:
    """A projects root holding ``mnist`` cut to its first ``rows`` digits (the same model)."""
    import numpy as np

    src = REPO / "projects" / "mnist"
    dst = tmp / "projects" / "mnist"
    dst.mkdir(parents=True)
    shutil.copy(src / "autoencoder.h5", dst)
    shutil.copy(src / "project.toml", dst)
    with np.load(src / "digits.npz") as d:
        np.savez(dst / "digits.npz", x=d["x"][:rows], y=d["y"][:rows])
    return dst.parent


def _since_spawn(out: dict, key: str) -> float | None:
    return None if key not in out else out[key] + (0.0 if "warm_up" in out else out["startup"])


def _picture_rows(method, condition, staged, today) -> list[Comparison]:
    label = LABELS[method]
    first_key = "first_snapshot" if method == "tsne" else "first_picture"
    first = _since_spawn(staged, first_key)
    extra = {"staged_first_stage_ready_s": _since_spawn(staged, "first_picture"),
             "first_stage": staged.get("first_words"), "stages_started_s": staged.get("stages_started"),
             "today_stages_started_s": today.get("stages_started"), "startup_s": staged.get("startup")}
    if method == "tsne":
        extra["first_snapshot_rows"] = staged.get("first_snapshot_rows")
    rows = [Comparison(
        "first picture", f"{label}, MNIST 10k, {condition}: first picture (fresh process)", "s",
        Side("staged: first stage" + (" (first snapshot)" if method == "tsne" else ""), [first]),
        Side("today: one Inspection, self-tuned, MLP inverse", [_since_spawn(today, "first_picture")]),
        target=f"< {TARGET:g} s", met=first < TARGET, extra=extra)]
    rows.append(Comparison(
        "first picture", f"{label}, MNIST 10k, {condition}: refined, quality report included", "s",
        Side("staged: refined stage", [_since_spawn(staged, "refined")]),
        Side("today: Inspection + .quality", [_since_spawn(today, "refined")]),
        extra={"refined_model_source": staged.get("model_source"), "refined_same_map": staged.get("same_map"),
               "refined_tuning": staged.get("tuning"), "today_tuning": today.get("tuning"),
               "refined_picture_s": _since_spawn(staged, "refined_picture")}))
    return rows


def _quick() -> list[Comparison]:
    with tempfile.TemporaryDirectory(prefix="bench-first-picture-") as tmp:
        tmp = Path(tmp)
        root = _small_root(tmp, 2_000)
        staged = _child(["measure", "staged", "umap", str(root), "fresh"], NUMBA_CACHE, tmp / "cache",
                        env={"FIRST_PICTURE_ONLY": "1"})
    first = _since_spawn(staged, "first_picture")
    return [
        Comparison("first picture", "UMAP, 2,000 MNIST rows, the project's numba cache: first picture (fresh "
                   "process)", "s",
                   Side("staged: first stage", [first]), extra={"first_stage": staged.get("first_words"),
                                                                 "stages_started_s": staged.get("stages_started"),
                                                                 "startup_s": staged.get("startup")}),
        Comparison("first picture", "refined stage and today's path", "s", Side("staged"),
                   skipped="--quick (both train the learned inverse map: 20-60 s each)"),
    ]


def run(quick: bool) -> list[Comparison]:
    if quick:
        return _quick()
    root = str(REPO / "projects")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-first-picture-") as tmp:
        tmp = Path(tmp)
        filled = _child(["warmup", "umap", "tsne"], NUMBA_CACHE, tmp / "warmup-cache")
        print(f"numba cache filled ({filled.get('process')} s)", flush=True)
        for method in ("umap", "tsne"):
            measured = {}
            for condition, numba in (("cold caches", None), ("warm numba cache", NUMBA_CACHE)):
                order = ("staged", "today") if method == "umap" else ("today", "staged")  # alternate which is first
                for path in order:
                    folder = tmp / f"{method}-{path}-{condition.split()[0]}"
                    out = _child(["measure", path if path == "staged" else "sequential", method, root, "fresh"],
                                 numba or folder / "numba", folder / "cache")
                    print(f"{method} {path} {condition}: {json.dumps(out)}", flush=True)
                    measured[condition, path] = out
                results += _picture_rows(method, condition, measured[condition, "staged"],
                                         measured[condition, "today"])
            folder = tmp / f"{method}-warmed"
            warmed = _child(["measure", "staged", method, root, "warmed"], NUMBA_CACHE, folder / "cache",
                            env={"FIRST_PICTURE_ONLY": "1"})
            print(f"{method} staged after warm_up: {json.dumps(warmed)}", flush=True)
            first_key = "first_snapshot" if method == "tsne" else "first_picture"
            results.append(Comparison(
                "first picture", f"{LABELS[method]}, MNIST 10k, warm numba cache: first picture after the request",
                "s", Side("process warmed by warm_up() first", [warmed[first_key]]),
                Side("fresh process, no warm-up", [_since_spawn(measured["warm numba cache", "staged"], first_key)]),
                target=f"< {TARGET:g} s", met=warmed[first_key] < TARGET,
                extra={"warm_up_s": round(warmed["warm_up"], 1), "warm_up_steps": warmed["warm_up_steps"],
                       "warmed_then_since_start_s": round(warmed["warm_up"] + warmed["startup"]
                                                           + warmed[first_key], 1)}))
        exact = _child(["fit", "umap", root, "exact"], NUMBA_CACHE, tmp / "fit-exact")
        nnd = _child(["fit", "umap", root, "nndescent"], NUMBA_CACHE, tmp / "fit-nnd")
        results.append(Comparison(
            "first picture", "UMAP import + fit of MNIST 10k in a fresh process (model loaded), warm numba cache",
            "s", Side("exact k-NN (scikit-learn)", [exact["import"] + exact["fit"]]),
            Side("NN-descent (pynndescent)", [nnd["import"] + nnd["fit"]]),
            extra={"exact_fit_s": round(exact["fit"], 1), "nndescent_fit_s": round(nnd["fit"], 1),
                   "import_s": [round(exact["import"], 1), round(nnd["import"], 1)],
                   "exact_trustworthiness": round(exact["trustworthiness"], 4),
                   "nndescent_trustworthiness": round(nnd["trustworthiness"], 4)}))
    return results


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
