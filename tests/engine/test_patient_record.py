"""The patient immunization record: contents, disclosure and audit, on SQLite and PostgreSQL.

The known data set: a girl born 2023-01-05, reported by CLINIC1 (HepB x3,
DTaP x3, MMR too early then again, varicella) and by CLINIC2 (one Hib),
evaluated and forecast as of 2024-03-01. Doses go in as real VXUs through
the pipeline; the record is read through the service the CLI uses.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from engine import app
from engine.cli import main
from handlers.codes import CodeTables
from handlers.patient_record import PatientRecordService, RecordAnswer, Requester
from handlers.reporting import html_to_pdf
from storage import Database, open_database
from tests.e2e.conftest import CONFIG
from tests.support.messages import CANARY_FAMILY, CANARY_GIVEN, Dose, vxu
from tests.support.registry import InProcessRegistry, build_registry

AS_OF = date(2024, 3, 1)
AT = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
CONFIG3 = (
    CONFIG
    + '\n[[facilities]]\nid = "CLINIC3"\nregion = "BAY"\nname = "Test clinic three"\n'
)

CLINIC1_DOSES = [
    ("08", "20230105", "HB1"),
    ("08", "20230210", "HB2"),
    ("20", "20230306", "DT1"),
    ("20", "20230508", "DT2"),
    ("08", "20230710", "HB3"),
    ("20", "20230710", "DT3"),
    ("03", "20231005", "MM0"),  # 9 months old: too young to count
    ("03", "20240110", "MM1"),
    ("21", "20240110", "VA1"),
]


def _load(registry: InProcessRegistry, protection: str = "N") -> int:
    """Send the data set; returns the patient's registry id."""
    registry.send(
        vxu(
            mrn="REC1",
            protection="N",
            sender="CLINIC2",
            doses=[Dose(cvx="48", date="20230306", lot="HIB9")],
        )
    )
    registry.send(
        vxu(
            mrn="REC1",
            protection=protection,
            doses=[Dose(cvx=c, date=d, lot=lot) for c, d, lot in CLINIC1_DOSES],
        )
    )
    ((patient_id,),) = registry.query("SELECT DISTINCT patient_id FROM vaccinations")
    assert isinstance(patient_id, int)
    return patient_id


@pytest.fixture(name="registry")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    return build_registry(db, tmp_path, monkeypatch, CONFIG3)


def _read(
    registry: InProcessRegistry, organization: str, region: str, patient_id: int
) -> RecordAnswer:
    forecaster, why = app.load_forecaster(registry.settings)
    assert forecaster is not None, why
    service = PatientRecordService(forecaster, CodeTables.load().text, "CAIRN", why)
    own = {"CLINIC1": "BAY", "CLINIC2": "BAY", "CLINIC3": "BAY", "LACLINIC": "LAO"}[
        organization
    ]
    with registry.db.transaction() as uow:
        return service.read(
            uow, Requester(organization, own, (own,)), region, patient_id, AS_OF, AT
        )


def _audit(registry: InProcessRegistry) -> list[tuple[object, ...]]:
    return registry.query(
        "SELECT requester, patient_region, outcome, profile FROM audit_log "
        "WHERE action = 'record' ORDER BY id"
    )


def test_record_contents_history_validity_and_forecast(
    registry: InProcessRegistry,
) -> None:
    """Demographics, every dose under its vaccine group with its validity, and the forecast."""
    patient_id = _load(registry)
    record = _read(registry, "CLINIC1", "BAY", patient_id).record
    assert record is not None
    assert (record.name, record.birth_date, record.sex, record.guardians) == (
        f"{CANARY_GIVEN} M {CANARY_FAMILY}",
        date(2023, 1, 5),
        "Female",
        (f"Parent {CANARY_FAMILY} (mother)",),
    )
    assert record.access == "full"
    assert [
        (
            r.vaccine_group,
            r.given_on.isoformat(),
            r.cvx,
            r.dose_number,
            r.valid,
            r.given_by,
        )
        for r in record.history
    ] == [
        ("DTaP/Tdap/Td", "2023-03-06", "20", "1", True, "CLINIC1"),
        ("DTaP/Tdap/Td", "2023-05-08", "20", "2", True, "CLINIC1"),
        ("DTaP/Tdap/Td", "2023-07-10", "20", "3", True, "CLINIC1"),
        ("HepB", "2023-01-05", "08", "1", True, "CLINIC1"),
        ("HepB", "2023-02-10", "08", "2", True, "CLINIC1"),
        ("HepB", "2023-07-10", "08", "3", True, "CLINIC1"),
        ("Hib", "2023-03-06", "48", "1", True, "CLINIC2"),
        ("MMR", "2023-10-05", "03", "", False, "CLINIC1"),
        ("MMR", "2024-01-10", "03", "1", True, "CLINIC1"),
        ("Varicella", "2024-01-10", "21", "1", True, "CLINIC1"),
    ]
    mmr_early = record.history[7]
    assert mmr_early.validity.startswith("not valid: ") and mmr_early.reason
    assert [(f.vaccine_group, f.status, f.dose_number) for f in record.forecast] == [
        ("Pneumococcal", "Overdue", "1"),
        ("Polio", "Overdue", "1"),
        ("Hib", "Overdue", "2"),
        ("HepA", "Due now", "1"),
        ("DTaP/Tdap/Td", "Due later", "4"),
        ("Influenza", "Due later", "1"),
        ("COVID-19", "Due later", "1"),
        ("MMR", "Due later", "2"),
        ("Varicella", "Due later", "2"),
        ("HPV", "Due later", "1"),
        ("Meningococcal", "Due later", "1"),
        ("HepB", "Complete", ""),
        ("Rotavirus", "Past recommended age", ""),
    ]
    dates = {f.vaccine_group: (f.earliest, f.due, f.overdue) for f in record.forecast}
    assert dates["MMR"] == (date(2024, 2, 7), date(2027, 1, 5), date(2030, 2, 1))
    assert dates["Hib"] == (date(2023, 4, 3), date(2023, 5, 5), date(2023, 7, 2))
    assert dates["DTaP/Tdap/Td"] == (
        date(2024, 4, 5),
        date(2024, 4, 5),
        date(2024, 9, 1),
    )
    assert record.forecast_note == (
        "Not due for more than 10 years, so not listed: Meningococcal B, Zoster."
    )
    assert _audit(registry) == [("CLINIC1", "BAY", "disclosed", "RECORD")]


def test_record_renders_as_html_and_pdf_with_the_same_contents(
    registry: InProcessRegistry,
) -> None:
    """The page names the patient, each vaccine group and the invalid dose; the PDF says the same."""
    from io import BytesIO

    from pypdf import PdfReader

    patient_id = _load(registry)
    record = _read(registry, "CLINIC1", "BAY", patient_id).record
    assert record is not None
    html = record.html(AT)
    for text in (
        CANARY_FAMILY,
        "Jan 5, 2023",
        "HepB",
        "Varicella",
        "not valid",
        "Due later",
    ):
        assert text in html
    pdf = PdfReader(BytesIO(html_to_pdf(html)))
    text = " ".join(page.extract_text() for page in pdf.pages)
    assert "IMMUNIZATION RECORD" in text.upper()
    assert CANARY_FAMILY in text and "Jan 10, 2024" in text and "not valid" in text


# -- the other party ----------------------------------------------------------------


def test_another_regions_organization_is_refused_and_audited(
    registry: InProcessRegistry,
) -> None:
    """LACLINIC (region LAO) gets no record of a BAY patient, told as if it did not exist."""
    patient_id = _load(registry)
    answer = _read(registry, "LACLINIC", "BAY", patient_id)
    assert answer.record is None
    assert (
        answer.refusal == f"no patient {patient_id} in region BAY that LACLINIC may see"
    )
    missing = _read(registry, "CLINIC1", "BAY", patient_id + 1000)
    assert missing.refusal == (
        f"no patient {patient_id + 1000} in region BAY that CLINIC1 may see"
    )
    assert _audit(registry) == [
        ("LACLINIC", "BAY", "other-region", "RECORD"),
        ("CLINIC1", "BAY", "not_found", "RECORD"),
    ]


def test_locked_record_shows_each_submitter_only_its_own_and_no_one_else_anything(
    registry: InProcessRegistry,
) -> None:
    """PD1-12 Y: CLINIC2 sees its own Hib only; CLINIC3, which never submitted, is refused."""
    patient_id = _load(registry, protection="Y")
    own = _read(registry, "CLINIC2", "BAY", patient_id).record
    assert own is not None and own.access == "own-data"
    assert [(r.vaccine_group, r.cvx, r.given_by) for r in own.history] == [
        ("Hib", "48", "CLINIC2")
    ]
    assert "Limited record" in own.html(AT)
    stranger = _read(registry, "CLINIC3", "BAY", patient_id)
    assert stranger.record is None
    assert (
        stranger.refusal
        == f"no patient {patient_id} in region BAY that CLINIC3 may see"
    )
    full = _read(registry, "CLINIC1", "BAY", patient_id).record
    assert full is not None and len(full.history) == 9  # CLINIC1's own doses, no Hib
    assert _audit(registry) == [
        ("CLINIC2", "BAY", "disclosed-own", "RECORD"),
        ("CLINIC3", "BAY", "locked", "RECORD"),
        ("CLINIC1", "BAY", "disclosed-own", "RECORD"),
    ]


def test_patient_record_command_writes_a_pdf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cairn patient record ID --region BAY --organization CLINIC1 --format pdf -o FILE``."""
    config = tmp_path / "cairn.toml"
    config.write_text(CONFIG3)
    data = ["--config", str(config)]
    local = ["--data-dir", str(tmp_path / "var")]
    assert main([*data, "db", "upgrade", *local]) == 0
    db = open_database(f"sqlite:///{tmp_path / 'var' / 'cairn.sqlite3'}")
    (tmp_path / "reg").mkdir()
    try:
        patient_id = _load(build_registry(db, tmp_path / "reg", monkeypatch, CONFIG3))
    finally:
        db.close()
    out = tmp_path / "record.pdf"
    argv = [*data, "patient", "record", str(patient_id), "--region", "BAY"]
    argv += [
        "--organization",
        "CLINIC1",
        "--as-of",
        "2024-03-01",
        "-o",
        str(out),
        *local,
    ]
    assert main([*argv, "--csv", str(tmp_path / "csv")]) == 0
    assert out.read_bytes().startswith(b"%PDF-")
    history = (tmp_path / "csv" / "history.csv").read_text().splitlines()
    assert history[0] == "vaccine group,date given,vaccine,dose,validity,given by,lot"
    assert history[8] == "MMR,2023-10-05,MMR,,not valid: Age: Too Young,CLINIC1,MM0"
    assert len(history) == 11
    printed = capsys.readouterr().out
    assert "Vaccination history" in printed and f"wrote {out}" in printed
    argv[argv.index("CLINIC1")] = "LACLINIC"
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        f"cairn: no patient {patient_id} in region BAY that LACLINIC may see\n"
    )


def test_a_schools_record_has_doses_and_forecast_but_no_guardian(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A school (an organization of `cairn org`, role requirements) gets the record without contacts."""
    from argon2 import PasswordHasher

    from handlers.identity import IdentityService

    config = tmp_path / "cairn.toml"
    config.write_text(CONFIG3)
    data = ["--config", str(config)]
    local = ["--data-dir", str(tmp_path / "var")]
    assert main([*data, "db", "upgrade", *local]) == 0
    db = open_database(f"sqlite:///{tmp_path / 'var' / 'cairn.sqlite3'}")
    (tmp_path / "reg").mkdir()
    try:
        patient_id = _load(build_registry(db, tmp_path / "reg", monkeypatch, CONFIG3))
        IdentityService(
            db.transaction,
            now=lambda: AT,
            hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        ).add_organization(
            "test",
            code="SCHOOLDIST",
            name="",
            org_type="school",
            region="BAY",
            facility_ids=["SCHOOL1"],
        )
    finally:
        db.close()
    out = tmp_path / "school.html"
    argv = [*data, "patient", "record", str(patient_id), "--region", "BAY"]
    argv += ["--organization", "SCHOOL1", "--format", "html", "-o", str(out), *local]
    assert main([*argv, "--as-of", "2024-03-01"]) == 0
    html = out.read_text()
    assert "(not shown to schools and child care)" in html
    assert f"Parent {CANARY_FAMILY}" not in html
    assert "Varicella" in html and "Jan 10, 2024" in html
    capsys.readouterr()
    argv[argv.index("SCHOOL1")] = "NOBODY"
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        "cairn: --organization: NOBODY is neither an organization's facility id "
        "(cairn org) nor a configured facility ([[facilities]])\n"
    )
