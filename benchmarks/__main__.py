"""``python -m benchmarks [--quick] [--only NAME ...] [--results DIR]``: run the cases, print a table, write JSON and
Markdown (also ``latent-inspector bench``)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".cache" / "numba"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.cases import CASES  # noqa: E402
from benchmarks.harness import RESULTS, machine, table, write_report  # noqa: E402

#: Cases of full runs and ``--only`` that a ``--quick`` run leaves out: "load" (20 browser sessions tapping 50 times
#: each against one server, benchmarks.load) takes minutes at any size that means something; "scale" (100M rows
#: through a Dask cluster against 10M in one process, benchmarks.scale) 4-6 minutes and 10 GB of temporary disk;
#: "refine" (rounds of drags on a confused MNIST classifier trained first, benchmarks.confused) 2-3 minutes.
FULL_ONLY = ("load", "scale", "refine")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: every case in about four minutes")
    parser.add_argument("--only", nargs="+", choices=CASES + FULL_ONLY, metavar="NAME",
                        help=f"run only these cases ({', '.join(CASES + FULL_ONLY)})")
    parser.add_argument("--results", type=Path, default=RESULTS, metavar="DIR",
                        help="where the JSON and Markdown reports go (default benchmarks/results)")
    args = parser.parse_args(argv)
    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {'a GPU' if info['gpu'] else 'no GPU'}; "
          f"load average {info['load_avg_start']}{' (quick)' if args.quick else ''}", flush=True)
    results, failed = [], []
    t_all = time.perf_counter()
    for name in args.only or (CASES if args.quick else CASES + FULL_ONLY):
        module = importlib.import_module(f"benchmarks.cases.{name}")
        print(f"== {name}: {module.__doc__.strip().splitlines()[0]}", flush=True)
        t0 = time.perf_counter()
        try:
            got = module.run(quick=args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        results.extend(got)
        if any(c.skipped.startswith("failed:") for c in got):  # a comparison that raised, the others kept
            failed.append(name)
        print(table(got), f"\n({time.perf_counter() - t0:.0f} s)\n", flush=True)
    if results:
        json_path, md_path = write_report(results, info, args.quick, args.results)
        print(table(results))
        print(f"\n{time.perf_counter() - t_all:.0f} s in all; written {json_path} and {md_path}")
    if failed:
        print(f"failed cases: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
