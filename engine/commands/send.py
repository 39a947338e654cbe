"""``cairn send HOST:PORT FILE_OR_DIR...``: send message files and summarize the answers.

Every message of every file (batch envelopes, plain files, CR/LF/CRLF, see
``parsers.batch``) goes over one MLLP connection, one at a time: the sender
waits for each answer before the next (REFERENCE §1).

Order: files whose first message is a VXU go first, then files of other
messages, then files whose first message is a query (QBP); within each
group, files keep the order given on the command line (a folder's files in
name order), and the messages of a file keep theirs. So queries see the
updates sent with them, whatever the files are called.

How long to wait follows the message's acknowledgement mode, as the engine
honours it (``parsers.client.expectation``): ACKs, RSPs and messages whose
MSH-16 is ``NE`` are sent without waiting; MSH-16 ``ER`` or ``SU`` makes an
answer optional, so the sender waits only ``--grace`` seconds and counts
silence as "no answer (as MSH-16 allows)", not as a failure; everything
else waits up to ``--timeout``. An answer that arrives after its grace is
recognised by its MSA-2 and counted with its code.

A connection that fails or times out is reopened for the next message; a
server that refuses a connection is not tried again. Exit code 0 if every
message got the answer its mode promised (and every file could be read), 1
otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.client import MllpSender
from parsers.batch import read_batch
from parsers.client import (
    Answer,
    Expectation,
    ack_code,
    acknowledged_control_id,
    expectation,
)

NO_ANSWER = "no answer"
ALLOWED_SILENCE = "no answer (as MSH-16 allows)"
NOT_EXPECTED = "not answered (ACK/RSP or MSH-16 NE)"
NO_MSA = "no MSA"
_SUFFIXES = {".hl7", ".txt"}
#: Files are sent in these groups, in this order (by their first message).
_VXU_FIRST, _OTHERS, _QUERIES_LAST = 0, 1, 2

ORDER_HELP = (
    "Files whose first message is a VXU are sent first, then files of other"
    " messages, then files whose first message is a query (QBP), so that"
    " queries see the updates sent with them; within each group, files keep"
    " the order given (a folder's *.hl7 and *.txt files in name order), and"
    " each file's messages keep theirs. Waiting follows MSH-16: NE (and"
    " ACK/RSP) is not waited for; ER and SU are waited for --grace seconds"
    " and silence then counts as 'no answer (as MSH-16 allows)'; anything"
    " else is waited for --timeout seconds. Exit code 0 when every message"
    " got the answer its MSH-16 promised, 1 otherwise, 2 for a usage error."
)


def register(subparsers: Any) -> None:
    """Add the ``send`` sub-command."""
    parser = subparsers.add_parser(
        "send",
        help="send HL7 message files over MLLP and summarize the answers",
        description="Send HL7 message files over MLLP and summarize the answers.",
        epilog=ORDER_HELP,
    )
    parser.add_argument(
        "address", metavar="HOST:PORT", help="the engine's MLLP address"
    )
    parser.add_argument(
        "paths",
        metavar="FILE_OR_DIR",
        nargs="+",
        help="message files, or folders of *.hl7 / *.txt files; VXU files"
        " are sent first and query files last (see below)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait to connect and for each answer (default 30)",
    )
    parser.add_argument(
        "--tls-ca",
        metavar="PEM",
        help="speak TLS, trusting the server certificate if it chains to this CA"
        ' (a server with server.auth = "tls")',
    )
    parser.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="the client certificate (chain) that authenticates this sender",
    )
    parser.add_argument(
        "--tls-key", metavar="PEM", help="the client certificate's private key"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=2.0,
        help="seconds to wait for an answer that MSH-16 ER or SU makes"
        " optional (default 2)",
    )
    parser.set_defaults(func=run)


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client TLS context the --tls-* options ask for (None: plain MLLP)."""
    if not (args.tls_ca or args.tls_cert or args.tls_key):
        return None
    if not args.tls_ca:
        raise ValueError("--tls-cert and --tls-key need --tls-ca (the server's CA)")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    try:
        context = ssl.create_default_context(cafile=args.tls_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"--tls-ca: {args.tls_ca}: {exc.strerror or exc}") from None
    if args.tls_cert:
        try:
            context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"--tls-cert/--tls-key: {args.tls_cert}: {exc.strerror or exc}"
            ) from None
    return context


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


def _group(messages: list[bytes]) -> int:
    """The send group of a file, from its first message's MSH-9."""
    kind = expectation(messages[0]).message_type if messages else ""
    if kind == "VXU":
        return _VXU_FIRST
    if kind == "QBP":
        return _QUERIES_LAST
    return _OTHERS


def send_order(files: list[tuple[Path, list[bytes]]]) -> list[tuple[Path, bytes]]:
    """Every message, VXU files first and query files last (a stable order).

    Args:
        files: each file with its messages, in the order given.

    Returns:
        (file, message) pairs in the order they are to be sent.
    """
    ordered = sorted(files, key=lambda item: _group(item[1]))
    return [(path, message) for path, messages in ordered for message in messages]


@dataclass
class _Sent:
    """A message whose optional answer had not come when its grace ran out."""

    path: Path
    control_id: str


class _Connection:
    """One MLLP connection, reopened after a failure."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        late: Callable[[_Sent, bytes], None],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._tls = tls
        self._host = host
        self._port = port
        self._timeout = timeout
        self._late = late
        self._sender: MllpSender | None = None
        self._unreachable = False
        #: Messages on this connection whose optional answer may still come.
        self._silent: list[_Sent] = []
        self.error = ""

    def _open(self) -> MllpSender | None:
        # A server that cannot be reached is not tried again for every message
        # (against a silent host that would cost the timeout each time).
        if self._sender is None and not self._unreachable:
            try:
                self._sender = MllpSender(
                    self._host, self._port, self._timeout, self._tls
                )
            except OSError as exc:
                self._unreachable = True
                self.error = f"cannot connect: {exc.__class__.__name__}: {exc}"
        return self._sender

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        self._silent = []

    def send(
        self, path: Path, message: bytes, expect: Expectation, grace: float
    ) -> bytes | None:
        """Send one message and wait as its acknowledgement mode says.

        Returns:
            The answer; ``b""`` when none was due (NE, ACK/RSP) or an
            optional one (ER, SU) did not come within the grace; None when
            an answer that was due did not come (``error`` says why).
        """
        sender = self._open()
        if sender is None:
            return None
        try:
            sender.send_only(message)
            if expect.answer is Answer.NEVER:
                return b""
            optional = expect.answer is Answer.SOMETIMES
            reply = self._answer(sender, expect.control_id, grace if optional else None)
        except TimeoutError as exc:
            if expect.answer is Answer.SOMETIMES:
                self._silent.append(_Sent(path, expect.control_id))
                return b""
            self.error = (
                f"{exc.__class__.__name__}: no answer within {self._timeout:g} s"
            )
            self.close()
            return None
        except OSError as exc:
            self.error = f"{exc.__class__.__name__}: {exc}"
            self.close()
            return None
        if not reply:
            self.error = "the server closed the connection without answering"
            self.close()
            return None
        return reply

    def _answer(self, sender: MllpSender, control_id: str, wait: float | None) -> bytes:
        """The answer to ``control_id``, passing over late answers to earlier messages.

        The server answers in arrival order, so an answer whose MSA-2 names
        a message that was given up on after its grace is that message's
        late answer; once this message's own answer has come, no earlier
        one can follow.
        """
        while True:
            reply = sender.receive(wait)
            answered = acknowledged_control_id(reply) if reply else ""
            earlier = next(
                (s for s in self._silent if answered and s.control_id == answered),
                None,
            )
            if earlier is None or answered == control_id:
                self._silent = []
                return reply
            self._silent.remove(earlier)
            self._late(earlier, reply)


def run(args: argparse.Namespace) -> int:
    """Send every message and print a summary of the answers."""
    address = _address(args.address)
    if address is None:
        print(f"cairn send: expected HOST:PORT, got {args.address!r}", file=sys.stderr)
        return 2
    try:
        tls = _tls_context(args)
    except (OSError, ValueError) as exc:
        print(f"cairn send: {exc}", file=sys.stderr)
        return 2
    try:
        files = _files(args.paths)
    except FileNotFoundError as exc:
        print(f"cairn send: {exc}", file=sys.stderr)
        return 2
    read: list[tuple[Path, list[bytes]]] = []
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
        read.append((path, list(batch.messages)))
    work = send_order(read)

    codes: Counter[str] = Counter()
    per_file: dict[Path, Counter[str]] = {}
    errors: dict[Path, str] = {}

    def count(path: Path, code: str, change: int = 1) -> None:
        codes[code] += change
        if code not in ("AA", NOT_EXPECTED, ALLOWED_SILENCE):
            per_file.setdefault(path, Counter())[code] += change

    def late(sent: _Sent, reply: bytes) -> None:
        codes[ALLOWED_SILENCE] -= 1
        count(sent.path, ack_code(reply) or NO_MSA)

    connection = _Connection(*address, args.timeout, late, tls)
    try:
        with tqdm(total=len(work), unit="msg", file=sys.stderr, disable=None) as bar:
            for path, message in work:
                expect = expectation(message)
                reply = connection.send(path, message, expect, args.grace)
                if reply is None:
                    code = NO_ANSWER
                    errors.setdefault(path, connection.error)
                elif expect.answer is Answer.NEVER:
                    code = NOT_EXPECTED
                elif not reply:
                    code = ALLOWED_SILENCE
                else:
                    code = ack_code(reply) or NO_MSA
                count(path, code)
                bar.update(1)
    finally:
        connection.close()

    shown = ["AA", "AE", "AR"]
    special = {NO_ANSWER, ALLOWED_SILENCE, NOT_EXPECTED}
    shown += sorted(c for c in codes if c not in {*shown, *special})
    shown += [NO_ANSWER, ALLOWED_SILENCE, NOT_EXPECTED]
    summary = "  ".join(f"{code} {codes.get(code, 0)}" for code in shown)
    print(f"sent {len(work)} message(s) from {len(files)} file(s): {summary}")
    for path, counts in per_file.items():
        detail = ", ".join(f"{code} {n}" for code, n in sorted(counts.items()) if n)
        reason = f" ({errors[path]})" if path in errors else ""
        print(f"  {path}: {detail}{reason}")
    return 0 if codes.get(NO_ANSWER, 0) == 0 and unreadable == 0 else 1
