"""RSP bodies from stored records: PID, PD1, NK1, and ORC/RXA/RXR/OBX per dose.

Z42 adds the dose-evaluation OBX groups after each dose and a forecast order
group (CVX 998, RXA-20 ``NA``) with one OBX group per vaccine group, using the
LOINC codes of IG Appendix A (REFERENCE §8.4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING

from handlers.forecast_outcome import (
    ForecastOutcome,
)
from parsers import (
    GIVEN,
    PLACEHOLDER_FILLER_ID,
    UNKNOWN_AMOUNT,
    CompletionStatus,
    Cvx,
    InformationSource,
)
from parsers.builder import FieldValue, OutSegment, Reps

if TYPE_CHECKING:
    from handlers.disclosure import PatientView
    from storage import VaccinationRecord

SCHEDULE = ("VXC16", "ACIP", "CDCPHINVS")

#: The text of a code in a table (``""`` when unknown): CE components 2 go
#: back filled from the code tables, since the IG expects the text with the
#: code and senders' own texts are not kept.
TextOf = Callable[[str, str], str]


def _no_text(_table: str, _code: str) -> str:
    return ""


def _hl7_date(value: date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


class _ObxCounter:
    """OBX-1 keeps counting across a response's order groups."""

    def __init__(self) -> None:
        self.n = 0

    def ce(
        self,
        loinc: str,
        text: str,
        sub_id: int,
        value: tuple[str, str, str],
        stamp: str,
    ) -> OutSegment:
        self.n += 1
        return OutSegment(
            "OBX",
            (
                str(self.n),
                "CE",
                (loinc, text, "LN"),
                str(sub_id),
                value,
                "",
                "",
                "",
                "",
                "",
                "F",
                "",
                "",
                stamp,
            ),
        )

    def value(
        self,
        value_type: str,
        loinc: str,
        text: str,
        sub_id: int,
        value: str,
        stamp: str,
    ) -> OutSegment:
        self.n += 1
        return OutSegment(
            "OBX",
            (
                str(self.n),
                value_type,
                (loinc, text, "LN"),
                str(sub_id),
                value,
                "",
                "",
                "",
                "",
                "",
                "F",
                "",
                "",
                stamp,
            ),
        )


def recommendation_segments(
    outcome: ForecastOutcome, today: date, obx_before: int = 0, registry: str = "CAIRN"
) -> list[OutSegment]:
    """The forecast order group: ORC, RXA (998), and one OBX group per vaccine group."""
    if not outcome.recommendations:
        return []
    stamp = _hl7_date(today)
    out = [
        OutSegment("ORC", ("RE", "", (PLACEHOLDER_FILLER_ID, registry))),
        OutSegment(
            "RXA",
            (
                "0",
                "1",
                stamp,
                stamp,
                (Cvx.NO_VACCINE, "No vaccine administered", "CVX"),
                UNKNOWN_AMOUNT,
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                CompletionStatus.NOT_ADMINISTERED,
            ),
        ),
    ]
    obx = _ObxCounter()
    obx.n = obx_before  # OBX-1 keeps counting across the message
    for sub_id, rec in enumerate(outcome.recommendations, start=1):
        out.append(
            obx.ce(
                "30956-7",
                "Vaccine type",
                sub_id,
                (rec.vaccine_group_cvx, rec.vaccine_group, "CVX"),
                stamp,
            )
        )
        out.append(
            obx.ce("59779-9", "Immunization schedule used", sub_id, SCHEDULE, stamp)
        )
        if rec.series_name:
            out.append(
                obx.value(
                    "ST",
                    "59780-7",
                    "Immunization series name",
                    sub_id,
                    rec.series_name,
                    stamp,
                )
            )
        out.append(
            obx.ce(
                "59783-1",
                "Status in immunization series",
                sub_id,
                (rec.status, rec.status, "L"),
                stamp,
            )
        )
        if rec.dose_number:
            out.append(
                obx.value(
                    "NM",
                    "30973-2",
                    "Dose number in series",
                    sub_id,
                    rec.dose_number,
                    stamp,
                )
            )
        for loinc, text, value in (
            ("30981-5", "Earliest date to give", rec.earliest),
            ("30980-7", "Date vaccine due", rec.recommended),
            ("59778-1", "Date dose is overdue", rec.past_due),
            ("59777-3", "Latest date to give", rec.latest),
        ):
            if value is not None:
                out.append(
                    obx.value("DT", loinc, text, sub_id, _hl7_date(value), stamp)
                )
        if rec.reason:
            out.append(
                obx.value(
                    "ST",
                    "30982-3",
                    "Reason applied by forecast logic",
                    sub_id,
                    rec.reason,
                    stamp,
                )
            )
    return out


def patient_segments(
    view: PatientView,
    number: int,
    today: date,
    *,
    include_pd1: bool,
    text: TextOf = _no_text,
    registry: str = "CAIRN",
) -> Iterator[OutSegment]:
    """PID (with the registry's own SR id), PD1 and NK1s of one stored patient.

    PD1-16 carries the registry status; a deceased patient has PID-30 ``Y``.
    PD1 is left out when the patient has none of its fields.
    """
    record = view.record
    # The registry's own id (SR), assigned by this registry (registry.name).
    ids = [(f"{record.id}", "", "", registry, "SR")]
    ids.extend((i.value, "", "", i.authority, i.type) for i in record.identifiers)
    name = (
        record.family_name,
        record.given_name,
        record.middle_name,
        record.suffix,
        "",
        "",
        "L",
    )
    mother = (
        (record.mother_maiden_family, record.mother_maiden_given, "", "", "", "", "M")
        if record.mother_maiden_family
        else ""
    )
    addr = (
        (
            record.street,
            "",
            record.city,
            record.state,
            record.postal_code,
            record.country,
            "L",
        )
        if (record.street or record.city)
        else ""
    )
    phone = (
        ("", "PRN", "PH", "", "", record.phone[:-7], record.phone[-7:])
        if len(record.phone) >= 7
        else ""
    )
    race = (
        Reps(
            tuple(
                (code, text("HL70005", code), "CDCREC")
                for code in record.race.split("~")
                if code
            )
        )
        if record.race
        else ""
    )
    first_ethnicity = record.ethnicity.split("~")[0]
    ethnicity = (
        (first_ethnicity, text("HL70189", first_ethnicity), "CDCREC")
        if record.ethnicity
        else ""
    )
    deceased = (
        "Y"
        if record.death_indicator == "Y"
        or record.death_date
        or (record.registry_status == "P" and record.death_date)
        else record.death_indicator
    )
    pid_fields: list[FieldValue] = [
        str(number),
        "",
        Reps(tuple(ids)),
        "",
        name,
        mother,
        _hl7_date(record.birth_date),
        record.sex,
        "",
        race,
        addr,
        "",
        phone,
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        ethnicity,
        "",
        record.multiple_birth,
        str(record.birth_order) if record.birth_order is not None else "",
        "",
        "",
        "",
        _hl7_date(record.death_date),
        deceased,
    ]
    yield OutSegment("PID", tuple(pid_fields))
    if include_pd1:
        publicity = (
            (
                record.publicity_code,
                text("HL70215", record.publicity_code),
                "HL70215",
            )
            if record.publicity_code
            else ""
        )
        pd1: tuple[FieldValue, ...] = (
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            publicity,
            record.protection,
            _hl7_date(record.protection_date),
            "",
            "",
            record.registry_status,
            _hl7_date(record.registry_status_date),
            _hl7_date(record.publicity_date),
        )
        if any(pd1):
            yield OutSegment("PD1", pd1)
    for kin in view.next_of_kin:
        kin_addr = (
            (kin.street, "", kin.city, kin.state, kin.postal_code)
            if (kin.street or kin.city)
            else ""
        )
        kin_phone = (
            ("", "PRN", "PH", "", "", kin.phone[:-7], kin.phone[-7:])
            if len(kin.phone) >= 7
            else ""
        )
        yield OutSegment(
            "NK1",
            (
                str(kin.sequence),
                (kin.family_name, kin.given_name, "", "", "", "", "L"),
                (kin.relationship, text("HL70063", kin.relationship), "HL70063")
                if kin.relationship
                else "",
                kin_addr,
                kin_phone,
            ),
        )


def _rxa(dose: VaccinationRecord, text: TextOf) -> OutSegment:
    given = dose.completion_status in GIVEN
    source = (
        (
            dose.information_source,
            "New immunization record"
            if dose.information_source == InformationSource.NEW_RECORD
            else "Historical information",
            "NIP001",
        )
        if dose.information_source
        else ""
    )
    lots: FieldValue = (
        Reps(tuple(dose.lot_numbers.split("~"))) if dose.lot_numbers else ""
    )
    fields: list[FieldValue] = [
        "0",
        "1",
        _hl7_date(dose.administered_on),
        # RXA-4 (end of administration): the IG asks for RXA-3 again.
        _hl7_date(dose.administered_on),
        # The NDC the sender reported, when it did, as the alternate code.
        (dose.cvx, dose.cvx_text or text("CVX", dose.cvx), "CVX", dose.ndc, "", "NDC")
        if dose.ndc
        else (dose.cvx, dose.cvx_text or text("CVX", dose.cvx), "CVX"),
        dose.amount or UNKNOWN_AMOUNT,
        (dose.units, dose.units, "UCUM") if dose.units else "",
        "",
        source if given else "",
        "",
        ("", "", "", dose.administered_location) if dose.administered_location else "",
        "",
        "",
        "",
        lots,
        _hl7_date(dose.lot_expiration),
        (dose.mvx, text("MVX", dose.mvx), "MVX") if dose.mvx else "",
        (dose.refusal_reason, text("NIP002", dose.refusal_reason), "NIP002")
        if dose.refusal_reason
        else "",
        "",
        dose.completion_status,
        "A",
    ]
    return OutSegment("RXA", tuple(fields))


def vaccination_segments(
    view: PatientView,
    evaluations: ForecastOutcome | None,
    text: TextOf = _no_text,
    registry: str = "CAIRN",
) -> list[OutSegment]:
    """ORC/RXA/RXR/OBX for every consolidated dose, with evaluation OBX when given."""
    out: list[OutSegment] = []
    obx = _ObxCounter()
    by_dose: dict[int, list[OutSegment]] = {}
    for observation in view.observations:
        if observation.vaccination_id is None:
            continue
        value: FieldValue = (
            (observation.value_code, observation.value_text, observation.value_system)
            if observation.value_code
            else observation.value_text
        )
        by_dose.setdefault(observation.vaccination_id, []).append(
            OutSegment(
                "OBX",
                (
                    "",
                    observation.value_type or "ST",
                    (observation.loinc, observation.loinc_text, "LN"),
                    observation.sub_id,
                    value,
                    "",
                    "",
                    "",
                    "",
                    "",
                    "F",
                    "",
                    "",
                    _hl7_date(observation.observed_on),
                ),
            )
        )
    doses: Sequence[VaccinationRecord] = view.doses
    for dose in sorted(doses, key=lambda d: (d.administered_on, d.id)):
        out.append(OutSegment("ORC", ("RE", "", (str(dose.id), registry))))
        out.append(_rxa(dose, text))
        if dose.route or dose.site:
            out.append(
                OutSegment(
                    "RXR",
                    (
                        (
                            dose.route,
                            text("NCIT_ROUTE", dose.route)
                            or text("HL70162", dose.route),
                            "NCIT" if dose.route.startswith("C") else "HL70162",
                        )
                        if dose.route
                        else "",
                        (dose.site, text("HL70163", dose.site), "HL70163")
                        if dose.site
                        else "",
                    ),
                )
            )
        for seg in by_dose.get(dose.id, []):
            obx.n += 1
            out.append(OutSegment("OBX", (str(obx.n), *seg.fields[1:])))
        if evaluations is not None:
            stamp = ""
            base = max(
                (
                    int(s.fields[3])
                    for s in by_dose.get(dose.id, [])
                    if isinstance(s.fields[3], str) and s.fields[3].isdigit()
                ),
                default=0,
            )
            for offset, ev in enumerate(
                evaluations.evaluations.get(dose.id, ()), start=1
            ):
                sub_id = base + offset
                out.append(
                    obx.ce(
                        "30956-7",
                        "Vaccine type",
                        sub_id,
                        (ev.vaccine_group_cvx, ev.vaccine_group, "CVX"),
                        stamp,
                    )
                )
                out.append(
                    obx.ce(
                        "59779-9", "Immunization schedule used", sub_id, SCHEDULE, stamp
                    )
                )
                if ev.series_name:
                    out.append(
                        obx.value(
                            "ST",
                            "59780-7",
                            "Immunization series name",
                            sub_id,
                            ev.series_name,
                            stamp,
                        )
                    )
                if ev.dose_number:
                    out.append(
                        obx.value(
                            "NM",
                            "30973-2",
                            "Dose number in series",
                            sub_id,
                            ev.dose_number,
                            stamp,
                        )
                    )
                out.append(
                    obx.ce(
                        "59781-5",
                        "Dose validity",
                        sub_id,
                        (
                            "Y" if ev.valid else "N",
                            "Yes" if ev.valid else "No",
                            "HL70136",
                        ),
                        stamp,
                    )
                )
                if ev.reason:
                    out.append(
                        obx.value(
                            "ST",
                            "30982-3",
                            "Reason applied by forecast logic",
                            sub_id,
                            ev.reason,
                            stamp,
                        )
                    )
    return out
