"""The Z44 forecast service: stored history -> CDSi engine -> Z42 OBX values."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import date
from typing import TYPE_CHECKING

from forecast import AdministeredDose, Forecaster, ForecastResult, PatientInput
from handlers.forecast_outcome import (
    DoseEvaluation,
    ForecastOutcome,
    GroupRecommendation,
)
from parsers.codes import GIVEN, NOT_A_VACCINE

if TYPE_CHECKING:
    from handlers.disclosure import PatientView
    from storage import VaccinationRecord

#: CVX of the "unspecified formulation" vaccine of each vaccine group, for OBX 30956-7.
GROUP_CVX = {
    "DTaP/Tdap/Td": "107",
    "HepA": "85",
    "HepB": "45",
    "Hib": "17",
    "HPV": "137",
    "Influenza": "88",
    "MMR": "03",
    "Meningococcal": "108",
    "Meningococcal B": "164",
    "Pneumococcal": "109",
    "Polio": "89",
    "Rotavirus": "122",
    "Varicella": "21",
    "Zoster": "188",
    "COVID-19": "213",
}

#: LOINC codes of patient observations that carry CDSi-relevant conditions.
_CONDITION_LOINC = {"59784-9", "75505-8", "30945-0", "59785-6", "31044-1", "75323-6"}


class CdsiForecastService:
    """Runs the embedded CDSi engine on a stored patient's consolidated history."""

    def __init__(self, forecaster: Forecaster) -> None:
        self._forecaster = forecaster

    @property
    def release(self) -> str:
        """The supporting-data release in use."""
        return self._forecaster.data.version

    def vaccine_groups(self) -> dict[str, tuple[str, ...]]:
        """Each vaccine group of the release and its antigens."""
        return dict(self._forecaster.data.vaccine_groups)

    def antigens_of(self, groups: Iterable[str]) -> frozenset[str]:
        """Every antigen of these vaccine groups (unknown names contribute none)."""
        known = self._forecaster.data.vaccine_groups
        return frozenset(a for g in groups for a in known.get(g, ()))

    def run(
        self,
        view: PatientView,
        as_of: date,
        antigens: Collection[str] | None = None,
    ) -> tuple[ForecastResult, list[VaccinationRecord]]:
        """Run the engine on a view; returns the result and the doses it was given.

        A dose evaluation's ``dose_index`` is the position in the returned
        list: the doses given (not refusals or "not a vaccine" records).
        ``antigens`` limits the work to those antigens (see
        ``Forecaster.run``).
        """
        patient = view.record
        doses = [
            d
            for d in view.doses
            if d.completion_status in GIVEN and d.cvx not in NOT_A_VACCINE
        ]
        codes = self._forecaster.data.observation_codes
        observed: dict[str, date | None] = {}
        for o in view.observations:
            if o.loinc not in _CONDITION_LOINC or o.value_code not in codes:
                continue
            code = codes[o.value_code]
            # Intervals "from a relevant observation" (a transplant, the start
            # of a therapy) count from its date (OBX-14): the earliest reported.
            when, earlier = o.observed_on, observed.get(code)
            if code not in observed or (
                when is not None and (earlier is None or when < earlier)
            ):
                observed[code] = when
        observations = tuple(sorted(observed))
        dated = tuple(
            (code, when) for code, when in sorted(observed.items()) if when is not None
        )
        birth = patient.birth_date or as_of
        result = self._forecaster.run(
            PatientInput(birth, patient.sex or "U", observations, dated),
            [AdministeredDose(d.administered_on, d.cvx, d.mvx or None) for d in doses],
            as_of,
            antigens,
        )
        return result, doses

    def forecast(self, view: PatientView, as_of: date) -> ForecastOutcome:
        """Evaluate every dose given and forecast every vaccine group."""
        result, doses = self.run(view, as_of)
        group_of = {
            a: g
            for g, antigens in self._forecaster.data.vaccine_groups.items()
            for a in antigens
        }
        per_dose: dict[int, dict[str, list[tuple[str, str, str, int]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for ev in result.dose_evaluations:
            group = group_of.get(ev.antigen, ev.antigen)
            per_dose[doses[ev.dose_index].id][group].append(
                (ev.status, ev.reason, ev.series, ev.target_dose)
            )
        evaluations: dict[int, tuple[DoseEvaluation, ...]] = {}
        for dose_id, groups in per_dose.items():
            items = []
            for group, rows in sorted(groups.items()):
                valid = all(status == "Valid" for status, _r, _s, _t in rows)
                reason = next(
                    (r for status, r, _s, _t in rows if status != "Valid" and r), ""
                )
                series = rows[0][2]
                number = str(rows[0][3]) if valid and rows[0][3] else ""
                items.append(
                    DoseEvaluation(
                        group, GROUP_CVX.get(group, ""), series, number, valid, reason
                    )
                )
            evaluations[dose_id] = tuple(items)
        recommendations = tuple(
            GroupRecommendation(
                g.vaccine_group,
                GROUP_CVX.get(g.vaccine_group, ""),
                g.series,
                g.status,
                str(g.dose_number) if g.dose_number else "",
                g.earliest,
                g.recommended,
                g.past_due,
                g.latest,
                g.reason,
            )
            for g in result.vaccine_groups
            if g.vaccine_group in GROUP_CVX
        )
        return ForecastOutcome(result.release_version, evaluations, recommendations)
