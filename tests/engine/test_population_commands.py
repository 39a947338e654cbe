"""``cairn recall``, ``cairn requirements`` and ``cairn coverage``: the CLI fronts of the services.

The rules are tested in tests/handlers; here: what a user types, what is
printed, written and refused, on the embedded SQLite database.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from engine.cli import main
from storage import open_database
from tests.conftest import SHARED
from tests.support.population import store_population

CONFIG = """
[[facilities]]
id = "CLINIC1"
region = "BAY"

[[facilities]]
id = "CLINIC2"
region = "BAY"

[[facilities]]
id = "SCHOOL1"
region = "BAY"
"""


@pytest.fixture(name="cli")
def _cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> list[str]:
    """A data directory holding the known population; the flags every command takes."""
    monkeypatch.setenv("CAIRN_CDSI_DIR", str(SHARED / "cdsi" / "supporting-data"))
    config = tmp_path / "cairn.toml"
    config.write_text(CONFIG)
    db = open_database(f"sqlite:///{tmp_path / 'cairn.sqlite3'}")
    db.upgrade(("BAY", "SAC"))
    with db.transaction() as uow:
        ids = store_population(uow)
    db.close()
    assert ids["dan"] == 4
    capsys.readouterr()
    return ["--config", str(config)]


def _data(tmp_path: Path) -> list[str]:
    return ["--data-dir", str(tmp_path), "--workers", "0"]


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_recall_csv_then_mark_then_the_next_run_shows_it(
    cli: list[str], tmp_path: Path, capsys
) -> None:
    """A facility's list as CSV; a phone call marked; the next run says when and how."""
    args = [
        "recall",
        "--facility",
        "CLINIC1",
        "--as-of",
        "2026-11-01",
        "--format",
        "csv",
    ]
    assert main([*cli, *args, *_data(tmp_path)]) == 0
    out = capsys.readouterr()
    rows = _csv(out.out)
    assert [(r["patient_id"], r["status"], r["since"]) for r in rows] == [
        ("9", "overdue", "2014-03-28"),
        ("10", "overdue", "2014-05-28"),
        ("4", "overdue", "2023-02-11"),
        ("8", "due", "2026-11-01"),
    ]
    assert (rows[2]["guardian"], rows[2]["phone"]) == ("Mara Early", "5105550104")
    assert "recall run 1: 4 listed of 9 patient(s)" in out.err
    assert (
        main(
            [
                *cli,
                "recall",
                "mark",
                "1",
                "--method",
                "phone",
                "--patient",
                "4",
                "--on",
                "2026-11-03",
                "--organization",
                "CLINIC1",
                "--data-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert (
        "recorded 1 contact(s) (phone, 2026-11-03) against run 1"
        in capsys.readouterr().out
    )
    assert main([*cli, *args, *_data(tmp_path)]) == 0
    again = {r["patient_id"]: r for r in _csv(capsys.readouterr().out)}
    assert (again["4"]["last_contacted"], again["4"]["last_contact_method"]) == (
        "2026-11-03",
        "phone",
    )
    assert again["9"]["last_contacted"] == ""


def test_recall_json_for_a_school_has_no_contact_fields(
    cli: list[str], tmp_path: Path, capsys
) -> None:
    """A school's JSON list carries no guardian, phone or address field at all."""
    args = [
        "recall",
        "--region",
        "BAY",
        "--organization",
        "SCHOOL1",
        "--role",
        "requirements",
        "--as-of",
        "2026-11-01",
        "--format",
        "json",
    ]
    assert main([*cli, *args, *_data(tmp_path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["listed"] == 4
    assert {key for p in document["patients"] for key in p}.isdisjoint(
        {"guardian", "phone", "address", "relationship"}
    )
    assert "5105550104" not in json.dumps(document)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--region", "SAC", "--organization", "CLINIC1"],
            "cairn: --region: CLINIC1 belongs to region BAY, not SAC",
        ),
        (
            ["--facility", "CLINIC2", "--organization", "CLINIC1"],
            "cairn: --facility: CLINIC1 may list its own patients only",
        ),
        (
            ["--region", "BAY"],
            "cairn: --organization is required (the facility id of who asks)",
        ),
        (
            ["--facility", "CLINIC1", "--age", "six..7"],
            "cairn: --age: 'six' is not an age",
        ),
        (
            ["--facility", "CLINIC1", "--vaccine-group", "flu"],
            "unknown vaccine group 'flu'",
        ),
        (
            ["--facility", "NOBODY"],
            "--organization: 'NOBODY' is not a configured facility",
        ),
    ],
)
def test_recall_refusals_are_one_line(
    cli: list[str], tmp_path: Path, capsys, flags: list[str], message: str
) -> None:
    """Another region, another facility, junk flags: exit 2 with one line naming the flag."""
    config = Path(cli[1])
    config.write_text(CONFIG + '\n[registry]\nunknown_sender = "reject"\n')
    code = main([*cli, "recall", *flags, "--as-of", "2026-11-01", *_data(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_recall_mark_refuses_another_organization_run(
    cli: list[str], tmp_path: Path, capsys
) -> None:
    """CLINIC2 cannot record contacts against CLINIC1's run (nor learn that it exists)."""
    assert (
        main(
            [
                *cli,
                "recall",
                "--facility",
                "CLINIC1",
                "--as-of",
                "2026-11-01",
                *_data(tmp_path),
            ]
        )
        == 0
    )
    capsys.readouterr()
    code = main(
        [
            *cli,
            "recall",
            "mark",
            "1",
            "--method",
            "letter",
            "--organization",
            "CLINIC2",
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.strip() == "cairn: run: no recall run 1 of CLINIC2"


def test_requirements_check_a_list(cli: list[str], tmp_path: Path, capsys) -> None:
    """A school checks a list file: met, not met with what is missing, not found."""
    roster = tmp_path / "roster.txt"
    roster.write_text("# kindergarten\n2\n3\n4 # Dan\n5\n11\n")
    args = [
        "requirements",
        "check",
        "--set",
        "ca-k12-admission",
        "--region",
        "BAY",
        "--organization",
        "SCHOOL1",
        "--role",
        "requirements",
        "--as-of",
        "2026-11-01",
        "--list",
        str(roster),
        "--format",
        "csv",
    ]
    assert main([*cli, *args, *_data(tmp_path)]) == 0
    out = capsys.readouterr()
    rows = _csv(out.out)
    assert {(r["patient_id"], r["met"]) for r in rows} == {
        ("2", "met"),
        ("3", "met"),
        ("4", "NOT MET"),
    }
    polio = next(r for r in rows if r["patient_id"] == "4" and r["rule"] == "Polio")
    assert (polio["missing"], polio["earliest"]) == ("1", "2025-01-15")
    # Eve (locked, not the school's) and Finn (SAC) are "not found", like an unknown id.
    assert "2 of 3 patient(s) meet ca-k12-admission; not found: 5, 11" in out.err


def test_requirements_list_with_junk_names_the_line(
    cli: list[str], tmp_path: Path, capsys
) -> None:
    """A list line that is not an id is refused with its line number."""
    roster = tmp_path / "roster.txt"
    roster.write_text("2\nDROP TABLE patients\n")
    code = main(
        [
            *cli,
            "requirements",
            "check",
            "--set",
            "ca-k12-admission",
            "--region",
            "BAY",
            "--organization",
            "SCHOOL1",
            "--as-of",
            "2026-11-01",
            "--list",
            str(roster),
            *_data(tmp_path),
        ]
    )
    assert code == 2
    assert (
        "--list: roster.txt line 2: 'DROP TABLE patients' is not a registry id"
        in capsys.readouterr().err
    )


def test_coverage_writes_csv_and_html_with_the_chart(
    cli: list[str], tmp_path: Path, capsys
) -> None:
    """The coverage table on the terminal, as CSV, and as HTML with the SVG chart embedded."""
    args = [
        "coverage",
        "--region",
        "BAY",
        "--organization",
        "CLINIC1",
        "--as-of",
        "2026-11-01",
        "--age",
        "4..6",
        "--requirements",
        "ca-k12-admission",
        "--csv",
        str(tmp_path / "csv"),
        "--html",
        str(tmp_path / "report" / "coverage.html"),
    ]
    assert main([*cli, *args, *_data(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "DTaP/Tdap/Td" in out
    rows = _csv((tmp_path / "csv" / "coverage.csv").read_text())
    assert [
        (r["vaccine group"], r["patients"], r["up to date"], r["%"]) for r in rows[:2]
    ] == [
        ("DTaP/Tdap/Td", "5", "4", "80.0"),
        ("Polio", "5", "4", "80.0"),
    ]
    requirement = _csv((tmp_path / "csv" / "requirement.csv").read_text())
    assert [(r["patients"], r["met"], r["%"]) for r in requirement] == [
        ("5", "3", "60.0")
    ]
    html = (tmp_path / "report" / "coverage.html").read_text()
    assert "data:image/svg+xml;base64," in html
    assert "Immunization coverage" in html
    svg = (tmp_path / "report" / "coverage.svg").read_text()
    assert svg.lstrip().startswith("<?xml")
    assert "meets ca-k12-admission" in svg


def test_a_registered_school_is_a_school_whatever_it_says(
    cli: list[str], tmp_path: Path, capsys
) -> None:
    """SCHOOL1 registered as a school: no contact columns without --role, and --role provider refused."""
    data = ["--data-dir", str(tmp_path)]
    assert (
        main(
            [
                *cli,
                "org",
                "add",
                "SCHOOLDIST",
                "--type",
                "school",
                "--region",
                "BAY",
                "--facility",
                "SCHOOL1",
                *data,
            ]
        )
        == 0
    )
    capsys.readouterr()
    args = [
        "recall",
        "--region",
        "BAY",
        "--organization",
        "SCHOOL1",
        "--as-of",
        "2026-11-01",
        "--format",
        "csv",
    ]
    assert main([*cli, *args, *_data(tmp_path)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "phone" not in header
    assert "address" not in header
    code = main([*cli, *args, "--role", "provider", *_data(tmp_path)])
    assert code == 2
    assert (
        "--role: SCHOOL1 belongs to SCHOOLDIST, a school organization: its role is requirements, not provider"
        in capsys.readouterr().err
    )
