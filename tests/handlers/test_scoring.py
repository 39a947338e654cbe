"""Scored patient comparison: each rule pinned on a small hand-made pair."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from handlers.matching import MATCH_THRESHOLD, POSSIBLE_THRESHOLD
from handlers.scoring import (
    DEFAULT_NAME_FREQUENCY,
    MIN_NAME_FREQUENCY,
    NameFrequencies,
    Person,
    birth_date_variants,
    compare,
    name_frequency,
)

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
DEFAULT_MATCH = MATCH_THRESHOLD
DEFAULT_POSSIBLE = POSSIBLE_THRESHOLD
#: The rarest a name can be: agreement on it weighs the most.
RARE = NameFrequencies(MIN_NAME_FREQUENCY, MIN_NAME_FREQUENCY, MIN_NAME_FREQUENCY)
COMMON = NameFrequencies(0.04, 0.04, 0.04)


def _reasons(a: Person, b: Person) -> str:
    return "; ".join(compare(a, b).reasons)


def test_identical_records_score_the_sum_of_their_agreements() -> None:
    """Identical records: every comparison agrees, and the score is the sum of their weights."""
    result = compare(BASE, BASE)
    weights = [float(r.rsplit("(", 1)[1].rstrip(")")) for r in result.reasons]
    assert len(weights) == 9
    assert all(w > 0 for w in weights)
    assert result.score == pytest.approx(sum(weights), abs=0.05)
    assert result.score >= DEFAULT_MATCH
    assert not result.vetoed
    assert not result.review_only


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
    """A field missing on one side adds nothing: the score is that of the fields both have."""
    sparse = replace(BASE, middle="", phone="", street="", postal_code="")
    result = compare(BASE, sparse)
    assert result.score == compare(sparse, sparse).score
    assert result.score >= DEFAULT_MATCH
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
    # Birth dates decades apart are never candidates (but an identifier can
    # bring them together): the household agrees, the person does not.
    assert date(1991, 3, 7) not in birth_date_variants(BASE.birth_date or date.min)
    result = compare(BASE, mother)
    assert result.review_only
    assert "birth dates differ beyond a typing error" in "; ".join(result.reasons)
    assert any(r.startswith("birth_date different (-") for r in result.reasons)


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
    assert any(r.startswith("birth_date exact (+12.14)") for r in reasons)


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


def _lookalike(base: Person) -> Person:
    """Another child with the same common name, birth date and sex; nothing else shared."""
    return replace(
        base,
        middle="Maria",
        mother_family="Okafor",
        phone="2135550000",
        street="9 Elm Ave",
        postal_code="90012",
    )


@pytest.mark.parametrize("frequencies", [COMMON, None, RARE])
def test_scoring_lookalike_stranger_is_never_a_match(
    frequencies: NameFrequencies | None,
) -> None:
    """Same name, birth date and sex with mother, middle, phone, street and ZIP all different: never a match, even on the rarest name."""
    result = compare(BASE, _lookalike(BASE), frequencies=frequencies)
    assert result.score < DEFAULT_MATCH, result.reasons
    for field in ("middle", "mother", "phone", "postal_code", "street"):
        assert any(r.startswith(field) and "(-" in r for r in result.reasons), field


def test_scoring_lookalike_stranger_with_a_common_name_is_not_even_possible() -> None:
    """Agreement on a common name and a birth date is outweighed by five disagreements."""
    result = compare(BASE, _lookalike(BASE), frequencies=COMMON)
    assert result.score < DEFAULT_POSSIBLE, result.reasons


def test_scoring_each_disagreement_lowers_the_score() -> None:
    """Disagreement is evidence against: every differing field lowers the score."""
    previous = compare(BASE, BASE).score
    other = BASE
    for change in (
        {"middle": "Maria"},
        {"mother_family": "Okafor"},
        {"phone": "2135550000"},
        {"street": "9 Elm Ave"},
        {"postal_code": "90012"},
    ):
        other = replace(other, **change)  # type: ignore[arg-type]
        score = compare(BASE, other).score
        assert score < previous, change
        previous = score


def test_scoring_boy_and_girl_with_near_birth_date_and_same_mother_are_not_merged() -> (
    None
):
    """Daniel and Daniela, a birth date one digit off and a mother's name that agrees by chance: review at most."""
    boy = Person(
        family="Garcia",
        given="Daniel",
        middle="",
        birth_date=date(2020, 5, 14),
        sex="M",
        mother_family="Lopez",
        phone="5595550101",
        postal_code="93721",
        street="401 Olive St",
    )
    girl = replace(
        boy,
        given="Daniela",
        birth_date=date(2020, 5, 15),
        sex="F",
        phone="5595550987",
        postal_code="93702",
        street="77 Palm St",
    )
    result = compare(boy, girl)
    assert result.review_only
    assert result.score < DEFAULT_MATCH, result.reasons
    assert "sex differs: not merged without review" in result.reasons


@pytest.mark.parametrize("frequencies", [COMMON, RARE])
def test_scoring_sex_mismatch_is_never_merged_automatically(
    frequencies: NameFrequencies,
) -> None:
    """Everything else identical, a different sex still goes to a person."""
    result = compare(BASE, replace(BASE, sex="M"), frequencies=frequencies)
    assert result.review_only
    assert any(r.startswith("sex differs (-") for r in result.reasons)
    assert not compare(BASE, replace(BASE, sex="U")).review_only


@pytest.mark.parametrize(
    ("full", "short"),
    [("Nicholas", "Nick"), ("Nick", "Nicholas"), ("Bill", "Will"), ("Jose", "Pepe")],
)
def test_scoring_nicknames_from_the_maintained_list(full: str, short: str) -> None:
    """Nicknames come from the nicknames package (Nicholas/Nick), both ways, plus Spanish short forms."""
    boy = replace(BASE, given=full, sex="M")
    result = compare(boy, replace(boy, given=short))
    assert "given nickname" in "; ".join(result.reasons)
    assert result.score >= DEFAULT_MATCH
    assert not result.review_only


def test_scoring_unrelated_given_names_are_not_nicknames() -> None:
    """Two different names are not taken for a nickname pair."""
    result = compare(BASE, replace(BASE, given="Nora"))
    assert "given different" in "; ".join(result.reasons)
    assert result.review_only


def test_scoring_rare_name_agreement_weighs_more_than_common() -> None:
    """Agreement on a rare name is stronger evidence than on a common one."""
    sparse = replace(BASE, middle="", mother_family="", phone="", street="")
    common = compare(BASE, sparse, frequencies=COMMON)
    rare = compare(BASE, sparse, frequencies=RARE)
    assert rare.score > common.score + 8  # about 5 bits a name
    assert "family exact (+4.52)" in common.reasons
    assert "family exact (+9.85)" in rare.reasons


def test_scoring_name_frequency_comes_from_the_registry_when_it_is_large() -> None:
    """A small registry gives the conservative default; a large one its own share, floored."""
    assert name_frequency(0, 0) == DEFAULT_NAME_FREQUENCY
    assert name_frequency(3, 10) == pytest.approx(DEFAULT_NAME_FREQUENCY, rel=0.1)
    assert name_frequency(4000, 100000) == pytest.approx(0.04, rel=0.01)
    assert name_frequency(1, 1000000) == MIN_NAME_FREQUENCY


def test_scoring_lookalike_stranger_known_only_by_name_and_mother_is_not_a_match() -> (
    None
):
    """Same common name, birth date and sex, a different mother, nothing else sent: not a match."""
    sparse = replace(BASE, middle="", phone="", street="", postal_code="")
    stranger = replace(sparse, mother_family="Okafor")
    frequencies = NameFrequencies(0.02, 0.025, 0.02)  # the bench's commonest names
    assert compare(sparse, stranger, frequencies=frequencies).score < DEFAULT_MATCH
    assert compare(sparse, sparse, frequencies=frequencies).score >= DEFAULT_MATCH
