"""Where a running server's time goes: py-spy on `cairn serve` under ingest load.

Run: .venv/bin/python -m bench.spy [--senders 8] [--messages 4000] [--rate 250]
     [--database postgresql+psycopg://postgres@127.0.0.1:5432/cairn_bench]

Starts a real server (as bench.ingest does), warms it up, then samples every
thread of it with py-spy (idle samples included) while N MLLP senders send
generated VXUs, and prints, per thread, how much of the run it was busy or
waiting for work (a queue, the reactor's poll), and for the writer thread the
share of samples spent in each part of the pipeline (inclusive: a function
counts every sample in which it is on the stack).

`bench.profile` answers the same question in process under cProfile; this one
sees what the socket path adds (reactor, queue hand-offs, group-commit sizes)
without the profiler's per-call overhead. py-spy is installed by `make bench`
(the `bench` extra); it needs permission to ptrace the server (root, or
`kernel.yama.ptrace_scope=0`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench._common import header
from bench.ingest import drive, messages, split, start_server, upgrade

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")
_THREAD = re.compile(r"^thread \(\w+\): (?P<name>[^;]*);")

#: Parts of the writer's work, each named by a function (its last dotted
#: component) and a piece of its file's path. A sample counts for every part
#: whose function is on its stack, so parts nest (indented ones lie inside the
#: part above them) and the shares do not add up to 100 %.
PARTS: tuple[tuple[str, str, str], ...] = (
    (
        "group commit (one transaction of queued messages)",
        "process_batch",
        "engine/pipeline.py",
    ),
    (
        "  headers read and journal looked up for the batch",
        "_prefetch",
        "engine/pipeline.py",
    ),
    ("  journal row inserted", "_journal", "engine/pipeline.py"),
    ("  read_vxu: typed views of the message", "read_vxu", "parsers/views.py"),
    ("  validation", "validate", "handlers/vxu_validation.py"),
    ("  patient matching", "find", "handlers/matching.py"),
    ("    candidate query", "find_match_candidates", "storage/"),
    ("    scoring", "compare", "handlers/scoring.py"),
    ("  storing patient and doses", "_store", "handlers/vxu.py"),
    ("    dose de-duplication", "_deduplicate", "handlers/vxu.py"),
    ("  ACK encoding", "encode", "parsers/"),
    ("  journal response written", "set_response", "storage/"),
    ("  savepoints", "savepoint", "storage/"),
    ("  commit (fsync)", "do_commit", "sqlalchemy/"),
    ("  structlog", "", "/structlog/"),
    ("ACKs handed to the reactor", "_deliver_many", "engine/app.py"),
)


#: Where a thread blocks for work: a queue, a condition, the reactor's poll.
_IDLE = frozenset({"get", "wait", "doPoll", "poll", "select", "_poll", "sleep"})
_OWN = ("/engine/", "/handlers/", "/parsers/", "/storage/", "/listeners/")


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text.strip())
    if not match:
        return text.strip(), ""
    return match.group("func").rsplit(".", 1)[-1], match.group("file")


def summarize(raw: str, top: int = 25) -> list[str]:
    """Turn py-spy's collapsed stacks (``--format raw --threads``) into report lines."""
    threads: dict[str, Counter[str]] = {}
    parts: Counter[str] = Counter()
    funcs: Counter[str] = Counter()
    writer_total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        named = _THREAD.match(stack)
        if not named or not count_text.isdigit():
            continue
        count = int(count_text)
        thread = named.group("name")
        frames = [_frame(f) for f in stack[named.end() :].split(";")]
        state = "waiting" if frames[-1][0] in _IDLE else "busy"
        threads.setdefault(thread, Counter())[state] += count
        if thread != "cairn-writer":
            continue
        writer_total += count
        for label, func, file in PARTS:
            if any((not func or f == func) and file in fl for f, fl in frames):
                parts[label] += count
        seen: set[str] = set()
        for func, file in frames:
            if not any(p in file for p in _OWN):
                continue
            name = f"{func} ({'/'.join(Path(file).parts[-2:])})"
            if name not in seen:
                seen.add(name)
                funcs[name] += count
    lines = []
    for thread, states in sorted(threads.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(states.values())
        shares = ", ".join(
            f"{state} {100 * n / total:.0f} %" for state, n in states.most_common()
        )
        lines.append(f"thread {thread} ({total} samples): {shares}")
    if writer_total:
        lines.append("cairn-writer, share of its samples (inclusive, nested):")
        for label, _func, _file in PARTS:
            lines.append(f"  {100 * parts[label] / writer_total:5.1f} %  {label}")
        lines.append(f"cairn-writer, top {top} of the project's functions (inclusive):")
        for name, n in funcs.most_common(top):
            lines.append(f"  {100 * n / writer_total:5.1f} %  {name}")
    return lines


def run(args: argparse.Namespace) -> list[str]:
    """Profile one ingest run; return the report lines."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    lines = [header()]
    if not os.path.exists(spy):
        # A section of make bench reports what it could not measure; the
        # other sections still run.
        return [
            *lines,
            "not measured: py-spy is not installed (make bench installs it)",
        ]
    with tempfile.TemporaryDirectory() as tmp:
        if args.database:
            upgrade(args.database)
        server = start_server(Path(tmp), args.database)
        raw_path = Path(tmp) / "stacks.txt"
        recorder: subprocess.Popen[str] | None = None
        err = ""
        try:
            drive(server, split(messages(args.warmup, seed=5), args.senders))
            recorder = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(server.proc.pid),
                    "--rate",
                    str(args.rate),
                    "--idle",
                    "--threads",
                    "--format",
                    "raw",
                    "--full-filenames",
                    "--output",
                    str(raw_path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            # py-spy attaches in well under this; the idle samples it takes
            # meanwhile count against the threads' busy shares, so keep it short.
            time.sleep(0.2)
            elapsed, lat, _codes = drive(
                server, split(messages(args.messages, seed=11), args.senders)
            )
            recorder.send_signal(signal.SIGINT)
            _out, err = recorder.communicate(timeout=60)
        finally:
            if recorder is not None and recorder.poll() is None:
                recorder.kill()
            server.stop()
        if not raw_path.exists():
            # py-spy needs to ptrace the server: root or ptrace_scope=0.
            return [*lines, f"not measured: py-spy wrote nothing: {err.strip()[-300:]}"]
        raw = raw_path.read_text()
        if args.keep:
            Path(args.keep).write_text(raw)
    backend = "PostgreSQL" if args.database else "SQLite (WAL, synchronous=FULL)"
    lines.append(
        f"py-spy at {args.rate} samples/s on cairn serve, {backend}, {args.senders} senders: "
        f"{len(lat)} VXU in {elapsed:.2f} s = {len(lat) / elapsed:.0f} VXU/s under the sampler"
    )
    lines.extend(summarize(raw, args.top))
    return lines


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--database", default=None)
    parser.add_argument(
        "--keep", default=None, help="also write py-spy's raw stacks to this file"
    )
    for line in run(parser.parse_args()):
        print(line, flush=True)


if __name__ == "__main__":
    main()
