"""``cairn send HOST:PORT FILE_OR_DIR...``: send message files and summarize the ACKs."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from parsers.batch import iter_messages
from parsers.client import MllpSender, ack_code


def register(subparsers: Any) -> None:
    """Add the ``send`` sub-command."""
    parser = subparsers.add_parser(
        "send", help="send HL7 message files over MLLP and summarize the answers"
    )
    parser.add_argument(
        "address", metavar="HOST:PORT", help="the engine's MLLP address"
    )
    parser.add_argument(
        "paths",
        metavar="FILE_OR_DIR",
        nargs="+",
        help="message files, or folders of *.hl7 / *.txt files",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for each answer"
    )
    parser.set_defaults(func=run)


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            out.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix.lower() in {".hl7", ".txt", ".dat"} and p.is_file()
                )
            )
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return out


def _expects_no_answer(message: bytes) -> bool:
    """ACKs and RSPs are never answered, nor messages whose MSH-16 is NE."""
    header = message.split(b"\r", 1)[0].decode("latin-1")
    if len(header) < 4 or not header.startswith("MSH"):
        return False
    fields = header.split(header[3])
    kind = fields[8].split(header[4:5] or "^")[0] if len(fields) > 8 else ""
    msh16 = fields[15].strip().upper() if len(fields) > 15 else ""
    return kind in {"ACK", "RSP"} or msh16 == "NE"


def run(args: argparse.Namespace) -> int:
    """Send every message and print a summary of the ACK codes."""
    host, sep, port = args.address.rpartition(":")
    if not sep or not port.isdigit():
        print(f"cairn send: expected HOST:PORT, got {args.address!r}", file=sys.stderr)
        return 2
    try:
        files = _files(args.paths)
    except FileNotFoundError as exc:
        print(f"cairn send: {exc}", file=sys.stderr)
        return 2
    work = [
        (path, message)
        for path in files
        for message in iter_messages(path.read_bytes())
    ]
    codes: Counter[str] = Counter()
    failures: list[str] = []
    try:
        sender = MllpSender(host, int(port), args.timeout)
    except OSError as exc:
        print(f"cairn send: cannot connect to {args.address}: {exc}", file=sys.stderr)
        return 1
    with (
        sender,
        tqdm(total=len(work), unit="msg", file=sys.stderr, disable=None) as bar,
    ):
        for path, message in work:
            if _expects_no_answer(message):
                sender.send_only(message)
                codes["not answered (ACK/RSP or MSH-16 NE)"] += 1
                bar.update(1)
                continue
            try:
                reply = sender.send(message)
            except (TimeoutError, OSError) as exc:
                reply = b""
                failures.append(f"{path.name}: {exc.__class__.__name__}")
                sender.close()
                sender = MllpSender(host, int(port), args.timeout)
            code = ack_code(reply) if reply else "no answer"
            codes[code] += 1
            if code != "AA":
                failures.append(f"{path.name}: {code}")
            bar.update(1)
    summary = "  ".join(
        f"{code} {codes.get(code, 0)}"
        for code in (
            "AA",
            "AE",
            "AR",
            "no answer",
            "not answered (ACK/RSP or MSH-16 NE)",
        )
    )
    print(f"sent {len(work)} message(s) from {len(files)} file(s): {summary}")
    for line in failures:
        print(f"  {line}")
    return 0 if codes.get("no answer", 0) == 0 else 1
