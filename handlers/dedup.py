"""Vaccination-level de-duplication, in the manner of the AIRA/MIROW best practice.

Two records of one patient are candidates when they share a vaccine group and
fall within a window (23 days by default, per group if configured). Rules
then decide:

- different lot numbers: different doses;
- an administered record (NIP001 ``00``) and a historical one: the same
  event, and the administered record is the one kept;
- two administered records from different providers on different days:
  different doses;
- the same day, or the same sender: the same event;
- anything else within the window: unsure, for a person to decide.

Every record stays stored; the consolidated view (what queries and the
forecast see) leaves out the ones marked as duplicates, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from parsers.codes import GIVEN, InformationSource
from storage import NewVaccination, VaccinationRecord


@dataclass(frozen=True, slots=True)
class Verdict:
    """same / unsure / different, which record to keep, and why."""

    outcome: Literal["same", "unsure", "different"]
    reason: str
    keep_new: bool = False


@dataclass
class DoseDeduplicator:
    """Decides whether two vaccination records are the same event."""

    codes: object
    window_days: int = 23
    group_windows: Mapping[str, int] = field(default_factory=dict)
    _groups: dict[str, frozenset[str]] = field(default_factory=dict)

    def groups(self, cvx: str) -> frozenset[str]:
        """The vaccine groups of a CVX (from the CVX table's group column)."""
        found = self._groups.get(cvx)
        if found is None:
            entry = self.codes.entry("CVX", cvx)  # type: ignore[attr-defined]
            text = entry.extra.get("group", "") if entry is not None else ""
            found = frozenset(g for g in text.split(";") if g) or frozenset(
                {f"CVX{cvx}"}
            )
            self._groups[cvx] = found
        return found

    @property
    def widest_window(self) -> int:
        """The widest window of any vaccine group, in days.

        Two records further apart than this are always different doses, so
        a new record need only be compared with the stored ones within it.
        """
        return max([self.window_days, *self.group_windows.values()])

    def compare(self, new: NewVaccination, other: VaccinationRecord) -> Verdict:
        """Compare a new record with a stored one of the same patient."""
        if new.completion_status not in GIVEN or other.completion_status not in GIVEN:
            return Verdict(
                "different", "a refusal or not-administered record is not a dose"
            )
        shared = self.groups(new.cvx) & self.groups(other.cvx)
        if not shared:
            return Verdict("different", "no vaccine group in common")
        window = max(self.group_windows.get(g, self.window_days) for g in shared)
        days = abs((new.administered_on - other.administered_on).days)
        if days > window:
            return Verdict(
                "different", f"{days} days apart, outside the {window}-day window"
            )
        lots_new = {
            lot.strip().upper() for lot in new.lot_numbers.split("~") if lot.strip()
        }
        lots_old = {
            lot.strip().upper() for lot in other.lot_numbers.split("~") if lot.strip()
        }
        if lots_new and lots_old and not lots_new & lots_old:
            return Verdict("different", "different lot numbers")
        new_admin = new.information_source == InformationSource.NEW_RECORD
        old_admin = other.information_source == InformationSource.NEW_RECORD
        if new_admin != old_admin:
            return Verdict(
                "same",
                "administered record beats a historical one for the same event",
                keep_new=new_admin,
            )
        if (
            new_admin
            and old_admin
            and new.sending_facility != other.sending_facility
            and days > 0
        ):
            return Verdict(
                "different", "administered by different providers on different days"
            )
        if days == 0:
            return Verdict("same", "same vaccine group on the same day", keep_new=False)
        if new.sending_facility == other.sending_facility and not new_admin:
            return Verdict(
                "same", "the same sender's history within the window", keep_new=False
            )
        return Verdict("unsure", f"same vaccine group {days} days apart")
