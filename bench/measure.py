"""Timing, statement counting, profiling and reporting helpers (after the peer script's
QueryCounter and Phase, so both sides are measured the same way)."""

from __future__ import annotations

import cProfile
import gc
import io
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


class QueryCounter:
    """connection.execute_wrapper counting SQL statements and the wall time inside
    cursor.execute. BEGIN/COMMIT issued by transaction management are not cursor.execute
    calls and are not counted; statements run on other threads' connections (the outbox
    wake-up timer) are not counted either."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started


class Phase:
    """Times a block on the default connection: statements, (re)connects, optional cProfile."""

    def __init__(self, name: str, profile: bool = False) -> None:
        self.name = name
        self.profile = profile
        self.queries = QueryCounter()
        self.connects = 0
        self.connect_seconds = 0.0
        self.seconds = 0.0
        self.stats: pstats.Stats | None = None

    def _timed_connect(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self._original_connect(*args, **kwargs)
        finally:
            self.connects += 1
            self.connect_seconds += time.perf_counter() - started

    def __enter__(self) -> Phase:
        from django.db import connection

        self._connection = connection
        self._original_connect = connection.connect
        connection.connect = self._timed_connect
        self._wrapper = connection.execute_wrapper(self.queries)
        self._wrapper.__enter__()
        gc.collect()
        self._profiler = cProfile.Profile() if self.profile else None
        if self._profiler:
            self._profiler.enable()
        self._pipelined = pipelined_outcomes()
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> bool:
        self.seconds = time.perf_counter() - self._started
        if self._profiler:
            self._profiler.disable()
            self.stats = pstats.Stats(self._profiler)
        self._wrapper.__exit__(*exc)
        del self._connection.connect  # back to the class's method
        # Pipelined outcome UPDATEs (django_communication.outcomes) bypass execute wrappers.
        self.queries.count += pipelined_outcomes() - self._pipelined
        return False

    def figures(self, n: int, unit: str) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            f"{unit}_per_s": n / self.seconds if self.seconds else None,
            "queries": self.queries.count,
            "queries_per_item": self.queries.count / n,
            "db_execute_seconds": self.queries.seconds,
            "db_connects": self.connects,
            "db_connect_seconds": self.connect_seconds,
        }


def pipelined_outcomes() -> int:
    try:
        from django_communication.recorder import Recorder
    except ImportError:  # a checkout from before pipelined outcome writes
        return 0
    return Recorder.pipelined


def profile_text(stats: pstats.Stats, title: str, top_cumulative=30, top_own=25) -> str:
    out = io.StringIO()
    stats.stream = out
    out.write(f"==== cProfile of {title}: by cumulative time ====\n")
    stats.sort_stats("cumulative").print_stats(top_cumulative)
    out.write(f"==== cProfile of {title}: by own time ====\n")
    stats.sort_stats("tottime").print_stats(top_own)
    return out.getvalue()


def profile_rows(stats: pstats.Stats, key: str, top: int) -> list[dict[str, Any]]:
    """The top functions as JSON-friendly rows (key: 'cumulative' or 'tottime')."""
    rows = []
    entries = stats.stats  # type: ignore[attr-defined]
    index = 3 if key == "cumulative" else 2
    ordered = sorted(entries.items(), key=lambda item: item[1][index], reverse=True)
    for (filename, line, function), (_cc, ncalls, tottime, cumtime, _callers) in ordered[:top]:
        short = filename
        for marker in ("site-packages/", "/work/main/", "/lib/python3"):
            if marker in short:
                short = short.split(marker, 1)[1]
                break
        rows.append(
            {
                "function": f"{short}:{line}({function})",
                "ncalls": ncalls,
                "tottime": round(tottime, 4),
                "cumtime": round(cumtime, 4),
            }
        )
    return rows


def summary(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def cell(stat: dict[str, float] | None) -> str:
    if not stat:
        return "-"
    return f"{fmt(stat['median'])} [{fmt(stat['min'])}-{fmt(stat['max'])}]"


def table(rows: list[tuple[str, str, dict | None, dict | None]], title: str) -> str:
    """rows: (figure, unit, ours summary, theirs summary) -> aligned text."""
    header = ("figure", "unit", "ours median [min-max]", "post_office median [min-max]", "ours/po")
    lines = [header]
    for figure, unit, ours, theirs in rows:
        ratio = "-"
        if ours and theirs and theirs["median"]:
            ratio = f"{ours['median'] / theirs['median']:.2f}"
        lines.append((figure, unit, cell(ours), cell(theirs), ratio))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    text = [title, "-" * len(title)]
    for number, line in enumerate(lines):
        text.append("  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)))
        if number == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def dist(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def git_revision(repo: Path) -> str | None:
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+uncommitted changes" if dirty else "")


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "executable": sys.executable,
    }
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as handle:
            info["mem_total"] = handle.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return info
