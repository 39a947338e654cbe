"""Worker processes that read and decide messages beside the writer thread.

The writer thread was the bottleneck with a core idle: decoding, the header
check, the digest and validation need no database, so forked worker
processes do them (:class:`engine.pipeline.MessageReader`) while the writer
stores the messages before.

The hand-off is lean on purpose. ``concurrent.futures.ProcessPoolExecutor``
cost the server two extra threads (a feeder pickling calls, a manager
unpickling results and settling futures) that together used more CPU than
the worker saved (py-spy, bench/ANALYSIS.md). Here each worker has one pipe:

- the reactor thread writes a message's bytes to it (``send_bytes``: one
  system call, never blocking: a message goes only while the bytes in
  flight to that worker fit in the pipe, else the writer reads it itself);
- the writer thread, when it reaches the message, reads the answers from
  the same pipe in order (each tagged with its sequence number, so an
  answer nobody waits for any more is skipped) and unpickles the reading.

A message larger than a pipe can take without blocking (over 32 KiB: a
VXU of a hundred order groups and more) goes to a worker of its own, the
large-message worker, through a feeder thread that may block on the pipe
without holding up the reactor. The writer does not wait for such a
reading: :meth:`Pending.ready` says whether it has arrived, and the group
committer stores the other connections' messages meanwhile (issue 18: a
message at the limits took every sender's writer time while it was read).
That feeder, idle but for large messages, is the one thread added to the
server. A worker that dies or answers garbage
leaves its messages to the writer (which reads them as it would without
workers); a worker leaves when its parent does, even a SIGKILLed one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import multiprocessing
import os
import pickle
import queue
import signal
import struct
import threading
import time
from datetime import date
from multiprocessing.connection import Connection
from typing import Any

import structlog

from engine.logging import exception_summary
from engine.pipeline import MessageReader

logger = structlog.get_logger()

__all__ = ["ReaderProcesses"]

#: (sequence number, the date's ordinal, authenticated) before a message's bytes
_HEAD = struct.Struct("!QI?")
#: bytes in flight to one worker beyond which the writer reads a message itself
#: (below a pipe's default 64 KiB, so that a send never blocks the reactor)
_IN_FLIGHT = 48 * 1024
#: a message larger than this goes to the large-message worker through the
#: feeder thread (a pipe write of it from the reactor could block)
_LARGEST = 32 * 1024
#: F_SETPIPE_SZ (Linux): a larger pipe lets more messages wait for a worker
_F_SETPIPE_SZ = 1031
_PIPE_BYTES = 1024 * 1024
#: a large message's reading not back after this long: its worker is taken
#: for stuck, and the writer reads what it was given (reading one at the
#: limits takes well under a second)
STUCK_SECONDS = 30.0
#: answers kept ahead of their message's turn, at most (only messages dropped
#: at stop leave theirs unclaimed)
_EARLY_KEPT = 4096


class _Worker:
    """One worker process and its pipe, seen from the server."""

    def __init__(self, process: Any, conn: Connection, capacity: int) -> None:
        self.process = process
        self.conn = conn
        self.capacity = capacity
        #: bytes sent and not yet answered, and each message's share of them
        #: (the reactor adds, the writer removes)
        self.in_flight = 0
        self.sizes: dict[int, int] = {}
        self.lock = threading.Lock()
        self.broken = False
        #: answers read ahead of their turn by :meth:`Pending.ready` (writer thread only)
        self.early: dict[int, bytes] = {}

    def keep_early(self, seq: int, data: bytes) -> None:
        """Keep an answer read before its message's turn (writer thread)."""
        early = self.early
        early[seq] = data
        if len(early) > _EARLY_KEPT:
            del early[min(early)]

    def answered(self, seq: int) -> None:
        """An answer was read: its bytes no longer wait in the pipe."""
        with self.lock:
            self.in_flight -= self.sizes.pop(seq, 0)

    def receive(self) -> tuple[int, bytes]:
        """The next answer from the pipe (waiting for it): its sequence number and bytes."""
        data = self.conn.recv_bytes()
        (seq,) = struct.unpack_from("!Q", data)
        self.answered(seq)
        return seq, data


class _Reducers(dict[type, Any]):
    """Pickle a plain dataclass as a call of its constructor with its fields' values.

    Python's own pickling of a ``slots=True`` dataclass restores it with
    ``_dataclass_setstate``, which calls ``dataclasses.fields()`` once per
    object: unpickling a VXU's reading (about 17 such objects) cost the
    writer more than the constructor calls do (bench/ANALYSIS.md, issue 18).
    Only dataclasses whose fields are all positional ``__init__`` arguments
    and that have no ``__post_init__`` are reduced this way; anything else
    pickles as usual (a missing key means "no reducer" to the pickler).
    """

    def __missing__(self, cls: type) -> Any:
        params = getattr(cls, "__dataclass_params__", None)
        if params is None or not params.init or hasattr(cls, "__post_init__"):
            raise KeyError(cls)
        fields = dataclasses.fields(cls)
        if not all(f.init and not f.kw_only for f in fields):
            raise KeyError(cls)
        names = tuple(f.name for f in fields)

        def reduce(obj: Any) -> tuple[type, tuple[Any, ...]]:
            return cls, tuple([getattr(obj, name) for name in names])

        self[cls] = reduce
        return reduce


_REDUCERS = _Reducers()


def dumps(reading: Any) -> bytes:
    """A reading pickled for the hand-off (plain dataclasses as constructor calls)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _REDUCERS
    pickler.dump(reading)
    return buffer.getvalue()


class Pending:
    """A message's reading being worked out by a worker; :meth:`result` on the writer thread.

    ``slow``: the large-message worker reads it; the writer asks
    :meth:`ready` before it waits for it (see :class:`engine.pipeline.GroupCommitter`).
    """

    __slots__ = ("_seq", "_since", "_worker", "slow")

    def __init__(self, worker: _Worker, seq: int, *, slow: bool = False) -> None:
        self._worker = worker
        self._seq = seq
        self._since = time.monotonic()
        self.slow = slow

    def ready(self) -> bool:
        """Whether :meth:`result` would return (or raise) without waiting (writer thread).

        Reads, without blocking, the answers the worker has already sent,
        keeping them for their own :meth:`result`. A broken worker is
        "ready": its messages are read by the writer at once.
        """
        worker = self._worker
        if worker.broken or self._seq in worker.early:
            return True
        if time.monotonic() - self._since > STUCK_SECONDS:
            # A worker this late is stuck: the writer reads its messages
            # itself from now on (the parked message, and the ones after it).
            logger.error("reader_process_stuck", seconds=STUCK_SECONDS)
            worker.broken = True
            return True
        try:
            while worker.conn.poll(0):
                seq, data = worker.receive()
                worker.keep_early(seq, data)
                if seq == self._seq:
                    return True
        except (EOFError, OSError):
            worker.broken = True
            return True
        return False

    def result(self) -> Any:
        """The reading (see MessageReader.read), reading the pipe up to this message's answer.

        Raises:
            EOFError, OSError: the worker died; the caller reads the message itself.
        """
        worker = self._worker
        early = worker.early.pop(self._seq, None)
        if early is not None:
            return pickle.loads(early[8:])  # noqa: S301 (our own forked worker)
        try:
            if worker.broken:
                raise EOFError("reader process gone")
            while True:
                seq, data = worker.receive()
                if seq == self._seq:
                    return pickle.loads(data[8:])  # noqa: S301 (our own forked worker)
                if seq > self._seq:  # never: answers come in order
                    raise EOFError("reader process out of order")
                # An earlier message's answer: kept for it, since the writer
                # may store messages out of arrival order (one parked behind
                # its connection's large message, see GroupCommitter). Only a
                # message dropped at stop leaves its answer unclaimed: the
                # oldest go beyond a bound.
                worker.keep_early(seq, data)
        except BaseException:
            worker.broken = True
            raise


class ReaderProcesses:
    """Forked worker processes reading messages (see the module docstring).

    Args:
        reader: what each worker runs (inherited by fork, not pickled).
        count: how many workers for ordinary messages.
        large: also start the large-message worker and its feeder thread
            (with at least one ordinary worker).
    """

    def __init__(
        self, reader: MessageReader, count: int, *, large: bool = True
    ) -> None:
        context = multiprocessing.get_context("fork")
        parent = os.getpid()
        self._workers: list[_Worker] = []
        self._large: _Worker | None = None
        self._feed: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._feeder: threading.Thread | None = None
        for index in range(count + (1 if large and count else 0)):
            ours, theirs = context.Pipe(duplex=True)
            # The child closes the server's ends of every pipe made so far,
            # so that closing them here is an end of file for each worker.
            servers = [w.conn for w in self._all()] + [ours]
            capacity = _IN_FLIGHT
            for end in (ours, theirs):
                with contextlib.suppress(OSError, ImportError):
                    import fcntl

                    fcntl.fcntl(end.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
                    capacity = _PIPE_BYTES * 3 // 4
            process = context.Process(
                target=_work,
                args=(reader, theirs, servers, parent),
                name="cairn-reader",
                daemon=True,
            )
            process.start()
            theirs.close()
            if index < count:
                self._workers.append(_Worker(process, ours, capacity))
            else:
                self._large = _Worker(process, ours, capacity)
        if self._large is not None:
            self._feeder = threading.Thread(
                target=self._feed_large, name="cairn-large-feeder", daemon=True
            )
            self._feeder.start()
        self._next = 0
        self._seq = 0

    def _all(self) -> list[_Worker]:
        return [*self._workers, *([self._large] if self._large is not None else [])]

    def _feed_large(self) -> None:
        """Send large messages to their worker (this thread may block on the pipe; the reactor never does)."""
        worker = self._large
        assert worker is not None
        while True:
            data = self._feed.get()
            if data is None:
                return
            if worker.broken:
                continue
            try:
                worker.conn.send_bytes(data)
            except OSError as exc:
                logger.error("reader_process_failed", **exception_summary(exc))
                worker.broken = True

    def _submit_large(
        self, raw: bytes, today: date, authenticated: bool
    ) -> Pending | None:
        worker = self._large
        if worker is None or worker.broken:
            return None
        self._seq += 1
        seq = self._seq
        self._feed.put(_HEAD.pack(seq, today.toordinal(), authenticated) + raw)
        return Pending(worker, seq, slow=True)

    def submit(
        self, raw: bytes, today: date, *, authenticated: bool = False
    ) -> Pending | None:
        """Hand a message to a worker (reactor thread); None: the writer reads it itself.

        ``authenticated``: it came on a connection an authenticated listener
        established (its sender is accepted whatever MSH-4 says).
        """
        size = len(raw) + _HEAD.size
        if not self._workers:
            return None
        if size > _LARGEST:
            return self._submit_large(raw, today, authenticated)
        for _ in range(len(self._workers)):
            worker = self._workers[self._next]
            self._next = (self._next + 1) % len(self._workers)
            if worker.broken:
                continue
            self._seq += 1
            seq = self._seq
            with worker.lock:
                if worker.in_flight + size > worker.capacity:
                    continue
                worker.in_flight += size
                worker.sizes[seq] = size
            try:
                worker.conn.send_bytes(
                    _HEAD.pack(seq, today.toordinal(), authenticated) + raw
                )
            except OSError as exc:
                logger.error("reader_process_failed", **exception_summary(exc))
                worker.broken = True
                worker.answered(seq)
                continue
            return Pending(worker, seq)
        return None

    def close(self) -> None:
        """Stop the workers (after the writer has stopped)."""
        if self._feeder is not None:
            self._feed.put(None)
            self._feeder.join(5)
        for worker in self._all():
            with contextlib.suppress(OSError):
                worker.conn.close()
        for worker in self._all():
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)
        self._workers = []

    @property
    def pids(self) -> list[int]:
        """The workers' process ids."""
        return [int(worker.process.pid) for worker in self._all()]


def _work(
    reader: MessageReader, conn: Connection, servers: list[Connection], parent: int
) -> None:
    """A worker's loop: bytes in, a pickled reading out, in order, until the pipe closes."""
    # The server's ends of the pipes are not ours: closed, a closed server
    # end is an end of file here.
    for end in servers:
        end.close()
    # The parent's signal handlers (Twisted's) make no sense here: SIGTERM
    # ends a worker, Ctrl-C is the parent's to handle.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="cairn-parent-watch", daemon=True).start()
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            os._exit(0)
        seq, ordinal, authenticated = _HEAD.unpack_from(data)
        reading = reader.read(
            data[_HEAD.size :],
            date.fromordinal(ordinal),
            keep_tokens=False,
            authenticated=authenticated,
        )
        try:
            conn.send_bytes(struct.pack("!Q", seq) + dumps(reading))
        except (EOFError, OSError):
            os._exit(0)
