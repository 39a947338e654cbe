"""Online backup and restore (storage/backup.py, ``cairn db backup|restore``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.cli import main
from storage import BackupUnsupported, Database, StorageError, open_database
from tests.support.db import PostgresDatabases
from tests.support.stored import insert_journal


def _sqlite(tmp_path: Path, name: str = "live.sqlite3") -> Database:
    db = open_database(f"sqlite:///{tmp_path / name}")
    db.upgrade()
    return db


def _journal_ids(path: Path) -> list[int]:
    con = sqlite3.connect(path)
    try:
        return [row[0] for row in con.execute("SELECT id FROM message_journal")]
    finally:
        con.close()


def test_backup_copies_a_live_database_as_one_self_contained_file(
    tmp_path: Path,
) -> None:
    """The copy holds the committed rows, passes the integrity check and needs no -wal file."""
    db = _sqlite(tmp_path)
    with db.transaction() as uow:
        ids = [insert_journal(uow, control_id=f"C{n}") for n in range(3)]
    target = tmp_path / "copy.sqlite3"
    info = db.backup(target)
    db.close()
    assert (info.journal_rows, info.last_journal_id) == (3, max(ids))
    assert not Path(f"{target}-wal").exists()
    assert not Path(f"{target}.partial").exists()
    con = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    con.close()
    assert sorted(_journal_ids(target)) == sorted(ids)


def test_backup_is_a_snapshot_beside_an_open_write_transaction(
    tmp_path: Path,
) -> None:
    """A writer mid-transaction (the server between journal and commit) is neither waited for nor copied."""
    db = _sqlite(tmp_path)
    with db.transaction() as uow:
        committed = insert_journal(uow, control_id="DONE")
    writer = sqlite3.connect(tmp_path / "live.sqlite3", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO message_journal (sender, control_id, message_type, received_at, "
        "peer, raw, outcome, error_count, content_digest) VALUES "
        "('CLINIC1', 'INFLIGHT', 'VXU^V04', '2024-01-01 00:00:00', '', x'00', '', 0, '')"
    )
    target = tmp_path / "copy.sqlite3"
    try:
        db.backup(target)
    finally:
        writer.execute("COMMIT")
        writer.close()
        db.close()
    assert _journal_ids(target) == [committed]


def test_backup_never_overwrites_and_leaves_nothing_half_written(
    tmp_path: Path,
) -> None:
    """An existing target is refused; a target in a missing folder leaves no .partial behind."""
    db = _sqlite(tmp_path)
    existing = tmp_path / "existing.sqlite3"
    existing.write_bytes(b"keep me")
    with pytest.raises(StorageError, match="exists"):
        db.backup(existing)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(StorageError, match="not a directory"):
        db.backup(tmp_path / "missing" / "copy.sqlite3")
    db.close()
    assert not list(tmp_path.glob("**/*.partial"))


def test_backup_of_postgresql_is_refused_with_a_pointer_to_pg_dump(
    db: Database, tmp_path: Path
) -> None:
    """PostgreSQL is backed up with its own tools; SQLite is copied (both backends run this)."""
    if db.backend == "postgresql":
        with pytest.raises(BackupUnsupported, match="pg_dump") as exc:
            db.backup(tmp_path / "copy")
        assert "point-in-time" in str(exc.value)
        assert not (tmp_path / "copy").exists()
    else:
        assert db.backup(tmp_path / "copy").revision


def test_cli_db_backup_on_postgresql_exits_1_naming_pg_dump(
    pg_databases: PostgresDatabases,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cairn db backup` on PostgreSQL is one line that points at pg_dump and the README."""
    url = pg_databases.session_url()
    assert main(["db", "backup", str(tmp_path / "b"), "--database", url]) == 1
    err = capsys.readouterr().err
    assert "pg_dump" in err and "README" in err
    assert err.count("\n") == 1


def test_cli_db_backup_then_restore_into_a_new_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """backup prints what it copied; restore refuses an existing database unless --replace."""
    live = tmp_path / "live"
    assert main(["db", "upgrade", "--data-dir", str(live)]) == 0
    db = open_database(f"sqlite:///{live / 'cairn.sqlite3'}")
    with db.transaction() as uow:
        insert_journal(uow, control_id="KEEP")
    db.close()
    backup = tmp_path / "cairn-backup.sqlite3"
    capsys.readouterr()
    assert main(["db", "backup", str(backup), "--data-dir", str(live)]) == 0
    assert "1 journal row(s)" in capsys.readouterr().out
    restored = tmp_path / "restored"
    assert main(["db", "restore", str(backup), "--data-dir", str(restored)]) == 0
    assert len(_journal_ids(restored / "cairn.sqlite3")) == 1
    assert main(["db", "restore", str(backup), "--data-dir", str(restored)]) == 1
    assert "--replace" in capsys.readouterr().err
    assert (
        main(["db", "restore", str(backup), "--replace", "--data-dir", str(restored)])
        == 0
    )
    assert main(["messages", "--data-dir", str(restored)]) == 0
    assert "KEEP" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"this is not a database at all, just junk" * 200, "restore of"),
        (None, "not a Cairn database"),
    ],
)
def test_restore_refuses_junk_and_foreign_databases(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    """Junk bytes or an SQLite file that is not Cairn's is refused; the target is untouched."""
    source = tmp_path / "source.sqlite3"
    if content is None:
        con = sqlite3.connect(source)
        con.execute("CREATE TABLE other (x)")
        con.commit()
        con.close()
    else:
        source.write_bytes(content)
    db = _sqlite(tmp_path)
    with db.transaction() as uow:
        insert_journal(uow, control_id="STAYS")
    with pytest.raises(StorageError, match=reason):
        db.restore(source, replace=True)
    db.close()
    assert len(_journal_ids(tmp_path / "live.sqlite3")) == 1
