"""Vaccine inventory: lots per facility, their transactions and exceptions.

Quantity on hand is never stored: it is the sum of a lot's transactions,
computed in the same statement that reads the lot. The draw-down of a VXU
dose runs on the fast path (compiled statements, its writes queued with the
message's others); the commands and reports read through SQLAlchemy Core.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    func,
    select,
)

from storage import dialects
from storage._records import field_names, fields_of, record_from_row
from storage._sql import Runner, Statement
from storage.records import (
    InventoryException,
    InventoryLot,
    InventoryTransaction,
    NewInventoryException,
    NewInventoryLot,
    NewInventoryTransaction,
)
from storage.schema import (
    inventory_exceptions,
    inventory_lots,
    inventory_transactions,
)

#: The quantity on hand of the lot in the row: the sum of its transactions.
_ON_HAND = (
    select(func.coalesce(func.sum(inventory_transactions.c.quantity), 0))
    .where(inventory_transactions.c.lot_id == inventory_lots.c.id)
    .scalar_subquery()
    .label("on_hand")
)
_LOT_COLUMNS = [
    inventory_lots.c[name] for name in field_names(InventoryLot) if name != "on_hand"
]
_LOT_NAMES = [c.name for c in _LOT_COLUMNS]
_LOT_SELECT = select(*_LOT_COLUMNS, _ON_HAND)

#: The lots of one facility that a dose's lot number and CVX name (the
#: draw-down look-up of every newly administered dose with a lot).
_LOTS_FOR_DOSE = Statement(
    _LOT_SELECT.where(
        inventory_lots.c.region == bindparam("region"),
        inventory_lots.c.facility == bindparam("facility"),
        inventory_lots.c.lot_number == bindparam("lot_number"),
        inventory_lots.c.cvx == bindparam("cvx"),
    ).order_by(inventory_lots.c.id),
    [*_LOT_COLUMNS, _ON_HAND],
)
#: Whether a facility keeps inventory (has any lot): asked once per message.
_KEEPS_INVENTORY = Statement(
    select(inventory_lots.c.id)
    .where(
        inventory_lots.c.region == bindparam("region"),
        inventory_lots.c.facility == bindparam("facility"),
    )
    .limit(1)
)
#: What an administered dose took from each lot, net of give-backs.
_DRAWN_FOR_DOSE = (
    select(
        inventory_transactions.c.lot_id,
        inventory_transactions.c.facility,
        func.sum(inventory_transactions.c.quantity),
        func.min(inventory_transactions.c.occurred_on),
    )
    .where(
        inventory_transactions.c.region == bindparam("region"),
        inventory_transactions.c.vaccination_id == bindparam("vaccination_id"),
    )
    .group_by(inventory_transactions.c.lot_id, inventory_transactions.c.facility)
    .order_by(inventory_transactions.c.lot_id)
)
_TRANSACTION_INSERT = dialects.insert_statement(
    inventory_transactions, field_names(NewInventoryTransaction), returning=False
)
_EXCEPTION_INSERT = dialects.insert_statement(
    inventory_exceptions, field_names(NewInventoryException), returning=False
)
_LOT_INSERT = dialects.insert_statement(
    inventory_lots, [*field_names(NewInventoryLot), "created_at"], returning=True
)


def _lot(row: Any) -> InventoryLot:
    values = dict(zip(_LOT_NAMES, row, strict=False))
    values["on_hand"] = int(row[-1])
    return InventoryLot(**values)


class InventoryRepository:
    """Lots, transactions and exceptions of facilities' vaccine stock."""

    def __init__(self, conn: Connection, sql: Runner | None = None) -> None:
        self._conn = conn
        self._sql = sql or dialects.runner(conn)

    # -- the VXU draw-down (fast path) -------------------------------------

    def keeps_inventory(self, region: str, facility: str) -> bool:
        """Whether a facility has any lot (a facility without one keeps no inventory)."""
        return (
            self._sql.scalar(_KEEPS_INVENTORY, {"region": region, "facility": facility})
            is not None
        )

    def lots_for_dose(
        self, region: str, facility: str, lot_number: str, cvx: str
    ) -> list[InventoryLot]:
        """A facility's lots with this number and CVX, with their quantity on hand."""
        rows = self._sql.all(
            _LOTS_FOR_DOSE,
            {
                "region": region,
                "facility": facility,
                "lot_number": lot_number,
                "cvx": cvx,
            },
        )
        return [_lot(row) for row in rows]

    def drawn_for(
        self, region: str, vaccination_id: int
    ) -> list[tuple[int, str, int, date]]:
        """(lot, facility, net quantity, first day) of each lot a dose's transactions moved."""
        rows = self._conn.execute(
            _DRAWN_FOR_DOSE,
            {"region": region, "vaccination_id": vaccination_id},
        ).all()
        return [
            (int(lot), str(facility), int(net), day) for lot, facility, net, day in rows
        ]

    def record(self, transaction: NewInventoryTransaction) -> None:
        """Store one transaction (queued with the transaction's other writes)."""
        self._sql.defer(_TRANSACTION_INSERT, fields_of(transaction))

    def add_exception(self, item: NewInventoryException) -> None:
        """Store one exception (queued with the transaction's other writes)."""
        self._sql.defer(_EXCEPTION_INSERT, fields_of(item))

    # -- the commands and reports --------------------------------------------

    def add_lot(self, lot: NewInventoryLot, when: Any) -> int:
        """Store a new lot; returns its id."""
        return self._sql.insert(_LOT_INSERT, {**fields_of(lot), "created_at": when})

    def find_lot(
        self, region: str, facility: str, lot_number: str, cvx: str, funding: str
    ) -> InventoryLot | None:
        """The facility's lot with this number, CVX and funding source."""
        row = self._conn.execute(
            _LOT_SELECT.where(
                inventory_lots.c.region == region,
                inventory_lots.c.facility == facility,
                inventory_lots.c.lot_number == lot_number,
                inventory_lots.c.cvx == cvx,
                inventory_lots.c.funding == funding,
            )
        ).first()
        return _lot(row) if row is not None else None

    def lot(self, region: str, facility: str, lot_id: int) -> InventoryLot | None:
        """One of a facility's lots (None when the id is not one of its lots)."""
        row = self._conn.execute(
            _LOT_SELECT.where(
                inventory_lots.c.region == region,
                inventory_lots.c.facility == facility,
                inventory_lots.c.id == lot_id,
            )
        ).first()
        return _lot(row) if row is not None else None

    def lots(self, region: str, facility: str) -> list[InventoryLot]:
        """Every lot of a facility with its quantity on hand, by expiry then number."""
        rows = self._conn.execute(
            _LOT_SELECT.where(
                inventory_lots.c.region == region,
                inventory_lots.c.facility == facility,
            ).order_by(
                inventory_lots.c.expires_on,
                inventory_lots.c.lot_number,
                inventory_lots.c.id,
            )
        ).all()
        return [_lot(row) for row in rows]

    def transactions(
        self,
        region: str,
        facility: str,
        start: date | None = None,
        end: date | None = None,
    ) -> list[InventoryTransaction]:
        """A facility's transactions, oldest first, optionally within [start, end]."""
        conditions = [
            inventory_transactions.c.region == region,
            inventory_transactions.c.facility == facility,
        ]
        if start is not None:
            conditions.append(inventory_transactions.c.occurred_on >= start)
        if end is not None:
            conditions.append(inventory_transactions.c.occurred_on <= end)
        rows = self._conn.execute(
            select(inventory_transactions)
            .where(and_(*conditions))
            .order_by(inventory_transactions.c.occurred_on, inventory_transactions.c.id)
        ).all()
        return [record_from_row(InventoryTransaction, row) for row in rows]

    def exceptions(self, region: str, facility: str) -> list[InventoryException]:
        """A facility's inventory exceptions, oldest first."""
        rows = self._conn.execute(
            select(inventory_exceptions)
            .where(
                inventory_exceptions.c.region == region,
                inventory_exceptions.c.facility == facility,
            )
            .order_by(inventory_exceptions.c.occurred_on, inventory_exceptions.c.id)
        ).all()
        return [record_from_row(InventoryException, row) for row in rows]
