"""A known, made-up population for reminder/recall, requirements and coverage tests.

Stored straight through the repositories (no VXU): each child's doses are
chosen so that one rule shows, and the tests assert exact figures on it as of
:data:`AS_OF`. Region BAY holds the children below; region SAC holds one
child CLINIC1 also vaccinated (another region's patient).

| key | born | what it shows |
| --- | --- | --- |
| ada | 2021-03-10 | every K-12 dose on schedule: meets TK/K-12, nothing due |
| ben | 2021-06-01 | 4 DTaP and 3 polio, the last on 2025-06-03 (after the 4th birthday): the exceptions |
| cleo | 2021-02-20 | the same, the last given 2025-02-17, 3 days before the 4th birthday: the 4-day grace |
| dan | 2021-01-15 | 4 DTaP, 3 polio all before 4; 1st MMR before the 1st birthday; 1 varicella: not met, overdue |
| eve | 2022-05-05 | locked (PD1-12 Y), submitted by CLINIC2 only: incomplete |
| gus | 2021-04-04 | deceased: incomplete, never recalled |
| hana | 2021-05-05 | publicity code 01 (no reminder/recall): incomplete |
| ivy | 2026-07-01 | an infant with her 2-month doses: child care 4 through 5 months not met |
| jay | 2014-03-01 | Tdap at 11 and 2 varicella: meets 7th grade |
| kai | 2014-05-01 | DTaP only as an infant, 1 varicella: 7th grade not met |
| finn (SAC) | 2021-08-08 | another region's child of CLINIC1 |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from forecast import Forecaster, load_supporting_data
from handlers.forecasting import CdsiForecastService
from handlers.population import PopulationAssessor
from storage import Database, NewNextOfKin, NewPatient, NewPatientVersion, UnitOfWork
from tests.conftest import SHARED, shared_path
from tests.support.records import new_vaccination

AS_OF = date(2026, 11, 1)

#: CVX codes used below.
HEPB, DTAP, IPV, HIB, PCV, MMR, VAR, HEPA, TDAP, RV = (
    "08",
    "20",
    "10",
    "49",
    "133",
    "03",
    "21",
    "83",
    "115",
    "116",
)


@dataclass
class Child:
    """A made-up child: demographics, doses and who sent them."""

    given: str
    family: str
    born: date
    doses: list[tuple[str, str]]
    sender: str = "CLINIC1"
    region: str = "BAY"
    locked: bool = False
    deceased: bool = False
    publicity: str = "02"
    guardian: tuple[str, str, str] | None = None
    phone: str = ""
    street: str = ""
    extra_submitters: list[str] = field(default_factory=list)


CHILDREN: dict[str, Child] = {
    "ada": Child(
        "Ada",
        "Complete",
        date(2021, 3, 10),
        [
            (HEPB, "2021-03-10"),
            (HEPB, "2021-04-15"),
            (DTAP, "2021-05-10"),
            (IPV, "2021-05-10"),
            (HIB, "2021-05-10"),
            (PCV, "2021-05-10"),
            (DTAP, "2021-07-10"),
            (IPV, "2021-07-10"),
            (HIB, "2021-07-10"),
            (PCV, "2021-07-10"),
            (DTAP, "2021-09-10"),
            (IPV, "2021-09-10"),
            (HEPB, "2021-09-15"),
            (PCV, "2021-09-10"),
            (MMR, "2022-03-15"),
            (VAR, "2022-03-15"),
            (HEPA, "2022-03-15"),
            (HIB, "2022-03-15"),
            (PCV, "2022-03-15"),
            (DTAP, "2022-06-10"),
            (HEPA, "2022-09-15"),
            (DTAP, "2025-03-15"),
            (IPV, "2025-03-15"),
            (MMR, "2025-03-15"),
            (VAR, "2025-03-15"),
        ],
        guardian=("Mara", "Complete", "5105550101"),
        street="1 Oak St",
    ),
    "ben": Child(
        "Ben",
        "Fourth",
        date(2021, 6, 1),
        [
            (HEPB, "2021-06-01"),
            (HEPB, "2021-07-05"),
            (DTAP, "2021-08-02"),
            (IPV, "2021-08-02"),
            (DTAP, "2021-10-04"),
            (IPV, "2021-10-04"),
            (DTAP, "2021-12-06"),
            (HEPB, "2021-12-06"),
            (MMR, "2022-06-05"),
            (VAR, "2022-06-05"),
            (HEPA, "2022-06-05"),
            (HEPA, "2022-12-05"),
            (DTAP, "2025-06-03"),
            (IPV, "2025-06-03"),
            (MMR, "2025-06-03"),
            (VAR, "2025-06-03"),
        ],
        guardian=("Noor", "Fourth", "5105550102"),
        street="2 Elm St",
    ),
    "cleo": Child(
        "Cleo",
        "Grace",
        date(2021, 2, 20),
        [
            (HEPB, "2021-02-20"),
            (HEPB, "2021-03-25"),
            (DTAP, "2021-04-22"),
            (IPV, "2021-04-22"),
            (DTAP, "2021-06-22"),
            (IPV, "2021-06-22"),
            (DTAP, "2021-08-23"),
            (HEPB, "2021-08-23"),
            (MMR, "2022-02-22"),
            (VAR, "2022-02-22"),
            (HEPA, "2022-02-22"),
            (HEPA, "2022-08-22"),
            (DTAP, "2025-02-17"),
            (IPV, "2025-02-17"),
            (MMR, "2025-02-17"),
            (VAR, "2025-02-17"),
        ],
        guardian=("Olu", "Grace", "5105550103"),
        street="3 Ash St",
    ),
    "dan": Child(
        "Dan",
        "Early",
        date(2021, 1, 15),
        [
            (HEPB, "2021-01-15"),
            (HEPB, "2021-02-20"),
            (DTAP, "2021-03-16"),
            (IPV, "2021-03-16"),
            (DTAP, "2021-05-17"),
            (IPV, "2021-05-17"),
            (DTAP, "2021-07-19"),
            (IPV, "2021-07-19"),
            (HEPB, "2021-07-19"),
            (MMR, "2021-12-01"),
            (VAR, "2022-01-20"),
            (DTAP, "2022-04-20"),
            (MMR, "2025-01-20"),
        ],
        guardian=("Mara", "Early", "5105550104"),
        street="4 Pine St",
    ),
    "eve": Child(
        "Eve",
        "Locked",
        date(2022, 5, 5),
        [(HEPB, "2022-05-05"), (DTAP, "2022-07-06")],
        sender="CLINIC2",
        locked=True,
        guardian=("Pia", "Locked", "5105550105"),
        street="5 Fir St",
    ),
    "gus": Child(
        "Gus",
        "Gone",
        date(2021, 4, 4),
        [(HEPB, "2021-04-04")],
        deceased=True,
    ),
    "hana": Child(
        "Hana",
        "Quiet",
        date(2021, 5, 5),
        [(HEPB, "2021-05-05")],
        publicity="01",
    ),
    "ivy": Child(
        "Ivy",
        "Infant",
        date(2026, 7, 1),
        [
            (HEPB, "2026-07-01"),
            (HEPB, "2026-08-05"),
            (DTAP, "2026-09-01"),
            (IPV, "2026-09-01"),
            (HIB, "2026-09-01"),
            (PCV, "2026-09-01"),
            (RV, "2026-09-01"),
        ],
        guardian=("Rosa", "Infant", "5105550109"),
        street="9 Bay St",
    ),
    "jay": Child(
        "Jay",
        "Teen",
        date(2014, 3, 1),
        [(VAR, "2015-03-05"), (VAR, "2018-03-05"), (TDAP, "2025-04-01")],
    ),
    "kai": Child(
        "Kai",
        "Teen",
        date(2014, 5, 1),
        [
            (DTAP, "2014-07-01"),
            (DTAP, "2014-09-01"),
            (DTAP, "2014-11-03"),
            (VAR, "2015-05-04"),
        ],
    ),
    "finn": Child(
        "Finn",
        "Elsewhere",
        date(2021, 8, 8),
        [(HEPB, "2021-08-08")],
        region="SAC",
        guardian=("Sam", "Elsewhere", "9165550111"),
        street="11 River St",
    ),
}

_WHEN = datetime(2026, 10, 1, tzinfo=UTC)


def store_population(uow: UnitOfWork) -> dict[str, int]:
    """Store every child; returns their registry ids by key."""
    ids: dict[str, int] = {}
    for key, child in CHILDREN.items():
        pid = uow.patients.insert(
            NewPatient(
                region=child.region,
                birth_date=child.born,
                sex="F" if key in {"ada", "cleo", "eve", "hana", "ivy"} else "M",
                family_name=child.family,
                given_name=child.given,
                street=child.street,
                city="Oakland" if child.street else "",
                state="CA" if child.street else "",
                postal_code="94601" if child.street else "",
                phone=child.phone,
                protection="Y" if child.locked else "N",
                publicity_code=child.publicity,
                death_indicator="Y" if child.deceased else "",
                registry_status="A",
            )
        )
        ids[key] = pid
        uow.patients.add_submitter(child.region, pid, child.sender, _WHEN)
        uow.patients.insert_version(
            NewPatientVersion(
                child.region,
                pid,
                None,
                child.sender,
                "submitted",
                _WHEN,
                {
                    "family_name": child.family,
                    "given_name": child.given,
                    "birth_date": child.born.isoformat(),
                    "street": child.street,
                },
            )
        )
        if child.guardian:
            given, family, phone = child.guardian
            uow.patients.replace_next_of_kin(
                child.region,
                pid,
                [
                    NewNextOfKin(
                        1,
                        family,
                        given,
                        "MTH",
                        child.street,
                        "Oakland",
                        "CA",
                        "94601",
                        phone,
                    )
                ],
                submitted_by=child.sender,
            )
        for n, (cvx, when) in enumerate(child.doses):
            uow.vaccinations.insert(
                new_vaccination(
                    region=child.region,
                    patient_id=pid,
                    journal_id=None,
                    sending_facility=child.sender,
                    filler_id=f"{key}-{n}",
                    filler_namespace=child.sender,
                    cvx=cvx,
                    administered_on=date.fromisoformat(when),
                    administered_at_raw=when.replace("-", ""),
                )
            )
    return ids


_SERVICE: list[object] = []


def forecast_service() -> CdsiForecastService:
    """The CDSi forecast service over the shared release, loaded once per session."""
    if not _SERVICE:
        path = shared_path(
            "CAIRN_CDSI_DIR",
            SHARED / "cdsi" / "supporting-data",
            "CDSi supporting data (CDC release 4.64)",
        )
        _SERVICE.append(CdsiForecastService(Forecaster(load_supporting_data(path))))
    service = _SERVICE[0]
    assert isinstance(service, CdsiForecastService)
    return service


def assessor(db: Database, workers: int = 0, chunk: int = 4) -> PopulationAssessor:
    """An assessor over the test database (small chunks, so several are read)."""
    return PopulationAssessor(db, forecast_service(), workers=workers, chunk=chunk)
