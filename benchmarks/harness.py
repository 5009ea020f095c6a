"""Measure our path against its baseline in the same run: alternating, after a warm-up; median, p95 and ratio.

A case is a function ``case(quick: bool) -> Iterable[Comparison]``. Each :class:`Comparison` holds the samples of
both sides, so the report can show every figure next to its baseline and the JSON keeps every sample. A comparison
that cannot run here (a GPU case without a GPU, a browser case without Chromium) is reported with ``skipped`` set
to the reason, never with a made-up figure.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Side:
    name: str
    samples: list[float] = field(default_factory=list)  # seconds per call, or a rate when unit is a rate
    note: str = ""

    @property
    def median(self) -> float:
        return float(np.median(self.samples)) if self.samples else float("nan")

    @property
    def p95(self) -> float:
        return float(np.percentile(self.samples, 95)) if self.samples else float("nan")


@dataclass
class Comparison:
    case: str
    label: str  # what was measured, e.g. "10,000 rows"
    unit: str  # "ms" (lower is better) or "rows/s" (higher is better)
    ours: Side
    baseline: Side | None = None
    target: str = ""  # e.g. "< 5 ms p95"
    met: bool | None = None
    extra: dict = field(default_factory=dict)  # peak memory and other context
    skipped: str = ""  # why nothing was measured, e.g. "no GPU"

    @property
    def higher_is_better(self) -> bool:
        return self.unit.endswith("/s")

    @property
    def ratio(self) -> float | None:
        """How many times better ours is than the baseline (by median)."""
        if self.baseline is None or not self.baseline.samples or not self.ours.samples:
            return None
        a, b = self.ours.median, self.baseline.median
        return a / b if self.higher_is_better else b / a


def alternate(ours, baseline, *, repeats: int, warmup: int = 1, per_call: int = 1):
    """Time ``ours()`` and ``baseline()`` alternately; return seconds per call for each (after ``warmup`` each).

    ``per_call`` divides each timing (a callable that runs ``per_call`` operations).
    """
    for _ in range(warmup):
        ours()
        if baseline is not None:
            baseline()
    a, b = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours()
        a.append((time.perf_counter() - t0) / per_call)
        if baseline is not None:
            t0 = time.perf_counter()
            baseline()
            b.append((time.perf_counter() - t0) / per_call)
    return a, b


def latencies(fn, args_list, warmup: int = 5) -> list[float]:
    """Seconds for each ``fn(*args)`` call in ``args_list`` (after ``warmup`` calls on the first arguments)."""
    for _ in range(warmup):
        fn(*args_list[0])
    out = []
    for args in args_list:
        t0 = time.perf_counter()
        fn(*args)
        out.append(time.perf_counter() - t0)
    return out


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB since the last :func:`reset_peak_rss`."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    """What the figures were measured on."""
    import importlib.metadata as md

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            mem_gb = int(fh.readline().split()[1]) / 2**20
    except OSError:
        mem_gb = float("nan")
    versions = {}
    for pkg in ("numpy", "tensorflow-cpu", "tensorflow", "keras", "scikit-learn", "umap-learn", "openTSNE",
                "datashader", "holoviews", "panel", "bokeh", "numba", "pandas", "playwright"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gb, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "gpu": gpu_available(),
        "load_avg_start": load_average(),
        "versions": versions,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def load_average() -> float | None:
    """The 1-minute load average (the machine is shared: other work may be running), None where unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def gpu_available() -> bool:
    """True when CuPy sees a CUDA device (the engine's own test)."""
    from engine.backends.cupy import gpu_available

    return gpu_available()


def _fmt(side: Side | None, unit: str) -> tuple[str, str]:
    if side is None or not side.samples:
        return ("-", "-")
    if unit == "ms":  # samples are seconds, shown in milliseconds
        return (f"{side.median * 1e3:,.2f}", f"{side.p95 * 1e3:,.2f}")
    if unit == "s":
        return (f"{side.median:,.2f}", f"{side.p95:,.2f}")
    return (f"{side.median:,.0f}", f"{side.p95:,.0f}")


def table(results: list[Comparison]) -> str:
    """A Markdown table: every figure beside its baseline, with the ratio and the target."""
    head = "| case | measured | ours | median | p95 | baseline | median | p95 | ours is | target |"
    rows = [head, "|" + " --- |" * 10]
    for r in results:
        om, op = _fmt(r.ours, r.unit)
        bm, bp = _fmt(r.baseline, r.unit)
        if r.skipped:
            om, op, bm, bp = f"skipped: {r.skipped}", "-", "-", "-"
        ratio = f"{r.ratio:,.1f}x better" if r.ratio is not None else ""
        if r.ratio is not None and r.ratio < 1:
            ratio = f"{1 / r.ratio:,.1f}x worse" if r.ratio > 0 else "worse (ours 0)"
        target = r.target + ("" if r.met is None else (" (met)" if r.met else " (NOT met)"))
        base_name = r.baseline.name if r.baseline else ""
        rows.append(
            f"| {r.case} | {r.label} [{r.unit}] | {r.ours.name} | {om} | {op} | {base_name} | {bm} | {bp} | {ratio} "
            f"| {target} |"
        )
    return "\n".join(rows)


def targets(results: list[Comparison]) -> str:
    """One line per target: met or not, with the figure it was judged on."""
    lines = []
    for r in results:
        if not r.target:
            continue
        verdict = "skipped: " + r.skipped if r.skipped else ("met" if r.met else "NOT met") if r.met is not None else ""
        lines.append(f"- {r.case} / {r.label}: {r.target}: **{verdict}** (median {_fmt(r.ours, r.unit)[0]}, "
                     f"p95 {_fmt(r.ours, r.unit)[1]} {r.unit})")
    return "\n".join(lines)


def write_report(results: list[Comparison], info: dict, quick: bool, results_dir=None) -> tuple[Path, Path]:
    """Write ``<stamp>.json`` (every sample) and ``<stamp>.md`` into ``results_dir`` (default ``results/``); also
    ``latest.md`` (``latest-quick.md`` for a quick run)."""
    results_dir = Path(results_dir) if results_dir is not None else RESULTS
    results_dir.mkdir(parents=True, exist_ok=True)
    info = {**info, "load_avg_end": load_average()}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + ("-quick" if quick else "")
    payload = {"machine": info, "quick": quick, "results": [
        {**asdict(r), "ratio": r.ratio, "ours_median": r.ours.median, "ours_p95": r.ours.p95} for r in results
    ]}
    json_path = results_dir / f"{stamp}.json"
    json_path.write_text(json.dumps(payload, indent=1, default=float))
    cores = info["cores"]
    gpu = "a GPU" if info.get("gpu") else "no GPU"
    md = (
        f"# Benchmarks {'(quick)' if quick else ''}\n\nMachine: {info['cpu']}, {cores} cores, "
        f"{info['memory_gib']} GiB, {gpu}, Python {info['python']}; {info['date']}. Load average "
        f"{info.get('load_avg_start')} at the start, {info.get('load_avg_end')} at the end (a shared machine: other "
        "work may run at the same time, so figures are noisy).\n\n"
        "Our path and its baseline were measured in the same run, alternating, after a warm-up.\n\n"
        + table(results) + "\n"
    )
    verdicts = targets(results)
    if verdicts:
        md += "\nTargets:\n" + verdicts + "\n"
    notes = [f"- {r.case} / {r.label}: {r.ours.note or ''} {r.baseline.note if r.baseline else ''} "
             + " ".join(f"{k}={v}" for k, v in r.extra.items()) for r in results if r.extra or r.ours.note]
    if notes:
        md += "\nNotes:\n" + "\n".join(notes) + "\n"
    md_path = results_dir / f"{stamp}.md"
    md_path.write_text(md)
    (results_dir / ("latest-quick.md" if quick else "latest.md")).write_text(md)
    return json_path, md_path
