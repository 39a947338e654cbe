"""A frozen PostgreSQL: transient answers within the statement timeout, then recovery.

The test starts its own PostgreSQL cluster (the machine's initdb and pg_ctl,
in tmp_path, on an ephemeral port; as root, which PostgreSQL refuses to run
as, in a fresh directory of its own owned by the ``postgres`` user, removed
at the end) and freezes every one of its processes
with SIGSTOP: the server accepts nothing, answers nothing and closes
nothing, as a hung host or disk would. Messages sent meanwhile must get a
transient error (AE "please resend", or no answer at all) within the
configured time instead of hanging; once the server is thawed with SIGCONT
the resends are stored, and nothing acknowledged before was lost.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import TransientStorageError, open_database
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code
from tests.support.registry import InProcessRegistry, build_registry


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        message = "no PostgreSQL server binaries under /usr/lib/postgresql"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """A PostgreSQL cluster of this test's own, which it may freeze."""

    def __init__(self, root: Path) -> None:
        self.bin = _binaries()
        self.as_user: list[str] = []
        self.owned: Path | None = None
        if os.geteuid() == 0:
            # PostgreSQL will not run as root; pytest's tmp_path is private
            # to root, so the cluster gets a directory of its own.
            self.owned = root = Path(tempfile.mkdtemp(prefix="cairn-frozen-pg-"))
            shutil.chown(root, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = root / "pgdata"
        self.port = _free_port()
        self.log = root / "pg.log"

    def _run(self, *args: object, check: bool = True) -> None:
        subprocess.run(
            [*self.as_user, *(str(a) for a in args)], check=check, capture_output=True
        )

    def start(self) -> None:
        self._run(
            self.bin / "initdb",
            "-D",
            self.data,
            "-A",
            "trust",
            "-U",
            "cairn",
            "--no-sync",
            "-E",
            "UTF8",
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            "-c unix_socket_directories='' -c fsync=off"
        )
        self._run(
            self.bin / "pg_ctl",
            "-D",
            self.data,
            "-o",
            options,
            "-l",
            self.log,
            "-w",
            "start",
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://cairn@127.0.0.1:{self.port}/{database}"

    def processes(self) -> list[int]:
        """The postmaster and every process it started."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        pids = [postmaster]
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                pids.append(int(Path(stat).parent.name))
        return pids

    def signal(self, signum: int) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self._run(
            self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "stop", check=False
        )
        if self.owned is not None:
            shutil.rmtree(self.owned, ignore_errors=True)


@pytest.fixture(name="cluster")
def _cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(name="registry")
def _registry(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InProcessRegistry]:
    import psycopg

    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE cairn")
    # A statement may take 1 s, a connection 2 s: the configured time.
    db = open_database(
        cluster.url("cairn"), statement_timeout=1.0, connect_timeout=2, pool_size=2
    )
    db.upgrade(("BAY", "LAO"))
    try:
        yield build_registry(db, tmp_path, monkeypatch)
    finally:
        db.close()


def _send_with_limit(registry: InProcessRegistry, message: str) -> bytes | Exception:
    """Send from another thread; its answer or error. Fails if it hangs for a minute."""
    result: list[bytes | Exception] = []

    def run() -> None:
        try:
            result.append(registry.send(message))
        except Exception as exc:  # the writer's batch failed: no answer at all
            result.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    # Generous, and no speed assertion: only that it does not hang for ever.
    worker.join(60)
    assert result, "the message hung on the frozen database"
    return result[0]


def _transient(outcome: bytes | Exception) -> bool:
    """Whether the sender was told to resend: AE 'database unavailable', or no answer."""
    if isinstance(outcome, Exception):
        return isinstance(outcome, TransientStorageError)
    return msa_code(outcome) == "AE" and any(
        "database is unavailable" in err[8] for err in errs(outcome)
    )


def test_frozen_database_gives_transient_errors_then_recovers(
    registry: InProcessRegistry, cluster: Cluster
) -> None:
    """Frozen: resend-me answers, not a hang. Thawed: resends stored, nothing acknowledged lost."""
    before = vxu(control_id="BEFORE", doses=[Dose(filler="F-BEFORE")])
    assert msa_code(registry.send(before)) == "AA"

    during = [
        vxu(control_id=f"DURING{i}", mrn=f"MRN-D{i}", doses=[Dose(filler=f"F-D{i}")])
        for i in range(2)
    ]
    cluster.signal(signal.SIGSTOP)
    try:
        # The first meets the statement deadline on its open connection,
        # the second the connect timeout (the dropped connection is gone).
        outcomes = [_send_with_limit(registry, message) for message in during]
    finally:
        cluster.signal(signal.SIGCONT)
    assert all(_transient(outcome) for outcome in outcomes), outcomes

    # The senders resend; the pool reconnects by itself.
    for message in during:
        assert msa_code(registry.send(message)) == "AA"
    rows = registry.query(
        "SELECT control_id, ack_code FROM message_journal WHERE ack_code = 'AA' "
        "ORDER BY control_id"
    )
    assert sorted({str(c) for c, _ in rows}) == ["BEFORE", "DURING0", "DURING1"]
    fillers = registry.query("SELECT filler_id FROM vaccinations ORDER BY filler_id")
    assert [str(f) for (f,) in fillers] == ["F-BEFORE", "F-D0", "F-D1"]
