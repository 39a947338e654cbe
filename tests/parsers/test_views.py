"""Typed views of VXU messages: grouping, fields and structure problems."""

from __future__ import annotations

from pathlib import Path

from parsers import decode_message, read_vxu, tokenize
from parsers.datatypes import is_number, parse_date
from tests.support.messages import Dose, vxu


def test_views_group_orders_with_their_rxr_and_obx() -> None:
    """Each ORC opens an order group holding its RXA, RXR and OBX rows."""
    view = read_vxu(tokenize(vxu(doses=[Dose(), Dose(cvx="20")])))
    assert len(view.orders) == 2
    first = view.orders[0]
    assert first.order is not None and first.order.filler_namespace == "EHR"
    assert (
        first.administration is not None and first.administration.vaccine.code == "08"
    )
    assert first.route is not None and first.route.route.code == "C28161"
    assert [o.code.code for o in first.observations] == ["64994-7"]


def test_views_read_patient_fields() -> None:
    """PID identifiers, legal name, birth date, sex and PD1 protection are read."""
    view = read_vxu(tokenize(vxu(protection="Y")))
    assert view.patient is not None
    assert view.patient.identifiers[0].authority == "EHR"
    assert view.patient.identifiers[0].type_code == "MR"
    assert view.patient.legal_name.family.startswith("Zz")
    assert view.patient.birth_date == "20230105"
    assert (
        view.patient_additional is not None
        and view.patient_additional.protection == "Y"
    )


def test_views_rxa_without_orc_opens_its_own_group() -> None:
    """A 2.3.1-style RXA with no ORC still forms an order group, with order None."""
    view = read_vxu(tokenize(vxu(doses=[Dose(with_orc=False)])))
    assert view.orders[0].order is None
    assert view.orders[0].administration is not None


def test_views_report_out_of_order_segment() -> None:
    """A PID after the order groups is a structure problem, not a second patient."""
    view = read_vxu(
        tokenize(vxu(doses=[Dose()]) + "PID|1||X^^^A^MR||A^B||20200101|F\r")
    )
    assert [p.segment for p in view.problems] == ["PID"]


def test_views_read_every_sample(samples_dir: Path) -> None:
    """Every sample VXU groups without raising, and clean ones have a patient."""
    for path in sorted(samples_dir.glob("vxu-*.hl7")):
        text = decode_message(path.read_bytes()).text.lstrip("\ufeff")
        if not text.startswith("MSH"):
            continue
        view = read_vxu(tokenize(text))
        if "edge" not in path.name:
            assert view.patient is not None, path.name


def test_dates_parse_hl7_shapes() -> None:
    """DT/TS values parse to dates; partial and invalid ones give a reason."""
    assert str(parse_date("20120814").value) == "2012-08-14"
    assert str(parse_date("201207010822+0700").value) == "2012-07-01"
    assert parse_date("201208").problem == "is not a full date (expected YYYYMMDD)"
    assert parse_date("20121399").problem == "is not a valid calendar date"
    assert parse_date("yesterday").problem.startswith("is not an HL7 date")
    assert parse_date("").value is None and not parse_date("").problem


def test_numbers_follow_hl7_nm() -> None:
    """NM accepts signed decimals only."""
    assert is_number("0.5") and is_number("999") and is_number("-1")
    assert not is_number("half") and not is_number("0.5mL")


def test_decoding_reports_bytes_invalid_for_declared_charset() -> None:
    """Latin-1 bytes under a UTF-8 declaration decode as Windows-1252 with a problem."""
    raw = "MSH|^~\\&|A|B|||20240101||VXU^V04|1|P|2.5.1||||||UNICODE UTF-8\rPID|1||1^^^A||Caf\u00e9".encode(
        "latin-1"
    )
    decoded = decode_message(raw)
    assert decoded.text.endswith("Caf\u00e9")
    assert "0xE9" in decoded.problem
