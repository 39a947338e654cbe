"""Sender test mode (issue 20 item 6), in process on SQLite and PostgreSQL.

A sending facility marked ``test``, the test listener (``server.test_listen``)
and MSH-11 ``T``/``D`` from any sender: full validation, a real ACK, the
journal keeps the message marked, and no registry table changes, seen from
the tables themselves and from another clinic's queries.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings
from engine.app import TEST_LISTENER
from engine.pipeline import Inbound
from storage import Database
from storage.schema import metadata
from tests.e2e.conftest import CONFIG
from tests.e2e.test_queries import qbp
from tests.support.messages import CANARY_FAMILY, CANARY_GIVEN, Dose, vxu
from tests.support.mllp import errs, msa_code, segments
from tests.support.registry import InProcessRegistry, build_registry

TEST_CONFIG = (
    CONFIG
    + """
[[facilities]]
id = "ONBOARD"
region = "BAY"
name = "A clinic being onboarded"
test = true

[server]
test_listen = "127.0.0.1:0"
"""
)

KID = "PID|1||KID1^^^EHR^MR||Testkid^Tina^^^^^L||20220303|F|||1 Test St^^Sacramento^CA^95814^USA^L"


@pytest.fixture(name="registry")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    return build_registry(db, tmp_path, monkeypatch, TEST_CONFIG)


def _on_test_listener(registry: InProcessRegistry, message: str) -> bytes:
    (outcome,) = registry.pipeline.process_batch(
        [Inbound(message.encode(), "127.0.0.1:9", TEST_LISTENER)]
    )
    return bytes(outcome.payload)


def _tables(registry: InProcessRegistry) -> dict[str, list[str]]:
    """Every registry table but the journal, row by row."""
    return {
        table.name: sorted(
            repr(row) for row in registry.query(f"SELECT * FROM {table.name}")
        )
        for table in metadata.sorted_tables
        if table.name != "message_journal"
    }


def _outcome(registry: InProcessRegistry, control_id: str) -> str:
    ((outcome,),) = registry.query(
        "SELECT outcome FROM message_journal WHERE control_id = ? ORDER BY id DESC",
        (control_id,),
    )[:1]
    return str(outcome)


def _notes(reply: bytes) -> list[list[str]]:
    return [e for e in errs(reply) if e[4] == "I" and "nothing was kept" in e[8]]


def test_test_mode_leaves_every_registry_table_untouched(
    registry: InProcessRegistry,
) -> None:
    """New patients, updates, deletes, locks and duplicates in test mode change no row of any table."""
    assert (
        msa_code(registry.send(vxu(control_id="REAL1", doses=[Dose(filler="D1")])))
        == "AA"
    )
    before = _tables(registry)
    assert before["patients"] and before["vaccinations"] and before["audit_log"]
    traffic = [
        # a test sender: a new patient, the real patient (new submitter,
        # a lock, a dose that duplicates the real one), another's dose deleted
        ("ONB1", vxu(control_id="ONB1", sender="ONBOARD", pid=KID, doses=[Dose()])),
        (
            "ONB2",
            vxu(control_id="ONB2", sender="ONBOARD", protection="Y", doses=[Dose()]),
        ),
        (
            "ONB3",
            vxu(
                control_id="ONB3",
                sender="ONBOARD",
                doses=[Dose(filler="D1", action="D")],
            ),
        ),
        # MSH-11 T from the real sender: an update, then a delete of its dose
        (
            "T1",
            vxu(
                control_id="T1",
                processing_id="T",
                doses=[Dose(filler="D1", lot="NEW", action="U")],
            ),
        ),
        (
            "D1",
            vxu(
                control_id="D1",
                processing_id="D",
                doses=[Dose(filler="D1", action="D")],
            ),
        ),
    ]
    for control_id, message in traffic:
        reply = registry.send(message)
        assert msa_code(reply) in {"AA", "AE"}, control_id
        assert _notes(reply), control_id
    listened = _on_test_listener(
        registry, vxu(control_id="TL1", pid=KID, protection="Y", doses=[Dose()])
    )
    assert msa_code(listened) == "AA"
    assert _notes(listened)
    assert _tables(registry) == before
    assert _outcome(registry, "ONB1").startswith("not stored (test sender): ")
    assert _outcome(registry, "T1").startswith("not stored (MSH-11 T): ")
    assert _outcome(registry, "D1").startswith("not stored (MSH-11 D): ")
    assert _outcome(registry, "TL1").startswith("not stored (test listener): ")


def test_test_mode_answer_is_the_production_answer_with_one_note(
    registry: InProcessRegistry,
) -> None:
    """The same message, with errors, sent on the test listener and then for real: the same MSA and ERRs, plus one I."""
    message = vxu(control_id="SAME1", doses=[Dose(cvx="XYZ"), Dose()])
    tested = _on_test_listener(registry, message)
    real = registry.send(message)
    assert msa_code(tested) == msa_code(real) == "AE"
    note = _notes(tested)
    assert len(note) == 1
    assert [e[2:] for e in errs(tested) if e not in note] == [e[2:] for e in errs(real)]
    assert not _notes(real)
    # The real one was processed (not replayed from the test answer) and stored.
    assert registry.query("SELECT count(*) FROM vaccinations") == [(1,)]
    assert len(registry.query("SELECT id FROM message_journal")) == 2


def test_a_sender_that_goes_live_resends_what_it_tested_and_it_is_stored(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resend of a test-mode message, once the sender is no longer in test mode, is stored, not replayed."""
    testing = build_registry(db, tmp_path, monkeypatch, TEST_CONFIG)
    message = vxu(control_id="GOLIVE", sender="ONBOARD", pid=KID, doses=[Dose()])
    assert _notes(testing.send(message))
    live_config = TEST_CONFIG.replace("test = true", "test = false")
    (tmp_path / "live").mkdir()
    live = build_registry(db, tmp_path / "live", monkeypatch, live_config)
    reply = live.send(message)
    assert msa_code(reply) == "AA"
    assert not _notes(reply)
    assert live.query("SELECT count(*) FROM vaccinations") == [(1,)]
    # and a resend after that is a resend: replayed, nothing stored twice
    assert live.send(message) == reply
    assert live.query("SELECT count(*) FROM vaccinations") == [(1,)]


def test_another_clinic_never_sees_test_data(registry: InProcessRegistry) -> None:
    """After a test sender's VXU, a real clinic's query finds nobody and its VXU makes a new patient."""
    registry.send(vxu(control_id="ONB9", sender="ONBOARD", pid=KID, doses=[Dose()]))
    query = qbp(control_id="Q9", sender="CLINIC2", name="Testkid^Tina", dob="20220303")
    reply = registry.send(query)
    qak = next(s for s in segments(reply) if s[0] == "QAK")
    assert qak[2] == "NF"
    assert not [s for s in segments(reply) if s[0] in {"PID", "RXA"}]
    registry.send(vxu(control_id="C2-1", sender="CLINIC2", pid=KID, doses=[Dose()]))
    rows = registry.query("SELECT id, created_by_journal_id FROM patients")
    assert len(rows) == 1
    ((journal_id,),) = registry.query(
        "SELECT id FROM message_journal WHERE control_id = 'C2-1'"
    )
    assert rows[0][1] == journal_id


def test_a_test_senders_query_is_answered_from_real_data_and_audited(
    registry: InProcessRegistry,
) -> None:
    """Queries read the registry in any mode; the disclosure is audited as always."""
    registry.send(vxu(control_id="REAL2", doses=[Dose()]))
    audits = len(registry.query("SELECT id FROM audit_log"))
    reply = registry.send(
        qbp(
            control_id="QONB",
            sender="ONBOARD",
            name=f"{CANARY_FAMILY}^{CANARY_GIVEN}",
            dob="20230105",
        )
    )
    assert [s[0] for s in segments(reply)].count("RXA") == 1
    assert len(registry.query("SELECT id FROM audit_log")) == audits + 1
    assert not _outcome(registry, "QONB").startswith("not stored")


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[server]\ntest_listen = "nowhere"\n', "server.test_listen"),
        (
            '[server]\nlisten = "127.0.0.1:2575"\ntest_listen = "127.0.0.1:2575"\n',
            "server.test_listen",
        ),
        ('[[facilities]]\nid = "X"\nregion = "BAY"\ntest = "maybe"\n', "facilities"),
    ],
)
def test_test_mode_settings_are_checked(tmp_path: Path, toml: str, key: str) -> None:
    """A bad test_listen, one equal to listen, or a non-boolean test flag stops startup naming the key."""
    path = tmp_path / "cairn.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    assert key in str(exc.value)
