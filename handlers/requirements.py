"""School and child care immunization requirements: data files, checked against the forecast.

A requirement set is a TOML file in ``handlers/requirement_sets/`` (one per
set, with its source and date; the README there lists the readings taken).
A set has age bands (child care requires by age; school admission has one
band for every age); a band has rules; a rule counts the doses of one CDSi
antigen:

- a dose counts when the CDSi evaluation found it **valid** for the antigen
  (ACIP minimum ages and intervals, with CDSi's own 4-day grace), and, if the
  rule says ``all_on_or_after``, when it was given on or after that birthday;
- ``doses`` are needed, or the doses of an ``alternative`` when one of the
  counted doses was given on or after the alternative's birthday (and, with
  ``one_valid_for``, that dose also counted for that antigen: the pertussis
  dose of the 7th-birthday DTaP alternative);
- the set's ``grace_days`` apply to the set's own birthday conditions: a dose
  given that many days or fewer before the birthday counts as on it (CDPH:
  "any vaccine administered four or fewer days prior to the minimum required
  age is valid");
- an antigen the forecast says the patient is immune to (evidence of
  immunity recorded) meets its rule.

What is missing is the cheapest way to meet the rule (fewest doses) and the
earliest date the next dose may be given: the forecast's earliest date for
the antigen, and not before the birthday a condition names (forward, the
grace days are not used: they forgive a dose given, they do not plan one).
A dose after the next depends on when the next is given: the forecast run
again then says.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from forecast import add_duration
from handlers.population import Assessment, PopulationError

__all__ = [
    "Alternative",
    "Band",
    "RequirementError",
    "RequirementResult",
    "RequirementSet",
    "Rule",
    "RuleResult",
    "check",
    "load_requirement_set",
    "requirement_sets",
]

_SETS_PACKAGE = "handlers.requirement_sets"
_AGE = re.compile(r"^(?:(\d+)y)?(?:(\d+)m)?$")


class RequirementError(PopulationError):
    """A requirement set that cannot be read or found; the message names file and key."""


@dataclass(frozen=True, slots=True)
class Age:
    """An age in years and months, as a requirement states it (``4y``, ``18m``, ``4y6m``)."""

    months: int
    text: str

    def birthday(self, birth: date) -> date:
        """The date a person born on ``birth`` reaches this age."""
        return add_duration(birth, self.months, 0)

    def ordinal(self) -> str:
        """``4th birthday`` for whole years, else the age text."""
        years, months = divmod(self.months, 12)
        if months:
            return f"age {self.text}"
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(
            years if years < 20 else years % 10, "th"
        )
        return f"{years}{suffix} birthday"


@dataclass(frozen=True, slots=True)
class Alternative:
    """Fewer doses suffice when one of them was given on or after a birthday."""

    doses: int
    one_on_or_after: Age
    one_valid_for: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """Doses of one antigen a band requires."""

    name: str
    antigen: str
    doses: int
    all_on_or_after: Age | None = None
    alternatives: tuple[Alternative, ...] = ()
    applies_before: Age | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Band:
    """The rules for children of an age: from ``from_age`` up to (not including) ``before_age``."""

    label: str
    from_age: Age | None
    before_age: Age | None
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class RequirementSet:
    """A requirement set as shipped: its rules, its source and the readings taken."""

    id: str
    title: str
    source: str
    source_date: str
    grace_days: int
    bands: tuple[Band, ...]
    readings: tuple[str, ...]

    def antigens(self) -> frozenset[str]:
        """Every antigen the set's rules count."""
        return frozenset(
            name
            for band in self.bands
            for rule in band.rules
            for name in (
                rule.antigen,
                *(a.one_valid_for for a in rule.alternatives if a.one_valid_for),
            )
        )


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule for one patient.

    Attributes:
        counted: the doses that counted.
        needed: the doses of the way to meet the rule that needs fewest more.
        missing: how many more doses that way needs (0 when met).
        earliest: the earliest date the next missing dose may be given; None
            when met, or when the forecast recommends no further dose.
        note: how it was met (``4 doses, one on or after the 4th birthday``)
            or what the missing dose must be.
    """

    name: str
    met: bool
    counted: int
    needed: int
    missing: int
    earliest: date | None
    note: str


@dataclass(frozen=True, slots=True)
class RequirementResult:
    """One patient against one set as of a date."""

    patient_id: int
    set_id: str
    band: str
    met: bool
    rules: tuple[RuleResult, ...]


def _age(value: Any, where: str) -> Age:
    text = str(value).strip().lower()
    match = _AGE.match(text)
    if not text or match is None:
        raise RequirementError(f"{where}: {value!r} is not an age like 4y, 18m or 4y6m")
    years, months = int(match.group(1) or 0), int(match.group(2) or 0)
    return Age(years * 12 + months, text)


def _int(table: dict[str, Any], key: str, where: str) -> int:
    value = table.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RequirementError(f"{where}.{key}: expected a whole number, got {value!r}")
    return value


def _str(
    table: dict[str, Any], key: str, where: str, default: str | None = None
) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise RequirementError(f"{where}.{key}: expected text, got {value!r}")
    return value


def _known(table: dict[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(table) - keys)
    if unknown:
        raise RequirementError(f"{where}: unknown key(s) {', '.join(unknown)}")


def parse_requirement_set(text: str, origin: str) -> RequirementSet:
    """Build a set from TOML text; ``origin`` names the file in errors.

    Raises:
        RequirementError: the text is not a valid set (file, key and reason).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RequirementError(f"{origin}: not TOML: {exc}") from exc
    _known(
        data,
        {"id", "title", "source", "source_date", "grace_days", "readings", "band"},
        origin,
    )
    head = (
        _str(data, "id", origin),
        _str(data, "title", origin),
        _str(data, "source", origin),
        _str(data, "source_date", origin),
        _int(data, "grace_days", origin),
    )
    bands = []
    raw_bands = data.get("band")
    if not isinstance(raw_bands, list) or not raw_bands:
        raise RequirementError(f"{origin}: band: at least one [[band]] is needed")
    for b, band in enumerate(raw_bands):
        where = f"{origin}: band[{b}]"
        _known(band, {"label", "from", "before", "rule"}, where)
        rules = []
        for r, rule in enumerate(band.get("rule", [])):
            rwhere = f"{where}.rule[{r}]"
            _known(
                rule,
                {
                    "name",
                    "antigen",
                    "doses",
                    "all_on_or_after",
                    "alternatives",
                    "applies_before",
                    "note",
                },
                rwhere,
            )
            alternatives = []
            for a, alt in enumerate(rule.get("alternatives", [])):
                awhere = f"{rwhere}.alternatives[{a}]"
                _known(alt, {"doses", "one_on_or_after", "one_valid_for"}, awhere)
                alternatives.append(
                    Alternative(
                        _int(alt, "doses", awhere),
                        _age(
                            alt.get("one_on_or_after", ""), f"{awhere}.one_on_or_after"
                        ),
                        alt.get("one_valid_for"),
                    )
                )
            rules.append(
                Rule(
                    _str(rule, "name", rwhere),
                    _str(rule, "antigen", rwhere),
                    _int(rule, "doses", rwhere),
                    _age(rule["all_on_or_after"], f"{rwhere}.all_on_or_after")
                    if "all_on_or_after" in rule
                    else None,
                    tuple(alternatives),
                    _age(rule["applies_before"], f"{rwhere}.applies_before")
                    if "applies_before" in rule
                    else None,
                    _str(rule, "note", rwhere, ""),
                )
            )
        bands.append(
            Band(
                _str(band, "label", where),
                _age(band["from"], f"{where}.from") if "from" in band else None,
                _age(band["before"], f"{where}.before") if "before" in band else None,
                tuple(rules),
            )
        )
    readings = data.get("readings", [])
    if not isinstance(readings, list) or not all(isinstance(x, str) for x in readings):
        raise RequirementError(f"{origin}: readings: expected a list of text")
    return RequirementSet(
        *head,
        tuple(bands),
        tuple(readings),
    )


def requirement_sets() -> dict[str, RequirementSet]:
    """Every set shipped with the package, by id."""
    out = {}
    for entry in sorted(resources.files(_SETS_PACKAGE).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            req = parse_requirement_set(entry.read_text("utf-8"), entry.name)
            out[req.id] = req
    return out


def load_requirement_set(name: str) -> RequirementSet:
    """A shipped set by id, or a set file by path.

    Raises:
        RequirementError: no such set, or the file is not a valid set.
    """
    shipped = requirement_sets()
    if name in shipped:
        return shipped[name]
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        return parse_requirement_set(path.read_text("utf-8"), path.name)
    raise RequirementError(
        f"--set: no requirement set {name!r} (shipped: {', '.join(sorted(shipped))}; or a path to a .toml file)"
    )


def _band_for(req: RequirementSet, birth: date, as_of: date) -> Band | None:
    for band in req.bands:
        if band.from_age is not None and as_of < band.from_age.birthday(birth):
            continue
        if band.before_age is not None and as_of >= band.before_age.birthday(birth):
            continue
        return band
    return None


def _doses(n: int) -> str:
    return f"{n} dose" if n == 1 else f"{n} doses"


def _check_rule(
    rule: Rule, assessment: Assessment, birth: date, grace: timedelta
) -> RuleResult:
    antigen = assessment.antigen(rule.antigen)
    doses = sorted(d for d, _cvx in antigen.valid_doses) if antigen else []
    if antigen is not None and antigen.status == "Immune":
        return RuleResult(rule.name, True, len(doses), rule.doses, 0, None, "immune")
    floor = None
    if rule.all_on_or_after is not None:
        floor = rule.all_on_or_after.birthday(birth)
        doses = [d for d in doses if d >= floor - grace]
    counted = len(doses)
    forecast_earliest = (
        antigen.earliest
        if antigen is not None and antigen.status == "Not Complete"
        else None
    )
    # (missing, needed, not before, note) for each way to meet the rule.
    ways: list[tuple[int, int, date | None, str]] = [
        (
            max(0, rule.doses - counted),
            rule.doses,
            floor,
            _doses(rule.doses)
            + (
                f", all on or after the {rule.all_on_or_after.ordinal()}"
                if rule.all_on_or_after
                else ""
            ),
        )
    ]
    for alt in rule.alternatives:
        on = alt.one_on_or_after.birthday(birth)
        qualifying = [d for d in doses if d >= on - grace]
        if alt.one_valid_for is not None:
            other = assessment.antigen(alt.one_valid_for)
            also = {d for d, _c in other.valid_doses} if other else set()
            qualifying = [d for d in qualifying if d in also]
        missing = max(0, alt.doses - counted)
        if not qualifying:
            missing = max(missing, 1)
        kind = f" of a vaccine with {alt.one_valid_for}" if alt.one_valid_for else ""
        ways.append(
            (
                missing,
                alt.doses,
                max(on, floor) if floor else on,
                f"{_doses(alt.doses)}, one{kind} on or after the {alt.one_on_or_after.ordinal()}",
            )
        )
    met = next((w for w in ways if w[0] == 0), None)
    if met is not None:
        # The rule as written first, then its alternatives: say how it was met.
        return RuleResult(rule.name, True, counted, met[1], 0, None, met[3])

    def next_dose(way: tuple[int, int, date | None, str]) -> date | None:
        if forecast_earliest is None:
            return None
        not_before = way[2]
        return max(forecast_earliest, not_before) if not_before else forecast_earliest

    # The way needing fewest doses; among those, the one whose next dose
    # may be given first.
    best = min(ways, key=lambda w: (w[0], next_dose(w) or date.max, w[1]))
    missing, needed, _not_before, note = best
    earliest = next_dose(best)
    if earliest is None:
        note += "; the forecast recommends no further dose (ask a provider)"
    return RuleResult(rule.name, False, counted, needed, missing, earliest, note)


def check(
    req: RequirementSet, assessment: Assessment, as_of: date
) -> RequirementResult:
    """Whether one patient meets a set as of a date, and what is missing.

    A patient without a birth date cannot be placed in an age band: every
    rule is reported unmet with that reason.
    """
    birth = assessment.birth_date
    if birth is None:
        return RequirementResult(
            assessment.patient_id,
            req.id,
            "",
            False,
            (
                RuleResult(
                    "birth date", False, 0, 0, 0, None, "no birth date on record"
                ),
            ),
        )
    band = _band_for(req, birth, as_of)
    if band is None:
        return RequirementResult(assessment.patient_id, req.id, "", True, ())
    grace = timedelta(days=req.grace_days)
    results = tuple(
        _check_rule(rule, assessment, birth, grace)
        for rule in band.rules
        if rule.applies_before is None or as_of < rule.applies_before.birthday(birth)
    )
    return RequirementResult(
        assessment.patient_id,
        req.id,
        band.label,
        all(r.met for r in results),
        results,
    )
