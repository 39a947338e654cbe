"""CDC CDSi supporting data, parsed once into frozen values.

A release is a directory (or CDC's zip) of ``AntigenSupportingData- *.xml``
files and one ``ScheduleSupportingData.xml``. Loading checks that the schedule
file and at least one antigen file are present and parse, and reads the
release version from the file names or an operator-provided ``VERSION`` file.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from forecast.dates import parse_cdsi_date
from forecast.errors import SupportingDataError


def _text(node: ET.Element | None, tag: str) -> str:
    if node is None:
        return ""
    child = node.find(tag)
    return (child.text or "").strip() if child is not None and child.text else ""


def _cvx(value: str) -> str:
    value = value.strip()
    return value.zfill(2) if value.isdigit() and len(value) < 2 else value


@dataclass(frozen=True, slots=True)
class AgeRule:
    """One ``<age>`` row of a series dose."""

    abs_min: str
    min: str
    earliest_rec: str
    latest_rec: str
    max: str
    effective: date | None
    cessation: date | None


@dataclass(frozen=True, slots=True)
class IntervalRule:
    """One ``<interval>`` (preferable) or ``<allowableInterval>`` row."""

    from_previous: bool
    from_target_dose: int | None
    from_most_recent: frozenset[str]
    from_observation: str
    abs_min: str
    min: str
    earliest_rec: str
    latest_rec: str
    priority: str
    effective: date | None
    cessation: date | None


@dataclass(frozen=True, slots=True)
class VaccineRule:
    """A preferable or allowable vaccine of a series dose."""

    cvx: str
    vaccine_type: str
    begin_age: str
    end_age: str
    mvx: str = ""
    trade_name: str = ""
    forecast_type: bool = False


@dataclass(frozen=True, slots=True)
class SkipCondition:
    """One condition of a conditional-skip set."""

    kind: str
    start_date: date | None
    end_date: date | None
    begin_age: str
    end_age: str
    interval: str
    dose_count: int
    dose_type: str
    count_logic: str
    vaccine_types: frozenset[str]
    series_groups: frozenset[str]


@dataclass(frozen=True, slots=True)
class SkipSet:
    """A set of conditions (AND/OR)."""

    set_id: str
    description: str
    logic: str
    conditions: tuple[SkipCondition, ...]
    effective: date | None
    cessation: date | None


@dataclass(frozen=True, slots=True)
class ConditionalSkip:
    """A conditional skip: its context (Evaluation, Forecast, Both) and sets."""

    context: str
    set_logic: str
    sets: tuple[SkipSet, ...]


@dataclass(frozen=True, slots=True)
class SeriesDose:
    """One target dose of a series."""

    number: int
    ages: tuple[AgeRule, ...]
    intervals: tuple[IntervalRule, ...]
    allowable_intervals: tuple[IntervalRule, ...]
    preferable: tuple[VaccineRule, ...]
    allowable: tuple[VaccineRule, ...]
    inadvertent: frozenset[str]
    skips: tuple[ConditionalSkip, ...]
    recurring: bool
    season_start: date | None
    season_end: date | None
    required_gender: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Indication:
    """A risk-series indication: observation code and the ages it applies."""

    code: str
    begin_age: str
    end_age: str


@dataclass(frozen=True, slots=True)
class Series:
    """An antigen series (standard or risk)."""

    name: str
    antigen: str
    vaccine_group: str
    series_type: str
    required_gender: frozenset[str]
    default: bool
    product_path: bool
    group_name: str
    group: str
    priority: str
    preference: int
    min_age_to_start: str
    max_age_to_start: str
    indications: tuple[Indication, ...]
    doses: tuple[SeriesDose, ...]
    equivalent_groups: str = ""


@dataclass(frozen=True, slots=True)
class Contraindication:
    """An antigen or vaccine contraindication keyed by observation code."""

    code: str
    cvx: frozenset[str]
    begin_age: str
    end_age: str


@dataclass(frozen=True, slots=True)
class ImmunityRule:
    """Evidence of immunity: clinical history codes, or birth before a date."""

    history_codes: frozenset[str]
    birth_before: date | None
    exclusion_codes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Antigen:
    """Everything the data says about one antigen."""

    name: str
    series: tuple[Series, ...]
    group_contraindications: tuple[Contraindication, ...]
    vaccine_contraindications: tuple[Contraindication, ...]
    immunity: tuple[ImmunityRule, ...]


@dataclass(frozen=True, slots=True)
class CvxAssociation:
    """A CVX contains an antigen, within optional association ages."""

    antigen: str
    begin_age: str
    end_age: str


@dataclass(frozen=True, slots=True)
class LiveVirusConflict:
    """A live vaccine given too soon after another."""

    previous: str
    current: str
    begin: str
    min_end: str
    end: str


@dataclass(frozen=True, slots=True)
class SupportingData:
    """A parsed CDSi release."""

    version: str
    antigens: Mapping[str, Antigen]
    cvx_antigens: Mapping[str, tuple[CvxAssociation, ...]]
    cvx_names: Mapping[str, str]
    vaccine_groups: Mapping[str, tuple[str, ...]]
    full_group: frozenset[str]
    live_conflicts: tuple[LiveVirusConflict, ...]
    observations: Mapping[str, str] = field(default_factory=dict)
    #: coded values (SNOMED, CDCPHINVS...) to CDSi observation codes
    observation_codes: Mapping[str, str] = field(default_factory=dict)

    def group_of(self, antigen: str) -> str:
        """The vaccine group an antigen belongs to."""
        for group, antigens in self.vaccine_groups.items():
            if antigen in antigens:
                return group
        return antigen


def _age(node: ET.Element) -> AgeRule:
    return AgeRule(
        _text(node, "absMinAge"),
        _text(node, "minAge"),
        _text(node, "earliestRecAge"),
        _text(node, "latestRecAge"),
        _text(node, "maxAge"),
        parse_cdsi_date(_text(node, "effectiveDate")),
        parse_cdsi_date(_text(node, "cessationDate")),
    )


def _interval(node: ET.Element) -> IntervalRule:
    target = _text(node, "fromTargetDose")
    recent = _text(node, "fromMostRecent")
    obs = node.find("fromRelevantObs")
    return IntervalRule(
        from_previous=_text(node, "fromPrevious").upper() == "Y",
        from_target_dose=int(target) if target.isdigit() else None,
        from_most_recent=frozenset(
            _cvx(c) for c in re.split(r"[;,]", recent) if c.strip()
        ),
        from_observation=_text(obs, "code") if obs is not None else "",
        abs_min=_text(node, "absMinInt"),
        min=_text(node, "minInt"),
        earliest_rec=_text(node, "earliestRecInt"),
        latest_rec=_text(node, "latestRecInt"),
        priority=_text(node, "intervalPriority").lower(),
        effective=parse_cdsi_date(_text(node, "effectiveDate")),
        cessation=parse_cdsi_date(_text(node, "cessationDate")),
    )


def _vaccine(node: ET.Element, preferable: bool) -> VaccineRule:
    return VaccineRule(
        cvx=_cvx(_text(node, "cvx")),
        vaccine_type=_text(node, "vaccineType"),
        begin_age=_text(node, "beginAge"),
        end_age=_text(node, "endAge"),
        mvx=_text(node, "mvx").upper() if preferable else "",
        trade_name=_text(node, "tradeName") if preferable else "",
        forecast_type=_text(node, "forecastVaccineType").upper() == "Y",
    )


def _skip(node: ET.Element) -> ConditionalSkip:
    sets = []
    for s in node.findall("set"):
        conditions = []
        for c in s.findall("condition"):
            count = _text(c, "doseCount")
            conditions.append(
                SkipCondition(
                    kind=_text(c, "conditionType").lower(),
                    start_date=parse_cdsi_date(_text(c, "startDate")),
                    end_date=parse_cdsi_date(_text(c, "endDate")),
                    begin_age=_text(c, "beginAge"),
                    end_age=_text(c, "endAge"),
                    interval=_text(c, "interval"),
                    dose_count=int(count) if count.isdigit() else 0,
                    dose_type=_text(c, "doseType").lower(),
                    count_logic=_text(c, "doseCountLogic").lower(),
                    vaccine_types=frozenset(
                        _cvx(v)
                        for v in re.split(r"[;,]", _text(c, "vaccineTypes"))
                        if v.strip()
                    ),
                    series_groups=frozenset(
                        v.strip()
                        for v in re.split(r"[;,]", _text(c, "seriesGroups"))
                        if v.strip()
                    ),
                )
            )
        sets.append(
            SkipSet(
                _text(s, "setID"),
                _text(s, "setDescription"),
                (_text(s, "conditionLogic") or "AND").upper(),
                tuple(conditions),
                parse_cdsi_date(_text(s, "effectiveDate")),
                parse_cdsi_date(_text(s, "cessationDate")),
            )
        )
    return ConditionalSkip(
        _text(node, "context").lower(),
        (_text(node, "setLogic") or "n/a").upper(),
        tuple(sets),
    )


def _dose(node: ET.Element, number: int) -> SeriesDose:
    season = node.find("seasonalRecommendation")
    return SeriesDose(
        number=number,
        ages=tuple(_age(a) for a in node.findall("age")),
        intervals=tuple(_interval(i) for i in node.findall("interval") if len(i)),
        allowable_intervals=tuple(
            _interval(i) for i in node.findall("allowableInterval") if len(i)
        ),
        preferable=tuple(
            _vaccine(v, True)
            for v in node.findall("preferableVaccine")
            if _text(v, "cvx")
        ),
        allowable=tuple(
            _vaccine(v, False)
            for v in node.findall("allowableVaccine")
            if _text(v, "cvx")
        ),
        inadvertent=frozenset(
            _cvx(_text(v, "cvx"))
            for v in node.findall("inadvertentVaccine")
            if _text(v, "cvx")
        ),
        skips=tuple(_skip(s) for s in node.findall("conditionalSkip") if len(s)),
        recurring=_text(node, "recurringDose").lower() == "yes",
        season_start=parse_cdsi_date(_text(season, "startDate"))
        if season is not None
        else None,
        season_end=parse_cdsi_date(_text(season, "endDate"))
        if season is not None
        else None,
    )


def _series(node: ET.Element, antigen: str) -> Series:
    select = node.find("selectSeries")
    preference = _text(select, "seriesPreference")
    indications = []
    for ind in node.findall("indication"):
        code = (
            _text(ind.find("observationCode"), "code")
            if ind.find("observationCode") is not None
            else ""
        )
        if code:
            indications.append(
                Indication(code, _text(ind, "beginAge"), _text(ind, "endAge"))
            )
    return Series(
        name=_text(node, "seriesName"),
        antigen=antigen,
        vaccine_group=_text(node, "vaccineGroup"),
        series_type=_text(node, "seriesType").lower(),
        required_gender=frozenset(
            g.text.strip()[0].upper()
            for g in node.findall("requiredGender")
            if g.text and g.text.strip()
        ),
        default=_text(select, "defaultSeries").lower() == "yes",
        product_path=_text(select, "productPath").lower() == "yes",
        group_name=_text(select, "seriesGroupName"),
        group=_text(select, "seriesGroup"),
        priority=_text(select, "seriesPriority"),
        preference=int(preference) if preference.isdigit() else 99,
        min_age_to_start=_text(select, "minAgeToStart"),
        max_age_to_start=_text(select, "maxAgeToStart"),
        indications=tuple(indications),
        doses=tuple(
            _dose(d, i) for i, d in enumerate(node.findall("seriesDose"), start=1)
        ),
        equivalent_groups=_text(node, "equivalentSeriesGroups"),
    )


def _antigen(root: ET.Element, name: str) -> Antigen:
    group_ci: list[Contraindication] = []
    vaccine_ci: list[Contraindication] = []
    contra = root.find("contraindications")
    if contra is not None:
        for c in contra.findall("vaccineGroup/contraindication"):
            group_ci.append(
                Contraindication(
                    _text(c, "observationCode"),
                    frozenset(),
                    _text(c, "beginAge"),
                    _text(c, "endAge"),
                )
            )
        for c in contra.findall("vaccine/contraindication"):
            cvx = frozenset(
                _cvx(_text(v, "cvx")) for v in c.findall("contraindicatedVaccine")
            )
            vaccine_ci.append(
                Contraindication(_text(c, "observationCode"), cvx, "", "")
            )
    immunity: list[ImmunityRule] = []
    imm = root.find("immunity")
    if imm is not None:
        history = frozenset(
            _text(h, "guidelineCode")
            for h in imm.findall("clinicalHistory")
            if _text(h, "guidelineCode")
        )
        if history:
            immunity.append(ImmunityRule(history, None, frozenset()))
        for dob in imm.findall("dateOfBirth"):
            exclusions = frozenset(
                _text(e, "exclusionCode") for e in dob.findall("exclusion")
            )
            immunity.append(
                ImmunityRule(
                    frozenset(),
                    parse_cdsi_date(_text(dob, "immunityBirthDate")),
                    exclusions,
                )
            )
    series = tuple(_series(s, name) for s in root.findall("series"))
    return Antigen(name, series, tuple(group_ci), tuple(vaccine_ci), tuple(immunity))


def _iter_files(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        for item in sorted(path.rglob("*.xml")):
            yield item.name, item.read_bytes()
        version_file = path / "VERSION"
        if version_file.exists():
            yield "VERSION", version_file.read_bytes()
        return
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename.rsplit("/", 1)[-1]
                if name.endswith(".xml"):
                    yield name, archive.read(info)
        return
    raise SupportingDataError(
        f"{path}: not a directory or a zip of CDSi supporting data"
    )


def _parse(name: str, content: bytes) -> ET.Element:
    if b"<!DOCTYPE" in content[:2048] or b"<!ENTITY" in content:
        raise SupportingDataError(
            f"{name}: DTDs and entities are not allowed in supporting data"
        )
    try:
        return ET.parse(io.BytesIO(content)).getroot()  # noqa: S314 - no DTD or entity, checked above
    except ET.ParseError as exc:
        raise SupportingDataError(f"{name}: not well-formed XML ({exc})") from None


def _version_from_location(source: Path) -> str:
    """A release version from a README beside the files, or from the path (``Version_4.64``)."""
    folder = source if source.is_dir() else source.parent
    readme = folder / "README.md"
    if readme.exists():
        match = re.search(
            r"version\s*\**\s*(\d+\.\d+)",
            readme.read_text(errors="replace"),
            re.IGNORECASE,
        )
        if match:
            return match.group(1)
    match = re.search(r"(\d+\.\d+)", str(source))
    return match.group(1) if match else "unknown"


def load_supporting_data(path: str | Path) -> SupportingData:
    """Load and check a CDSi release from a directory or CDC's zip.

    Raises:
        SupportingDataError: naming the file and what is wrong with it.
    """
    source = Path(path)
    if not source.exists():
        raise SupportingDataError(
            f"{source}: no such file or directory; give the folder or zip of a CDSi release"
        )
    antigens: dict[str, Antigen] = {}
    schedule: ET.Element | None = None
    version = ""
    for name, content in _iter_files(source):
        if name == "VERSION":
            version = content.decode().strip()
            continue
        if name.startswith("AntigenSupportingData"):
            root = _parse(name, content)
            antigen_name = (root.findtext("series/targetDisease") or "").strip()
            if not antigen_name:
                raise SupportingDataError(f"{name}: no <series> with a <targetDisease>")
            antigens[antigen_name] = _antigen(root, antigen_name)
            match = re.search(r"(\d+\.\d+)", name)
            if match and not version:
                version = match.group(1)
        elif name.startswith("ScheduleSupportingData"):
            schedule = _parse(name, content)
    if schedule is None:
        raise SupportingDataError(f"{source}: ScheduleSupportingData.xml is missing")
    if not antigens:
        raise SupportingDataError(f"{source}: no AntigenSupportingData files")
    cvx_antigens: dict[str, tuple[CvxAssociation, ...]] = {}
    cvx_names: dict[str, str] = {}
    for m in schedule.findall("cvxToAntigenMap/cvxMap"):
        cvx = _cvx(_text(m, "cvx"))
        cvx_names[cvx] = _text(m, "shortDescription")
        cvx_antigens[cvx] = tuple(
            CvxAssociation(
                _text(a, "antigen"),
                _text(a, "associationBeginAge"),
                _text(a, "associationEndAge"),
            )
            for a in m.findall("association")
        )
    groups: dict[str, tuple[str, ...]] = {}
    for m in schedule.findall("vaccineGroupToAntigenMap/vaccineGroupMap"):
        groups[_text(m, "name")] = tuple(
            (a.text or "").strip() for a in m.findall("antigen")
        )
    full = frozenset(
        _text(g, "name")
        for g in schedule.findall("vaccineGroups/vaccineGroup")
        if _text(g, "administerFullVaccineGroup").lower() == "yes"
    )
    conflicts = tuple(
        LiveVirusConflict(
            _cvx(_text(c.find("previous"), "cvx")),
            _cvx(_text(c.find("current"), "cvx")),
            _text(c, "conflictBeginInterval"),
            _text(c, "minConflictEndInterval"),
            _text(c, "conflictEndInterval"),
        )
        for c in schedule.findall("liveVirusConflicts/liveVirusConflict")
    )
    observations = {
        _text(o, "observationCode"): _text(o, "observationTitle")
        for o in schedule.findall("observations/observation")
    }
    observation_codes = {
        _text(v, "code"): _text(o, "observationCode")
        for o in schedule.findall("observations/observation")
        for v in o.findall("codedValues/codedValue")
        if _text(v, "code")
    }
    if not version:
        version = _version_from_location(source)
    return SupportingData(
        version,
        antigens,
        cvx_antigens,
        cvx_names,
        groups,
        full,
        conflicts,
        observations,
        observation_codes,
    )
