"""Patient matching: one module for the VXU path and for queries.

Deterministic first: the same identifier with the same assigning authority is
the same patient. Otherwise the normalized name, birth date and sex are
compared, tolerating case, accents, hyphens and one-character typos. The
outcome is ``match``, ``possible`` or ``none`` with the reasons that decided.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Literal, Protocol

from handlers.scoring import (
    DEFAULT_NAME_FREQUENCY,
    NameFrequencies,
    Person,
    birth_date_variants,
    compare,
    is_nickname,
    name_frequency,
    nickname_forms,
    normalize_name,
    within_one_edit,
)

if TYPE_CHECKING:
    from storage import PatientRecord, PatientRepository

__all__ = [
    "Candidate",
    "MatchResult",
    "NameFrequencyCache",
    "PatientMatcher",
    "compare_names",
    "identity_conflict",
    "normalize_name",
    "query_disagreement",
    "within_one_edit",
]

Outcome = Literal["match", "possible", "none"]


class Demographics(Protocol):
    """What the matcher reads of an incoming patient (VXU PID or query QPD)."""

    @property
    def identifiers(self) -> tuple[tuple[str, str, str], ...]:
        """(value, authority, type) triples."""

    @property
    def birth_date(self) -> date:
        """The birth date."""

    @property
    def sex(self) -> str:
        """F, M or U."""

    @property
    def multiple_birth(self) -> str:
        """Y when the patient is one of a multiple birth."""

    @property
    def birth_order(self) -> int | None:
        """Birth order within a multiple birth."""


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The matcher's decision: the patient matched (or the candidate for review) and why."""

    outcome: Outcome
    patient_id: int | None
    reasons: tuple[str, ...]
    score: float = 0.0
    candidate_id: int | None = None
    #: The stored record a scored match or possible match was made against.
    record: PatientRecord | None = None
    #: A stored patient that holds one of the incoming identifiers but whose
    #: demographics disagree: the data was not filed onto it (issue 14).
    conflict_id: int | None = None
    #: Which demographics disagreed (field names, never values).
    conflict: str = ""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One stored patient and how well it fits a search."""

    patient: PatientRecord
    outcome: Outcome
    reasons: tuple[str, ...]


def _past(dates: frozenset[date], today: date | None) -> Iterable[date]:
    return dates if today is None else [d for d in dates if d <= today]


def compare_names(
    family: str, given: str, record: PatientRecord
) -> tuple[Outcome, tuple[str, ...]]:
    """Compare a name to a stored patient's name."""
    f1, g1 = normalize_name(family), normalize_name(given)
    f2, g2 = normalize_name(record.family_name), normalize_name(record.given_name)
    if f1 == f2 and g1 == g2:
        return "match", ("name exact after normalization",)
    if within_one_edit(f1, f2) and within_one_edit(g1, g2):
        return "possible", ("name within one edit",)
    if f1 == g2 and g1 == f2:
        return "possible", ("family and given names swapped",)
    return "none", ("name differs",)


def _tokens(value: str) -> list[str]:
    return [t for t in (normalize_name(p) for p in _SPLIT.split(value)) if t]


_SPLIT = re.compile(r"[\s\-']+")


def names_agree(a: str, b: str) -> bool:
    """Whether two spellings of one name may be the same name.

    Empty on either side agrees (nothing to compare). Otherwise: equal after
    normalization, one typo apart, one a prefix of the other (Nick for
    Nicholas, an initial), nicknames of one another (Dot for Dorothy, from
    the ``nicknames`` package), or a word in common (a hyphenated or double
    family name reported in part).
    """
    na, nb = normalize_name(a), normalize_name(b)
    if not na or not nb:
        return True
    if within_one_edit(na, nb) or na.startswith(nb) or nb.startswith(na):
        return True
    if is_nickname(na, nb):
        return True
    return bool(set(_tokens(a)) & set(_tokens(b)))


def _sex_conflict(a: str, b: str) -> bool:
    return a in {"F", "M"} and b in {"F", "M"} and a != b


def identity_conflict(incoming: Person, record: PatientRecord) -> str:
    """Why an incoming patient cannot be the stored holder of its identifier.

    Returns the fields that disagree (names only, never values), or "" when
    the two may be one person. Tolerant of what a clinic legitimately
    corrects under its own identifier: one typo in the birth date, a changed
    family name, a nickname. Not tolerant of a different sex, a different
    birth date, or a different person's name.
    """
    problems: list[str] = []
    if _sex_conflict(incoming.sex, record.sex):
        problems.append("sex")
    family_ok = names_agree(incoming.family, record.family_name)
    given_ok = names_agree(incoming.given, record.given_name) or (
        names_agree(incoming.given, record.family_name)
        and names_agree(incoming.family, record.given_name)
    )
    date_exact = (
        incoming.birth_date is None
        or record.birth_date is None
        or incoming.birth_date == record.birth_date
    )
    if not date_exact:
        assert incoming.birth_date is not None
        assert record.birth_date is not None
        typo = incoming.birth_date in birth_date_variants(record.birth_date)
        if not typo or not (family_ok and given_ok):
            problems.append("birth date")
    if not family_ok and not given_ok:
        problems.append("name")
    return ", ".join(problems)


def query_disagreement(
    family: str, given: str, birth_date: date | None, sex: str, record: PatientRecord
) -> str:
    """Why a query's demographics do not confirm the holder of its identifier.

    A query must give a birth date and a family name for an identifier to
    count (an identifier alone never identifies a person); the birth date
    must be the stored one, the sex (when both are known) the same, and the
    names the same within a typo, a nickname or a swap. Returns the reason
    (field names, never values), or "".
    """
    if birth_date is None or not family:
        return "the query gives no birth date or family name to confirm the identifier"
    problems: list[str] = []
    if record.birth_date is not None and birth_date != record.birth_date:
        problems.append("birth date")
    if _sex_conflict(sex, record.sex):
        problems.append("sex")
    same = names_agree(family, record.family_name) and names_agree(
        given, record.given_name
    )
    swapped = names_agree(family, record.given_name) and names_agree(
        given, record.family_name
    )
    if not same and not swapped:
        problems.append("name")
    if not problems:
        return ""
    return "identifier held by a patient whose " + ", ".join(problems) + " disagree"


#: Default thresholds on the score (bits of evidence, handlers/scoring.py).
MATCH_THRESHOLD = 22.0
POSSIBLE_THRESHOLD = 12.0


class NameFrequencyCache:
    """How common each name is in a region, read from the registry and kept.

    At most one query per call, and none once the names are known: a name's
    frequency is kept until ``ttl`` seconds have passed or the region has
    grown by half since it was read; the region's patient count is re-read
    once the registry may have grown by a tenth (every call may add one
    patient) or after ``ttl``. At most ``size`` names are kept, the least
    recently used dropped first. Nothing here is needed for correctness: a
    stale frequency only weighs a name a little differently.

    Args:
        size: the most names kept (about 200 bytes each).
        ttl: seconds after which a count is read again.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        size: int = 20000,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._size = size
        self._ttl = ttl
        self._clock = clock
        #: (region, "f" or "g", normalized name) -> (u, region total then, when)
        self._names: OrderedDict[tuple[str, str, str], tuple[float, int, float]] = (
            OrderedDict()
        )
        #: region -> [total, when read, calls since]
        self._totals: dict[str, list[float]] = {}
        #: How many queries were made (tests and bench read it).
        self.queries = 0

    def __len__(self) -> int:
        """How many names are cached."""
        return len(self._names)

    def get(
        self,
        patients: PatientRepository,
        region: str,
        family: str,
        given: str,
        mother: str,
    ) -> NameFrequencies:
        """The frequencies of these names in the region (one query at most)."""
        now = self._clock()
        known = self._totals.get(region)
        need_total = (
            known is None
            or now - known[1] > self._ttl
            or known[2] > known[0] / 10 + 100
        )
        if known is not None:
            known[2] += 1
        estimate = known[0] + known[2] if known is not None else 0.0
        wanted = {("f", family), ("f", mother), ("g", given)}
        stale: dict[tuple[str, str, str], str] = {}
        for kind, name in wanted:
            norm = normalize_name(name)
            if not norm:
                continue
            key = (region, kind, norm)
            entry = self._names.get(key)
            if (
                entry is None
                or now - entry[2] > self._ttl
                or estimate > 1.5 * entry[1] + 100
            ):
                stale[key] = name
            else:
                self._names.move_to_end(key)
        if need_total or stale:
            self.queries += 1
            counts = patients.name_counts(
                region,
                [n for (_r, k, _n), n in stale.items() if k == "f"],
                [n for (_r, k, _n), n in stale.items() if k == "g"],
                total=need_total,
            )
            if counts.total is not None:
                known = self._totals[region] = [float(counts.total), now, 0.0]
            total = int(known[0]) if known is not None else 0
            for key, name in stale.items():
                by_name = counts.family if key[1] == "f" else counts.given
                freq = (
                    name_frequency(by_name[name], total)
                    if name in by_name
                    else DEFAULT_NAME_FREQUENCY  # a name without a key
                )
                self._names[key] = (freq, total, now)
                self._names.move_to_end(key)
            while len(self._names) > self._size:
                self._names.popitem(last=False)

        def u(kind: str, name: str) -> float:
            entry = self._names.get((region, kind, normalize_name(name)))
            return entry[0] if entry is not None else DEFAULT_NAME_FREQUENCY

        return NameFrequencies(u("f", family), u("g", given), u("f", mother))


class PatientMatcher:
    """Finds stored patients for incoming demographics.

    Args:
        match_threshold: score (bits) from which two records are the same
            patient.
        possible_threshold: score (bits) from which a pair goes to review.
        frequencies: how common names are in each region (a cache of the
            registry's own counts); one is made when not given.
        candidate_limit: the most stored records one incoming patient is
            compared with (the blocking look-up's cap).
    """

    def __init__(
        self,
        match_threshold: float = MATCH_THRESHOLD,
        possible_threshold: float = POSSIBLE_THRESHOLD,
        frequencies: NameFrequencyCache | None = None,
        candidate_limit: int = 1000,
    ) -> None:
        self.match_threshold = match_threshold
        self.possible_threshold = possible_threshold
        self.candidate_limit = candidate_limit
        self.frequencies = (
            frequencies if frequencies is not None else NameFrequencyCache()
        )

    def find(
        self,
        patients: PatientRepository,
        region: str,
        sender: str,
        patient: Demographics,
        today: date | None = None,
    ) -> MatchResult:
        """Find the patient a VXU is about: identifier first, then scored demographics.

        ``today`` (the message's date) leaves out the nearby birth dates that
        are still to come: no stored patient was born on them, since a birth
        date in the future is rejected. That is a third to a half of the
        one-digit-off dates of a recent birth date (the year's first digits).

        It reads the patient store alone (identifier owners, blocked
        candidates, name counts), never the rest of a unit of work.
        """
        incoming = _person(patient)
        held: tuple[int, str] | None = None
        for value, authority, _type in patient.identifiers:
            record = patients.find_by_identifier(region, value, authority or sender)
            if record is None:
                continue
            conflict = identity_conflict(incoming, record)
            if not conflict:
                return MatchResult(
                    "match", record.id, ("identifier and assigning authority",), 1.0
                )
            # An identifier alone never identifies a person: the holder of
            # this identifier is someone else, or one of the two records is
            # wrong. Nothing is filed onto it; the scored search below finds
            # the right patient (or none), and a person reviews the conflict.
            if held is None:
                held = (record.id, conflict)
        found = self._scored(patients, region, sender, patient, incoming, today)
        if held is None:
            return found
        if found.patient_id == held[0]:  # never filed onto the conflicting holder
            found = MatchResult(
                "possible", None, found.reasons, found.score, held[0], found.record
            )
        return replace(found, conflict_id=held[0], conflict=held[1])

    def _scored(
        self,
        patients: PatientRepository,
        region: str,
        sender: str,
        patient: Demographics,
        incoming: Person,
        today: date | None,
    ) -> MatchResult:
        """Scored matching on demographics, against the blocked candidates."""
        if incoming.birth_date is None:
            return MatchResult("none", None, ("no identifier match; no birth date",))
        best: tuple[float, PatientRecord, bool] | None = None
        own = {
            (authority or sender): value for value, authority, _t in patient.identifiers
        }
        candidates = [
            record
            for record in patients.find_match_candidates(
                region,
                incoming.birth_date,
                _past(birth_date_variants(incoming.birth_date), today),
                incoming.family,
                incoming.given,
                limit=self.candidate_limit,
                given_forms=nickname_forms(normalize_name(incoming.given)),
            )
            # The same authority gave this record another id: another person.
            if not any(
                i.authority in own and own[i.authority] != i.value
                for i in record.identifiers
            )
        ]
        # Term frequencies are read only when there is something to score.
        frequencies = (
            self.frequencies.get(
                patients,
                region,
                incoming.family,
                incoming.given,
                incoming.mother_family,
            )
            if candidates
            else None
        )
        for record in candidates:
            result = compare(
                incoming,
                _record_person(record),
                explain=False,
                frequencies=frequencies,
            )
            if result.vetoed:
                continue
            if best is None or result.score > best[0]:
                best = (result.score, record, result.review_only)
        if best is None:
            return MatchResult(
                "none",
                None,
                ("no identifier match; no candidate with a close birth date",),
            )
        score, record, review_only = best
        # Only the decision's record is explained (the reasons are stored with it).
        reasons = compare(
            incoming, _record_person(record), frequencies=frequencies
        ).reasons
        if score >= self.match_threshold and not review_only:
            return MatchResult("match", record.id, reasons, score, record.id, record)
        if score >= self.possible_threshold:
            return MatchResult("possible", None, reasons, score, record.id, record)
        return MatchResult("none", None, reasons, score, record.id)

    def search(
        self,
        patients: PatientRepository,
        region: str,
        identifiers: Iterable[tuple[str, str]],
        family: str,
        given: str,
        birth_date: date | None,
        sex: str,
        refused: list[tuple[PatientRecord, str]] | None = None,
    ) -> list[Candidate]:
        """Find candidates for a query, best first.

        An identifier hit counts only when the query's demographics agree
        with the record (:func:`query_disagreement`); a hit that does not is
        appended to ``refused`` with the reason, and is no candidate.
        Otherwise the birth date is required and names are compared with
        typo tolerance; sex, when both sides have it, must agree.
        """
        seen: dict[int, Candidate] = {}
        for value, authority in identifiers:
            record = patients.find_by_identifier(region, value, authority)
            if record is None or record.id in seen:
                continue
            why = query_disagreement(family, given, birth_date, sex, record)
            if why:
                if refused is not None:
                    refused.append((record, why))
                continue
            seen[record.id] = Candidate(
                record, "match", ("identifier and assigning authority",)
            )
        if seen:
            return list(seen.values())
        if birth_date is None or not family:
            return []
        out: list[Candidate] = []
        shown: dict[int, int] = {}  # survivor -> index in out
        for record in patients.find_by_birth_date(region, birth_date):
            outcome, reasons = compare_names(family, given, record)
            if outcome == "none":
                continue
            if (
                sex
                and record.sex
                and sex != record.sex
                and "U" not in (sex, record.sex)
            ):
                continue
            reasons = (*reasons, "birth date exact")
            # Records merged into one patient are one candidate: the survivor,
            # whose view holds every merged record's doses.
            survivor_id = patients.survivor(region, record.id)
            if survivor_id in shown:
                if outcome == "match":
                    kept = out[shown[survivor_id]]
                    out[shown[survivor_id]] = Candidate(kept.patient, "match", reasons)
                continue
            if survivor_id != record.id:
                survivor = patients.get(region, survivor_id)
                if survivor is not None:
                    reasons = (*reasons, f"merged into patient {survivor_id}")
                    record = survivor
            shown[survivor_id] = len(out)
            out.append(Candidate(record, outcome, reasons))
        out.sort(key=lambda c: 0 if c.outcome == "match" else 1)
        return out


def _person(patient: Demographics) -> Person:
    name = getattr(patient, "name", None)
    mother = getattr(patient, "mother_maiden_name", None)
    return Person(
        family=getattr(name, "family", ""),
        given=getattr(name, "given", ""),
        middle=getattr(name, "middle", ""),
        birth_date=patient.birth_date,
        sex=patient.sex,
        mother_family=getattr(mother, "family", ""),
        phone=getattr(patient, "phone", ""),
        postal_code=getattr(patient, "postal_code", ""),
        street=getattr(patient, "street", ""),
        multiple_birth=patient.multiple_birth,
        birth_order=patient.birth_order,
    )


def _record_person(record: PatientRecord) -> Person:
    return Person(
        family=record.family_name,
        given=record.given_name,
        middle=record.middle_name,
        birth_date=record.birth_date,
        sex=record.sex,
        mother_family=record.mother_maiden_family,
        phone=record.phone,
        postal_code=record.postal_code,
        street=record.street,
        multiple_birth=record.multiple_birth,
        birth_order=record.birth_order,
    )
