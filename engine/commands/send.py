"""``cairn send HOST:PORT FILE_OR_DIR...``: send message files and summarize the ACKs.

Every message of every file (batch envelopes, plain files, CR/LF/CRLF, see
``parsers.batch``) goes over one MLLP connection, one at a time: the sender
waits for each answer before the next (REFERENCE §1). ACKs and RSPs, and
messages whose MSH-16 is NE, are sent without waiting, since the receiver
never answers them. A connection that fails or times out is reopened for the
next message; a server that refuses a connection is not tried again. Exit
code 0 if every message that expects an answer got one (and every file could
be read), 1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from parsers.batch import read_batch
from parsers.client import MllpSender, ack_code

NO_ANSWER = "no answer"
NOT_EXPECTED = "not answered (ACK/RSP or MSH-16 NE)"
NO_MSA = "no MSA"
_SUFFIXES = {".hl7", ".txt"}


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
        help="message files, or folders of *.hl7 / *.txt files (sorted)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait to connect and for each answer (default 30)",
    )
    parser.set_defaults(func=run)


def _address(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            out.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix.lower() in _SUFFIXES and p.is_file()
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


class _Connection:
    """One MLLP connection, reopened after a failure."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self._host = host
        self._port = port
        self._timeout = timeout
        self._sender: MllpSender | None = None
        self._unreachable = False
        self.error = ""

    def _open(self) -> MllpSender | None:
        # A server that cannot be reached is not tried again for every message
        # (against a silent host that would cost the timeout each time).
        if self._sender is None and not self._unreachable:
            try:
                self._sender = MllpSender(self._host, self._port, self._timeout)
            except OSError as exc:
                self._unreachable = True
                self.error = f"cannot connect: {exc.__class__.__name__}: {exc}"
        return self._sender

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None

    def send(self, message: bytes, wait: bool) -> bytes | None:
        """The answer (``b""`` when none is expected), or None if there was none."""
        sender = self._open()
        if sender is None:
            return None
        try:
            if not wait:
                sender.send_only(message)
                return b""
            reply = sender.send(message)
        except OSError as exc:  # TimeoutError included
            self.error = f"{exc.__class__.__name__}: {exc}"
            self.close()
            return None
        if not reply:
            self.error = "the server closed the connection without answering"
            self.close()
            return None
        return reply


def run(args: argparse.Namespace) -> int:
    """Send every message and print a summary of the ACK codes."""
    address = _address(args.address)
    if address is None:
        print(f"cairn send: expected HOST:PORT, got {args.address!r}", file=sys.stderr)
        return 2
    try:
        files = _files(args.paths)
    except FileNotFoundError as exc:
        print(f"cairn send: {exc}", file=sys.stderr)
        return 2
    work: list[tuple[Path, bytes]] = []
    unreadable = 0
    for path in files:
        try:
            batch = read_batch(path.read_bytes())
        except OSError as exc:
            print(f"cairn send: cannot read {path}: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        if batch.skipped_segments:
            print(
                f"cairn send: {path}: {batch.skipped_segments} line(s) before the first MSH skipped",
                file=sys.stderr,
            )
        work.extend((path, message) for message in batch.messages)

    codes: Counter[str] = Counter()
    per_file: dict[Path, Counter[str]] = {}
    errors: dict[Path, str] = {}
    connection = _Connection(*address, args.timeout)
    try:
        with tqdm(total=len(work), unit="msg", file=sys.stderr, disable=None) as bar:
            for path, message in work:
                wait = not _expects_no_answer(message)
                reply = connection.send(message, wait)
                if reply is None:
                    code = NO_ANSWER
                    errors.setdefault(path, connection.error)
                elif not wait:
                    code = NOT_EXPECTED
                else:
                    code = ack_code(reply) or NO_MSA
                codes[code] += 1
                if code not in ("AA", NOT_EXPECTED):
                    per_file.setdefault(path, Counter())[code] += 1
                bar.update(1)
    finally:
        connection.close()

    shown = ["AA", "AE", "AR"]
    shown += sorted(c for c in codes if c not in {*shown, NO_ANSWER, NOT_EXPECTED})
    shown += [NO_ANSWER, NOT_EXPECTED]
    summary = "  ".join(f"{code} {codes.get(code, 0)}" for code in shown)
    print(f"sent {len(work)} message(s) from {len(files)} file(s): {summary}")
    for path, counts in per_file.items():
        detail = ", ".join(f"{code} {n}" for code, n in sorted(counts.items()))
        reason = f" ({errors[path]})" if path in errors else ""
        print(f"  {path}: {detail}{reason}")
    return 0 if codes.get(NO_ANSWER, 0) == 0 and unreadable == 0 else 1
