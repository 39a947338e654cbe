"""What every benchmark prints with its figures: machine, commit and command."""

from __future__ import annotations

import cProfile
import io
import os
import platform
import pstats
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def header() -> str:
    """One line: cores, commit, Python, and the exact command."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = "unknown"
    script = Path(sys.argv[0])
    if script.suffix == ".py" and ROOT in script.resolve().parents:
        module = ".".join(script.resolve().relative_to(ROOT).with_suffix("").parts)
        command = " ".join([".venv/bin/python", "-m", module, *sys.argv[1:]])
    else:
        command = " ".join(sys.argv)
    return f"cores={os.cpu_count()} commit={commit or 'unknown'} python={platform.python_version()} command=`{command}`"


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def print_profile(profiler: cProfile.Profile, top: int) -> None:
    """A cProfile's ``top`` functions by cumulative and by own time."""
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue())
