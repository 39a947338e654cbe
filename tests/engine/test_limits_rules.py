"""Limits on the work one message may ask for, in process (issue 18 item 6).

Each limit is played by a sender that goes one over it: the answer is AR,
its one ERR names the limit, the count and the setting, nothing reaches the
registry, and the journal keeps the message's head and digest only. A
message at the limit is processed as usual. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import Database
from tests.e2e.conftest import CONFIG
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code
from tests.support.registry import InProcessRegistry, build_registry

LIMITS = """
[limits]
max_segments = 40
max_order_groups = 5
max_repetitions = 6
max_query_identifiers = 3
"""


@pytest.fixture(name="registry")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    return build_registry(db, tmp_path, monkeypatch, CONFIG + LIMITS)


def _count(registry: InProcessRegistry, table: str) -> int:
    return int(str(registry.query(f"SELECT count(*) FROM {table}")[0][0]))


def _qbp(identifiers: int, control: str = "Q1") -> str:
    ids = "~".join(f"MRN{i}^^^EHR^MR" for i in range(identifiers))
    return (
        "MSH|^~\\&|EHR|CLINIC1|CAIRN|CAIRN|20240201120000-0800||QBP^Q11^QBP_Q11|"
        f"{control}|P|2.5.1|||ER|AL|||||Z44^CDCPHINVS\r"
        f"QPD|Z44^Request Evaluated History and Forecast^CDCPHINVS|QT1|{ids}|"
        "Zzcanaryfam^Qqcanarygiv^^^^^L|Mom^M^^^^^M|20230105|F\r"
        "RCP|I|5^RD&records&HL70126\r"
    )


def _doses(n: int) -> list[Dose]:
    return [Dose(date=f"2023{1 + i:02d}15", cvx="20") for i in range(n)]


def test_limits_order_groups_over_the_limit_get_ar_naming_it(
    registry: InProcessRegistry,
) -> None:
    """Six order groups where five are allowed: AR at ORC, nothing stored."""
    reply = registry.send(vxu(doses=_doses(6)))
    assert msa_code(reply) == "AR"
    assert errs(reply) == [
        [
            "ERR",
            "",
            "ORC^1",
            "207^Application internal error^HL70357",
            "E",
            "3^Illogical Value error^HL70533",
            "",
            "",
            "order groups (ORC/RXA) in the message: 6, over the limit of 5 "
            "(limits.max_order_groups); rejected, nothing stored. Send the doses "
            "in several messages",
        ]
    ]
    assert _count(registry, "patients") == 0
    assert _count(registry, "vaccinations") == 0


def test_limits_order_groups_at_the_limit_are_processed(
    registry: InProcessRegistry,
) -> None:
    """Five order groups, the limit itself, are stored as usual."""
    reply = registry.send(vxu(doses=_doses(5)))
    assert msa_code(reply) == "AA"
    assert _count(registry, "vaccinations") == 5


def test_limits_segments_over_the_limit_get_ar_naming_it(
    registry: InProcessRegistry,
) -> None:
    """A VXU of 41 segments (NTEs after PID) is refused as a whole."""
    notes = [f"NTE|{i}||note" for i in range(37)]
    reply = registry.send(vxu(extra_segments=notes))
    assert msa_code(reply) == "AR"
    assert errs(reply) == [
        [
            "ERR",
            "",
            "",
            "207^Application internal error^HL70357",
            "E",
            "3^Illogical Value error^HL70533",
            "",
            "",
            "segments in the message: 41, over the limit of 40 (limits.max_segments); "
            "rejected, nothing stored. Send the data in several messages",
        ]
    ]
    assert _count(registry, "patients") == 0


def test_limits_field_repetitions_over_the_limit_get_ar_naming_the_field(
    registry: InProcessRegistry,
) -> None:
    """PID-3 with seven identifiers where six repetitions are allowed: AR at PID-3."""
    ids = "~".join(f"ID{i}^^^EHR^MR" for i in range(7))
    pid = f"PID|1||{ids}||Zzcanaryfam^Qqcanarygiv^^^^^L||20230105|F"
    reply = registry.send(vxu(pid=pid, doses=_doses(1)))
    assert msa_code(reply) == "AR"
    assert errs(reply) == [
        [
            "ERR",
            "",
            "PID^1^3",
            "207^Application internal error^HL70357",
            "E",
            "3^Illogical Value error^HL70533",
            "",
            "",
            "repetitions of PID-3: 7, over the limit of 6 (limits.max_repetitions); "
            "rejected, nothing stored. Send fewer repetitions of the field",
        ]
    ]
    assert _count(registry, "patients") == 0


def test_limits_query_identifiers_over_the_limit_get_ar_naming_qpd3(
    registry: InProcessRegistry,
) -> None:
    """A Z44 asking about four identifiers where three are allowed: AR at QPD-3."""
    reply = registry.send(_qbp(4))
    assert msa_code(reply) == "AR"
    assert errs(reply) == [
        [
            "ERR",
            "",
            "QPD^1^3",
            "207^Application internal error^HL70357",
            "E",
            "3^Illogical Value error^HL70533",
            "",
            "",
            "QPD-3 patient identifiers in the query: 4, over the limit of 3 "
            "(limits.max_query_identifiers); rejected, nothing stored. Query with "
            "the identifiers that name this patient",
        ]
    ]
    assert _count(registry, "audit_log") == 0


def test_limits_query_identifiers_at_the_limit_are_answered(
    registry: InProcessRegistry,
) -> None:
    """Three QPD-3 identifiers (the QPD-3 limit is its own, below the field limit) get an answer."""
    reply = registry.send(_qbp(3))
    assert msa_code(reply) == "AA"


def test_limits_refused_message_is_journaled_by_its_head(
    registry: InProcessRegistry,
) -> None:
    """Over a limit, the journal keeps the first 4 KiB, the size and the digest."""
    message = vxu(doses=_doses(6), extra_segments=[f"NTE|1||{'x' * 9000}"])
    registry.send(message)
    ((raw, size, digest),) = registry.query(
        "SELECT raw, raw_size, content_digest FROM message_journal"
    )
    assert bytes(raw) == message.encode()[:4096]  # type: ignore[arg-type]
    assert size == len(message.encode())
    assert len(str(digest)) == 64


def test_limits_stranger_refused_is_journaled_by_digest_and_head(
    registry: InProcessRegistry,
) -> None:
    """An unregistered sender's AR'd message keeps 4 KiB, its size and its digest.

    Strangers cannot fill the disk by sending large messages that are
    refused anyway; the digest still tells a resend from new content.
    """
    from engine.pipeline import content_digest
    from parsers import tokenize

    message = vxu(sender="STRANGER", extra_segments=[f"NTE|1||{'y' * 200_000}"])
    reply = registry.send(message)
    assert msa_code(reply) == "AR"
    ((raw, size, digest, sender),) = registry.query(
        "SELECT raw, raw_size, content_digest, sender FROM message_journal"
    )
    assert bytes(raw) == message.encode()[:4096]  # type: ignore[arg-type]
    assert size == len(message.encode())
    assert digest == content_digest(tokenize(message))
    assert sender == "STRANGER"


def test_limits_registered_sender_refused_is_journaled_whole(
    registry: InProcessRegistry,
) -> None:
    """A registered clinic's message refused for its header is kept in full, to be looked into."""
    message = vxu(version="2.3", extra_segments=[f"NTE|1||{'z' * 9000}"])
    reply = registry.send(message)
    assert msa_code(reply) == "AR"
    ((raw, size),) = registry.query("SELECT raw, raw_size FROM message_journal")
    assert bytes(raw) == message.encode()  # type: ignore[arg-type]
    assert size is None
