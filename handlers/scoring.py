"""Fellegi–Sunter comparison of two patients' demographics for matching.

Each field compared on both sides falls into an agreement level (exact, a
typo, a nickname, different, ...). A level carries two probabilities: ``m``,
how often the level is seen when the two records are the same child, and
``u``, how often when they are two strangers. Its weight is ``log2(m / u)``
bits: positive when the level is evidence for a match, negative (a
disagreement) when it is evidence against. The score is the sum of the
weights; a field missing on either side adds nothing.

Agreement on a common name is weak evidence, on a rare one strong: the ``u``
of exact agreement on a family, given or mother's maiden name is the name's
frequency among the region's patients (:class:`NameFrequencies`, read from
the registry by ``handlers/matching.py``), with a conservative default when
it is not known. Nicknames come from the ``nicknames`` package (a maintained
list of English names), with the Spanish short forms it lacks.

Some pairs are never merged automatically, whatever their score:

- twins: two records of a multiple birth with different birth orders, or
  with given names that disagree (beyond a typo, a nickname or a swap), are
  never the same person (``vetoed``);
- review only: given names that disagree (an unflagged twin or a sibling),
  a sex that disagrees, a birth date that is neither exact, transposed nor
  one digit off, and a birth date that is not exact with nothing else
  (mother's maiden name, phone, street) to corroborate it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import unicodedata
from dataclasses import dataclass
from datetime import date

from nicknames import NickNamer
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


_NICKNAMER = NickNamer()

#: Spanish short forms, which the English list of the ``nicknames`` package
#: lacks (a California registry's children are half Hispanic): full name to
#: its short forms, compared both ways.
_SPANISH_SHORT_FORMS = {
    "jose": frozenset({"pepe", "chepe"}),
    "guadalupe": frozenset({"lupe", "lupita"}),
    "francisco": frozenset({"paco", "pancho"}),
    "alejandro": frozenset({"alex", "ale"}),
    "alejandra": frozenset({"alex", "ale"}),
    "jesus": frozenset({"chuy"}),
    "ignacio": frozenset({"nacho"}),
    "enrique": frozenset({"kike"}),
}


@functools.lru_cache(maxsize=16384)
def is_nickname(a: str, b: str) -> bool:
    """Whether two normalized given names are one name and its nickname, or two nicknames of one name.

    Cached: the list is a dictionary look-up, but the same pairs recur.
    """
    if b in _NICKNAMER.nicknames_of(a) or a in _NICKNAMER.nicknames_of(b):
        return True
    if _NICKNAMER.canonicals_of(a) & _NICKNAMER.canonicals_of(b):
        return True  # Bill and Will: two short forms of William
    return b in _SPANISH_SHORT_FORMS.get(a, ()) or a in _SPANISH_SHORT_FORMS.get(b, ())


@functools.lru_cache(maxsize=4096)
def nickname_forms(name: str) -> frozenset[str]:
    """The names :func:`is_nickname` takes for the same name as ``name`` (normalized).

    Its nicknames, its full forms, and the other nicknames of its full
    forms (Will gives William, Bill, Billy...): matching reads the stored
    patients on nearby birth dates by the initials of these, so that a
    nickname that starts with another letter (Peggy for Margaret) is still
    found.
    """
    forms = set(_NICKNAMER.nicknames_of(name)) | set(_NICKNAMER.canonicals_of(name))
    for canonical in _NICKNAMER.canonicals_of(name):
        forms |= _NICKNAMER.nicknames_of(canonical)
    for full, short in _SPANISH_SHORT_FORMS.items():
        if name == full:
            forms |= short
        elif name in short:
            forms.add(full)
    forms.discard(name)
    return frozenset(forms)


#: The u of exact agreement on a name whose frequency is not known (a small
#: registry, a name without a key): about the share of the commonest family
#: names in California, so that an unknown name counts as a common one.
DEFAULT_NAME_FREQUENCY = 0.03
#: The smallest u a name is given: a name seen once in a large registry is
#: still not proof of identity (spelling conventions, families), and two
#: strangers who share even a rare name and a birth date but nothing else
#: must stay below the match threshold.
MIN_NAME_FREQUENCY = 0.001
#: Pseudo-patients at the default frequency added to the registry's counts:
#: a registry of a few hundred patients says little about how common a name is.
PRIOR_PATIENTS = 1000


def name_frequency(count: int, total: int) -> float:
    """The u of exact agreement on a name that ``count`` of ``total`` patients share.

    Smoothed towards :data:`DEFAULT_NAME_FREQUENCY` by :data:`PRIOR_PATIENTS`
    pseudo-patients, and never below :data:`MIN_NAME_FREQUENCY`.
    """
    smoothed = (max(count, 0) + PRIOR_PATIENTS * DEFAULT_NAME_FREQUENCY) / (
        max(total, 0) + PRIOR_PATIENTS
    )
    return min(1.0, max(MIN_NAME_FREQUENCY, smoothed))


@dataclass(frozen=True, slots=True)
class NameFrequencies:
    """The u of exact agreement on the incoming person's names (term frequencies).

    Each is the share of the region's patients with that name (see
    :func:`name_frequency`); the defaults treat every name as common.
    """

    family: float = DEFAULT_NAME_FREQUENCY
    given: float = DEFAULT_NAME_FREQUENCY
    mother: float = DEFAULT_NAME_FREQUENCY


_DEFAULT_FREQUENCIES = NameFrequencies()


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
    """A score (in bits) and the comparisons that made it."""

    score: float
    reasons: tuple[str, ...]
    vetoed: bool = False
    #: Never merged automatically, whatever the score: a person decides.
    review_only: bool = False


#: m of exact agreement on each name (its u is the name's frequency).
M_EXACT = {"family": 0.92, "given": 0.88, "mother": 0.85}

#: (m, u) of every other agreement level. m: the share of pairs of records
#: of the same child at this level (typing errors, nicknames, data that
#: changed or was typed by another clinic); u: the share of pairs of two
#: strangers. A missing value is no level at all.
LEVELS: dict[tuple[str, str], tuple[float, float]] = {
    ("name", "nickname"): (0.04, 0.002),
    ("name", "similar"): (0.05, 0.002),
    ("name", "typo"): (0.03, 0.003),
    ("name", "short form"): (0.01, 0.002),
    ("name", "hyphenated part"): (0.03, 0.002),
    ("name", "swapped"): (0.02, 0.0005),
    ("name", "weak"): (0.01, 0.02),
    ("name", "different"): (0.02, 0.95),
    # A mother's maiden name is sometimes sent as her current family name;
    # rarely enough that a child's own mother disagreeing is strong evidence.
    ("mother", "different"): (0.04, 0.95),
    ("middle", "same"): (0.85, 0.05),
    ("middle", "initial"): (0.10, 0.06),
    ("middle", "differs"): (0.05, 0.90),
    # u of an exact birth date: one day of a childhood (18 years).
    ("birth_date", "exact"): (0.90, 0.0002),
    ("birth_date", "transposed"): (0.03, 0.0002),
    ("birth_date", "one digit off"): (0.04, 0.005),
    ("birth_date", "different"): (0.005, 0.99),
    ("sex", "same"): (0.97, 0.5),
    ("sex", "differs"): (0.01, 0.5),
    ("phone", "same"): (0.60, 0.001),
    ("phone", "differs"): (0.40, 0.999),
    ("postal_code", "same"): (0.85, 0.02),
    ("postal_code", "differs"): (0.15, 0.98),
    ("street", "same"): (0.70, 0.001),
    ("street", "differs"): (0.30, 0.999),
}
#: The weight in bits of each level of :data:`LEVELS`.
WEIGHTS = {key: math.log2(m / u) for key, (m, u) in LEVELS.items()}

#: Name levels that say "the same name" (the twin and swap rules).
_AGREEING = frozenset({"exact", "nickname", "similar", "typo", "short form", "swapped"})
_CLOSE = frozenset({"exact", "nickname", "similar", "typo"})


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
def _name_level(a: str, b: str) -> tuple[str, str]:
    """The agreement level of two names and how it reads ('' when one is empty)."""
    x, y = normalize_name(a), normalize_name(b)
    if not x or not y:
        return "", ""
    if x == y:
        return "exact", "exact"
    if is_nickname(x, y):
        return "nickname", "nickname"
    sim = JaroWinkler.similarity(x, y)
    if sim >= 0.95:
        return "similar", f"similar {sim:.2f}"
    if sim >= 0.9:
        return "typo", f"similar {sim:.2f}"
    if min(len(x), len(y)) >= 3 and within_one_edit(x, y):
        # Jaro-Winkler punishes an early typo in a short name; one edit is still a typo.
        return "typo", f"one typo {sim:.2f}"
    if min(len(x), len(y)) >= 3 and (x.startswith(y) or y.startswith(x)):
        return "short form", "short form"  # Nat and Natalie
    if sim >= 0.8:
        return "weak", f"weak {sim:.2f}"
    return "different", f"different {sim:.2f}"


@functools.lru_cache(maxsize=16384)
def _family_level(a: str, b: str) -> tuple[str, str]:
    level, why = _name_level(a, b)
    if level and level not in _CLOSE:
        parts_a = {normalize_name(p) for p in a.replace("-", " ").split() if p}
        parts_b = {normalize_name(p) for p in b.replace("-", " ").split() if p}
        if parts_a & parts_b:
            return "hyphenated part", "one part of a hyphenated or double name"
    return level, why


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


def _dob_level(a: date, b: date) -> tuple[str, str]:
    if a == b:
        return "exact", "exact"
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return "transposed", "day and month transposed"
    diff = sum(
        1
        for x, y in zip(a.strftime("%Y%m%d"), b.strftime("%Y%m%d"), strict=True)
        if x != y
    )
    if diff == 1:
        return "one digit off", "one digit off"
    return "different", "different"


def _swapped(a: Person, b: Person) -> bool:
    """Whether one side typed the family and given names the other way round."""
    if not (a.family and a.given and b.family and b.given):
        return False
    return (
        _name_level(a.family, b.given)[0] in _CLOSE
        and _name_level(a.given, b.family)[0] in _CLOSE
    )


def _name_weight(field: str, level: str, frequency: float) -> float:
    if level == "exact":
        return math.log2(M_EXACT[field] / frequency)
    if field == "mother" and level == "different":
        return WEIGHTS[("mother", "different")]
    return WEIGHTS[("name", level)]


def compare(
    a: Person,
    b: Person,
    *,
    explain: bool = True,
    frequencies: NameFrequencies | None = None,
) -> Comparison:
    """Compare two people; see the module docstring.

    Args:
        a: the incoming person.
        b: a stored person.
        explain: with False the score and flags are the same but the reasons
            are left out: a matcher ranks every candidate and explains only
            the best.
        frequencies: how common ``a``'s names are in the region; by default
            every name counts as common.

    Returns:
        The score in bits (the sum of the levels' weights), the reasons (one
        per comparison made, with its weight) and the veto and review flags.
    """
    freq = frequencies or _DEFAULT_FREQUENCIES
    total = 0.0
    parts: list[str] = []

    def add(name: str, weight: float, why: str) -> None:
        nonlocal total
        total += weight
        if explain:
            parts.append(f"{name} {why} ({weight:+.2f})")

    swapped = _swapped(a, b)
    given_level = ""
    if a.family and b.family:
        level, why = _family_level(a.family, b.family)
        if level not in _CLOSE and swapped:
            level, why = "swapped", "family and given swapped"
        add("family", _name_weight("family", level, freq.family), why)
    if a.given and b.given:
        level, why = _name_level(a.given, b.given)
        if level not in _CLOSE and swapped:
            level, why = "swapped", "family and given swapped"
        given_level = level
        add("given", _name_weight("given", level, freq.given), why)
    if a.middle and b.middle:
        x, y = normalize_name(a.middle), normalize_name(b.middle)
        if x == y:
            level = "same"
        elif x[:1] == y[:1] and 1 in (len(x), len(y)):
            level = "initial"  # one side sent only the initial
        else:
            level = "differs"
        add("middle", WEIGHTS[("middle", level)], level)
    dob_level = ""
    if a.birth_date and b.birth_date:
        dob_level, why = _dob_level(a.birth_date, b.birth_date)
        add("birth_date", WEIGHTS[("birth_date", dob_level)], why)
    sex_differs = False
    if a.sex in {"F", "M"} and b.sex in {"F", "M"}:
        sex_differs = a.sex != b.sex
        level = "differs" if sex_differs else "same"
        add("sex", WEIGHTS[("sex", level)], level)
    corroborated = False  # something beyond name and birth date agrees
    if a.mother_family and b.mother_family:
        level, why = _name_level(a.mother_family, b.mother_family)
        corroborated |= level in _CLOSE
        add(
            "mother",
            _name_weight("mother", level, freq.mother),
            f"mother's maiden name {why}",
        )
    if a.phone and b.phone:
        same = a.phone[-7:] == b.phone[-7:]
        corroborated |= same
        level = "same" if same else "differs"
        add("phone", WEIGHTS[("phone", level)], level)
    if a.postal_code and b.postal_code:
        level = "same" if a.postal_code[:5] == b.postal_code[:5] else "differs"
        add("postal_code", WEIGHTS[("postal_code", level)], level)
    if a.street and b.street:
        same = normalize_name(a.street) == normalize_name(b.street)
        corroborated |= same
        level = "same" if same else "differs"
        add("street", WEIGHTS[("street", level)], level)
    vetoed = False
    if a.multiple_birth == "Y" and b.multiple_birth == "Y":
        if a.birth_order and b.birth_order and a.birth_order != b.birth_order:
            vetoed = True
            parts.append(
                "multiple birth with different birth orders: twins are kept apart"
            )
        elif given_level and given_level not in _AGREEING:
            # A typo, a nickname or swapped names still name the same twin.
            vetoed = True
            parts.append(
                "multiple birth with different given names: twins are kept apart"
            )
    review: list[str] = []
    if not vetoed:
        if given_level == "different":
            # Same family, birth date and address but another first name is
            # how an unflagged twin or sibling looks.
            review.append("given names differ")
        if sex_differs:
            # A boy and a girl are two children, whatever else agrees; a
            # miscoded sex is corrected by a person, not by the matcher.
            review.append("sex differs")
        if dob_level == "different":
            review.append("birth dates differ beyond a typing error")
        elif dob_level and dob_level != "exact" and not corroborated:
            # A common name and a nearby birth date is how two strangers look:
            # a birth date that is not exact needs the mother, phone or address.
            review.append("birth date not exact and nothing else corroborates")
    parts.extend(f"{why}: not merged without review" for why in review)
    return Comparison(
        round(total, 4), tuple(parts) if explain else (), vetoed, bool(review)
    )
