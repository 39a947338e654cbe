"""Patients: demographics, identifiers, next of kin, submitters, versions, links.

Also the matching candidates (blocking keys) and name counts (term
frequencies) that patient matching reads.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
    update,
)

from storage import dialects
from storage._merged import merged_members
from storage._records import (
    check_positional,
    field_names,
    fields_of,
    in_list,
    in_values,
    record_columns,
    record_from_row,
    utc,
    utc_now,
)
from storage._sql import Runner, Statement, StatementFamily
from storage.keys import name_key
from storage.records import (
    NewMatchDecision,
    NewNextOfKin,
    NewPatient,
    NewPatientVersion,
    NextOfKinRecord,
    PatientIdentifier,
    PatientRecord,
    PatientVersion,
    Submitter,
)
from storage.schema import (
    match_decisions,
    next_of_kin,
    patient_identifiers,
    patient_links,
    patient_submitters,
    patient_versions,
    patients,
)

check_positional(patients, PatientRecord, ("identifiers",))

_PATIENT_COLUMNS = record_columns(patients, PatientRecord)
_PATIENT_GET = Statement(
    select(*_PATIENT_COLUMNS).where(
        patients.c.region == bindparam("region"), patients.c.id == bindparam("id")
    ),
    _PATIENT_COLUMNS,
)
_PATIENT_BY_BIRTH_DATE = Statement(
    select(*_PATIENT_COLUMNS)
    .where(
        patients.c.region == bindparam("region"),
        patients.c.birth_date == bindparam("birth_date"),
    )
    .order_by(patients.c.id)
    .limit(500),
    _PATIENT_COLUMNS,
)
#: Not merged into another record. Correlated on the primary key, so each
#: candidate costs one index probe however many merges the region holds (a
#: ``NOT IN`` list would read every active link of the region per search).
_LIVE = ~exists().where(
    patient_links.c.merged_id == patients.c.id, patient_links.c.active.is_(True)
)

#: More candidates than this are a data problem (a default birth date), not
#: people to compare one by one.
_CANDIDATE_LIMIT = 1000


def _match_candidates(shape: tuple[int, int, int, int]) -> Any:
    """The exact date's patients with a name key or the initials in common, and the nearby dates' patients with a key and the other name's initial in common.

    Three arms in one UNION ALL, merged records excluded:

    - the exact date (region+birth_date): a name key of either name, or
      both initials either way round, filtered in the database among the
      patients born that day;
    - the dates (region+family_key+birth_date): a family key equal to the
      key of either incoming name, and a given name whose initial is one of
      ``n_initials`` (the incoming initials, a nickname's, or none stored);
    - the same with the given key (region+given_key+birth_date) and the
      family name's initial.

    With ``n_initials`` 0 (an incoming name without a key) the last two arms
    ask for the key alone, as before the initials narrowed them. Shape (0,
    0, 0, limit) is the fallback for no key at all: everyone born on the
    exact date. At most ``limit`` rows, lowest ids first.
    """
    n_dates, n_keys, n_initials, limit = shape
    live = _LIVE
    if not n_keys:
        return (
            select(*_PATIENT_COLUMNS)
            .where(
                patients.c.region == bindparam("region"),
                patients.c.birth_date == bindparam("exact"),
                live,
            )
            .order_by(patients.c.id)
            .limit(limit)
        )
    family_initial = func.substr(patients.c.family_key, 1, 1)
    given_initial = func.substr(patients.c.given_key, 1, 1)
    same_day = [
        in_list(patients.c.family_key, "k", n_keys),
        in_list(patients.c.given_key, "k", n_keys),
    ]
    if n_initials:
        same_day += [
            and_(family_initial == bindparam("fi"), given_initial == bindparam("gi")),
            and_(family_initial == bindparam("gi"), given_initial == bindparam("fi")),
        ]
    parts = [
        select(*_PATIENT_COLUMNS).where(
            patients.c.region == bindparam("region"),
            patients.c.birth_date == bindparam("exact"),
            or_(*same_day),
            live,
        )
    ]
    for key, other_initial, prefix in (
        (patients.c.family_key, given_initial, "gx"),
        (patients.c.given_key, family_initial, "fx"),
    ):
        narrowed = (
            [other_initial.in_([bindparam(f"{prefix}{i}") for i in range(n_initials)])]
            if n_initials
            else []
        )
        parts.append(
            select(*_PATIENT_COLUMNS).where(
                patients.c.region == bindparam("region"),
                in_list(key, "k", n_keys),
                in_list(patients.c.birth_date, "d", n_dates),
                *narrowed,
                live,
            )
        )
    both = union_all(*parts).subquery()
    return select(*both.c).order_by(both.c.id).limit(limit)


_MATCH_CANDIDATES = StatementFamily(
    lambda shape: (_match_candidates(shape), _PATIENT_COLUMNS)
)


@dataclasses.dataclass(frozen=True, slots=True)
class NameCounts:
    """How many patients of a region share each name key (term frequencies).

    ``family`` and ``given`` map each name asked about to the number of the
    region's patients whose family (or given) name has the same blocking key
    (storage/keys.py); a name without a key is left out. ``total`` is the
    number of patients in the region, or None when it was not asked for.
    """

    total: int | None
    family: dict[str, int]
    given: dict[str, int]


def _name_counts(shape: tuple[int, int, bool]) -> Any:
    """Per-key patient counts and, optionally, the region's total, in one UNION ALL.

    Each arm is a range of the (region, family_key, birth_date) or (region,
    given_key, birth_date) index, counted without reading the table on
    PostgreSQL (index-only scan) or SQLite (covering index).
    """
    n_family, n_given, total = shape
    parts = []
    for kind, key, n, prefix in (
        ("f", patients.c.family_key, n_family, "f"),
        ("g", patients.c.given_key, n_given, "g"),
    ):
        if n:
            parts.append(
                select(
                    literal(kind).label("kind"),
                    key.label("key"),
                    func.count().label("n"),
                )
                .where(
                    patients.c.region == bindparam("region"), in_list(key, prefix, n)
                )
                .group_by(key)
            )
    if total:
        parts.append(
            select(
                literal("t").label("kind"),
                literal("").label("key"),
                func.count().label("n"),
            ).where(patients.c.region == bindparam("region"))
        )
    return union_all(*parts) if len(parts) > 1 else parts[0]


_NAME_COUNTS = StatementFamily(lambda shape: (_name_counts(shape), []))

_IDENTIFIER_COLUMNS = [
    patient_identifiers.c.patient_id,
    patient_identifiers.c.value,
    patient_identifiers.c.authority,
    patient_identifiers.c.type_code,
    patient_identifiers.c.submitted_by,
]
_IDENTIFIERS_OF = StatementFamily(
    lambda n: (
        select(*_IDENTIFIER_COLUMNS)
        .where(in_list(patient_identifiers.c.patient_id, "p", n))
        .order_by(patient_identifiers.c.id),
        _IDENTIFIER_COLUMNS,
    )
)
_IDENTIFIER_OWNER = Statement(
    select(patient_identifiers.c.patient_id)
    .where(
        patient_identifiers.c.region == bindparam("region"),
        patient_identifiers.c.authority == bindparam("authority"),
        patient_identifiers.c.value == bindparam("value"),
    )
    .limit(1)
)
_IDENTIFIER_COLUMNS_IN = [
    "patient_id",
    "region",
    "value",
    "authority",
    "type_code",
    "submitted_by",
]
#: Identifiers already held (by this or another patient) are skipped: one
#: statement instead of a look-up and an insert.
_IDENTIFIER_INSERT_NEW = dialects.insert_ignoring_conflict(
    patient_identifiers, _IDENTIFIER_COLUMNS_IN, ["region", "authority", "value"]
)
_PATIENT_KEYS = ("family_key", "given_key")


def _with_name_keys(values: dict[str, Any]) -> dict[str, Any]:
    """Add the blocking key of each name being written (insert or update)."""
    for name, key in (("family_name", "family_key"), ("given_name", "given_key")):
        if name in values:
            values[key] = name_key(values[name])
    return values


_PATIENT_INSERT = dialects.insert_statement(
    patients,
    [*field_names(NewPatient), *_PATIENT_KEYS, "created_at", "updated_at"],
    returning=True,
)
_PATIENT_INSERT_WITH_ID = dialects.insert_statement(
    patients,
    ["id", *field_names(NewPatient), *_PATIENT_KEYS, "created_at", "updated_at"],
    returning=False,
)
_PATIENT_UPDATE = StatementFamily(
    lambda names: (
        update(patients)
        .where(
            patients.c.region == bindparam("_region"), patients.c.id == bindparam("_id")
        )
        .values({name: bindparam(name) for name in names}),
        [],
    )
)
_KIN_DELETE = Statement(
    delete(next_of_kin).where(
        next_of_kin.c.region == bindparam("region"),
        next_of_kin.c.patient_id == bindparam("patient_id"),
        next_of_kin.c.submitted_by.in_([bindparam("by"), ""]),
    )
)
_KIN_INSERT = dialects.insert_statement(
    next_of_kin,
    [
        *(n for n in field_names(NewNextOfKin) if n != "submitted_by"),
        "patient_id",
        "region",
        "submitted_by",
    ],
    returning=False,
)
_SUBMITTER_COLUMNS_IN = ["patient_id", "facility", "region", "first_seen"]
_SUBMITTER_INSERT_NEW = dialects.insert_ignoring_conflict(
    patient_submitters, _SUBMITTER_COLUMNS_IN, ["patient_id", "facility"]
)
_SUBMITTERS = Statement(
    select(patient_submitters.c.facility, patient_submitters.c.first_seen).where(
        patient_submitters.c.region == bindparam("region"),
        patient_submitters.c.patient_id == bindparam("patient_id"),
    ),
    [patient_submitters.c.facility, patient_submitters.c.first_seen],
)
_SURVIVOR = Statement(
    select(patient_links.c.survivor_id)
    .where(
        patient_links.c.region == bindparam("region"),
        patient_links.c.merged_id == bindparam("merged_id"),
        patient_links.c.active.is_(True),
    )
    .limit(1)
)
_DECISION_INSERT = dialects.insert_statement(
    match_decisions, field_names(NewMatchDecision), returning=False
)
_VERSION_INSERT = dialects.insert_statement(
    patient_versions, field_names(NewPatientVersion), returning=False
)


class PatientRepository:
    """Patients, their identifiers, next of kin and submitting organizations."""

    def __init__(
        self,
        conn: Connection,
        sql: Runner | None = None,
        ids: dialects.IdPool | None = None,
    ) -> None:
        self._conn = conn
        self._sql = sql or dialects.runner(conn)
        self._ids = ids

    def _load(self, rows: Sequence[Sequence[Any]]) -> list[PatientRecord]:
        """Records from processed patient rows, with their identifiers (one query)."""
        if not rows:
            return []
        idents: dict[int, list[PatientIdentifier]] = {}
        ids = [row[0] for row in rows]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for patient_id, value, authority, type_code, by in self._sql.all(
                _IDENTIFIERS_OF[len(chunk)], in_values("p", chunk)
            ):
                idents.setdefault(patient_id, []).append(
                    PatientIdentifier(value, authority, type_code, by)
                )
        return [
            PatientRecord(*row, identifiers=tuple(idents.get(row[0], ())))  # type: ignore[misc]
            for row in rows
        ]

    def get(self, region: str, patient_id: int) -> PatientRecord | None:
        """A patient by id, within a region."""
        row = self._sql.one(_PATIENT_GET, {"region": region, "id": patient_id})
        if row is None:
            return None
        return self._load([row])[0]

    def find_by_identifier(
        self, region: str, value: str, authority: str
    ) -> PatientRecord | None:
        """The patient holding this identifier from this assigning authority."""
        owner = self._sql.scalar(
            _IDENTIFIER_OWNER,
            {"region": region, "authority": authority, "value": value},
        )
        return (
            self.get(region, self.survivor(region, int(owner)))
            if owner is not None
            else None
        )

    def find_by_birth_date(self, region: str, birth_date: date) -> list[PatientRecord]:
        """Every patient of a region born on a date (matching candidates)."""
        return self._load(
            self._sql.all(
                _PATIENT_BY_BIRTH_DATE, {"region": region, "birth_date": birth_date}
            )
        )

    def insert(self, patient: NewPatient) -> int:
        """Store a new patient."""
        now = utc_now()
        values = _with_name_keys(fields_of(patient))
        values["created_at"] = now
        values["updated_at"] = now
        if self._ids is not None:
            values["id"] = new_id = self._ids.take("patients")
            self._sql.defer(_PATIENT_INSERT_WITH_ID, values)
            return new_id
        return self._sql.insert(_PATIENT_INSERT, values)

    def update(self, region: str, patient_id: int, patient: NewPatient) -> None:
        """Refresh demographics: values that are sent win, empty ones change nothing."""
        values = {
            k: v
            for k, v in fields_of(patient).items()
            if v not in ("", None) and k not in {"region", "created_by_journal_id"}
        }
        _with_name_keys(values)
        values["updated_at"] = utc_now()
        values["_region"] = region
        values["_id"] = patient_id
        names = tuple(k for k in values if not k.startswith("_"))
        self._sql.defer(_PATIENT_UPDATE[names], values)

    def add_identifiers(
        self,
        region: str,
        patient_id: int,
        identifiers: Iterable[tuple[str, str, str]],
        submitted_by: str = "",
    ) -> None:
        """Attach identifiers (value, authority, type); ones already held are skipped."""
        for value, authority, type_code in identifiers:
            self._sql.defer(
                _IDENTIFIER_INSERT_NEW,
                {
                    "patient_id": patient_id,
                    "region": region,
                    "value": value,
                    "authority": authority,
                    "type_code": type_code,
                    "submitted_by": submitted_by,
                },
            )

    def replace_next_of_kin(
        self,
        region: str,
        patient_id: int,
        kin: Sequence[NewNextOfKin],
        submitted_by: str = "",
    ) -> None:
        """Replace the next of kin this sender reported with the ones just reported.

        Other organizations' next of kin stay: each sender replaces its own
        (rows stored before the sender was recorded count as anyone's).
        """
        self._sql.defer(
            _KIN_DELETE,
            {"region": region, "patient_id": patient_id, "by": submitted_by},
        )
        if kin:
            self._sql.defer_many(
                _KIN_INSERT,
                [
                    dict(
                        fields_of(k),
                        patient_id=patient_id,
                        region=region,
                        submitted_by=submitted_by,
                    )
                    for k in kin
                ],
            )

    def next_of_kin(self, region: str, patient_id: int) -> list[NextOfKinRecord]:
        """The patient's next of kin."""
        rows = self._conn.execute(
            select(next_of_kin)
            .where(
                next_of_kin.c.region == region, next_of_kin.c.patient_id == patient_id
            )
            .order_by(next_of_kin.c.sequence)
        ).all()
        return [record_from_row(NextOfKinRecord, row) for row in rows]

    def add_submitter(
        self,
        region: str,
        patient_id: int,
        facility: str,
        when: datetime | None = None,
    ) -> None:
        """Record that an organization submitted data for the patient (lock ownership).

        ``when`` is the moment of its first submission (the message's arrival);
        an organization already recorded keeps its first moment.
        """
        self._sql.defer(
            _SUBMITTER_INSERT_NEW,
            {
                "patient_id": patient_id,
                "facility": facility,
                "region": region,
                "first_seen": when or utc_now(),
            },
        )

    def submitters(self, region: str, patient_id: int) -> frozenset[str]:
        """The organizations that submitted data for the patient."""
        return frozenset(s.facility for s in self.submitters_since(region, patient_id))

    def submitters_since(self, region: str, patient_id: int) -> list[Submitter]:
        """The organizations that submitted data for the patient, with since when."""
        # On the driver cursor (storage/_sql.py): every update of a stored
        # patient reads it, and SQLAlchemy's own path cost 0.9 ms a call.
        rows = self._sql.all(_SUBMITTERS, {"region": region, "patient_id": patient_id})
        return [
            Submitter(facility, utc(first_seen) or utc_now())
            for facility, first_seen in rows
        ]

    def insert_version(self, version: NewPatientVersion) -> None:
        """Keep one demographic version (what a sender said, or what was stored)."""
        values = fields_of(version)
        values["demographics"] = json.dumps(dict(version.demographics), sort_keys=True)
        self._sql.defer(_VERSION_INSERT, values)

    def versions(self, region: str, patient_id: int) -> list[PatientVersion]:
        """Every demographic version of a patient, oldest first."""
        self._sql.flush()
        rows = self._conn.execute(
            select(patient_versions)
            .where(
                patient_versions.c.region == region,
                patient_versions.c.patient_id == patient_id,
            )
            .order_by(patient_versions.c.id)
        ).all()
        return [
            record_from_row(
                PatientVersion, row, demographics=json.loads(row.demographics)
            )
            for row in rows
        ]

    def find_match_candidates(
        self,
        region: str,
        birth_date: date,
        nearby_dates: Iterable[date],
        family: str,
        given: str,
        limit: int = _CANDIDATE_LIMIT,
        given_forms: Iterable[str] = (),
    ) -> list[PatientRecord]:
        """Scored-matching candidates, read by blocking keys rather than whole dates.

        Patients born on ``birth_date`` whose family or given name key equals
        the key of either incoming name (so a swapped name still meets its
        record), or who have the same initials either way round (two records
        that each have a typo in another name). Patients born on one of the
        ``nearby_dates`` (one typing error away) when one name key agrees
        *and* the other name starts with an incoming initial, or with the
        initial of one of ``given_forms`` (the given name's nicknames and
        full forms: Bill for William), or is empty. When neither incoming
        name has a key, everyone born on ``birth_date``; when only one has,
        the nearby dates' patients with that key. Ordered by id, each patient
        once, at most ``limit`` rows read. See storage/keys.py.

        A stored patient on a nearby date whose names differ in a key *and*
        in the other name's first letter is left out: a birth date that is
        not exact and a name that disagrees is how two neighbours' children
        look, and reading them made every search grow with the registry.
        """
        family_key, given_key = name_key(family), name_key(given)
        keys = sorted({k for k in (family_key, given_key) if k})
        params: dict[str, Any] = {"region": region, "exact": birth_date}
        if keys:
            dates = sorted(set(nearby_dates) | {birth_date})
            # The lists padded (a date or an initial repeated changes
            # nothing): a handful of statement shapes instead of one per
            # count, so that PostgreSQL plans each once (prepared) and
            # SQLite's statement cache keeps them.
            dates += [birth_date] * (-len(dates) % 16)
            params.update(in_values("d", dates))
            params.update(in_values("k", keys))
            n_initials = 0
            if family_key and given_key:
                fi, gi = family_key[0], given_key[0]
                params.update(fi=fi, gi=gi)
                nicknames = {name_key(form)[:1] for form in given_forms}
                # '' lets a stored patient without that name through.
                given_initials = sorted({fi, gi, ""} | nicknames)
                family_initials = sorted({fi, gi, ""})
                n_initials = max(len(given_initials), len(family_initials))
                n_initials += -n_initials % 8
                given_initials += [""] * (n_initials - len(given_initials))
                family_initials += [""] * (n_initials - len(family_initials))
                params.update(in_values("gx", given_initials))
                params.update(in_values("fx", family_initials))
            shape = (len(dates), len(keys), n_initials, limit)
        else:
            shape = (0, 0, 0, limit)
        rows = self._sql.all(_MATCH_CANDIDATES[shape], params)
        seen: set[int] = set()
        unique = []
        for row in rows:
            if row[0] not in seen:
                seen.add(row[0])
                unique.append(row)
        return self._load(unique)

    def name_counts(
        self,
        region: str,
        family: Iterable[str] = (),
        given: Iterable[str] = (),
        *,
        total: bool = False,
    ) -> NameCounts:
        """How common each name is in the region: patients sharing its name key.

        Term frequencies for matching: the share of the region's patients who
        have a name is how often two strangers agree on it. Counted per
        blocking key (storage/keys.py), so similar spellings count together
        (Garcia with Garza): a common name is never taken for a rare one.
        One statement; ``total`` adds the region's patient count to it.

        Args:
            region: the region whose patients are counted.
            family: family names (a mother's maiden name is a family name).
            given: given names.
            total: whether to count the region's patients as well.
        """
        family_keys = {name: name_key(name) for name in family}
        given_keys = {name: name_key(name) for name in given}
        fkeys = sorted({k for k in family_keys.values() if k})
        gkeys = sorted({k for k in given_keys.values() if k})
        if not (fkeys or gkeys or total):
            return NameCounts(None, {}, {})
        params: dict[str, Any] = {"region": region}
        params.update(in_values("f", fkeys))
        params.update(in_values("g", gkeys))
        counts: dict[tuple[str, str], int] = {}
        region_total: int | None = None
        for kind, key, n in self._sql.all(
            _NAME_COUNTS[(len(fkeys), len(gkeys), total)], params
        ):
            if kind == "t":
                region_total = int(n)
            else:
                counts[(kind, key)] = int(n)
        return NameCounts(
            region_total,
            {n: counts.get(("f", k), 0) for n, k in family_keys.items() if k},
            {n: counts.get(("g", k), 0) for n, k in given_keys.items() if k},
        )

    def survivor(self, region: str, patient_id: int) -> int:
        """The patient a merged record reads through (itself when not merged)."""
        seen = {patient_id}
        current = patient_id
        while True:
            survivor = self._sql.scalar(
                _SURVIVOR, {"region": region, "merged_id": current}
            )
            if survivor is None or survivor in seen:
                return current
            current = int(survivor)
            seen.add(current)

    def merged_into(self, region: str, survivor_id: int) -> list[int]:
        """The survivor and every record merged into it (the merged view's members)."""
        return merged_members(self._sql, region, survivor_id)

    def link(
        self, region: str, merged_id: int, survivor_id: int, review_id: int | None
    ) -> None:
        """Merge: ``merged_id`` now reads through ``survivor_id``; both records stay."""
        self._conn.execute(
            delete(patient_links).where(patient_links.c.merged_id == merged_id)
        )
        self._conn.execute(
            patient_links.insert(),
            {
                "merged_id": merged_id,
                "region": region,
                "survivor_id": survivor_id,
                "review_id": review_id,
                "active": True,
                "created_at": utc_now(),
            },
        )

    def unlink(self, region: str, merged_id: int) -> bool:
        """Undo a merge; returns whether there was one."""
        result = self._conn.execute(
            update(patient_links)
            .where(
                patient_links.c.region == region,
                patient_links.c.merged_id == merged_id,
                patient_links.c.active.is_(True),
            )
            .values(active=False)
        )
        return bool(result.rowcount)

    def record_decision(self, decision: NewMatchDecision) -> None:
        """Store one matching decision and its reasons."""
        self._sql.defer(_DECISION_INSERT, fields_of(decision))

    def count(self, region: str) -> int:
        """How many patients a region holds."""
        return int(
            self._conn.execute(
                select(func.count())
                .select_from(patients)
                .where(patients.c.region == region)
            ).scalar_one()
        )
