"""Patient matching primitives: normalization and typo tolerance."""

from __future__ import annotations

from datetime import UTC, date, datetime

from handlers.matching import compare_names, normalize_name, within_one_edit
from storage import PatientRecord

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _record(family: str, given: str) -> PatientRecord:
    return PatientRecord(
        1,
        "BAY",
        date(2020, 1, 1),
        "F",
        family,
        given,
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
        "",
        None,
        "",
        None,
        "",
        None,
        "",
        "",
        None,
        None,
        NOW,
        NOW,
    )


def test_matching_normalizes_case_accents_and_hyphens() -> None:
    """Case, accents, hyphens, spaces and apostrophes do not count."""
    assert normalize_name("García-López") == normalize_name("garcia lopez")
    assert normalize_name("O'Brien") == "obrien"


def test_matching_tolerates_one_edit() -> None:
    """One insertion, deletion, substitution or swap of neighbours is tolerated; two are not."""
    assert within_one_edit("maria", "mara")
    assert within_one_edit("maria", "marja")
    assert within_one_edit("maria", "amria")
    assert not within_one_edit("maria", "mrai")
    assert not within_one_edit("maria", "marco")


def test_matching_compare_names_outcomes() -> None:
    """Exact after normalization is a match; a typo or swapped names is only possible."""
    assert compare_names("Núñez", "Ana", _record("Nunez", "ANA"))[0] == "match"
    assert compare_names("Nunez", "Anna", _record("Nunez", "Ana"))[0] == "possible"
    assert compare_names("Ana", "Nunez", _record("Nunez", "Ana"))[0] == "possible"
    assert compare_names("Smith", "Ana", _record("Nunez", "Ana"))[0] == "none"
