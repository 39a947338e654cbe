"""The CDSi processing model: organize, evaluate, select series, forecast.

The steps follow CDC's CDSi logic specification:

1. *Organize the immunization history* by antigen (chapter 5): each dose
   counts for the antigens its CVX contains, within the association ages.
2. *Select relevant patient series* (chapter 5): standard series, and risk
   series whose indication the patient has; gender-specific series by sex.
3. *Evaluate* each dose against the series' target doses (chapter 6): dose
   condition, conditional skip, inadvertent vaccine, age (absolute minimum
   and grace), preferable then allowable intervals, live virus conflicts,
   preferable then allowable vaccine types.
4. *Forecast* each series (chapter 7): forecast-context conditional skips,
   immunity, contraindications, forecast need, then the earliest,
   recommended, past-due and latest dates of the first unsatisfied target
   dose.
5. *Select the best series* per series group (chapter 8): scorable series,
   complete over in-process over none, scoring, then series preference.
6. *Vaccine groups* combine their antigens (chapter 9).

Everything here is pure: the supporting data is read once, and a run does no
I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from forecast.data import (
    AgeRule,
    ConditionalSkip,
    IntervalRule,
    LiveVirusConflict,
    Series,
    SeriesDose,
    SkipCondition,
    SupportingData,
    VaccineRule,
)
from forecast.dates import offset
from forecast.model import (
    AdministeredDose,
    AntigenForecast,
    DoseEvaluation,
    ForecastResult,
    PatientInput,
    VaccineGroupForecast,
)

FAR_FUTURE = date(2999, 12, 31)
FAR_PAST = date(1900, 1, 1)

VALID = "Valid"
NOT_VALID = "Not Valid"
EXTRANEOUS = "Extraneous"
NOT_RECOMMENDED = "Not Recommended"

#: Values of ``intervalPriority`` that mark a priority interval: the logic
#: specification writes 'Y'; CDC's supporting data writes ``override``.
_PRIORITY_FLAGS = frozenset({"y", "yes", "override"})


@dataclass(frozen=True, slots=True)
class _AntigenDose:
    """A dose as it counts for one antigen."""

    index: int
    date: date
    cvx: str
    mvx: str
    #: the live virus conflict this dose falls in ("" if none); the same for
    #: every antigen and series, so it is found once per run
    conflict: str = ""


@dataclass
class _Evaluated:
    dose: _AntigenDose
    status: str
    reason: str
    target: int
    rule: str
    preferable: bool = False


@dataclass
class _SeriesRun:
    """One patient series being evaluated and forecast."""

    series: Series
    evaluations: list[_Evaluated] = field(default_factory=list)
    #: target dose number -> ("satisfied" | "skipped", date of the satisfying dose or None)
    targets: dict[int, tuple[str, date | None]] = field(default_factory=dict)
    next_target: int = 1
    status: str = "Not Complete"
    forecast: AntigenForecast | None = None
    first_valid: date | None = None
    completed_on: date | None = None
    #: observation code -> date, for intervals from a relevant observation
    observation_dates: dict[str, date] = field(default_factory=dict)
    #: series group -> date a series of that group (same antigen) was completed
    completed_groups: dict[str, date] = field(default_factory=dict)

    @property
    def valid_count(self) -> int:
        return sum(1 for e in self.evaluations if e.status == VALID)

    @property
    def complete(self) -> bool:
        return self.next_target > len(self.series.doses)


def _within(effective: date | None, cessation: date | None, when: date) -> bool:
    return (effective is None or when >= effective) and (
        cessation is None or when <= cessation
    )


def _age_rule(dose: SeriesDose, when: date) -> AgeRule | None:
    for rule in dose.ages:
        if _within(rule.effective, rule.cessation, when):
            return rule
    return dose.ages[0] if dose.ages else None


def _priority_rank(run: _SeriesRun) -> int:
    """Series priority A beats B beats C (higher is better)."""
    return -ord(run.series.priority[:1] or "Z")


def _earliest(run: _SeriesRun) -> date:
    forecast = run.forecast
    return (
        forecast.earliest if forecast is not None and forecast.earliest else FAR_FUTURE
    )


class Forecaster:
    """Evaluates a history and forecasts, driven by one supporting-data release."""

    def __init__(self, data: SupportingData) -> None:
        self.data = data
        # Live virus conflicts by the CVX of the later (current) dose, and the
        # set of CVX that have any: both looked up for every dose.
        self._conflicts_by_current: dict[str, list[LiveVirusConflict]] = {}
        for conflict in data.live_conflicts:
            self._conflicts_by_current.setdefault(conflict.current, []).append(conflict)

    # -- public ---------------------------------------------------------------

    def knows_cvx(self, cvx: str) -> bool:
        """Whether the release maps this CVX code (``8`` and ``08`` alike) to antigens."""
        return self._norm_cvx(cvx) in self.data.cvx_names

    def run(
        self,
        patient: PatientInput,
        doses: Sequence[AdministeredDose],
        assessment_date: date,
        antigens: Collection[str] | None = None,
    ) -> ForecastResult:
        """Evaluate every dose and forecast every vaccine group as of ``assessment_date``.

        ``antigens`` limits the work to those antigens (population reports
        that ask about a few vaccine groups): each antigen is evaluated and
        forecast on its own, so the ones kept get the answer a full run
        gives, and only groups with a kept antigen are forecast. Name every
        antigen of a multi-antigen group (DTaP/Tdap/Td, MMR) to get that
        group's forecast right.
        """
        ordered = sorted(enumerate(doses), key=lambda item: (item[1].date, item[0]))
        history = [
            (index, d.date, self._norm_cvx(d.cvx), (d.mvx or "").upper())
            for index, d in ordered
            if d.date <= assessment_date
        ]
        conflicts = {
            index: self._live_conflict(_AntigenDose(index, when, cvx, mvx), history)
            for index, when, cvx, mvx in history
        }
        evaluations: list[DoseEvaluation] = []
        antigen_forecasts: dict[str, AntigenForecast] = {}
        for name, antigen in self.data.antigens.items():
            if antigens is not None and name not in antigens:
                continue
            antigen_doses = self._antigen_doses(name, patient, history, conflicts)
            # Series are evaluated in the data's order (standard groups come
            # first), so a risk series' "completed series" skip can see when a
            # series of the group it names was completed.
            completed: dict[str, date] = {}
            runs = []
            for series in antigen.series:
                if not self._relevant(series, patient, assessment_date):
                    continue
                run = self._evaluate(series, patient, antigen_doses, history, completed)
                runs.append(run)
                if run.completed_on is not None:
                    group_id = series.group or series.name
                    seen = completed.get(group_id)
                    if seen is None or run.completed_on < seen:
                        completed[group_id] = run.completed_on
            if not runs:
                continue
            for run in runs:
                run.forecast = self._forecast(
                    run, patient, antigen_doses, history, assessment_date
                )
            best, others = self._select(runs, patient, assessment_date, antigen_doses)
            assert best.forecast is not None
            antigen_forecasts[name] = best.forecast
            for ev, series_name in self._merged_evaluations(best, others):
                evaluations.append(
                    DoseEvaluation(
                        ev.dose.index,
                        name,
                        ev.status,
                        ev.reason,
                        ev.target,
                        series_name,
                        ev.rule,
                    )
                )
        groups = tuple(
            self._group(
                group,
                antigens,
                antigen_forecasts,
                self._last_group_dose(antigens, history),
            )
            for group, antigens in self.data.vaccine_groups.items()
            if any(a in antigen_forecasts for a in antigens)
        )
        evaluations.sort(key=lambda e: (e.dose_index, e.antigen))
        return ForecastResult(
            self.data.version, assessment_date, tuple(evaluations), groups
        )

    def _last_group_dose(
        self, antigens: tuple[str, ...], history: list[tuple[int, date, str, str]]
    ) -> date | None:
        """The latest date a vaccine containing any of the group's antigens was given."""
        wanted = set(antigens)
        dates = [
            when
            for _index, when, cvx, _mvx in history
            if any(a.antigen in wanted for a in self.data.cvx_antigens.get(cvx, ()))
        ]
        return max(dates) if dates else None

    # -- organize ---------------------------------------------------------------

    @staticmethod
    def _norm_cvx(cvx: str) -> str:
        cvx = cvx.strip()
        return cvx.zfill(2) if cvx.isdigit() and len(cvx) < 2 else cvx

    def _antigen_doses(
        self,
        antigen: str,
        patient: PatientInput,
        history: Iterable[tuple[int, date, str, str]],
        conflicts: dict[int, str] | None = None,
    ) -> list[_AntigenDose]:
        out = []
        for index, when, cvx, mvx in history:
            for assoc in self.data.cvx_antigens.get(cvx, ()):
                if assoc.antigen != antigen:
                    continue
                begin = offset(patient.birth_date, assoc.begin_age) or FAR_PAST
                end = offset(patient.birth_date, assoc.end_age) or FAR_FUTURE
                if begin <= when < end:
                    conflict = (conflicts or {}).get(index, "")
                    out.append(_AntigenDose(index, when, cvx, mvx, conflict))
                    break
        return out

    def _relevant(
        self, series: Series, patient: PatientInput, assessment: date
    ) -> bool:
        if (
            series.required_gender
            and patient.sex.upper()[:1] not in series.required_gender
        ):
            return False
        if series.series_type == "standard":
            return True
        for indication in series.indications:
            if indication.code in patient.observations:
                begin = offset(patient.birth_date, indication.begin_age) or FAR_PAST
                end = offset(patient.birth_date, indication.end_age) or FAR_FUTURE
                if begin <= assessment < end:
                    return True
        return False

    # -- evaluation ---------------------------------------------------------------

    def _evaluate(
        self,
        series: Series,
        patient: PatientInput,
        doses: list[_AntigenDose],
        history: list[tuple[int, date, str, str]],
        completed_groups: dict[str, date] | None = None,
    ) -> _SeriesRun:
        run = _SeriesRun(
            series,
            observation_dates=dict(patient.observation_dates),
            completed_groups=completed_groups if completed_groups is not None else {},
        )
        for dose in doses:
            self._evaluate_dose(run, patient, dose, history)
        return run

    def _previous(self, run: _SeriesRun) -> _Evaluated | None:
        """The previous dose for 'from previous' intervals: valid or not valid, not inadvertent."""
        for ev in reversed(run.evaluations):
            if ev.status in (VALID, NOT_VALID) and ev.reason != "Inadvertent Vaccine":
                return ev
        return None

    def _evaluate_dose(
        self,
        run: _SeriesRun,
        patient: PatientInput,
        dose: _AntigenDose,
        history: list[tuple[int, date, str, str]],
    ) -> None:
        series = run.series
        # A recurring last target dose is tried again for each new dose, but
        # only once per dose: when it is skipped too, the dose is extraneous
        # (otherwise the loop would turn forever on a skipped recurring dose).
        wrapped = False
        while True:
            if run.next_target > len(series.doses):
                last = series.doses[-1] if series.doses else None
                if last is not None and last.recurring and not wrapped:
                    run.next_target = len(series.doses)
                    wrapped = True
                else:
                    run.evaluations.append(
                        _Evaluated(
                            dose,
                            EXTRANEOUS,
                            "Series Already Complete",
                            0,
                            "all target doses already satisfied",
                        )
                    )
                    return
            target = series.doses[run.next_target - 1]
            skip = self._skip_met(
                target.skips, "evaluation", run, patient, dose.date, dose
            )
            if skip:
                run.targets[target.number] = ("skipped", None)
                run.next_target += 1
                continue
            break
        target_no = target.number
        if dose.cvx in target.inadvertent:
            run.evaluations.append(
                _Evaluated(
                    dose,
                    NOT_VALID,
                    "Inadvertent Vaccine",
                    target_no,
                    f"CVX {dose.cvx} is an inadvertent vaccine for dose {target_no}",
                )
            )
            return
        previous = self._previous(run)
        # Age (Table 6-15). Between the absolute minimum and the minimum age
        # the dose is valid ("grace period") whatever the previous dose was:
        # logic specification v4.6 has no previous-dose condition (the older
        # rule that an invalid previous dose voids the grace period is gone).
        rule = _age_rule(target, dose.date)
        if rule is not None:
            dob = patient.birth_date
            abs_min = offset(dob, rule.abs_min) or FAR_PAST
            maximum = offset(dob, rule.max) or FAR_FUTURE
            if dose.date < abs_min:
                run.evaluations.append(
                    _Evaluated(
                        dose,
                        NOT_VALID,
                        "Age: Too Young",
                        target_no,
                        f"given before the absolute minimum age ({rule.abs_min})",
                    )
                )
                return
            if dose.date >= maximum:
                run.evaluations.append(
                    _Evaluated(
                        dose,
                        EXTRANEOUS,
                        "Age: Too Old",
                        target_no,
                        f"given on or after the maximum age ({rule.max})",
                    )
                )
                return
        # Intervals
        interval_problem = self._interval_problem(run, target, dose, previous, history)
        if interval_problem:
            run.evaluations.append(
                _Evaluated(
                    dose,
                    NOT_VALID,
                    "Interval: too Soon",
                    target_no,
                    interval_problem,
                )
            )
            return
        # Live virus conflicts
        conflict = dose.conflict
        if conflict:
            run.evaluations.append(
                _Evaluated(dose, NOT_VALID, "Live Virus Conflict", target_no, conflict)
            )
            return
        # Vaccine type
        preferable = self._vaccine_match(
            target.preferable, dose, patient.birth_date, check_mvx=True
        )
        allowable = preferable or self._vaccine_match(
            target.allowable, dose, patient.birth_date, check_mvx=False
        )
        if not allowable:
            run.evaluations.append(
                _Evaluated(
                    dose,
                    NOT_VALID,
                    "Not a preferable or allowable vaccine",
                    target_no,
                    f"CVX {dose.cvx} is neither preferable nor allowable for dose {target_no}",
                )
            )
            return
        kind = "preferable" if preferable else "allowable"
        run.evaluations.append(
            _Evaluated(
                dose,
                VALID,
                "",
                target_no,
                f"satisfies dose {target_no} ({kind} vaccine, valid age and interval)",
                preferable=preferable,
            )
        )
        run.targets[target_no] = ("satisfied", dose.date)
        if run.first_valid is None:
            run.first_valid = dose.date
        if target.recurring:
            # A recurring target dose (e.g. a yearly COVID-19 dose) stays the
            # target after it is satisfied.
            return
        run.next_target += 1
        if run.complete:
            run.completed_on = dose.date

    def _reference_date(
        self,
        rule: IntervalRule,
        run: _SeriesRun,
        previous: _Evaluated | None,
        history: list[tuple[int, date, str, str]],
        before: date,
    ) -> date | None:
        if rule.from_observation:
            # An interval from a relevant observation (e.g. 6 months after a
            # stem cell transplant) counts from the observation's date; without
            # that date the interval does not apply.
            return run.observation_dates.get(rule.from_observation)
        if rule.from_target_dose is not None:
            status = run.targets.get(rule.from_target_dose)
            return status[1] if status and status[0] == "satisfied" else None
        if rule.from_most_recent:
            dates = [
                when
                for _i, when, cvx, _m in history
                if cvx in rule.from_most_recent and when < before
            ]
            return max(dates) if dates else None
        if rule.from_previous:
            return previous.dose.date if previous is not None else None
        return None

    def _intervals_with_refs(
        self,
        rules: Sequence[IntervalRule],
        run: _SeriesRun,
        previous: _Evaluated | None,
        history: list[tuple[int, date, str, str]],
        before: date,
    ) -> list[tuple[IntervalRule, date]]:
        """Intervals with the date each counts from (those with no date do not apply).

        Every interval applies (chapter 6.5: "all intervals must be
        satisfied"). The interval priority flag does not rank the intervals
        of one dose: it marks a priority patient series forecast for the
        multiple antigen vaccine group rules (FORECASTPRIORITY-1, 9.3).
        """
        found: list[tuple[IntervalRule, date]] = []
        for rule in rules:
            ref = self._reference_date(rule, run, previous, history, before)
            if ref is not None:
                found.append((rule, ref))
        return found

    def _applicable_intervals(
        self, rules: Sequence[IntervalRule], when: date
    ) -> list[IntervalRule]:
        return [r for r in rules if _within(r.effective, r.cessation, when)]

    def _interval_problem(
        self,
        run: _SeriesRun,
        target: SeriesDose,
        dose: _AntigenDose,
        previous: _Evaluated | None,
        history: list[tuple[int, date, str, str]],
    ) -> str:
        """Why the dose fails its preferable intervals ("" when it does not).

        Table 6-18: before the absolute minimum interval is too soon; from
        there to the minimum interval is the grace period, valid whatever the
        previous dose was (v4.6). An allowable interval (6.6) can still pass.
        """
        with_refs = self._intervals_with_refs(
            self._applicable_intervals(target.intervals, dose.date),
            run,
            previous,
            history,
            dose.date,
        )
        problem = ""
        for rule, ref in with_refs:
            abs_min = offset(ref, rule.abs_min) or ref
            if dose.date < abs_min:
                problem = f"given before the absolute minimum interval ({rule.abs_min}) from {ref.isoformat()}"
                break
        if not problem:
            return ""
        # An allowable interval can still make the dose valid.
        allowable = self._applicable_intervals(target.allowable_intervals, dose.date)
        for allowed, since in self._intervals_with_refs(
            allowable, run, previous, history, dose.date
        ):
            if dose.date >= (offset(since, allowed.abs_min) or since):
                return ""
        return problem

    def _live_conflict(
        self, dose: _AntigenDose, history: list[tuple[int, date, str, str]]
    ) -> str:
        for conflict in self._conflicts_by_current.get(dose.cvx, ()):
            for index, when, cvx, _mvx in history:
                if index == dose.index or cvx != conflict.previous or when > dose.date:
                    continue
                begin = offset(when, conflict.begin) or when
                end = offset(when, conflict.min_end) or when
                if begin <= dose.date < end:
                    return f"CVX {dose.cvx} within the live virus conflict window of CVX {cvx} given {when.isoformat()}"
        return ""

    def _vaccine_match(
        self,
        rules: Sequence[VaccineRule],
        dose: _AntigenDose,
        dob: date,
        *,
        check_mvx: bool,
    ) -> bool:
        for rule in rules:
            if rule.cvx != dose.cvx:
                continue
            begin = offset(dob, rule.begin_age) or FAR_PAST
            end = offset(dob, rule.end_age) or FAR_FUTURE
            if not begin <= dose.date < end:
                continue
            if check_mvx and rule.mvx and dose.mvx and rule.mvx != dose.mvx:
                continue
            return True
        return False

    # -- conditional skip -----------------------------------------------------------

    def _skip_met(
        self,
        skips: Sequence[ConditionalSkip],
        context: str,
        run: _SeriesRun,
        patient: PatientInput,
        reference: date,
        dose: _AntigenDose | None,
        age_reference: date | None = None,
    ) -> bool:
        for skip in skips:
            if skip.context not in (context, "both"):
                continue
            results = []
            for skip_set in skip.sets:
                if not _within(skip_set.effective, skip_set.cessation, reference):
                    results.append(False)
                    continue
                checks = [
                    self._condition_met(c, run, patient, reference, dose, age_reference)
                    for c in skip_set.conditions
                ]
                if not checks:
                    results.append(False)
                elif skip_set.logic == "OR":
                    results.append(any(checks))
                else:
                    results.append(all(checks))
            if (skip.set_logic == "AND" and results and all(results)) or (
                skip.set_logic != "AND" and any(results)
            ):
                return True
        return False

    def _condition_met(
        self,
        condition: SkipCondition,
        run: _SeriesRun,
        patient: PatientInput,
        reference: date,
        dose: _AntigenDose | None,
        age_reference: date | None = None,
    ) -> bool:
        dob = patient.birth_date
        kind = condition.kind
        if kind == "age":
            begin = offset(dob, condition.begin_age) or FAR_PAST
            end = offset(dob, condition.end_age) or FAR_FUTURE
            # "X or older" is judged when the dose could first be given;
            # "under X" at the reference date itself.
            if (
                age_reference is not None
                and condition.begin_age
                and not condition.end_age
            ):
                reference = age_reference
            return begin <= reference < end
        if kind == "interval":
            previous = self._previous(run)
            if previous is None:
                return False
            return reference >= (
                offset(previous.dose.date, condition.interval) or previous.dose.date
            )
        if kind.startswith("vaccine count"):
            if "date" in kind:
                begin = condition.start_date or FAR_PAST
                end = condition.end_date or FAR_FUTURE
            else:
                begin = offset(dob, condition.begin_age) or FAR_PAST
                end = offset(dob, condition.end_age) or FAR_FUTURE
            count = 0
            for ev in run.evaluations:
                if (
                    dose is not None
                    and ev.dose.date >= dose.date
                    and ev.dose.index != dose.index
                    and ev.dose.date > reference
                ):
                    continue
                if (
                    condition.vaccine_types
                    and ev.dose.cvx not in condition.vaccine_types
                ):
                    continue
                if condition.dose_type == "valid" and ev.status != VALID:
                    continue
                if not begin <= ev.dose.date < end:
                    continue
                count += 1
            logic = condition.count_logic
            if logic.startswith("greater"):
                return count > condition.dose_count
            if logic.startswith("less"):
                return count < condition.dose_count
            return count == condition.dose_count
        if kind == "completed series":
            # Met when a series of a named series group was complete before
            # the dose being evaluated, or by the assessment date (forecast).
            for group_id in condition.series_groups:
                done = run.completed_groups.get(group_id)
                if done is not None and (
                    done < reference if dose is not None else done <= reference
                ):
                    return True
            return False
        return False

    # -- forecast ---------------------------------------------------------------------

    def _forecast(
        self,
        run: _SeriesRun,
        patient: PatientInput,
        doses: list[_AntigenDose],
        history: list[tuple[int, date, str, str]],
        assessment: date,
    ) -> AntigenForecast:
        series = run.series
        antigen = self.data.antigens[series.antigen]
        name = series.name
        # Forecast-context conditional skips on the unsatisfied target doses.
        while not run.complete:
            target = series.doses[run.next_target - 1]
            # Age conditions are judged at the date the dose could first be
            # given ("not required for those 7 years or older at the earliest
            # forecasted date"), never before the assessment date.
            age_ref = max(
                assessment,
                self._rough_earliest(run, target, patient, history, assessment),
            )
            if self._skip_met(
                target.skips, "forecast", run, patient, assessment, None, age_ref
            ):
                run.targets.setdefault(target.number, ("skipped", None))
                run.next_target += 1
                continue
            break
        # Immunity
        for rule in antigen.immunity:
            if rule.history_codes & set(patient.observations):
                run.status = "Immune"
                return AntigenForecast(
                    series.antigen,
                    name,
                    "Immune",
                    None,
                    None,
                    None,
                    None,
                    None,
                    "patient has evidence of immunity",
                )
            if (
                rule.birth_before
                and patient.birth_date < rule.birth_before
                and not (rule.exclusion_codes & set(patient.observations))
            ):
                run.status = "Immune"
                return AntigenForecast(
                    series.antigen,
                    name,
                    "Immune",
                    None,
                    None,
                    None,
                    None,
                    None,
                    "born before the immunity birth date",
                )
        # Contraindications
        for ci in antigen.group_contraindications:
            if ci.code in patient.observations:
                begin = offset(patient.birth_date, ci.begin_age) or FAR_PAST
                end = offset(patient.birth_date, ci.end_age) or FAR_FUTURE
                if begin <= assessment < end:
                    run.status = "Contraindicated"
                    return AntigenForecast(
                        series.antigen,
                        name,
                        "Contraindicated",
                        None,
                        None,
                        None,
                        None,
                        None,
                        f"patient has contraindication {ci.code}",
                    )
        if run.complete:
            run.status = "Complete"
            return AntigenForecast(
                series.antigen,
                name,
                "Complete",
                None,
                None,
                None,
                None,
                None,
                "series is complete",
            )
        target = series.doses[run.next_target - 1]
        rules: list[str] = []
        dob = patient.birth_date
        age = _age_rule(target, assessment)
        min_age = offset(dob, age.min) if age else None
        earliest_rec_age = offset(dob, age.earliest_rec) if age else None
        latest_rec_age = offset(dob, age.latest_rec) if age else None
        max_age = offset(dob, age.max) if age else None
        if max_age is not None and assessment >= max_age:
            run.status = "Aged Out"
            return AntigenForecast(
                series.antigen,
                name,
                "Aged Out",
                None,
                None,
                None,
                None,
                None,
                "patient has exceeded the maximum age",
            )
        previous = self._previous(run)
        min_ints: list[date] = []
        rec_ints: list[date] = []
        late_ints: list[date] = []
        rules_iv = self._applicable_intervals(target.intervals, assessment)
        with_refs = self._intervals_with_refs(
            rules_iv, run, previous, history, assessment + timedelta(days=1)
        )
        for interval, ref in with_refs:
            if interval.min:
                d = offset(ref, interval.min)
                if d:
                    min_ints.append(d)
                    rules.append(
                        f"minimum interval {interval.min} from {ref.isoformat()}"
                    )
            if interval.earliest_rec:
                d = offset(ref, interval.earliest_rec)
                if d:
                    rec_ints.append(d)
            if interval.latest_rec:
                d = offset(ref, interval.latest_rec)
                if d:
                    late_ints.append(d)
        candidates = [d for d in (min_age, *min_ints) if d is not None] or [dob]
        earliest = max(candidates)
        if min_age is not None:
            rules.append(f"minimum age {age.min if age else ''}")
        conflict_end = self._latest_conflict_end(target, history)
        if conflict_end is not None and conflict_end > earliest:
            earliest = conflict_end
            rules.append("end of a live virus conflict")
        if doses and doses[-1].date > earliest:
            # Never before the most recent dose of the antigen (CDC's cases
            # after an invalid dose with no interval to count from).
            earliest = doses[-1].date
            rules.append("date of the most recent dose")
        if target.season_start is not None and target.season_start > earliest:
            earliest = target.season_start
            rules.append("start of the season")
        # Table 7-10 (determine forecast need), rules 6 and 7: a season that
        # has ended, or a candidate earliest date (FORECASTDTCAN-1) on or after
        # the maximum age date, means no dose is forecast: a window that closes
        # before it opens is never shown.
        if target.season_end is not None and assessment > target.season_end:
            run.status = NOT_RECOMMENDED
            return AntigenForecast(
                series.antigen,
                name,
                NOT_RECOMMENDED,
                None,
                None,
                None,
                None,
                None,
                f"past seasonal recommendation end date ({target.season_end.isoformat()})",
                tuple(rules),
            )
        if max_age is not None and earliest >= max_age:
            run.status = "Aged Out"
            return AntigenForecast(
                series.antigen,
                name,
                "Aged Out",
                None,
                None,
                None,
                None,
                None,
                f"patient is unable to finish the series prior to the maximum age"
                f" (earliest {earliest.isoformat()}, maximum age {age.max if age else ''}"
                f" on {max_age.isoformat()})",
                tuple(rules),
            )
        recommended = (
            earliest_rec_age or (max(rec_ints) if rec_ints else None) or earliest
        )
        recommended = max(recommended, earliest)
        past_due: date | None = None
        if latest_rec_age is not None:
            past_due = latest_rec_age - timedelta(days=1)
        elif late_ints:
            past_due = max(late_ints) - timedelta(days=1)
        if past_due is not None and past_due < earliest:
            past_due = earliest
        latest = max_age - timedelta(days=1) if max_age else None
        run.status = "Not Complete"
        # The forecast dose number counts the doses the patient has had, not
        # the target doses skipped on the way (as CDC's test cases expect).
        number = run.next_target - sum(
            1 for state, _ in run.targets.values() if state == "skipped"
        )
        if target.season_start is not None:
            # A seasonal dose counts the doses of the current season.
            number = 1 + sum(
                1
                for e in run.evaluations
                if e.status == VALID and e.dose.date >= target.season_start
            )
        elif target.recurring:
            # A recurring booster keeps counting the valid doses.
            number = 1 + run.valid_count
        return AntigenForecast(
            series.antigen,
            name,
            "Not Complete",
            number,
            earliest,
            recommended,
            past_due,
            latest,
            "next target dose not satisfied",
            tuple(rules),
            # FORECASTPRIORITY-1: at least one preferable interval, each with
            # the interval priority flag.
            bool(target.intervals)
            and all(
                i.priority.strip().lower() in _PRIORITY_FLAGS for i in target.intervals
            ),
        )

    def _rough_earliest(
        self,
        run: _SeriesRun,
        target: SeriesDose,
        patient: PatientInput,
        history: list[tuple[int, date, str, str]],
        assessment: date,
    ) -> date:
        """Minimum age and minimum intervals of a target dose (for skip reference dates)."""
        age = _age_rule(target, assessment)
        dates = [offset(patient.birth_date, age.min) if age else None]
        previous = self._previous(run)
        for rule in self._applicable_intervals(target.intervals, assessment):
            ref = self._reference_date(
                rule, run, previous, history, assessment + timedelta(days=1)
            )
            if ref is not None and rule.min:
                dates.append(offset(ref, rule.min))
        found = [d for d in dates if d is not None]
        return max(found) if found else patient.birth_date

    def _latest_conflict_end(
        self, target: SeriesDose, history: list[tuple[int, date, str, str]]
    ) -> date | None:
        types = {v.cvx for v in target.preferable} | {v.cvx for v in target.allowable}
        latest: date | None = None
        # The conflicts' intervals by the earlier vaccine they name, then one
        # pass over the history: a forecast asks this for every target dose,
        # and conflicts x doses grew with the square of a long history.
        ends: dict[str, list[str]] = {}
        for cvx_type in types:
            for conflict in self._conflicts_by_current.get(cvx_type, ()):
                ends.setdefault(conflict.previous, []).append(conflict.end)
        if not ends:
            return None
        for _index, when, cvx, _mvx in history:
            for interval in ends.get(cvx, ()):
                end = offset(when, interval)
                if end is not None and (latest is None or end > latest):
                    latest = end
        return latest

    # -- series selection -------------------------------------------------------------

    def _started_before_max(self, run: _SeriesRun, patient: PatientInput) -> bool:
        if run.first_valid is None or not run.series.max_age_to_start:
            return True
        high = offset(patient.birth_date, run.series.max_age_to_start) or FAR_FUTURE
        return run.first_valid < high

    def _scorable(
        self, run: _SeriesRun, patient: PatientInput, assessment: date
    ) -> bool:
        series = run.series
        start = run.first_valid or assessment
        low = offset(patient.birth_date, series.min_age_to_start) or FAR_PAST
        high = offset(patient.birth_date, series.max_age_to_start) or FAR_FUTURE
        return low <= start < high

    @staticmethod
    def _merged_evaluations(
        best: _SeriesRun, others: Sequence[_SeriesRun]
    ) -> list[tuple[_Evaluated, str]]:
        """Each dose as it counts for the antigen across its best patient series.

        Chapter 8.8 can keep several best patient series for one antigen (say
        a complete standard series and a risk series). A dose that is valid in
        any of them counts as valid for the antigen; otherwise the forecast
        series' evaluation stands.
        """
        merged: list[tuple[_Evaluated, str]] = []
        for ev in best.evaluations:
            chosen, series = ev, best.series.name
            if ev.status != VALID:
                for other in others:
                    match = next(
                        (
                            o
                            for o in other.evaluations
                            if o.dose.index == ev.dose.index and o.status == VALID
                        ),
                        None,
                    )
                    if match is not None:
                        chosen, series = match, other.series.name
                        break
            merged.append((chosen, series))
        return merged

    @staticmethod
    def _is_best_series(run: _SeriesRun, winners: dict[str, _SeriesRun]) -> bool:
        """Chapter 8.8, table 8-14: is a series group's prioritized series a best one?

        A complete series always is. A series that is not complete is not when
        an *equivalent series group* (``equivalentSeriesGroups``) holds a
        complete prioritized series; a standard one is not either when an
        equivalent group holds a risk prioritized series; evaluation-only
        series never are.
        """
        if run.status in ("Complete", "Immune"):
            return True
        equivalent = {
            g.strip()
            for g in run.series.equivalent_groups.replace(",", ";").split(";")
            if g.strip()
        }
        others = [w for g, w in winners.items() if g in equivalent and w is not run]
        if any(o.status in ("Complete", "Immune") for o in others):
            return False
        kind = run.series.series_type
        if kind == "risk":
            return True
        if kind != "standard":
            return False
        return not any(o.series.series_type == "risk" for o in others)

    def _select(
        self,
        runs: list[_SeriesRun],
        patient: PatientInput,
        assessment: date,
        doses: list[_AntigenDose],
    ) -> tuple[_SeriesRun, list[_SeriesRun]]:
        """The best patient series that forecasts the antigen, and the other best ones."""
        groups: dict[str, list[_SeriesRun]] = {}
        for run in runs:
            groups.setdefault(run.series.group or run.series.name, []).append(run)
        prioritized: dict[str, _SeriesRun] = {}
        applicable_groups: set[str] = set()
        for group_id, members in groups.items():
            prioritized[group_id] = self._best_in_group(members, patient, assessment)
            # A series group whose series the patient cannot start (by age) and
            # that holds no valid dose does not apply (e.g. the 50+ group of a child).
            if any(r.valid_count for r in members) or any(
                self._scorable(r, patient, assessment) for r in members
            ):
                applicable_groups.add(group_id)
        winners = [
            (w, g in applicable_groups)
            for g, w in prioritized.items()
            if self._is_best_series(w, prioritized)
        ] or [(w, g in applicable_groups) for g, w in prioritized.items()]
        applicable_winners = [w for w, ok in winners if ok] or [w for w, _ in winners]
        if len(applicable_winners) == 1:
            return applicable_winners[0], []
        rank = {
            "Not Complete": 0,
            "Complete": 1,
            "Immune": 1,
            "Contraindicated": 2,
            "Aged Out": 3,
        }

        # Of several best patient series, a risk series (there because of the
        # patient's indication) gives the antigen's forecast, as in CDC's
        # underlying-conditions cases (a complete pediatric-travel HepA dose
        # is "Complete" though the standard series has not started); then
        # the one still needing a dose, then series group and preference.
        def key(run: _SeriesRun) -> tuple[int, int, str, int]:
            return (
                0 if run.series.series_type == "risk" else 1,
                rank.get(run.status, 4),
                run.series.group,
                run.series.preference,
            )

        chosen = min(applicable_winners, key=key)
        return chosen, [w for w in applicable_winners if w is not chosen]

    def _finish_date(self, run: _SeriesRun, patient: PatientInput) -> date:
        """SELECTB-12: the forecast earliest date plus the remaining minimum intervals."""
        forecast = run.forecast
        if forecast is None or forecast.earliest is None:
            return FAR_FUTURE
        finish = forecast.earliest
        for dose in run.series.doses[run.next_target :]:
            gaps = [
                offset(finish, rule.min) or finish
                for rule in dose.intervals
                if rule.from_previous and rule.min
            ]
            age = dose.ages[0] if dose.ages else None
            minimum_age = offset(patient.birth_date, age.min) if age else None
            finish = max([finish, *gaps, *([minimum_age] if minimum_age else [])])
        return finish

    @staticmethod
    def _last_max_age(run: _SeriesRun, patient: PatientInput) -> date:
        last = run.series.doses[-1] if run.series.doses else None
        age = last.ages[0] if last is not None and last.ages else None
        return (offset(patient.birth_date, age.max) if age else None) or FAR_FUTURE

    def _best_in_group(
        self, pool: list[_SeriesRun], patient: PatientInput, assessment: date
    ) -> _SeriesRun:
        """Chapter 8: complete series beat in-process ones, which beat the default."""
        if len(pool) == 1:
            return pool[0]
        # 8.1 pre-filter: of the risk series of a group, only those of the
        # highest series priority are scorable (SELECTSCORE-2).
        risk = [r for r in pool if r.series.series_type == "risk"]
        if risk:
            top = min(r.series.priority or "Z" for r in risk)
            pool = [
                r
                for r in pool
                if r.series.series_type != "risk" or (r.series.priority or "Z") == top
            ]
            if len(pool) == 1:
                return pool[0]
        # A series started after its maximum start age was never this patient's.
        started_in_time = [r for r in pool if self._started_before_max(r, patient)]
        complete = [
            r for r in (started_in_time or pool) if r.status in ("Complete", "Immune")
        ]
        in_process = [r for r in pool if r.valid_count > 0]
        scores: dict[int, int] = {}
        if complete:
            candidates = complete
            # Table 8-7: most valid doses +1 alone, 0 tied, -1 otherwise.
            most = max(r.valid_count for r in candidates)
            at_most = sum(1 for r in candidates if r.valid_count == most)
            for r in candidates:
                if r.valid_count != most:
                    scores[id(r)] = -1
                else:
                    scores[id(r)] = 1 if at_most == 1 else 0
        elif in_process:
            # Series the patient started within their start ages come first.
            startable = [
                r for r in in_process if self._scorable(r, patient, assessment)
            ]
            candidates = startable or in_process
            # Table 8-9: points for all-valid product series (+2/-2),
            # completable (+3/-3), most valid doses, closest to completion
            # (+2 alone, 0 tied, -2) and can finish earliest (+1/0/-1).
            most = max(r.valid_count for r in candidates)
            remaining = {
                id(r): len(r.series.doses) - (r.next_target - 1) for r in candidates
            }
            fewest = min(remaining.values())
            finish = {id(r): self._finish_date(r, patient) for r in candidates}
            completable = {
                id(r): finish[id(r)] < self._last_max_age(r, patient)
                for r in candidates
            }
            first_finish = min(
                (finish[id(r)] for r in candidates if completable[id(r)]),
                default=FAR_FUTURE,
            )

            def alone(values: list[bool], mine: bool, points: int) -> int:
                if not mine:
                    return -points
                return points if sum(values) == 1 else 0

            most_flags = [r.valid_count == most for r in candidates]
            closest_flags = [remaining[id(r)] == fewest for r in candidates]
            earliest_flags = [
                completable[id(r)] and finish[id(r)] == first_finish for r in candidates
            ]
            for i, r in enumerate(candidates):
                product_ok = r.series.product_path and all(
                    e.status == VALID for e in r.evaluations
                )
                score = 2 if product_ok else -2
                score += 3 if completable[id(r)] else -3
                score += alone(most_flags, most_flags[i], 2)
                score += alone(closest_flags, closest_flags[i], 2)
                score += alone(earliest_flags, earliest_flags[i], 1)
                scores[id(r)] = score
        else:
            # No valid dose anywhere: the default series, else by series
            # priority (A before B before C) and preference.
            defaults = [r for r in pool if r.series.default] or pool
            return min(defaults, key=lambda r: (r.series.priority, r.series.preference))
        return max(
            candidates,
            key=lambda r: (scores[id(r)], _priority_rank(r), -r.series.preference),
        )

    # -- vaccine groups -----------------------------------------------------------------

    def _group(
        self,
        group: str,
        antigens: tuple[str, ...],
        forecasts: dict[str, AntigenForecast],
        last_dose: date | None = None,
    ) -> VaccineGroupForecast:
        """Chapter 9: one vaccine group forecast from its antigens' forecasts.

        ``last_dose`` is the latest date a vaccine of this group was given
        (MULTIANTVG-1).
        """
        members = tuple(forecasts[a] for a in antigens if a in forecasts)
        full = group in self.data.full_group
        status = self._group_status(members, multiple=len(antigens) > 1)
        open_ = [m for m in members if m.status == "Not Complete"]
        if status != "Not Complete" or not open_:
            lead = next((m for m in members if m.status == status), members[0])
            return VaccineGroupForecast(
                group,
                status,
                None,
                None,
                None,
                None,
                None,
                lead.series,
                lead.reason,
                members,
            )
        starts = [m.earliest for m in open_ if m.earliest]
        earliest: date | None = None
        if starts:
            if any(m.priority for m in open_):
                # MULTIANTVG-1: with a priority patient series forecast (say
                # the Tdap dose every DTaP/Tdap/Td antigen waits for), the
                # first antigen due leads, but never before the group's last dose.
                earliest = min(starts)
                if last_dose is not None and last_dose > earliest:
                    earliest = last_dose
            else:
                # MULTIANTVG-1 otherwise (and SINGLEANTVG for one antigen):
                # the latest earliest date, when every antigen can take a dose.
                earliest = max(starts)
        # FORECASTVG-2/3: the first need, never before the group's earliest date.
        recs = [m.recommended for m in open_ if m.recommended]
        recommended = min(recs) if recs else None
        dues = [m.past_due for m in open_ if m.past_due]
        past_due = min(dues) if dues else None
        if earliest is not None:
            recommended = max(recommended, earliest) if recommended else earliest
            past_due = max(past_due, earliest) if past_due else None
        # FORECASTVG-4: the first antigen to age out closes the group.
        latest_values = [m.latest for m in open_ if m.latest]
        latest = min(latest_values) if latest_values else None
        # FORECASTDN-2: for a group given whole, the antigen furthest behind;
        # otherwise the antigen furthest along (Td counts for diphtheria and
        # tetanus but not pertussis).
        if full:
            lead = min(open_, key=lambda m: (m.dose_number or 0, m.antigen))
        else:
            lead = max(open_, key=lambda m: (m.dose_number or 0, m.antigen))
        if earliest is not None and latest is not None and earliest > latest:
            # The antigens' windows do not overlap: as Table 7-10 rule 7 does
            # for one series, say so rather than show a window that closes
            # before it opens.
            return VaccineGroupForecast(
                group,
                "Aged Out",
                None,
                None,
                None,
                None,
                None,
                lead.series,
                f"unable to give the group before the maximum age (earliest"
                f" {earliest.isoformat()}, latest {latest.isoformat()})",
                members,
            )
        return VaccineGroupForecast(
            group,
            "Not Complete",
            lead.dose_number,
            earliest,
            recommended,
            past_due,
            latest,
            lead.series,
            lead.reason,
            members,
        )

    @staticmethod
    def _group_status(members: tuple[AntigenForecast, ...], *, multiple: bool) -> str:
        """Table 9-4 (multiple antigen vaccine group) and SINGLEANTVG-1."""
        statuses = [m.status for m in members]
        if not multiple or len(statuses) == 1:
            return statuses[0]
        for status in ("Contraindicated", "Aged Out", NOT_RECOMMENDED, "Not Complete"):
            if status in statuses:
                return status
        if all(s == "Immune" for s in statuses):
            return "Immune"
        if all(s in ("Complete", "Immune") for s in statuses):
            return "Complete"
        return statuses[0]
