"""The VXU draw-down of vaccine inventory, through the pipeline in process, on SQLite and PostgreSQL.

The known data set: CLINIC1 (region BAY) stocks

| lot      | CVX | funding | expires    | received |
| -------- | --- | ------- | ---------- | -------- |
| MMR-A1   | 03  | VFC     | 2027-12-31 | 10       |
| MMR-A1   | 03  | private | 2027-12-31 | 5        |
| VAR-OLD  | 21  | VFC     | 2026-01-31 | 4        |
| HEPB-Z   | 08  | private | 2027-06-30 | 2        |
| TD-1     | 113 | private | 2027-06-30 | 3        |

CLINIC2 (BAY) and LACLINIC (LAO) keep no inventory. Every test sends real
VXUs through the pipeline ``cairn serve`` builds and reads the derived
quantities on hand back through the service.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from handlers.inventory import Facility, InventoryService
from storage import Database
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code
from tests.support.registry import InProcessRegistry, build_registry

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CLINIC1 = Facility("BAY", "CLINIC1")
VFC = ["OBX|1|CE|64994-7^Eligibility^LN|1|V02^Medicaid^HL70064||||||F"]
PRIVATE = [
    "OBX|1|CE|64994-7^Eligibility^LN|1|V01^Not VFC eligible^HL70064||||||F",
    "OBX|2|CE|30963-3^Funding source^LN|2|PHC70^Private funds^CDCPHINVS||||||F",
]

_STOCK = (
    ("MMR-A1", "03", "VFC", date(2027, 12, 31), 10),
    ("MMR-A1", "03", "private", date(2027, 12, 31), 5),
    ("VAR-OLD", "21", "VFC", date(2026, 1, 31), 4),
    ("HEPB-Z", "08", "private", date(2027, 6, 30), 2),
    ("TD-1", "113", "private", date(2027, 6, 30), 3),
)


def _service(uow) -> InventoryService:
    return InventoryService(uow.inventory, uow, lambda: NOW)


def on_hand(db: Database, facility: Facility = CLINIC1) -> dict[tuple[str, str], int]:
    """(lot, funding) -> quantity on hand, derived from the transactions."""
    with db.reading() as uow:
        return {
            (lot.lot_number, lot.funding): lot.on_hand
            for lot in _service(uow).lots(facility)
        }


@pytest.fixture(name="registry")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    """The e2e servers' pipeline in process, with CLINIC1's stock received."""
    registry = build_registry(db, tmp_path, monkeypatch)
    with db.transaction() as uow:
        service = _service(uow)
        for lot, cvx, funding, expires, quantity in _STOCK:
            service.receive(
                CLINIC1,
                cvx=cvx,
                mvx="MSD",
                lot_number=lot,
                expires_on=expires,
                funding=funding,
                quantity=quantity,
                on=date(2026, 1, 5),
                by="CLINIC1",
            )
    return registry


def _rxa_warnings(reply: bytes) -> list[tuple[str, str, str]]:
    """(ERR-2 location, ERR-4 severity, ERR-8 text) of the inventory findings."""
    return [
        (e[2], e[4], e[8])
        for e in errs(reply)
        if e[2].startswith("RXA^") and ("lot number" in e[8] or "RXA-11" in e[8])
    ]


def test_draw_down_takes_one_unit_from_the_lot_of_the_doses_funding(
    registry: InProcessRegistry, db: Database
) -> None:
    """A VFC dose takes from the VFC lot, a private one from the private lot of the same number."""
    reply = registry.send(
        vxu(
            mrn="INV1",
            doses=[
                Dose(cvx="03", date="20260310", lot="mmr-a1", observations=VFC),
                Dose(cvx="03", date="20260311", lot="MMR-A1", observations=PRIVATE),
            ],
        )
    )
    assert msa_code(reply) == "AA"
    assert _rxa_warnings(reply) == []
    assert on_hand(db) == {
        ("VAR-OLD", "VFC"): 4,
        ("HEPB-Z", "private"): 2,
        ("TD-1", "private"): 3,
        ("MMR-A1", "VFC"): 9,
        ("MMR-A1", "private"): 4,
    }


def test_draw_down_is_in_the_doses_transaction_and_a_delete_gives_it_back(
    registry: InProcessRegistry, db: Database
) -> None:
    """The administered row names the stored dose; an RXA-21 D of it returns the unit."""
    registry.send(
        vxu(
            mrn="INV2",
            doses=[
                Dose(
                    filler="G1",
                    cvx="03",
                    date="20260310",
                    lot="MMR-A1",
                    observations=VFC,
                )
            ],
        )
    )
    rows = registry.query(
        "SELECT t.kind, t.quantity, v.filler_id FROM inventory_transactions t "
        "JOIN vaccinations v ON v.id = t.vaccination_id ORDER BY t.id"
    )
    assert rows == [("administered", -1, "G1")]
    assert on_hand(db)[("MMR-A1", "VFC")] == 9
    reply = registry.send(
        vxu(
            mrn="INV2",
            doses=[
                Dose(
                    filler="G1",
                    cvx="03",
                    date="20260310",
                    lot="MMR-A1",
                    observations=VFC,
                    action="D",
                )
            ],
        )
    )
    assert msa_code(reply) == "AA"
    assert on_hand(db)[("MMR-A1", "VFC")] == 10
    assert registry.query(
        "SELECT kind, quantity FROM inventory_transactions "
        "WHERE vaccination_id IS NOT NULL ORDER BY id"
    ) == [("administered", -1), ("dose-deleted", 1)]


def test_resend_and_update_do_not_draw_down_twice(
    registry: InProcessRegistry, db: Database
) -> None:
    """The same message again, or a later A of the same ORC-3 (an update), moves no stock."""
    message = vxu(
        mrn="INV3",
        control_id="INV3-1",
        doses=[
            Dose(filler="R1", cvx="03", date="20260310", lot="MMR-A1", observations=VFC)
        ],
    )
    registry.send(message)
    registry.send(message)
    registry.send(
        vxu(
            mrn="INV3",
            doses=[
                Dose(
                    filler="R1",
                    cvx="03",
                    date="20260310",
                    lot="MMR-A1",
                    observations=VFC,
                )
            ],
        )
    )
    assert on_hand(db)[("MMR-A1", "VFC")] == 9


def test_unknown_expired_and_out_of_stock_lots_store_the_dose_and_warn_at_rxa15(
    registry: InProcessRegistry, db: Database
) -> None:
    """Each dose is stored with a warning naming RXA-15 and why; the exceptions are kept."""
    reply = registry.send(
        vxu(
            mrn="INV4",
            doses=[
                Dose(cvx="08", date="20260301", lot="HEPB-Z", observations=PRIVATE),
                Dose(cvx="08", date="20260302", lot="HEPB-Z", observations=PRIVATE),
                Dose(cvx="08", date="20260303", lot="HEPB-Z", observations=PRIVATE),
                Dose(cvx="21", date="20260304", lot="VAR-OLD", observations=VFC),
                Dose(cvx="20", date="20260305", lot="NOSUCHLOT", observations=VFC),
            ],
        )
    )
    assert msa_code(reply) == "AA"
    assert registry.query("SELECT COUNT(*) FROM vaccinations") == [(5,)]
    assert _rxa_warnings(reply) == [
        (
            "RXA^3^15",
            "W",
            "RXA-15 (lot number) has no doses on hand; dose stored, inventory of "
            "CLINIC1 not drawn down (order group 3)",
        ),
        (
            "RXA^4^15",
            "W",
            "RXA-15 (lot number) had expired on the date the dose was given; dose "
            "stored and drawn down from that lot (order group 4)",
        ),
        (
            "RXA^5^15",
            "W",
            "RXA-15 (lot number) is not a lot of this vaccine in the facility's "
            "inventory; dose stored, inventory of CLINIC1 not drawn down (order group 5)",
        ),
    ]
    assert on_hand(db)[("HEPB-Z", "private")] == 0
    assert on_hand(db)[("VAR-OLD", "VFC")] == 3
    assert registry.query(
        "SELECT facility, cvx, lot_number, reason, occurred_on FROM inventory_exceptions ORDER BY id"
    ) == [
        ("CLINIC1", "08", "HEPB-Z", "out-of-stock", "2026-03-03"),
        ("CLINIC1", "21", "VAR-OLD", "expired", "2026-03-04"),
        ("CLINIC1", "20", "NOSUCHLOT", "unknown-lot", "2026-03-05"),
    ]


def test_ndc_coded_dose_draws_down_the_lot_of_its_crosswalk_cvx(
    registry: InProcessRegistry, db: Database
) -> None:
    """TENIVAC by NDC 49281-0215-88 is CVX 113 in CDC's crosswalk: it takes from TD-1."""
    reply = registry.send(
        vxu(
            mrn="INV5",
            doses=[
                Dose(
                    code="49281-0215-88^TENIVAC^NDC",
                    mvx="PMC",
                    date="20260310",
                    lot="TD-1",
                    observations=PRIVATE,
                )
            ],
        )
    )
    assert msa_code(reply) == "AA"
    assert registry.query("SELECT cvx, ndc FROM vaccinations") == [
        ("113", "49281021588")
    ]
    assert on_hand(db)[("TD-1", "private")] == 2


def test_historical_and_refused_doses_draw_nothing(
    registry: InProcessRegistry, db: Database
) -> None:
    """RXA-9 01 (historical) and RXA-20 RE (refused) were not given from this stock."""
    registry.send(
        vxu(
            mrn="INV6",
            doses=[
                Dose(cvx="03", date="20260310", source="01", observations=[]),
                Dose(cvx="03", date="20260310", completion="RE", refusal="00"),
            ],
        )
    )
    assert on_hand(db)[("MMR-A1", "VFC")] == 10
    assert registry.query("SELECT COUNT(*) FROM inventory_exceptions") == [(0,)]


# -- the other party ------------------------------------------------------------


def test_another_clinic_with_the_same_lot_number_draws_nothing_from_clinic1(
    registry: InProcessRegistry, db: Database
) -> None:
    """CLINIC2 keeps no inventory: its dose of lot MMR-A1 leaves CLINIC1's stock alone, unwarned."""
    reply = registry.send(
        vxu(
            sender="CLINIC2",
            mrn="INV7",
            doses=[Dose(cvx="03", date="20260310", lot="MMR-A1", observations=VFC)],
        )
    )
    assert msa_code(reply) == "AA"
    assert _rxa_warnings(reply) == []
    assert on_hand(db)[("MMR-A1", "VFC")] == 10
    assert registry.query("SELECT COUNT(*) FROM inventory_exceptions") == [(0,)]


def _naming_clinic1_message(sender: str) -> str:
    return vxu(
        sender=sender,
        mrn="INV8",
        doses=[
            Dose(
                cvx="03",
                date="20260310",
                lot="MMR-A1",
                location="CLINIC1",
                observations=VFC,
            )
        ],
    )


def _naming_clinic1(registry: InProcessRegistry, sender: str) -> bytes:
    return registry.send(_naming_clinic1_message(sender))


def test_another_clinic_naming_clinic1_in_rxa11_cannot_draw_its_lots(
    registry: InProcessRegistry, db: Database
) -> None:
    """RXA-11 = CLINIC1 from CLINIC2 is refused with a warning at RXA-11, kept as CLINIC2's exception."""
    reply = _naming_clinic1(registry, "CLINIC2")
    assert msa_code(reply) == "AA"
    assert _rxa_warnings(reply) == [
        (
            "RXA^1^11",
            "W",
            "RXA-11 (administered-at location) names a facility whose inventory this "
            "sender may not draw down; dose stored, no inventory drawn down (order group 1)",
        )
    ]
    assert on_hand(db)[("MMR-A1", "VFC")] == 10
    # The exception is the sender's, not written into CLINIC1's report.
    assert registry.query("SELECT facility, reason FROM inventory_exceptions") == [
        ("CLINIC2", "not-permitted")
    ]


def test_another_regions_clinic_naming_clinic1_touches_nothing_of_region_bay(
    registry: InProcessRegistry, db: Database
) -> None:
    """LACLINIC (LAO) naming CLINIC1: lots belong to a region, and LAO's CLINIC1 has none."""
    reply = _naming_clinic1(registry, "LACLINIC")
    assert msa_code(reply) == "AA"
    assert _rxa_warnings(reply) == []
    assert on_hand(db)[("MMR-A1", "VFC")] == 10
    assert registry.query("SELECT COUNT(*) FROM inventory_exceptions") == [(0,)]


def test_a_hub_naming_a_site_without_inventory_hears_nothing(
    registry: InProcessRegistry, db: Database
) -> None:
    """CLINIC2 sending for a client site that keeps no inventory: no warning, no exception."""
    reply = registry.send(
        vxu(
            sender="CLINIC2",
            mrn="INV10",
            doses=[
                Dose(
                    cvx="03",
                    date="20260310",
                    lot="MMR-A1",
                    location="SITE77",
                    observations=VFC,
                )
            ],
        )
    )
    assert msa_code(reply) == "AA"
    assert _rxa_warnings(reply) == []
    assert registry.query("SELECT COUNT(*) FROM inventory_exceptions") == [(0,)]
    assert on_hand(db)[("MMR-A1", "VFC")] == 10


def test_clinic1_naming_itself_in_rxa11_draws_down(
    registry: InProcessRegistry, db: Database
) -> None:
    """A site sending directly puts its own id in MSH-4 and RXA-11 (CAIR2): that is its stock."""
    registry.send(
        vxu(
            mrn="INV9",
            doses=[
                Dose(
                    cvx="03",
                    date="20260310",
                    lot="MMR-A1",
                    location="CLINIC1",
                    observations=VFC,
                )
            ],
        )
    )
    assert on_hand(db)[("MMR-A1", "VFC")] == 9


def test_junk_lot_numbers_are_stored_and_reported_not_matched(
    registry: InProcessRegistry, db: Database
) -> None:
    """A diluent lot before the vaccine's still finds the vaccine's; junk finds nothing and says so."""
    reply = registry.send(
        vxu(
            mrn="INV11",
            doses=[
                Dose(cvx="03", date="20260310", lot="DIL-77~mmr-a1", observations=VFC),
                Dose(cvx="03", date="20260311", lot="Ω" * 150, observations=VFC),
                Dose(cvx="03", date="20260312", lot="   ", observations=VFC),
            ],
        )
    )
    assert msa_code(reply) == "AA"
    assert registry.query("SELECT COUNT(*) FROM vaccinations") == [(3,)]
    assert on_hand(db)[("MMR-A1", "VFC")] == 9
    # RXA-3's empty lot: validation's "missing" warning, not a second one.
    assert [w[0] for w in _rxa_warnings(reply)] == ["RXA^3^15", "RXA^2^15"]
    assert _rxa_warnings(reply)[0][2] == (
        "RXA-15 (lot number) is missing for a newly administered dose"
    )
    rows = registry.query(
        "SELECT reason, LENGTH(lot_number) FROM inventory_exceptions ORDER BY id"
    )
    assert [reason for reason, _n in rows] == ["unknown-lot", "no-lot"]
    assert all(int(str(n)) <= 200 for _r, n in rows)


def test_an_organization_draws_down_the_lots_of_each_of_its_facility_ids(
    registry: InProcessRegistry, db: Database
) -> None:
    """GROUP sends as CLINIC1 and CLINIC2: a dose sent as CLINIC2 naming CLINIC1 takes from CLINIC1's lot."""
    from argon2 import PasswordHasher

    from handlers.identity import IdentityService

    service = IdentityService(
        db.transaction,
        now=lambda: NOW,
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    service.add_organization(
        "test",
        code="GROUP",
        name="",
        org_type="provider",
        region="BAY",
        facility_ids=["CLINIC1", "CLINIC2"],
    )
    group = service.principal_of("GROUP")
    assert group is not None
    message = _naming_clinic1_message("CLINIC2")
    reply = registry.send(message, principal=group)
    assert msa_code(reply) == "AA"
    assert _rxa_warnings(reply) == []
    assert on_hand(db)[("MMR-A1", "VFC")] == 9
