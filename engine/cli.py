"""The ``latent-inspector`` command: the engine's stages from a shell, and the commands other packages add.

``info``, ``doctor``, ``propagate``, ``reduce``, ``render`` and ``bench`` are the engine's. Other packages add
commands through the ``latent_inspector.commands`` entry-point group: the dashboard adds ``serve``
(``dashboard.serve:add_command``), so the engine, which knows no screen, never imports the dashboard; the command
line is where both meet.

Every user error (bad project, file, layer or parameter) prints one line on stderr and exits with status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

from engine.errors import InspectorError, UsageError
from engine.progress import ProgressBars

__all__ = ["COMMANDS_GROUP", "build_parser", "main"]

#: Entry-point group of the commands other packages add (each a function ``add_command(subparsers)``).
COMMANDS_GROUP = "latent_inspector.commands"


def _project(args):
    from engine.data.project import load_project

    return load_project(args.project, root=args.root)


def cmd_info(args) -> int:
    from engine.model import input_specs, list_layers

    project = _project(args)
    print(f"project   {project.name}  ({project.path})")
    if project.title and project.title != project.name:
        print(f"title     {project.title}")
    print(f"model     {project.model_path.name}  sha256:{project.model_hash()}")
    hooks = project.hooks_path
    if hooks is not None:
        from engine.data.project import HOOK_NAMES

        print(f"hooks     {hooks.name}: {', '.join(project.hooks_defined()) or 'none of ' + ', '.join(HOOK_NAMES)}")
    # the data before the model: a bad inputs or labels file is said at once, not after the model's framework is
    # imported (TensorFlow and Keras: 5-6 s of a `latent-inspector info` here, against 0.2 s)
    x = None if project.inputs_path is None else project.inputs()
    y = None if x is None else project.labels()
    model = project.model()
    for name, shape, dtype in input_specs(model):
        print(f"expects   samples of shape {shape} {dtype} (input {name!r})")
    if x is None:
        print("inputs    none: add the data as x.npy, one sample per row in the shape above")
    else:
        print(f"inputs    {project.inputs_path.name}{f' [{project.inputs_key}]' if project.inputs_key else ''}  "
              f"{x.shape} {x.dtype}")
        if y is None:
            print("labels    none")
        else:
            names = project.label_names()
            print(f"labels    {len(y):,} in {len(names)} classes: {', '.join(names)}")
    for note in project.inferred:
        print(f"inferred  {note}")
    print(f"views     input: {project.input_view.describe()}")
    heads = project.output_views()
    for name, view in heads.items():
        print(f"          output{f' {name!r}' if len(heads) > 1 else ''}: {view.describe()}")
    for warning in project.warnings:
        print(f"warning   {warning}")
    print()
    layers = list_layers(model)
    chosen = project.default_layer or project.inferred_layer()
    if project.default_layer is None:
        print(f"inferred  layer: {chosen} (the valid cut with the fewest units; set default_layer in project.toml)")
    width = max(len(info.name) for info in layers)
    print(f"{'layer':<{width}}  {'type':<20} {'output shape':<20} cut")
    for info in layers:
        mark = "yes" if info.valid_cut else f"no: {info.reason}"
        default = "  (default)" if info.name == chosen else ""
        print(f"{info.name:<{width}}  {info.class_name:<20} {str(info.output_shape):<20} {mark}{default}")
    if any(not info.valid_cut for info in layers):
        print("\nA cut must be a layer that every path from the inputs to the outputs passes through: a layer of a "
              "chain, the Add/Concatenate that closes a block, or the boundary between nested models.")
    return 0


def cmd_doctor(args) -> int:
    from engine.data.checkup import check_project

    findings = check_project(_project(args))
    marks = {"ok": "ok  ", "info": "info", "warning": "WARN", "error": "FAIL"}
    for f in findings:
        print(f"{marks[f.level]}  {f.topic:<7} {f.text}")
    errors = sum(f.level == "error" for f in findings)
    warnings = sum(f.level == "warning" for f in findings)
    print(f"\n{errors} error(s), {warnings} warning(s)")
    return 2 if errors else 0


def cmd_propagate(args) -> int:
    from engine.model import split
    from engine.propagate import activations, cache_path, propagate

    project = _project(args)
    layer = project.choose_layer(args.layer)
    if args.dask:
        return _propagate_on_dask(args, project, layer)
    for flag, value in (("--output", args.output), ("--inputs", args.inputs), ("--input-chunks", args.input_chunks),
                        ("--inputs-key", args.inputs_key), ("--worker-memory", args.worker_memory)):
        if value is not None:
            raise UsageError(f"{flag} applies to a Dask run; add --dask local[:N] or --dask tcp://HOST:PORT")
    path = cache_path(project, layer, args.cache_dir)
    hit = path.is_file()
    if not hit:  # load, split and compile first, so the figure below is propagation alone
        t0 = time.perf_counter()
        # the same path as the whole run (reshape to the model's input, the project's preprocess), on one row
        propagate(split(project.model(), layer), project.inputs()[:1], preprocess=project.preprocess())
        print(f"loaded and compiled in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    t0 = time.perf_counter()
    z = activations(project, layer, cache_dir=args.cache_dir, progress=ProgressBars())
    dt = time.perf_counter() - t0
    how = "read from cache" if hit else f"{len(z) / dt:,.0f} rows/s"
    print(f"{layer}: {z.shape} float32 in {dt:.2f} s ({how})")
    print(f"cached at {path}")
    return 0


def _propagate_on_dask(args, project, layer) -> int:
    """``propagate --dask``: chunks of the inputs on the workers of a Dask cluster, activations into a Zarr store."""
    from engine.backends.cluster import connect, describe
    from engine.propagate import activations

    with connect(args.dask, memory_limit=args.worker_memory or "auto") as client:
        print(f"dask {describe(client)}", file=sys.stderr)
        stored = activations(project, layer, client=client, out=args.output, inputs=args.inputs,
                             inputs_key=args.inputs_key, chunk_rows=args.input_chunks, cache_dir=args.cache_dir,
                             progress=ProgressBars())
    n_chunks = len(stored.bounds())
    if not stored.cache_hit:
        print(f"loaded and compiled on the workers in {stored.load_seconds:.2f} s", file=sys.stderr)
    how = "read from store" if stored.cache_hit else f"{stored.shape[0] / stored.seconds:,.0f} rows/s"
    print(f"{layer}: {stored.shape} float32 in {n_chunks} chunks, {stored.seconds:.2f} s ({how})")
    print(f"zarr store at {stored.path}")
    return 0


def _inspection(args, client=None):
    """The inspection ``reduce`` and ``render`` ask for. With a Dask ``client`` (``--dask``), the activations are
    the layer's Zarr store, read from the cache or propagated on the cluster, and the reducer fits and embeds chunk
    by chunk on its workers."""
    from engine.explore.inspection import Inspection

    project = _project(args)
    params = {}
    for item in args.param or ():
        name, _, value = item.partition("=")
        if not value:
            raise UsageError(f"--param {item!r}: expected NAME=VALUE, such as n_neighbors=15")
        params[name] = _number(value)
    stored = None
    if client is not None:
        from engine.propagate import activations

        layer = project.choose_layer(args.layer)
        stored = activations(project, layer, client=client, cache_dir=args.cache_dir, progress=ProgressBars())
        how = "read from store" if stored.cache_hit else f"propagated in {stored.seconds:.2f} s"
        print(f"{layer}: {stored.shape} float32 in {len(stored.bounds())} chunks ({how}) at {stored.path}",
              file=sys.stderr)
    return Inspection(project, args.layer, method=args.method, inverse=args.inverse, params=params,
                      seed=args.seed, cache_dir=args.cache_dir, progress=ProgressBars(), activations=stored)


@contextlib.contextmanager
def _cluster(args):
    """The Dask client of ``--dask ADDRESS`` for the command's duration, or None without it."""
    if not getattr(args, "dask", None):
        yield None
        return
    from engine.backends.cluster import connect, describe

    with connect(args.dask) as client:
        print(f"dask {describe(client)}", file=sys.stderr)
        yield client


def _number(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _output(args, insp, suffix: str) -> Path:
    """Where ``reduce``/``render`` write: ``--output``, else ``exports/PROJECT-LAYER-METHOD`` in the cache folder;
    an existing file is kept unless ``--force``."""
    from engine.settings import cache_dir

    if args.output:
        out = Path(args.output)
    else:
        folder = Path(args.cache_dir) if args.cache_dir else cache_dir()
        out = folder / "exports" / f"{insp.project.name}-{insp.layer}-{insp.method}{suffix}"
        out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to overwrite it, or -o PATH to write elsewhere")
    return out


def cmd_reduce(args) -> int:
    with _cluster(args) as client:
        insp = _inspection(args, client)
        print(insp.quality.to_text() if hasattr(insp.quality, "to_text") else insp.quality)
    out = _output(args, insp, ".npz")
    from engine.data.formats import write_array

    arrays = {"embedding": insp.embedding}
    if insp.labels is not None:
        arrays["labels"] = insp.labels
    write_array(out, arrays)
    print(f"embedding {insp.embedding.shape} written to {out}")
    return 0


def cmd_render(args) -> int:
    from engine.render import write_png
    from engine.render.samples import to_image

    with _cluster(args) as client:
        insp = _inspection(args, client)
    head = insp.heads[insp.head_index(args.head)]
    view = insp.project.output_views()[head]

    def decode_fn(xy):
        return insp.decode_batch(xy, head)[1]

    underlay = None
    if args.map:
        from engine.explore.landscape import cells_for
        from engine.render.landscape import to_rgba

        def underlay(x_range, y_range, size):
            m = insp.landscape(args.map, x_range, y_range, cells=cells_for(size, size), head=head)
            import numpy as np

            return np.flipud(to_rgba(m).view(np.uint8).reshape(*m.shape, 4))

    path = write_png(
        _output(args, insp, ".png"), insp.embedding, insp.labels, class_names=insp.project.label_names(),
        decode_fn=decode_fn, draw_fn=lambda out: to_image(out, view, size=args.tile), grid=args.grid,
        tile=args.tile, title=f"{insp.project.title or insp.project.name}: {insp.layer}, {insp.method}"
        + (f", output {head!r}" if len(insp.heads) > 1 else "") + (f", {args.map} map" if args.map else ""),
        underlay=underlay,
    )
    print(f"written {path}")
    return 0


def _move(text: str):
    """``--move IDS@X,Y``: sample ids joined by commas (ranges as ``10-19``), then where their centroid goes."""
    from engine.explore.refine import Move

    ids_text, at, to_text = text.partition("@")
    if not at:
        raise UsageError(f"--move {text!r}: no destination; add '@X,Y', such as --move {ids_text}@1.5,-0.3")
    try:
        ids = [i for part in ids_text.split(",") if part.strip()
               for i in (range(int(part.split("-")[0]), int(part.split("-")[1]) + 1) if "-" in part.strip("-")
                         else [int(part)])]
        x, y = (float(v) for v in to_text.split(","))
    except ValueError:
        raise UsageError(f"--move {text!r}: expected sample ids, '@' and the destination, such as "
                         "--move 3,17,40-49@1.5,-0.3") from None
    return Move(tuple(ids), (x, y))


def cmd_refine(args) -> int:
    from engine.explore.inspection import Inspection
    from engine.explore.refine import Move, load_moves, refine, undo_refinement

    project = _project(args)
    if args.undo:
        parent = undo_refinement(project, project.with_model(args.undo).model_path)
        print(f"dropped {args.undo}; back to {parent.relative_to(project.path)}")
        return 0
    hyper, layer, method, inverse, params, seed = {}, args.layer, args.method, args.inverse, {}, args.seed
    moves = [_move(m) for m in args.move or ()]
    if args.replay:
        record = load_moves(project.with_model(args.replay).model_path)
        project = project.with_model(record["parent"])
        layer, reducer = record["layer"], record["reducer"]
        method, inverse, params, seed = reducer["method"], reducer["inverse"], reducer["params"], record["seed"]
        moves = [Move(tuple(m["ids"]), tuple(m["to"])) for m in record["moves"]]
        hyper = dict(record["hyper"])
    elif args.model:
        project = project.with_model(args.model)
    if not moves:
        raise UsageError("refine: give at least one --move IDS@X,Y, or --replay VERSION to redo a refinement")
    for name in ("steps", "learning_rate", "last_layers"):
        if getattr(args, name) is not None:
            hyper[name] = getattr(args, name)
    insp = Inspection(project, layer, method=method, inverse=inverse, params=params, seed=seed,
                      cache_dir=args.cache_dir, progress=ProgressBars())
    result = refine(insp, moves, seed=seed, progress=ProgressBars(), **hyper)
    print(f"written {result.path.relative_to(project.path)} (moves in {result.sidecar.name}) in {result.seconds:.1f} s")
    print(f"moved     {len(result.moved):,} samples: map distance to where they were dragged "
          f"{result.moved_gap_before:.3g} -> {result.moved_gap_after:.3g}")
    print(f"unmoved   mean drift {result.map_drift:.3g} on the map, {result.layer_drift:.3g} in layer {result.layer!r}")
    return 0


def cmd_bench(args) -> int:
    import subprocess

    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / "benchmarks" / "__main__.py").is_file():
        raise UsageError(f"the benchmarks are not in this installation ({checkout}); run from a checkout of "
                             "latent-inspector installed with pip install -e .")
    argv = [sys.executable, "-m", "benchmarks"] + (["--quick"] if args.quick else [])
    argv += ["--only", *args.only] if args.only else []
    argv += ["--results", str(Path(args.results).resolve())] if args.results else []  # the run's cwd is the checkout
    return subprocess.call(argv, cwd=checkout)


def build_parser() -> argparse.ArgumentParser:
    """The command line: the engine's commands, and those of the ``latent_inspector.commands`` entry points."""
    from engine.reduce.names import INVERSES, METHODS

    parser = argparse.ArgumentParser(
        prog="latent-inspector",
        description="Inspect what a trained network does inside: split it at a layer, map the layer's "
        "activations to 2-D, decode any point.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--root", default=None, help="projects root (default: ./projects or LATENT_INSPECTOR_PROJECTS)")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: .cache or LATENT_INSPECTOR_CACHE)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="list the project's layers, their shapes and which are valid cuts")
    p.add_argument("project")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("doctor", help="check a project in seconds: the model loads, the data fits, one batch runs; "
                       "what was inferred and what to fix")
    p.add_argument("project")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("propagate", help="propagate the dataset to a layer and cache the activations")
    p.add_argument("project")
    p.add_argument("--layer", help="layer (default: default_layer, else the one `info` infers)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run on Dask: local[:N] (N worker processes here), tcp://HOST:PORT (a running scheduler) or "
                   "cuda[:N] (one worker per GPU); activations go to a Zarr store")
    p.add_argument("--input-chunks", type=int, metavar="ROWS",
                   help="with --dask: rows per chunk (default: about 64 MiB of input per chunk)")
    p.add_argument("--inputs", metavar="PATH",
                   help="with --dask: propagate this .npy, .h5 or Zarr store instead of the project's inputs")
    p.add_argument("--inputs-key", metavar="NAME", help="with --inputs: the HDF5 dataset or Zarr array in it")
    p.add_argument("-o", "--output", metavar="PATH.zarr",
                   help="with --dask: where to write the Zarr store (default: in the cache folder)")
    p.add_argument("--worker-memory", metavar="SIZE",
                   help="with --dask local: memory limit per worker, e.g. 2GiB (default: memory / workers)")
    p.set_defaults(func=cmd_propagate)

    def projection_args(p):
        p.add_argument("project")
        p.add_argument("--layer", help="layer (default: default_layer, else the one `info` infers)")
        p.add_argument("--method", choices=tuple(METHODS), default="pca")
        p.add_argument("--inverse", choices=tuple(INVERSES), default="auto",
                       help="inverse map (auto: exact for PCA, the learned MLP otherwise)")
        p.add_argument("--param", action="append", metavar="NAME=VALUE",
                       help="reducer parameter, e.g. n_neighbors=30 or perplexity=50 (repeatable)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--dask", metavar="ADDRESS",
                       help="read the layer's activations from its Zarr store (or propagate them there) and fit and "
                       "embed chunk by chunk on Dask: local[:N], tcp://HOST:PORT or cuda[:N], as for propagate")

    p = sub.add_parser("reduce", help="fit (or read from cache) a 2-D projection and its inverse; print its quality")
    projection_args(p)
    p.add_argument("-o", "--output", help="where to write the embedding (.npz; default: exports/ in the cache folder)")
    p.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    p.set_defaults(func=cmd_reduce)

    p = sub.add_parser("render", help="PNG of the latent space coloured by label, with a grid of decodes")
    projection_args(p)
    p.add_argument("-o", "--output", help="where to write the PNG (default: exports/ in the cache folder)")
    p.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    p.add_argument("--grid", type=int, default=6, help="decodes on a GRID x GRID lattice")
    p.add_argument("--tile", type=int, default=64, help="size of each decode tile in pixels")
    p.add_argument("--head", metavar="OUTPUT", help="for a model with several outputs: the output to draw (default: "
                   "the first; `info` lists them)")
    p.add_argument("--map", choices=["decision", "uncertainty", "error", "distance", "gradient", "atlas"],
                   help="a map layer under the points: the class of every decoded cell, the prediction's entropy, "
                   "the inverse map's estimated error, the distance to the data, its gradient, or decoded outputs")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("refine", help="move samples on the map and fine-tune the layers before the cut to agree: a "
                       "new model version beside a record of the moves")
    p.add_argument("project")
    p.add_argument("--layer", help="layer (default: default_layer, else the one `info` infers)")
    p.add_argument("--method", choices=tuple(METHODS), default="pca")
    p.add_argument("--inverse", choices=tuple(INVERSES), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--move", action="append", metavar="IDS@X,Y",
                   help="samples (ids by commas, ranges as 10-19) whose centroid goes to X,Y (repeatable)")
    p.add_argument("--model", metavar="VERSION", help="start from this model version (default: the project's model)")
    p.add_argument("--steps", type=int, help="training steps (default 100)")
    p.add_argument("--learning-rate", type=float, help="Adam's learning rate (default 1e-3)")
    p.add_argument("--last-layers", type=int, metavar="K", help="train only the last K layers before the cut")
    p.add_argument("--replay", metavar="VERSION", help="redo the refinement that made VERSION, from its record")
    p.add_argument("--undo", metavar="VERSION", help="drop the refinement VERSION (its file and record)")
    p.set_defaults(func=cmd_refine)

    p = sub.add_parser("bench", help="run the benchmarks (python -m benchmarks): a table, JSON and Markdown reports")
    p.add_argument("--quick", action="store_true", help="small sizes: every case in about two minutes")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these cases (python -m benchmarks --help)")
    p.add_argument("--results", metavar="DIR", help="where the reports go (default benchmarks/results)")
    p.set_defaults(func=cmd_bench)

    for command in entry_points(group=COMMANDS_GROUP):  # the commands other packages add (the dashboard's serve)
        command.load()(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InspectorError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
