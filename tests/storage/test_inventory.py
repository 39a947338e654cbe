"""Inventory lots, transactions and exceptions (storage/inventory.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from storage import (
    Database,
    NewInventoryException,
    NewInventoryLot,
    NewInventoryTransaction,
    PermanentStorageError,
)

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _lot(facility: str = "CLINIC1", funding: str = "VFC") -> NewInventoryLot:
    return NewInventoryLot(
        "BAY", facility, "03", "MSD", "MMR-A1", date(2027, 12, 31), funding
    )


def _move(
    lot_id: int,
    kind: str,
    quantity: int,
    vaccination_id: int | None = None,
    on: date = date(2026, 2, 1),
) -> NewInventoryTransaction:
    return NewInventoryTransaction(
        "BAY",
        "CLINIC1",
        lot_id,
        kind,
        quantity,
        on,
        AT,
        "test",
        vaccination_id=vaccination_id,
    )


def test_on_hand_is_the_sum_of_the_lots_transactions(db: Database) -> None:
    """Every read of a lot carries the sum of its rows; a lot without rows has 0."""
    with db.transaction() as uow:
        inv = uow.inventory
        vfc = inv.add_lot(_lot(), AT)
        private = inv.add_lot(_lot(funding="private"), AT)
        assert inv.keeps_inventory("BAY", "CLINIC1")
        assert not inv.keeps_inventory("BAY", "CLINIC2")
        assert not inv.keeps_inventory("LAO", "CLINIC1")
        for kind, quantity in (("received", 10), ("administered", -1), ("wasted", -2)):
            inv.record(_move(vfc, kind, quantity))
    with db.reading() as uow:
        inv = uow.inventory
        assert [
            (lot.funding, lot.on_hand)
            for lot in inv.lots_for_dose("BAY", "CLINIC1", "MMR-A1", "03")
        ] == [
            ("VFC", 7),
            ("private", 0),
        ]
        assert inv.lots_for_dose("BAY", "CLINIC1", "MMR-A1", "21") == []
        assert inv.lots_for_dose("BAY", "CLINIC2", "MMR-A1", "03") == []
        lot = inv.lot("BAY", "CLINIC1", vfc)
        assert lot is not None and (lot.expires_on, lot.on_hand) == (
            date(2027, 12, 31),
            7,
        )
        assert inv.lot("BAY", "CLINIC2", vfc) is None
        found = inv.find_lot("BAY", "CLINIC1", "MMR-A1", "03", "private")
        assert found is not None and found.id == private


def test_drawn_for_nets_a_doses_transactions_per_lot(db: Database) -> None:
    """A dose's draw-down and give-back net to 0, dated on the first day it drew."""
    with db.transaction() as uow:
        inv = uow.inventory
        lot_id = inv.add_lot(_lot(), AT)
        inv.record(_move(lot_id, "received", 5))
        inv.record(_move(lot_id, "administered", -1, 77, date(2026, 2, 10)))
    with db.reading() as uow:
        assert uow.inventory.drawn_for("BAY", 77) == [
            (lot_id, "CLINIC1", -1, date(2026, 2, 10))
        ]
        assert uow.inventory.drawn_for("LAO", 77) == []
    with db.transaction() as uow:
        uow.inventory.record(_move(lot_id, "dose-deleted", 1, 77, date(2026, 2, 10)))
    with db.reading() as uow:
        assert uow.inventory.drawn_for("BAY", 77) == [
            (lot_id, "CLINIC1", 0, date(2026, 2, 10))
        ]


def test_exceptions_and_transactions_read_back_in_order(db: Database) -> None:
    """Per facility, oldest first, within the period asked for."""
    with db.transaction() as uow:
        inv = uow.inventory
        lot_id = inv.add_lot(_lot(), AT)
        inv.record(_move(lot_id, "received", 5, on=date(2026, 1, 5)))
        inv.record(_move(lot_id, "wasted", -1, on=date(2026, 3, 5)))
        for day, reason in (
            (date(2026, 2, 2), "expired"),
            (date(2026, 1, 2), "unknown-lot"),
        ):
            inv.add_exception(
                NewInventoryException(
                    "BAY", "CLINIC1", 9, None, "03", "X", reason, day, AT
                )
            )
    with db.reading() as uow:
        inv = uow.inventory
        assert [e.reason for e in inv.exceptions("BAY", "CLINIC1")] == [
            "unknown-lot",
            "expired",
        ]
        assert inv.exceptions("BAY", "CLINIC2") == []
        assert [
            t.kind
            for t in inv.transactions(
                "BAY", "CLINIC1", date(2026, 2, 1), date(2026, 3, 31)
            )
        ] == ["wasted"]


def test_one_lot_per_number_cvx_and_funding(db: Database) -> None:
    """The same lot twice for one facility is refused; another facility may hold it."""
    with db.transaction() as uow:
        uow.inventory.add_lot(_lot(), AT)
        uow.inventory.add_lot(_lot("CLINIC2"), AT)
    with pytest.raises(PermanentStorageError), db.transaction() as uow:
        uow.inventory.add_lot(_lot(), AT)
