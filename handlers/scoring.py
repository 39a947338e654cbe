"""Weighted comparison of two patients' demographics for matching.

Each comparison is made only when both sides have the value, gives an
agreement between -1 (disagrees) and 1 (agrees), and carries a weight; the
score is the weighted mean, from -1 to 1. Twins are kept apart by a veto: two
records of a multiple birth with different birth orders, or with given names
that disagree (beyond a typo, a nickname or a swap), are never the same person.
Some pairs are only ever offered for review, whatever their score: given
names that disagree, and a birth date that is not exact with nothing else
(mother's maiden name, phone, street) to corroborate it.
"""

from __future__ import annotations

import contextlib
import functools
import unicodedata
from dataclasses import dataclass
from datetime import date

from rapidfuzz.distance import JaroWinkler


@functools.lru_cache(maxsize=32768)
def normalize_name(value: str) -> str:
    """Lower-case, strip accents, drop hyphens, spaces, apostrophes and dots.

    Cached: scoring compares each incoming name with every candidate's, and a
    registry's names repeat, so the same few thousand strings are normalized
    over and over.
    """
    decomposed = unicodedata.normalize("NFKD", value)
    kept = (ch for ch in decomposed if not unicodedata.combining(ch) and ch.isalnum())
    return "".join(kept).casefold()


#: Common given-name equivalents (English and Spanish), both directions.
_NICKNAMES = {
    "elizabeth": {"liz", "beth", "betty", "eliza", "lisa"},
    "william": {"will", "bill", "billy", "liam"},
    "alexander": {"alex", "xander", "sasha"},
    "alejandro": {"alex", "ale"},
    "benjamin": {"ben", "benny"},
    "michael": {"mike", "mikey"},
    "daniel": {"dan", "danny"},
    "jacob": {"jake"},
    "matthew": {"matt"},
    "samuel": {"sam", "sammy"},
    "samantha": {"sam", "sammy"},
    "joseph": {"joe", "joey"},
    "christopher": {"chris"},
    "joshua": {"josh"},
    "nathan": {"nate"},
    "theodore": {"teddy", "theo"},
    "abigail": {"abby"},
    "victoria": {"vicky", "tori"},
    "gabriella": {"gabby", "gabi"},
    "isabella": {"bella", "izzy"},
    "natalie": {"nat"},
    "jose": {"pepe"},
    "guadalupe": {"lupe"},
    "francisco": {"paco", "pancho"},
    "anthony": {"tony"},
    "andrew": {"andy", "drew"},
    "charles": {"charlie", "chuck"},
    "thomas": {"tom", "tommy"},
    "james": {"jim", "jimmy", "jamie"},
    "jasmine": {"jazz"},
    "robert": {"rob", "bob", "bobby"},
    "richard": {"rich", "rick", "dick"},
    "katherine": {"kate", "katie", "kathy"},
    "margaret": {"maggie", "meg", "peggy"},
}
_EQUIV: dict[str, set[str]] = {}
for _full, _short in _NICKNAMES.items():
    group = {_full, *_short}
    for _name in group:
        _EQUIV.setdefault(_name, set()).update(group)


@dataclass(frozen=True, slots=True)
class Person:
    """The demographics the matcher compares."""

    family: str
    given: str
    middle: str
    birth_date: date | None
    sex: str
    mother_family: str = ""
    phone: str = ""
    postal_code: str = ""
    street: str = ""
    multiple_birth: str = ""
    birth_order: int | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    """A score and the comparisons that made it."""

    score: float
    reasons: tuple[str, ...]
    vetoed: bool = False
    #: Never merged automatically, whatever the score: a person decides.
    review_only: bool = False


def within_one_edit(a: str, b: str) -> bool:
    """Whether two strings differ by at most one insertion, deletion, substitution or swap."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


@functools.lru_cache(maxsize=16384)
def _name_agreement(a: str, b: str) -> tuple[float, str]:
    x, y = normalize_name(a), normalize_name(b)
    if not x or not y:
        return 0.0, ""
    if x == y:
        return 1.0, "exact"
    if y in _EQUIV.get(x, ()):
        return 0.9, "nickname"
    sim = JaroWinkler.similarity(x, y)
    if sim >= 0.95:
        return 0.85, f"similar {sim:.2f}"
    if sim >= 0.9:
        return 0.7, f"similar {sim:.2f}"
    if min(len(x), len(y)) >= 3 and within_one_edit(x, y):
        # Jaro-Winkler punishes an early typo in a short name; one edit is still a typo.
        return 0.7, f"one typo {sim:.2f}"
    if sim >= 0.8:
        return 0.1, f"weak {sim:.2f}"
    return -1.0, f"different {sim:.2f}"


@functools.lru_cache(maxsize=16384)
def _family_agreement(a: str, b: str) -> tuple[float, str]:
    agree, why = _name_agreement(a, b)
    if agree < 0.7:
        parts_a = {normalize_name(p) for p in a.replace("-", " ").split() if p}
        parts_b = {normalize_name(p) for p in b.replace("-", " ").split() if p}
        if parts_a & parts_b:
            return 0.8, "one part of a hyphenated or double name"
    return agree, why


@functools.lru_cache(maxsize=1024)
def birth_date_variants(value: date) -> frozenset[date]:
    """The date, its day/month transposition, and every date one digit off.

    Cached: every message about a patient born on a date asks for the same
    ~50 dates, and a registry's birth dates repeat.
    """
    out = {value}
    if value.day <= 12:
        with contextlib.suppress(ValueError):
            out.add(date(value.year, value.day, value.month))
    digits = value.strftime("%Y%m%d")
    for i, ch in enumerate(digits):
        for d in "0123456789":
            if d == ch:
                continue
            text = digits[:i] + d + digits[i + 1 :]
            try:
                out.add(date(int(text[:4]), int(text[4:6]), int(text[6:])))
            except ValueError:
                continue
    return frozenset(out)


def _dob_agreement(a: date, b: date) -> tuple[float, str]:
    if a == b:
        return 1.0, "exact"
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return 0.7, "day and month transposed"
    diff = sum(
        1
        for x, y in zip(a.strftime("%Y%m%d"), b.strftime("%Y%m%d"), strict=True)
        if x != y
    )
    if diff == 1:
        return 0.6, "one digit off"
    return -1.0, "different"


def _swapped(a: Person, b: Person) -> tuple[float, str] | None:
    """Agreement when one side typed the family and given names the other way round."""
    if not (a.family and a.given and b.family and b.given):
        return None
    cross_family, _ = _name_agreement(a.family, b.given)
    cross_given, _ = _name_agreement(a.given, b.family)
    agree = min(cross_family, cross_given)
    if agree < 0.7:
        return None
    return 0.8 * agree, "family and given swapped"


WEIGHTS = {
    "family": 0.24,
    "given": 0.22,
    "middle": 0.03,
    "birth_date": 0.24,
    "sex": 0.06,
    "mother": 0.07,
    "phone": 0.07,
    "postal_code": 0.03,
    "street": 0.04,
}


def compare(a: Person, b: Person, *, explain: bool = True) -> Comparison:
    """Compare two people; see the module docstring.

    With ``explain=False`` the score and flags are the same but the reasons
    are left out: a matcher ranks every candidate and explains only the best.
    """
    total = 0.0
    weight_sum = 0.0
    parts: list[tuple[str, float, str]] = []

    def add(name: str, agree: float, why: str) -> None:
        nonlocal total, weight_sum
        weight = WEIGHTS[name]
        total += weight * agree
        weight_sum += weight
        if explain:
            parts.append((name, agree * weight, why))

    swapped = _swapped(a, b)
    given_agree = 1.0
    if a.family and b.family:
        agree, why = _family_agreement(a.family, b.family)
        if agree < 0.7 and swapped:
            agree, why = swapped
        add("family", agree, why)
    if a.given and b.given:
        agree, why = _name_agreement(a.given, b.given)
        if agree < 0.7 and swapped:
            agree, why = swapped
        given_agree = agree
        add("given", agree, why)
    if a.middle and b.middle:
        x, y = normalize_name(a.middle), normalize_name(b.middle)
        add(
            "middle",
            1.0 if x == y or x[:1] == y or y[:1] == x else -1.0,
            "same" if x == y else "differs",
        )
    dob_exact = True
    if a.birth_date and b.birth_date:
        agree, why = _dob_agreement(a.birth_date, b.birth_date)
        dob_exact = agree >= 1.0
        add("birth_date", agree, why)
    if a.sex in {"F", "M"} and b.sex in {"F", "M"}:
        add(
            "sex",
            1.0 if a.sex == b.sex else -1.0,
            "same" if a.sex == b.sex else "differs",
        )
    corroborated = False  # something beyond name and birth date agrees
    if a.mother_family and b.mother_family:
        agree, why = _name_agreement(a.mother_family, b.mother_family)
        corroborated |= agree >= 0.7
        add("mother", agree, f"mother's maiden name {why}")
    if a.phone and b.phone:
        same = a.phone[-7:] == b.phone[-7:]
        corroborated |= same
        add("phone", 1.0 if same else -0.3, "same" if same else "differs")
    if a.postal_code and b.postal_code:
        same = a.postal_code[:5] == b.postal_code[:5]
        add("postal_code", 1.0 if same else -0.3, "same" if same else "differs")
    if a.street and b.street:
        same = normalize_name(a.street) == normalize_name(b.street)
        corroborated |= same
        add("street", 1.0 if same else -0.3, "same" if same else "differs")
    score = total / weight_sum if weight_sum else 0.0
    reasons = [f"{name} {why} ({weighted:+.2f})" for name, weighted, why in parts]
    vetoed = False
    if a.multiple_birth == "Y" and b.multiple_birth == "Y":
        if a.birth_order and b.birth_order and a.birth_order != b.birth_order:
            vetoed = True
            reasons.append(
                "multiple birth with different birth orders: twins are kept apart"
            )
        elif given_agree < 0.7:
            # A typo, a nickname or swapped names still name the same twin.
            vetoed = True
            reasons.append(
                "multiple birth with different given names: twins are kept apart"
            )
    review_only = False
    if not vetoed and given_agree <= -1.0:
        # Same family, birth date and address but another first name is how
        # an unflagged twin or sibling looks: never merged without review.
        review_only = True
        reasons.append("given names differ: not merged without review")
    elif not vetoed and not dob_exact and not corroborated:
        # A common name and a nearby birth date is how two strangers look:
        # a birth date that is not exact needs the mother, phone or address.
        review_only = True
        reasons.append(
            "birth date not exact and nothing else corroborates: not merged without review"
        )
    return Comparison(
        round(score, 4), tuple(reasons) if explain else (), vetoed, review_only
    )
