"""Field lengths and control characters: the same answer on SQLite and PostgreSQL.

Each message here used to be stored by SQLite (even a 500 KB name) and to get
AE "internal error... please resend" from PostgreSQL (issue 14 item 6). Now
validation applies handlers.field_limits before anything is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import String, text

from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.field_limits import FIELD_LIMITS
from handlers.vxu import VxuHandler
from storage import Database, schema
from tests.support.messages import CANARY_FAMILY, CANARY_MRN, Dose, vxu
from tests.support.mllp import errs, msa_code

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

#: Where each row's value is stored: (table, column).
_COLUMNS = {
    ("PID", 3, 1, 1): ("patient_identifiers", "value"),
    ("PID", 3, 4, 1): ("patient_identifiers", "authority"),
    ("PID", 3, 4, 2): ("patient_identifiers", "authority"),
    ("PID", 3, 5, 1): ("patient_identifiers", "type_code"),
    ("PID", 5, 1, 1): ("patients", "family_name"),
    ("PID", 5, 2, 1): ("patients", "given_name"),
    ("PID", 5, 3, 1): ("patients", "middle_name"),
    ("PID", 5, 4, 1): ("patients", "suffix"),
    ("PID", 6, 1, 1): ("patients", "mother_maiden_family"),
    ("PID", 6, 2, 1): ("patients", "mother_maiden_given"),
    ("PID", 11, 1, 1): ("patients", "street"),
    ("PID", 11, 3, 1): ("patients", "city"),
    ("PID", 11, 4, 1): ("patients", "state"),
    ("PID", 11, 5, 1): ("patients", "postal_code"),
    ("PID", 11, 6, 1): ("patients", "country"),
    ("PID", 13, 1, 1): ("patients", "phone"),
    ("PID", 13, 4, 1): ("patients", "email"),
    ("NK1", 2, 1, 1): ("next_of_kin", "family_name"),
    ("NK1", 2, 2, 1): ("next_of_kin", "given_name"),
    ("NK1", 3, 1, 1): ("next_of_kin", "relationship"),
    ("NK1", 4, 1, 1): ("next_of_kin", "street"),
    ("NK1", 4, 3, 1): ("next_of_kin", "city"),
    ("NK1", 4, 4, 1): ("next_of_kin", "state"),
    ("NK1", 4, 5, 1): ("next_of_kin", "postal_code"),
    ("NK1", 5, 1, 1): ("next_of_kin", "phone"),
    ("ORC", 2, 1, 1): ("vaccinations", "placer_id"),
    ("ORC", 3, 1, 1): ("vaccinations", "filler_id"),
    ("ORC", 3, 2, 1): ("vaccinations", "filler_namespace"),
    ("ORC", 3, 3, 1): ("vaccinations", "filler_namespace"),
    ("RXA", 5, 1, 1): ("vaccinations", "ndc"),
    ("RXA", 5, 2, 1): ("vaccinations", "cvx_text"),
    ("RXA", 5, 4, 1): ("vaccinations", "ndc"),
    ("RXA", 5, 5, 1): ("vaccinations", "cvx_text"),
    ("RXA", 6, 1, 1): ("vaccinations", "amount"),
    ("RXA", 7, 1, 1): ("vaccinations", "units"),
    ("RXA", 10, 1, 1): ("vaccinations", "administering_provider"),
    ("RXA", 11, 4, 1): ("vaccinations", "administered_location"),
    ("RXA", 15, 1, 1): ("vaccinations", "lot_numbers"),
    ("RXA", 17, 1, 1): ("vaccinations", "mvx"),
    ("RXA", 18, 1, 1): ("vaccinations", "refusal_reason"),
    ("RXR", 1, 1, 1): ("vaccinations", "route"),
    ("RXR", 2, 1, 1): ("vaccinations", "site"),
    ("OBX", 2, 1, 1): ("observations", "value_type"),
    ("OBX", 3, 2, 1): ("observations", "loinc_text"),
    ("OBX", 4, 1, 1): ("observations", "sub_id"),
    ("OBX", 5, 3, 1): ("observations", "value_system"),
}
#: OBX-5.1 is stored as the value code, and for funding also in these.
_ALSO = {("OBX", 5, 1, 1): ("observations", "value_code")}


def test_field_limits_never_exceed_the_column_that_stores_the_value() -> None:
    """Every row whose value lands in a VARCHAR column allows at most that column's size."""
    checked = 0
    for row in FIELD_LIMITS:
        key = (row.segment, row.field, row.component, row.subcomponent)
        where = _COLUMNS.get(key) or _ALSO.get(key)
        if where is None:
            continue
        column = schema.metadata.tables[where[0]].c[where[1]]
        assert isinstance(column.type, String)
        assert column.type.length is not None
        assert row.max_length <= column.type.length, (row, where)
        checked += 1
    assert checked == len(_COLUMNS) + 2  # two OBX-5.1 rows


def _pipeline(db: Database) -> MessagePipeline:
    return MessagePipeline(
        database=db,
        routes={"VXU": Route(VxuHandler(CodeTables.load()), "VXU_V04")},
        senders=SenderPolicy({"CLINIC1": "BAY"}, "reject", "BAY"),
        now=lambda: NOW,
    )


def _send(db: Database, message: str) -> bytes:
    (outcome,) = _pipeline(db).process_batch(
        [Inbound(message.encode(), "test", "mllp")]
    )
    return outcome.payload


def _scalar(db: Database, sql: str) -> object:
    with db.engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def _err_texts(payload: bytes) -> list[str]:
    return [f"{e[2]}|{e[4]}|{e[8]}" for e in errs(payload)]


_PID = (
    "PID|1||{mrn}^^^EHR^MR||{family}^Qqcanarygiv^^^^^L||20230105|F||"
    "|{street}^^Sacramento^CA^95814^USA^L"
)


def test_field_limits_truncate_a_long_family_name_on_both_backends(
    db: Database,
) -> None:
    """A 101-character family name is stored cut to 100 with a W naming PID-5.1, on both backends."""
    family = CANARY_FAMILY + "x" * (101 - len(CANARY_FAMILY))
    pid = _PID.format(mrn=CANARY_MRN, family=family, street="1 Main St")
    payload = _send(db, vxu(pid=pid, doses=[Dose()]))
    assert msa_code(payload) == "AA"
    assert any(
        "PID^1^5^1^1|W|PID-5.1 (family name) is longer than 100" in t
        for t in _err_texts(payload)
    )
    assert _scalar(db, "SELECT family_name FROM patients") == family[:100]


def test_field_limits_truncate_a_500_kb_name_instead_of_storing_it(
    db: Database,
) -> None:
    """A 500 KB given name is answered AA with a W and stored as 100 characters."""
    pid = f"PID|1||{CANARY_MRN}^^^EHR^MR||{CANARY_FAMILY}^{'g' * 500_000}^^^^^L||20230105|F"
    payload = _send(db, vxu(pid=pid, doses=[Dose()]))
    assert msa_code(payload) == "AA"
    assert _scalar(db, "SELECT length(given_name) FROM patients") == 100


def test_field_limits_reject_the_message_for_an_identifier_over_100(
    db: Database,
) -> None:
    """A PID-3 over 100 characters is an E at PID-3.1 that rejects the message; nothing stored."""
    pid = _PID.format(mrn="M" * 101, family=CANARY_FAMILY, street="1 Main St")
    payload = _send(db, vxu(pid=pid, doses=[Dose()]))
    assert msa_code(payload) == "AE"
    assert any(
        t.startswith("PID^1^3^1^1|E|PID-3.1 (identifier) is longer than 100")
        and t.endswith("message rejected")
        for t in _err_texts(payload)
    )
    assert _scalar(db, "SELECT count(*) FROM patients") == 0


def test_field_limits_reject_only_the_dose_with_an_mvx_over_10(db: Database) -> None:
    """An RXA-17 over 10 characters rejects that dose, names it, and keeps the other."""
    payload = _send(db, vxu(doses=[Dose(mvx="M" * 11), Dose()]))
    assert msa_code(payload) == "AE"
    assert any(
        "RXA^1^17^1^1|E|RXA-17.1 (manufacturer) is longer than 10 characters; order group 1 rejected"
        in t
        for t in _err_texts(payload)
    )
    assert _scalar(db, "SELECT count(*) FROM vaccinations") == 1


def test_field_limits_ignore_an_nk1_relationship_over_10(db: Database) -> None:
    """An NK1-3 over 10 characters is an E at NK1-3; the NK1 is dropped, the patient stored."""
    nk1 = f"NK1|1|{CANARY_FAMILY}^Parent^^^^^L|{'M' * 11}^Mother^HL70063"
    message = vxu(doses=[Dose()]).replace(
        f"NK1|1|{CANARY_FAMILY}^Parent^^^^^L|MTH^Mother^HL70063", nk1
    )
    payload = _send(db, message)
    assert msa_code(payload) == "AE"
    assert any(t.startswith("NK1^1^3^1^1|E|") for t in _err_texts(payload))
    assert _scalar(db, "SELECT count(*) FROM next_of_kin") == 0
    assert _scalar(db, "SELECT count(*) FROM vaccinations") == 1


@pytest.mark.parametrize("nul", ["\x00", "\\X00\\"])
def test_field_limits_reject_a_nul_in_the_identifier(db: Database, nul: str) -> None:
    """A NUL in PID-3 (raw or escaped) is E 102 at PID-3 and rejects the message on both backends."""
    pid = _PID.format(mrn=f"M{nul}1", family=CANARY_FAMILY, street="1 Main St")
    payload = _send(db, vxu(pid=pid, doses=[Dose()]))
    assert msa_code(payload) == "AE"
    assert any(
        t.startswith("PID^1^3^1^1|E|PID-3.1 contains a control character")
        for t in _err_texts(payload)
    )
    assert _scalar(db, "SELECT count(*) FROM patients") == 0


def test_field_limits_ignore_a_control_character_in_the_street(db: Database) -> None:
    """A VT in PID-11 is E at PID-11.1; the address is not stored, the doses are."""
    pid = _PID.format(mrn=CANARY_MRN, family=CANARY_FAMILY, street="1 Main\\X0B\\St")
    payload = _send(db, vxu(pid=pid, doses=[Dose()]))
    assert msa_code(payload) == "AE"
    assert any(
        t.startswith(
            "PID^1^11^1^1|E|PID-11.1 contains a control character; value ignored"
        )
        for t in _err_texts(payload)
    )
    assert _scalar(db, "SELECT street FROM patients") == ""
    assert _scalar(db, "SELECT count(*) FROM vaccinations") == 1


def test_field_limits_reject_the_dose_with_a_c1_byte_in_its_lot(db: Database) -> None:
    """A C1 character in RXA-15 rejects that dose only."""
    payload = _send(db, vxu(doses=[Dose(lot="LOT\x851"), Dose()]))
    assert msa_code(payload) == "AE"
    assert any(
        t.startswith(
            "RXA^1^15^1^1|E|RXA-15.1 contains a control character; order group 1 rejected"
        )
        for t in _err_texts(payload)
    )
    assert _scalar(db, "SELECT count(*) FROM vaccinations") == 1


def test_field_limits_keep_line_breaks_in_observation_text(db: Database) -> None:
    """A \\.br\\ line break in an OBX-5 text value is text, not a control character."""
    obx = "OBX|1|ST|48767-8^Annotation^LN|1|line one\\.br\\line two||||||F"
    payload = _send(db, vxu(doses=[Dose(observations=[obx])]))
    assert not [t for t in _err_texts(payload) if "control character" in t]
    assert _scalar(db, "SELECT value_text FROM observations") == "line one\rline two"


def test_field_limits_keep_a_24_digit_vis_barcode(db: Database) -> None:
    """A VIS document code (69764-9, a 24-digit GDTI) is within the OBX-5.1 limit."""
    obx = (
        "OBX|1|CE|69764-9^VIS^LN|1|253088698300026411110419^Hep B VIS^cdcgs1vis||||||F"
    )
    payload = _send(db, vxu(doses=[Dose(observations=[obx])]))
    assert not [t for t in _err_texts(payload) if "|E|" in t]
    assert _scalar(db, "SELECT value_code FROM observations") == (
        "253088698300026411110419"
    )
