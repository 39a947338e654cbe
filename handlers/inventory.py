"""The inventory service: vaccine lots per facility, their transactions, the VXU draw-down.

The rules (issue 19 item 1):

- A lot belongs to one facility of one region and carries CVX, MVX, lot
  number, expiration date, funding source (``VFC``, ``state`` or
  ``private``: separate stock even under one lot number, as VFC providers
  must keep it) and its unit (doses).
- Every change is a transaction row (:class:`Kind`); the quantity on hand is
  the sum of a lot's rows and is never stored. Nothing takes a lot below
  zero by hand: wasted, expired, returned, transferred and negative
  adjustments are refused beyond what is on hand.
- A transfer is two rows in one transaction: out of the sending facility's
  lot, into the receiving facility's lot of the same number, CVX and funding
  (created by the transfer when it has none).
- The VXU draw-down (:meth:`InventoryService.draw_down`): a newly stored dose
  administered by the sender (RXA-9 ``00``, RXA-20 ``CP`` or ``PA``) takes one
  unit from the administering facility's lot with the dose's lot number
  (RXA-15) and CVX (an NDC-coded dose was mapped to its CVX by validation,
  through CDC's crosswalk). Where several lots share number and CVX, the
  dose's funding (OBX 30963-3, else 64994-7) picks among them.
- Which facility administered: RXA-11.4 when valued, else the sender (MSH-4);
  this follows CAIR2's identifiers by site role (REFERENCE §11: a site
  sending directly puts its own id in MSH-4 and RXA-11; a sending facility
  for client sites puts the site's id in RXA-11). A sender draws down only
  its own lots, or those of a facility it may report for
  (``may_report_for``: the VXU handler allows the facility ids of the
  sender's authenticated organization, issue 17). A dose naming
  another facility that keeps inventory is an exception of the sender's
  (``not-permitted``); one naming a site that keeps none is left alone.
- A facility keeps inventory once it has a lot; a facility without one is
  not told anything about its doses. For one that keeps inventory, a dose
  whose lot is unknown, expired (on the date given) or out of stock is
  stored all the same; the caller gets a :class:`DrawDown` with the reason,
  and an exception row is written for the inventory report. An expired lot
  that still has stock is drawn down (the vial was used); an out-of-stock
  lot is not taken below zero.
- An RXA-21 ``D`` of a dose gives back what it drew (:meth:`give_back`); an
  update (``U``, or an ``A`` of a dose already held) moves no stock.

Nothing here knows HL7: the VXU handler turns the outcomes into ERR segments.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol

from storage import NewInventoryException, NewInventoryLot, NewInventoryTransaction

if TYPE_CHECKING:
    from handlers.filing import Origin
    from storage import InventoryException, InventoryLot, InventoryTransaction

__all__ = [
    "FUNDING_SOURCES",
    "AdministeredDose",
    "DrawDown",
    "Facility",
    "InventoryError",
    "InventoryReport",
    "InventoryService",
    "InventoryStore",
    "Kind",
    "funding_of",
    "normalize_lot",
]


class Kind(StrEnum):
    """What a transaction did to a lot (the sign of its quantity follows)."""

    RECEIVED = "received"
    ADMINISTERED = "administered"
    #: an RXA-21 D of an administered dose gives its unit back
    DOSE_DELETED = "dose-deleted"
    WASTED = "wasted"
    EXPIRED = "expired"
    RETURNED = "returned"
    TRANSFERRED_OUT = "transferred-out"
    TRANSFERRED_IN = "transferred-in"
    ADJUSTED = "adjusted"


#: The kinds ``cairn inventory adjust`` records; each takes stock out,
#: except ``adjusted``, which is signed and needs a reason.
ADJUSTMENTS = (Kind.WASTED, Kind.EXPIRED, Kind.RETURNED, Kind.ADJUSTED)

FUNDING_SOURCES = ("VFC", "state", "private")

#: OBX 30963-3 funding source (PHVS_ImmunizationFundingSource_IIS, REFERENCE
#: §5) as inventory stock: who paid for the dose.
_FUNDING_BY_SOURCE = {
    "VXC51": "VFC",  # public VFC
    "VXC1": "VFC",  # federal (older list)
    "VXC52": "state",  # public non-VFC
    "VXC2": "state",  # state (older list)
    "PHC70": "private",
}
#: OBX 64994-7 eligibility (HL7 table 0064) when no funding source was sent.
_FUNDING_BY_ELIGIBILITY = {
    "V01": "private",  # not VFC eligible
    "V02": "VFC",
    "V03": "VFC",
    "V04": "VFC",
    "V05": "VFC",
    "V07": "state",  # local/state program
    "V22": "state",  # CHIP
    "V23": "state",  # 317
    "V25": "state",  # state program
}

Reason = Literal["unknown-lot", "no-lot", "expired", "out-of-stock", "not-permitted"]

#: What each exception reason means, for the ACK and the report.
REASON_TEXT: dict[str, str] = {
    "unknown-lot": "is not a lot of this vaccine in the facility's inventory",
    "no-lot": "was not sent",
    "expired": "had expired on the date the dose was given",
    "out-of-stock": "has no doses on hand",
    "not-permitted": "names a facility whose inventory this sender may not draw down",
}


class InventoryError(ValueError):
    """A command the inventory refuses; the message names the field and reason."""


def normalize_lot(text: str) -> str:
    """A lot number as stored and matched: trimmed, upper case (printed lots mix case)."""
    return text.strip().upper()


def funding_of(funding_source: str, eligibility: str) -> str:
    """The stock a dose came from: OBX 30963-3, else 64994-7; ``""`` when neither says."""
    return _FUNDING_BY_SOURCE.get(
        funding_source.strip().upper(), ""
    ) or _FUNDING_BY_ELIGIBILITY.get(eligibility.strip().upper(), "")


@dataclass(frozen=True, slots=True)
class Facility:
    """A facility's inventory: its id and the region it belongs to."""

    region: str
    id: str


@dataclass(frozen=True, slots=True)
class AdministeredDose:
    """A newly stored dose the sender says it administered.

    Attributes:
        vaccination_id: the stored dose.
        cvx: its CVX (an NDC already mapped through the crosswalk).
        lot_numbers: RXA-15, every repetition.
        administered_on: RXA-3.
        funding: ``VFC``, ``state``, ``private`` or ``""`` (:func:`funding_of`).
        location: RXA-11.4, the administering facility (``""``: the sender).
    """

    vaccination_id: int
    cvx: str
    lot_numbers: tuple[str, ...]
    administered_on: date
    funding: str = ""
    location: str = ""


@dataclass(frozen=True, slots=True)
class DrawDown:
    """What the draw-down did with one dose.

    Attributes:
        vaccination_id: the dose.
        facility: the administering facility.
        drawn: whether a unit was taken from a lot.
        lot_id: the lot drawn from (or found empty or expired).
        reason: why this dose is an inventory exception (``None``: it is not).
    """

    vaccination_id: int
    facility: str
    drawn: bool
    lot_id: int | None = None
    reason: Reason | None = None


class InventoryStore(Protocol):
    """The inventory repository methods the service uses."""

    def keeps_inventory(self, region: str, facility: str) -> bool:
        """Whether a facility has any lot."""

    def lots_for_dose(
        self, region: str, facility: str, lot_number: str, cvx: str
    ) -> list[InventoryLot]:
        """A facility's lots with this number and CVX, with their quantity on hand."""

    def drawn_for(
        self, region: str, vaccination_id: int
    ) -> list[tuple[int, str, int, date]]:
        """(lot, facility, net quantity, first day) of each lot a dose's transactions moved."""

    def record(self, transaction: NewInventoryTransaction) -> None:
        """Store one transaction."""

    def add_exception(self, item: NewInventoryException) -> None:
        """Store one exception."""

    def add_lot(self, lot: NewInventoryLot, when: datetime) -> int:
        """Store a new lot; returns its id."""

    def find_lot(
        self, region: str, facility: str, lot_number: str, cvx: str, funding: str
    ) -> InventoryLot | None:
        """The facility's lot with this number, CVX and funding source."""

    def lot(self, region: str, facility: str, lot_id: int) -> InventoryLot | None:
        """One of the facility's lots (None: not one of its lots)."""

    def lots(self, region: str, facility: str) -> list[InventoryLot]:
        """Every lot of a facility with its quantity on hand."""

    def transactions(
        self,
        region: str,
        facility: str,
        start: date | None = None,
        end: date | None = None,
    ) -> list[InventoryTransaction]:
        """A facility's transactions, oldest first."""

    def exceptions(self, region: str, facility: str) -> list[InventoryException]:
        """A facility's inventory exceptions, oldest first."""


class Locks(Protocol):
    """Serializes stock changes of one facility across engine nodes."""

    def lock(self, keys: Sequence[str]) -> None:
        """Hold the keys until the transaction ends."""


@dataclass(frozen=True, slots=True)
class MonthUsage:
    """Doses administered in one month, by funding source (net of deletes)."""

    month: str
    by_funding: dict[str, int]

    @property
    def total(self) -> int:
        """All doses administered that month."""
        return sum(self.by_funding.values())


@dataclass(frozen=True, slots=True)
class InventoryReport:
    """A facility's inventory as of a date.

    Attributes:
        facility: whose inventory.
        as_of: the report date.
        start: the first day of the usage period.
        expiring_days: the look-ahead of ``expiring``.
        lots: every lot with its quantity on hand.
        expiring: lots with doses on hand that expire within
            ``expiring_days`` of ``as_of`` (or have expired).
        usage: doses administered per month in [start, as_of].
        wasted: doses wasted, expired or returned in the period, per funding.
        exceptions: doses that could not draw their lot down.
    """

    facility: Facility
    as_of: date
    start: date
    expiring_days: int
    lots: tuple[InventoryLot, ...]
    expiring: tuple[InventoryLot, ...]
    usage: tuple[MonthUsage, ...]
    wasted: dict[str, int]
    exceptions: tuple[InventoryException, ...]

    def administered_by_funding(self) -> dict[str, int]:
        """VFC versus state versus private: doses administered in the period."""
        totals = dict.fromkeys(FUNDING_SOURCES, 0)
        for month in self.usage:
            for funding, count in month.by_funding.items():
                totals[funding] = totals.get(funding, 0) + count
        return totals


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _months(start: date, end: date) -> list[str]:
    """Every month from start's to end's, as YYYY-MM."""
    out = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


class InventoryService:
    """Receives, adjusts, transfers and draws down facilities' vaccine lots.

    Args:
        store: the inventory repository.
        locks: serializes one facility's stock changes across engine nodes.
        now: the clock (UTC).
        may_report_for: whether a sender may draw down another facility's
            inventory (a sending facility for its client sites); by default
            a sender reports only for itself.
    """

    def __init__(
        self,
        store: InventoryStore,
        locks: Locks,
        now: Callable[[], datetime],
        may_report_for: Callable[[str, str], bool] | None = None,
    ) -> None:
        self._store = store
        self._locks = locks
        self._now = now
        self._may_report_for = may_report_for or (lambda _s, _f: False)

    # -- the VXU draw-down ---------------------------------------------------

    def draw_down(
        self, origin: Origin, doses: Sequence[AdministeredDose]
    ) -> list[DrawDown]:
        """Take one unit per administered dose from its facility's matching lot.

        Returns:
            One outcome per dose that concerns an inventory (a facility that
            keeps none is left out), in order.
        """
        region, sender = origin.region, origin.organization
        now = self._now()
        keeps: dict[str, bool] = {}
        locked: set[str] = set()
        out: list[DrawDown] = []
        for dose in doses:
            facility = dose.location.strip() or sender
            if facility not in keeps:
                keeps[facility] = self._store.keeps_inventory(region, facility)
            if not keeps[facility]:
                # No stock to draw from (a hub naming a client site that
                # keeps no inventory in the registry): nothing to say.
                continue
            if facility != sender and not self._may_report_for(sender, facility):
                # Recorded against the sender: the other facility's
                # inventory is not the sender's to draw down or to annotate.
                outcome = DrawDown(
                    dose.vaccination_id, sender, False, reason="not-permitted"
                )
                self._exception(origin, sender, dose, "", outcome, now)
                out.append(outcome)
                continue
            if facility not in locked:
                self._locks.lock([_lock_key(region, facility)])
                locked.add(facility)
            outcome, lot_number = self._draw_one(origin, facility, dose, now)
            if outcome.reason is not None:
                self._exception(origin, facility, dose, lot_number, outcome, now)
            out.append(outcome)
        return out

    def _draw_one(
        self, origin: Origin, facility: str, dose: AdministeredDose, now: datetime
    ) -> tuple[DrawDown, str]:
        region = origin.region
        numbers = [normalize_lot(n) for n in dose.lot_numbers if n.strip()]
        lot: InventoryLot | None = None
        for number in numbers:
            candidates = self._store.lots_for_dose(region, facility, number, dose.cvx)
            if candidates:
                lot = _pick(candidates, dose.funding)
                break
        first = numbers[0] if numbers else ""
        if not numbers:
            # Validation already told the sender RXA-15 is missing; the
            # report still lists the dose, since it drew nothing down.
            return DrawDown(dose.vaccination_id, facility, False, reason="no-lot"), ""
        if lot is None:
            return DrawDown(
                dose.vaccination_id, facility, False, reason="unknown-lot"
            ), first
        expired = lot.expires_on < dose.administered_on
        if lot.on_hand <= 0:
            reason: Reason = "expired" if expired else "out-of-stock"
            return DrawDown(
                dose.vaccination_id, facility, False, lot.id, reason
            ), lot.lot_number
        self._store.record(
            NewInventoryTransaction(
                region=region,
                facility=facility,
                lot_id=lot.id,
                kind=Kind.ADMINISTERED,
                quantity=-1,
                occurred_on=dose.administered_on,
                recorded_at=now,
                recorded_by=origin.organization,
                vaccination_id=dose.vaccination_id,
                journal_id=origin.journal_id,
            )
        )
        return DrawDown(
            dose.vaccination_id,
            facility,
            True,
            lot.id,
            "expired" if expired else None,
        ), lot.lot_number

    def _exception(
        self,
        origin: Origin,
        facility: str,
        dose: AdministeredDose,
        lot_number: str,
        outcome: DrawDown,
        now: datetime,
    ) -> None:
        assert outcome.reason is not None
        number = lot_number or (
            normalize_lot(dose.lot_numbers[0]) if dose.lot_numbers else ""
        )
        self._store.add_exception(
            NewInventoryException(
                region=origin.region,
                facility=facility,
                vaccination_id=dose.vaccination_id,
                journal_id=origin.journal_id,
                cvx=dose.cvx,
                lot_number=number[:200],
                reason=outcome.reason,
                occurred_on=dose.administered_on,
                recorded_at=now,
            )
        )

    def give_back(self, origin: Origin, vaccination_id: int) -> int:
        """Return to stock what a deleted dose drew (RXA-21 D); returns the units.

        The give-back is dated on the day the dose drew the unit (when it
        was recorded is kept too), so usage by month counts the dose out of
        the month it was counted in.
        """
        region = origin.region
        returned = 0
        now = self._now()
        for lot_id, facility, net, on in self._store.drawn_for(region, vaccination_id):
            if net >= 0:
                continue
            self._locks.lock([_lock_key(region, facility)])
            self._store.record(
                NewInventoryTransaction(
                    region=region,
                    facility=facility,
                    lot_id=lot_id,
                    kind=Kind.DOSE_DELETED,
                    quantity=-net,
                    occurred_on=on,
                    recorded_at=now,
                    recorded_by=origin.organization,
                    reason="RXA-21 D: the dose was deleted by its sender",
                    vaccination_id=vaccination_id,
                    journal_id=origin.journal_id,
                )
            )
            returned += -net
        return returned

    # -- the commands ----------------------------------------------------------

    def receive(
        self,
        facility: Facility,
        *,
        cvx: str,
        mvx: str,
        lot_number: str,
        expires_on: date,
        funding: str,
        quantity: int,
        on: date,
        by: str,
        unit: str = "doses",
    ) -> InventoryLot:
        """Receive doses of a lot (the lot is created by its first receipt).

        Raises:
            InventoryError: a field is missing or out of range, or the lot
                exists with another expiration date.
        """
        number = normalize_lot(lot_number)
        if not number:
            raise InventoryError("--lot: the lot number is empty")
        if len(number) > 100:
            raise InventoryError("--lot: the lot number is longer than 100 characters")
        if not (cvx.isascii() and cvx.isdigit() and 1 <= len(cvx) <= 3):
            raise InventoryError(f"--cvx: {cvx!r} is not a CVX code (1 to 3 digits)")
        cvx = cvx.zfill(2)
        if funding not in FUNDING_SOURCES:
            raise InventoryError(
                f"--funding: {funding!r} is not one of {', '.join(FUNDING_SOURCES)}"
            )
        _positive(quantity)
        self._locks.lock([_lock_key(facility.region, facility.id)])
        lot = self._store.find_lot(facility.region, facility.id, number, cvx, funding)
        if lot is not None and lot.expires_on != expires_on:
            raise InventoryError(
                f"--expires: lot {number} is held with expiration date "
                f"{lot.expires_on.isoformat()}, not {expires_on.isoformat()}"
            )
        now = self._now()
        lot_id = (
            lot.id
            if lot is not None
            else self._store.add_lot(
                NewInventoryLot(
                    facility.region,
                    facility.id,
                    cvx,
                    mvx.strip().upper()[:10],
                    number,
                    expires_on,
                    funding,
                    unit[:20] or "doses",
                ),
                now,
            )
        )
        self._store.record(
            NewInventoryTransaction(
                region=facility.region,
                facility=facility.id,
                lot_id=lot_id,
                kind=Kind.RECEIVED,
                quantity=quantity,
                occurred_on=on,
                recorded_at=now,
                recorded_by=by,
            )
        )
        return self._lot(facility, lot_id)

    def adjust(
        self,
        facility: Facility,
        lot_id: int,
        kind: str,
        quantity: int,
        *,
        on: date,
        by: str,
        reason: str = "",
    ) -> InventoryLot:
        """Record doses wasted, expired, returned, or an adjustment with a reason.

        ``quantity`` is positive for wasted, expired and returned (taken out);
        an adjustment is signed and needs a reason.

        Raises:
            InventoryError: unknown kind or lot, no reason, or more than on hand.
        """
        if kind not in ADJUSTMENTS:
            raise InventoryError(
                f"--kind: {kind!r} is not one of {', '.join(ADJUSTMENTS)}"
            )
        if kind == Kind.ADJUSTED:
            if quantity == 0:
                raise InventoryError("--quantity: an adjustment of 0 changes nothing")
            if not reason.strip():
                raise InventoryError("--reason: an adjustment needs a reason")
            change = quantity
        else:
            _positive(quantity)
            change = -quantity
        self._locks.lock([_lock_key(facility.region, facility.id)])
        lot = self._lot(facility, lot_id)
        if lot.on_hand + change < 0:
            raise InventoryError(
                f"--quantity: lot {lot.lot_number} has {lot.on_hand} on hand; "
                f"{-change} cannot be taken out"
            )
        self._store.record(
            NewInventoryTransaction(
                region=facility.region,
                facility=facility.id,
                lot_id=lot.id,
                kind=kind,
                quantity=change,
                occurred_on=on,
                recorded_at=self._now(),
                recorded_by=by,
                reason=reason.strip()[:200],
            )
        )
        return self._lot(facility, lot.id)

    def transfer(
        self,
        facility: Facility,
        lot_id: int,
        to: Facility,
        quantity: int,
        *,
        on: date,
        by: str,
    ) -> tuple[InventoryLot, InventoryLot]:
        """Move doses of a lot to another facility of the same region.

        Returns:
            The sending lot and the receiving lot, after the transfer.

        Raises:
            InventoryError: the lot is not the sender's, the receiver is the
                sender or in another region, or more than on hand.
        """
        _positive(quantity)
        if to.id == facility.id:
            raise InventoryError("--to: a facility cannot transfer to itself")
        if to.region != facility.region:
            raise InventoryError(
                f"--to: facility {to.id} is in region {to.region}, not {facility.region}"
            )
        self._locks.lock(
            [_lock_key(facility.region, facility.id), _lock_key(to.region, to.id)]
        )
        lot = self._lot(facility, lot_id)
        if lot.on_hand < quantity:
            raise InventoryError(
                f"--quantity: lot {lot.lot_number} has {lot.on_hand} on hand; "
                f"{quantity} cannot be transferred"
            )
        now = self._now()
        target = self._store.find_lot(
            to.region, to.id, lot.lot_number, lot.cvx, lot.funding
        )
        target_id = (
            target.id
            if target is not None
            else self._store.add_lot(
                NewInventoryLot(
                    to.region,
                    to.id,
                    lot.cvx,
                    lot.mvx,
                    lot.lot_number,
                    lot.expires_on,
                    lot.funding,
                    lot.unit,
                ),
                now,
            )
        )
        for where, which, kind, change, other in (
            (facility, lot.id, Kind.TRANSFERRED_OUT, -quantity, to.id),
            (to, target_id, Kind.TRANSFERRED_IN, quantity, facility.id),
        ):
            self._store.record(
                NewInventoryTransaction(
                    region=where.region,
                    facility=where.id,
                    lot_id=which,
                    kind=kind,
                    quantity=change,
                    occurred_on=on,
                    recorded_at=now,
                    recorded_by=by,
                    counterparty=other,
                )
            )
        return self._lot(facility, lot.id), self._lot(to, target_id)

    def lots(self, facility: Facility) -> list[InventoryLot]:
        """Every lot of the facility with its quantity on hand."""
        return self._store.lots(facility.region, facility.id)

    def report(
        self,
        facility: Facility,
        as_of: date,
        *,
        expiring_days: int = 30,
        start: date | None = None,
    ) -> InventoryReport:
        """On hand, lots expiring soon, usage by month, VFC versus private, exceptions.

        Args:
            facility: whose inventory.
            as_of: the report date (the end of the usage period).
            expiring_days: how far ahead "expiring" looks.
            start: the first day of the usage period (default: the first of
                the month eleven months before ``as_of``: twelve months).
        """
        if expiring_days < 0:
            raise InventoryError("--expiring-days: must be 0 or more")
        if start is None:
            year, month = as_of.year, as_of.month - 11
            if month < 1:
                year, month = year - 1, month + 12
            start = date(year, month, 1)
        if start > as_of:
            raise InventoryError("--from: the period starts after --as-of")
        lots = self._store.lots(facility.region, facility.id)
        horizon = as_of + timedelta(days=expiring_days)
        expiring = tuple(
            lot for lot in lots if lot.on_hand > 0 and lot.expires_on <= horizon
        )
        funding_of_lot = {lot.id: lot.funding for lot in lots}
        usage: dict[str, dict[str, int]] = {
            m: dict.fromkeys(FUNDING_SOURCES, 0) for m in _months(start, as_of)
        }
        wasted: dict[str, int] = defaultdict(int)
        for t in self._store.transactions(facility.region, facility.id, start, as_of):
            funding = funding_of_lot.get(t.lot_id, "")
            if t.kind in (Kind.ADMINISTERED, Kind.DOSE_DELETED):
                row = usage[_month(t.occurred_on)]
                row[funding] = row.get(funding, 0) - t.quantity
            elif t.kind in (Kind.WASTED, Kind.EXPIRED, Kind.RETURNED):
                wasted[t.kind] += -t.quantity
        return InventoryReport(
            facility,
            as_of,
            start,
            expiring_days,
            tuple(lots),
            expiring,
            tuple(MonthUsage(m, counts) for m, counts in usage.items()),
            {k: wasted.get(k, 0) for k in (Kind.WASTED, Kind.EXPIRED, Kind.RETURNED)},
            tuple(self._store.exceptions(facility.region, facility.id)),
        )

    def _lot(self, facility: Facility, lot_id: int) -> InventoryLot:
        lot = self._store.lot(facility.region, facility.id, lot_id)
        if lot is None:
            raise InventoryError(
                f"--lot-id: {lot_id} is not a lot of facility {facility.id}"
            )
        return lot


def _positive(quantity: int) -> None:
    if quantity <= 0:
        raise InventoryError(f"--quantity: must be a positive number, not {quantity}")
    if quantity > 1_000_000:
        raise InventoryError("--quantity: more than 1,000,000 doses at once")


def _pick(candidates: list[InventoryLot], funding: str) -> InventoryLot:
    """Among lots sharing number and CVX: the dose's funding, then one with stock."""
    same = [lot for lot in candidates if lot.funding == funding] or candidates
    return next((lot for lot in same if lot.on_hand > 0), same[0])


def _lock_key(region: str, facility: str) -> str:
    return f"inventory:{region}:{facility}"
