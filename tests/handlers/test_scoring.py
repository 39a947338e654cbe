"""Scored patient comparison: each rule pinned on a small hand-made pair."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from handlers.scoring import Person, birth_date_variants, compare

BASE = Person(
    family="Garcia",
    given="Sofia",
    middle="Isabel",
    birth_date=date(2021, 3, 7),
    sex="F",
    mother_family="Lopez",
    phone="4155550123",
    postal_code="94110",
    street="12 Mission St",
)
DEFAULT_MATCH = 0.55
DEFAULT_POSSIBLE = 0.30


def _reasons(a: Person, b: Person) -> str:
    return "; ".join(compare(a, b).reasons)


def test_identical_records_score_one() -> None:
    result = compare(BASE, BASE)
    assert result.score == 1.0
    assert not result.vetoed


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"given": "SOFIA", "family": "garcía"}, "family exact"),
        ({"given": "Sofai"}, "given similar"),
        ({"given": "Zofia"}, "given one typo"),
        ({"family": "Garcia-Martinez"}, "one part of a hyphenated or double name"),
        ({"family": "Sofia", "given": "Garcia"}, "family and given swapped"),
        ({"family": "Sofai", "given": "Garcia"}, "family and given swapped"),
        ({"birth_date": date(2021, 7, 3)}, "day and month transposed"),
        ({"birth_date": date(2021, 3, 8)}, "one digit off"),
    ],
)
def test_the_same_person_typed_differently_still_matches(
    change: dict[str, object], reason: str
) -> None:
    other = replace(BASE, **change)  # type: ignore[arg-type]
    result = compare(BASE, other)
    assert reason in _reasons(BASE, other)
    assert result.score >= DEFAULT_MATCH, result.reasons


def test_nicknames_are_the_same_given_name() -> None:
    william = replace(BASE, given="William", sex="M")
    assert "given nickname" in _reasons(william, replace(william, given="Bill"))
    assert compare(william, replace(william, given="Bill")).score >= DEFAULT_MATCH


def test_missing_fields_are_not_counted_against() -> None:
    sparse = replace(BASE, middle="", phone="", street="", postal_code="")
    result = compare(BASE, sparse)
    assert result.score == 1.0
    assert not any("phone" in r for r in result.reasons)


@pytest.mark.parametrize("sex", ["F", "M"])
def test_an_unflagged_twin_is_never_merged_without_review(sex: str) -> None:
    # Same family, birth date, mother and address; another first name and no
    # multiple-birth indicator: at most a possible match, for a person.
    sibling = replace(BASE, given="Valentina", middle="", sex=sex)
    result = compare(BASE, sibling)
    assert result.review_only
    assert not result.vetoed
    assert "not merged without review" in result.reasons[-1]
    assert not compare(BASE, replace(BASE, given="Sofai")).review_only


def test_a_different_person_with_a_close_birth_date_is_not_a_match() -> None:
    stranger = Person(
        family="Nguyen",
        given="Anh",
        middle="",
        birth_date=date(2021, 3, 8),
        sex="F",
        mother_family="Tran",
    )
    assert compare(BASE, stranger).score < 0


def test_parent_and_child_with_similar_names_do_not_match() -> None:
    mother = replace(BASE, given="Sofia", birth_date=date(1991, 3, 7), middle="")
    # Birth dates decades apart are never candidates; the score agrees.
    assert date(1991, 3, 7) not in birth_date_variants(BASE.birth_date or date.min)
    assert compare(BASE, mother).score < DEFAULT_MATCH


def test_twins_with_different_birth_orders_are_vetoed() -> None:
    twin = replace(BASE, multiple_birth="Y", birth_order=1)
    other = replace(twin, birth_order=2)
    result = compare(twin, other)
    assert result.vetoed
    assert "twins are kept apart" in result.reasons[-1]


def test_twins_with_different_given_names_are_vetoed() -> None:
    twin = replace(BASE, multiple_birth="Y")
    result = compare(twin, replace(twin, given="Valentina", middle=""))
    assert result.vetoed


def test_a_twin_typed_with_a_typo_or_swapped_names_is_not_vetoed() -> None:
    twin = replace(BASE, multiple_birth="Y", birth_order=1)
    assert not compare(twin, replace(twin, given="Sofai")).vetoed
    assert not compare(twin, replace(twin, family="Sofia", given="Garcia")).vetoed


def test_birth_date_variants_cover_transposition_and_one_digit() -> None:
    variants = birth_date_variants(date(2021, 3, 7))
    assert date(2021, 7, 3) in variants
    assert date(2021, 3, 8) in variants
    assert date(2020, 3, 7) in variants
    assert date(2021, 4, 8) not in variants


def test_each_reason_carries_its_weighted_contribution() -> None:
    other = replace(BASE, phone="4155559999")
    reasons = compare(BASE, other).reasons
    assert any(r.startswith("phone differs (-") for r in reasons)
    assert any(r.startswith("birth_date exact (+0.24)") for r in reasons)


def test_a_near_birth_date_needs_corroboration_to_merge() -> None:
    # Same common name, birth date one digit off, mother and address differ:
    # two strangers as often as one child; a person decides.
    stranger = replace(
        BASE,
        birth_date=date(2021, 3, 8),
        mother_family="Okafor",
        phone="2135550000",
        street="9 Elm Ave",
        postal_code="90012",
    )
    result = compare(BASE, stranger)
    assert result.review_only
    assert "nothing else corroborates" in result.reasons[-1]
    corroborated = replace(BASE, birth_date=date(2021, 3, 8))
    assert not compare(BASE, corroborated).review_only


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"given": "Zofia", "phone": "4155559999"},
        {"family": "Sofia", "given": "Garcia"},
        {"given": "Camila"},
        {"birth_date": date(2021, 3, 8), "mother_family": "Okafor", "street": ""},
        {"multiple_birth": "Y", "birth_order": 2},
    ],
)
def test_ranking_without_reasons_scores_the_same(change: dict[str, object]) -> None:
    other = replace(BASE, **change)  # type: ignore[arg-type]
    twin = replace(BASE, multiple_birth="Y", birth_order=1)
    for a in (BASE, twin):
        full = compare(a, other)
        ranked = compare(a, other, explain=False)
        assert ranked.reasons == ()
        assert full.reasons
        assert (ranked.score, ranked.vetoed, ranked.review_only) == (
            full.score,
            full.vetoed,
            full.review_only,
        )
