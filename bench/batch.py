"""Batch load: msgs/s for a generated file of messages through `cairn load`.

Run: .venv/bin/python -m bench.batch [--messages 100000]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import ROOT, header
from bench.synth import Synth


def run(args: argparse.Namespace) -> list[str]:
    """Generate, load, and return the result lines."""
    lines = [header()]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.hl7"
        synth = Synth(seed=5)
        with path.open("wb") as out:
            out.write(b"FHS|^~\\&|EHR|CLINIC1\rBHS|^~\\&|EHR|CLINIC1\r")
            for sub in synth.traffic(
                args.messages, duplicate_share=0.0, bad_share=0.01
            ):
                out.write(sub.text.encode())
            out.write(f"BTS|{args.messages}\rFTS|1\r".encode())
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "engine.cli",
                "load",
                str(path),
                "--data-dir",
                str(Path(tmp) / "var"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - started
        summary = done.stdout.strip().splitlines()[-1]
        match = re.search(r"\((\d+) msgs/s\)", summary)
        lines.append(
            f"batch load of {args.messages} messages (SQLite, synchronous=FULL): {args.messages / elapsed:.0f} msgs/s wall clock incl. start-up; loader reports {match.group(1) if match else '?'} msgs/s; {summary}"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100000)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
