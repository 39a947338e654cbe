"""The inventory service on a known data set, on SQLite and PostgreSQL: exact figures.

The data set (region BAY):

- 2025-11-01 CLINIC1 receives 4 of VAR-OLD (CVX 21, VFC, expires 2026-01-31).
- 2026-01-05 CLINIC1 receives 10 of MMR-A1 (CVX 03, VFC, expires 2027-12-31).
- 2026-01-20 dose 101 (MMR-A1, VFC) and 2026-01-22 dose 102 (MMR-A1) draw down.
- 2026-02-03 one MMR-A1 dose wasted.
- 2026-02-10 dose 103 of VAR-OLD: expired, drawn down all the same, an exception.
- 2026-02-15 the 3 VAR-OLD doses left are written off as expired.
- 2026-02-20 2 MMR-A1 doses transferred to CLINIC2.
- 2026-03-01 CLINIC1 receives 2 of HEPB-Z (CVX 08, private, expires 2026-04-15).
- 2026-03-05 dose 101 is deleted (RXA-21 D): its unit comes back, in January.

So at the end: MMR-A1 10 - 2 - 1 - 2 + 1 = 6 at CLINIC1 and 2 at CLINIC2,
VAR-OLD 0, HEPB-Z 2.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from handlers.filing import Origin
from handlers.inventory import (
    AdministeredDose,
    DrawDown,
    Facility,
    InventoryError,
    InventoryService,
)
from handlers.inventory_report import report_tables, usage_chart
from handlers.reporting import csv_text, text_table
from storage import Database

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
CLINIC1 = Facility("BAY", "CLINIC1")
CLINIC2 = Facility("BAY", "CLINIC2")
ORIGIN = Origin("BAY", "CLINIC1", None, "VXU")


def _service(uow) -> InventoryService:
    return InventoryService(uow.inventory, uow, lambda: NOW)


def _receive(service, facility, lot, cvx, funding, expires, quantity, on):
    return service.receive(
        facility,
        cvx=cvx,
        mvx="MSD",
        lot_number=lot,
        expires_on=expires,
        funding=funding,
        quantity=quantity,
        on=on,
        by="test",
    )


@pytest.fixture(name="ids")
def _data_set(db: Database) -> dict[str, int]:
    """Load the data set of the module docstring; returns the lot ids by name."""
    with db.transaction() as uow:
        s = _service(uow)
        var = _receive(
            s, CLINIC1, "VAR-OLD", "21", "VFC", date(2026, 1, 31), 4, date(2025, 11, 1)
        )
        mmr = _receive(
            s, CLINIC1, "MMR-A1", "03", "VFC", date(2027, 12, 31), 10, date(2026, 1, 5)
        )
        drawn = s.draw_down(
            ORIGIN,
            [
                AdministeredDose(101, "03", ("MMR-A1",), date(2026, 1, 20), "VFC"),
                AdministeredDose(102, "03", ("mmr-a1 ",), date(2026, 1, 22), "private"),
            ],
        )
        assert drawn == [
            DrawDown(101, "CLINIC1", True, mmr.id),
            DrawDown(102, "CLINIC1", True, mmr.id),
        ]
        s.adjust(CLINIC1, mmr.id, "wasted", 1, on=date(2026, 2, 3), by="test")
        (expired,) = s.draw_down(
            ORIGIN,
            [AdministeredDose(103, "21", ("VAR-OLD",), date(2026, 2, 10), "VFC")],
        )
        assert expired == DrawDown(103, "CLINIC1", True, var.id, "expired")
        s.adjust(CLINIC1, var.id, "expired", 3, on=date(2026, 2, 15), by="test")
        s.transfer(CLINIC1, mmr.id, CLINIC2, 2, on=date(2026, 2, 20), by="test")
        hepb = _receive(
            s,
            CLINIC1,
            "HEPB-Z",
            "08",
            "private",
            date(2026, 4, 15),
            2,
            date(2026, 3, 1),
        )
        assert s.give_back(ORIGIN, 101) == 1
    return {"var": var.id, "mmr": mmr.id, "hepb": hepb.id}


def _on_hand(db: Database, facility: Facility) -> list[tuple[str, str, int]]:
    with db.reading() as uow:
        return [
            (lot.lot_number, lot.funding, lot.on_hand)
            for lot in _service(uow).lots(facility)
        ]


def test_quantity_on_hand_is_derived_from_the_transactions(
    db: Database, ids: dict[str, int]
) -> None:
    """On hand per lot is the sum of its rows: 6 MMR-A1, 0 VAR-OLD, 2 HEPB-Z at CLINIC1."""
    assert _on_hand(db, CLINIC1) == [
        ("VAR-OLD", "VFC", 0),
        ("HEPB-Z", "private", 2),
        ("MMR-A1", "VFC", 6),
    ]
    with db.reading() as uow:
        rows = uow.inventory.transactions("BAY", "CLINIC1")
    assert [
        (t.kind, t.quantity, t.occurred_on.isoformat())
        for t in rows
        if t.lot_id == ids["mmr"]
    ] == [
        ("received", 10, "2026-01-05"),
        ("administered", -1, "2026-01-20"),
        # the give-back of dose 101 is dated on the day it drew the unit
        ("dose-deleted", 1, "2026-01-20"),
        ("administered", -1, "2026-01-22"),
        ("wasted", -1, "2026-02-03"),
        ("transferred-out", -2, "2026-02-20"),
    ]


def test_transfer_moves_doses_into_a_lot_of_the_receiving_facility(
    db: Database, ids: dict[str, int]
) -> None:
    """CLINIC2 gets its own MMR-A1 lot (same number, CVX, funding, expiry) with 2 doses."""
    with db.reading() as uow:
        (lot,) = _service(uow).lots(CLINIC2)
        rows = uow.inventory.transactions("BAY", "CLINIC2")
    assert (lot.lot_number, lot.cvx, lot.funding, lot.expires_on, lot.on_hand) == (
        "MMR-A1",
        "03",
        "VFC",
        date(2027, 12, 31),
        2,
    )
    assert lot.id != ids["mmr"]
    assert [(t.kind, t.quantity, t.counterparty) for t in rows] == [
        ("transferred-in", 2, "CLINIC1")
    ]


def test_report_figures(db: Database, ids: dict[str, int]) -> None:
    """Expiring, usage by month, VFC versus private, write-offs and exceptions, as of 2026-03-31."""
    with db.reading() as uow:
        report = _service(uow).report(CLINIC1, date(2026, 3, 31), expiring_days=30)
    assert report.start == date(2025, 4, 1)
    assert [(lot.lot_number, lot.on_hand) for lot in report.expiring] == [("HEPB-Z", 2)]
    usage = {m.month: (m.by_funding, m.total) for m in report.usage if m.total}
    assert usage == {
        "2026-01": ({"VFC": 1, "state": 0, "private": 0}, 1),
        "2026-02": ({"VFC": 1, "state": 0, "private": 0}, 1),
    }
    assert len(report.usage) == 12
    assert report.administered_by_funding() == {"VFC": 2, "state": 0, "private": 0}
    assert report.wasted == {"wasted": 1, "expired": 3, "returned": 0}
    assert [
        (e.vaccination_id, e.cvx, e.lot_number, e.reason) for e in report.exceptions
    ] == [(103, "21", "VAR-OLD", "expired")]


def test_report_tables_print_and_export_the_same_figures(
    db: Database, ids: dict[str, int]
) -> None:
    """The terminal table and the CSV carry the report's numbers; the chart is an SVG of the months."""
    with db.reading() as uow:
        report = _service(uow).report(
            CLINIC1, date(2026, 3, 31), expiring_days=30, start=date(2026, 1, 1)
        )
    tables = {t.name: t for t in report_tables(report, {"03": "MMR"}.get)}  # type: ignore[arg-type]
    assert list(tables) == [
        "on-hand",
        "expiring",
        "usage-by-month",
        "funding",
        "written-off",
        "exceptions",
    ]
    assert csv_text(tables["usage-by-month"]) == (
        "month,VFC,state,private,total\n"
        "2026-01,1,0,0,1\n"
        "2026-02,1,0,0,1\n"
        "2026-03,0,0,0,0\n"
    )
    assert csv_text(tables["funding"]) == (
        "funding,doses administered,share\nVFC,2,100.0%\nstate,0,0.0%\nprivate,0,0.0%\n"
    )
    assert csv_text(tables["on-hand"]).splitlines()[1:] == [
        f"{ids['var']},VAR-OLD,21,,MSD,VFC,2026-01-31,0",
        f"{ids['hepb']},HEPB-Z,08,,MSD,private,2026-04-15,2",
        f"{ids['mmr']},MMR-A1,03,MMR,MSD,VFC,2027-12-31,6",
    ]
    text = text_table(tables["exceptions"])
    assert "VAR-OLD" in text and "expired" in text and "103" in text
    chart = usage_chart(report)
    assert chart.svg.lstrip().startswith("<?xml")
    assert "2026-01" in chart.svg and "2026-03" in chart.svg


# -- refusals: each names the field and the reason ------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda s, ids: s.adjust(
                CLINIC1, ids["mmr"], "wasted", 7, on=date(2026, 4, 1), by="t"
            ),
            "--quantity: lot MMR-A1 has 6 on hand; 7 cannot be taken out",
        ),
        (
            lambda s, ids: s.adjust(
                CLINIC1, ids["mmr"], "adjusted", -1, on=date(2026, 4, 1), by="t"
            ),
            "--reason: an adjustment needs a reason",
        ),
        (
            lambda s, ids: s.adjust(
                CLINIC1, ids["mmr"], "stolen", 1, on=date(2026, 4, 1), by="t"
            ),
            "--kind: 'stolen' is not one of wasted, expired, returned, adjusted",
        ),
        (
            lambda s, ids: s.adjust(
                CLINIC1, ids["mmr"], "wasted", -2, on=date(2026, 4, 1), by="t"
            ),
            "--quantity: must be a positive number, not -2",
        ),
        (
            lambda s, ids: s.transfer(
                CLINIC1, ids["mmr"], CLINIC2, 7, on=date(2026, 4, 1), by="t"
            ),
            "--quantity: lot MMR-A1 has 6 on hand; 7 cannot be transferred",
        ),
        (
            lambda s, ids: s.transfer(
                CLINIC1, ids["mmr"], CLINIC1, 1, on=date(2026, 4, 1), by="t"
            ),
            "--to: a facility cannot transfer to itself",
        ),
        (
            lambda s, ids: _receive(
                s, CLINIC1, "MMR-A1", "03", "VFC", date(2028, 1, 1), 1, date(2026, 4, 1)
            ),
            "--expires: lot MMR-A1 is held with expiration date 2027-12-31, not 2028-01-01",
        ),
        (
            lambda s, ids: _receive(
                s,
                CLINIC1,
                "X1",
                "03",
                "Medicaid",
                date(2028, 1, 1),
                1,
                date(2026, 4, 1),
            ),
            "--funding: 'Medicaid' is not one of VFC, state, private",
        ),
        (
            lambda s, ids: _receive(
                s,
                CLINIC1,
                "X1",
                "03;DROP",
                "VFC",
                date(2028, 1, 1),
                1,
                date(2026, 4, 1),
            ),
            "--cvx: '03;DROP' is not a CVX code (1 to 3 digits)",
        ),
        (
            lambda s, ids: _receive(
                s, CLINIC1, "  ", "03", "VFC", date(2028, 1, 1), 1, date(2026, 4, 1)
            ),
            "--lot: the lot number is empty",
        ),
    ],
)
def test_refusals_name_the_field_and_change_nothing(
    db: Database, ids: dict[str, int], call, message: str
) -> None:
    """A refused command raises with one clear line, and the stock is as it was."""
    before = _on_hand(db, CLINIC1)
    with pytest.raises(InventoryError) as caught, db.transaction() as uow:
        call(_service(uow), ids)
    assert str(caught.value) == message
    assert _on_hand(db, CLINIC1) == before


# -- the other party ---------------------------------------------------------------------


def test_another_facility_cannot_adjust_transfer_or_see_clinic1s_lots(
    db: Database, ids: dict[str, int]
) -> None:
    """CLINIC2 naming CLINIC1's lot id is told it is not its lot; its list shows only its own."""
    for call in (
        lambda s: s.adjust(
            CLINIC2, ids["mmr"], "wasted", 1, on=date(2026, 4, 1), by="t"
        ),
        lambda s: s.transfer(
            CLINIC2, ids["hepb"], CLINIC1, 1, on=date(2026, 4, 1), by="t"
        ),
    ):
        with pytest.raises(InventoryError) as caught, db.transaction() as uow:
            call(_service(uow))
        assert "is not a lot of facility CLINIC2" in str(caught.value)
    assert [name for name, _f, _n in _on_hand(db, CLINIC2)] == ["MMR-A1"]
    assert _on_hand(db, CLINIC1)[-1] == ("MMR-A1", "VFC", 6)


def test_the_same_facility_id_in_another_region_sees_nothing(
    db: Database, ids: dict[str, int]
) -> None:
    """Lots belong to a region and a facility: CLINIC1 of region LAO has none of BAY's."""
    assert _on_hand(db, Facility("LAO", "CLINIC1")) == []
    with db.reading() as uow:
        report = _service(uow).report(Facility("LAO", "CLINIC1"), date(2026, 3, 31))
    assert report.lots == () and report.exceptions == ()


def test_transfer_to_another_region_is_refused(
    db: Database, ids: dict[str, int]
) -> None:
    """Stock moves within a region only."""
    with pytest.raises(InventoryError) as caught, db.transaction() as uow:
        _service(uow).transfer(
            CLINIC1,
            ids["mmr"],
            Facility("LAO", "LACLINIC"),
            1,
            on=date(2026, 4, 1),
            by="t",
        )
    assert str(caught.value) == "--to: facility LACLINIC is in region LAO, not BAY"


def test_two_writers_cannot_both_draw_the_last_dose(db: Database) -> None:
    """Two engine nodes drawing the lot's last dose at once: one draws, the other is out of stock."""
    import threading

    with db.transaction() as uow:
        _receive(
            _service(uow),
            CLINIC1,
            "LAST-1",
            "03",
            "VFC",
            date(2027, 1, 1),
            1,
            date(2026, 1, 1),
        )
    first_drew = threading.Event()
    outcomes: dict[int, DrawDown] = {}

    def node(vaccination_id: int, hold: bool) -> None:
        with db.transaction() as uow:
            (outcome,) = _service(uow).draw_down(
                ORIGIN,
                [AdministeredDose(vaccination_id, "03", ("LAST-1",), date(2026, 2, 1))],
            )
            uow.flush()
            outcomes[vaccination_id] = outcome
            if hold:
                first_drew.set()
                # Keep the transaction open while the other node tries.
                threading.Event().wait(0.5)

    first = threading.Thread(target=node, args=(1, True))
    first.start()
    assert first_drew.wait(10)
    second = threading.Thread(target=node, args=(2, False))
    second.start()
    first.join(20)
    second.join(20)
    assert outcomes[1].drawn and outcomes[1].reason is None
    assert (outcomes[2].drawn, outcomes[2].reason) == (False, "out-of-stock")
    assert ("LAST-1", "VFC", 0) in _on_hand(db, CLINIC1)
