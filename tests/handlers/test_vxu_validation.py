"""VXU validation rules, one behaviour per test, on hand-made messages."""

from __future__ import annotations

from datetime import date

import pytest

from handlers.codes import CodeTables
from handlers.field_rules import FIELD_RULES
from handlers.vxu_validation import ValidatedVxu, VxuValidator
from parsers import (
    AppError,
    CompletionStatus,
    Hl7Error,
    Issue,
    Severity,
    read_vxu,
    tokenize,
)
from tests.support.messages import Dose, vxu

TODAY = date(2024, 6, 1)


def _validate(text: str) -> ValidatedVxu:
    return VxuValidator(CodeTables.load()).validate(read_vxu(tokenize(text)), TODAY)


def _find(
    result: ValidatedVxu, segment: str, field_no: int | None, severity: str = "E"
) -> list[Issue]:
    return [
        i
        for i in result.issues
        if i.location is not None
        and i.location.segment == segment
        and i.location.field == field_no
        and i.severity == severity
    ]


def test_validation_accepts_a_clean_message() -> None:
    """A complete VXU with a new administration has no errors and one dose."""
    result = _validate(vxu(doses=[Dose()]))
    assert not [i for i in result.issues if i.severity == "E"]
    assert len(result.doses) == 1
    assert result.patient is not None
    assert result.doses[0].cvx == "08"


def test_validation_rejects_message_without_pid3() -> None:
    """A PID with no identifier rejects the whole message with 101 on PID-3."""
    pid = "PID|1||||Doe^Jane^^^^^L||20230105|F"
    result = _validate(vxu(pid=pid, doses=[Dose()]))
    assert result.rejected
    errs = _find(result, "PID", 3)
    assert errs and errs[0].hl7_code == "101" and errs[0].app_code == "7"


def test_validation_rejects_future_birth_date() -> None:
    """A birth date after today is an illogical date (0533 code 1) and rejects the message."""
    result = _validate(vxu(dob="20300101", doses=[Dose()]))
    assert result.rejected
    assert _find(result, "PID", 7)[0].app_code == "1"


def test_validation_rejects_bad_sex_code() -> None:
    """PID-8 outside table 0001 rejects the message with 103."""
    result = _validate(vxu(sex="Q", doses=[Dose()]))
    assert result.rejected
    assert _find(result, "PID", 8)[0].hl7_code == "103"


def test_validation_rejects_only_the_dose_with_a_future_date() -> None:
    """A future administration date drops that order group; the others are kept."""
    result = _validate(vxu(doses=[Dose(date="20990101"), Dose(date="20240110")]))
    assert not result.rejected
    assert len(result.doses) == 1
    assert result.rejected_doses == 1
    err = _find(result, "RXA", 3)[0]
    assert err.app_code == "1" and "future" in err.text


def test_validation_rejects_dose_before_birth() -> None:
    """An administration date before the birth date drops the dose."""
    result = _validate(vxu(dob="20230105", doses=[Dose(date="20221201"), Dose()]))
    assert result.rejected_doses == 1
    assert "before the patient's birth date" in _find(result, "RXA", 3)[0].text


def test_validation_reports_unknown_cvx_as_a_chain() -> None:
    """An unknown CVX gives 103 then 101 on RXA-5, as the IG example reports the cascade."""
    result = _validate(vxu(doses=[Dose(cvx="XXX"), Dose()]))
    codes = [i.hl7_code for i in _find(result, "RXA", 5)]
    assert codes == ["103", "101"]
    assert len(result.doses) == 1


def test_validation_rejects_message_when_every_dose_is_bad() -> None:
    """When every order group is rejected the message is rejected too."""
    result = _validate(vxu(doses=[Dose(cvx="XXX")]))
    assert result.rejected


def test_validation_accepts_demographics_only_message() -> None:
    """A VXU with no order group is legal (demographics update)."""
    result = _validate(vxu(doses=[]))
    assert not result.rejected
    assert result.doses == []


def test_validation_warns_on_missing_lot_for_new_dose() -> None:
    """A new administration without a lot number is a warning, and the dose is kept."""
    result = _validate(vxu(doses=[Dose(lot="")]))
    assert _find(result, "RXA", 15, "W")
    assert len(result.doses) == 1


def test_validation_warns_on_missing_funding_eligibility() -> None:
    """IZ-23: a new administration without OBX 64994-7 gets a warning with 0533 code 6."""
    result = _validate(vxu(doses=[Dose(observations=[])]))
    assert any(i.app_code == "6" and i.severity == "W" for i in result.issues)


def test_validation_stores_refusal_as_refusal() -> None:
    """A refusal (RXA-20 RE) is kept with its reason, not as a dose given."""
    result = _validate(vxu(doses=[Dose(completion="RE", refusal="00", cvx="03")]))
    assert result.doses[0].completion_status == "RE"
    assert result.doses[0].refusal_reason == "00"


def test_validation_rejects_rxa_without_orc() -> None:
    """An RXA with no ORC (2.3.1 style) drops that dose with a sequence error."""
    result = _validate(vxu(doses=[Dose(with_orc=False), Dose()]))
    assert result.rejected_doses == 1
    assert any(
        i.hl7_code == "100" and i.location is not None and i.location.segment == "ORC"
        for i in result.issues
    )


def test_validation_drops_nk1_without_relationship() -> None:
    """NK1 without NK1-3 is dropped with an error; the message goes on."""
    text = vxu(doses=[Dose()]).replace(
        "NK1|1|Zzcanaryfam^Parent^^^^^L|MTH^Mother^HL70063",
        "NK1|1|Zzcanaryfam^Parent^^^^^L|",
    )
    result = _validate(text)
    assert _find(result, "NK1", 3)
    assert result.next_of_kin == []
    assert len(result.doses) == 1


def test_validation_flags_segment_out_of_order() -> None:
    """An NK1 after the order groups is a segment sequence error (100)."""
    text = vxu(doses=[Dose()]) + "NK1|2|Other^Person|FTH^Father^HL70063\r"
    result = _validate(text)
    assert any(
        i.hl7_code == "100" and i.location is not None and i.location.segment == "NK1"
        for i in result.issues
    )


def test_validation_warns_on_z_segment() -> None:
    """Z segments are ignored with a warning, not an error."""
    result = _validate(vxu(doses=[Dose()], extra_segments=["ZZZ|1|local"]))
    assert any(
        i.location is not None and i.location.segment == "ZZZ" and i.severity == "W"
        for i in result.issues
    )


@pytest.mark.parametrize("action", ["U", "D"])
def test_validation_keeps_update_and_delete_actions(action: str) -> None:
    """RXA-21 U and D pass validation; the handler decides what they touch."""
    result = _validate(vxu(doses=[Dose(action=action)]))
    assert result.doses[0].action_code == action


def test_validation_rejects_unknown_action_code() -> None:
    """An RXA-21 outside table 0323 drops the dose."""
    result = _validate(vxu(doses=[Dose(action="X"), Dose()]))
    assert _find(result, "RXA", 21)
    assert result.rejected_doses == 1


def _glue_after_first_obx(message: str) -> str:
    """Drop the terminator after the first OBX, so the next segment is glued into it."""
    head, _, tail = message.partition("||||||F\r")
    return f"{head}||||||F{tail}"


def test_validation_names_an_order_group_glued_into_the_obx_before_it() -> None:
    """An ORC glued into the OBX before it gets its own E at OBX-11; the first dose is kept."""
    message = vxu(doses=[Dose(filler="G1"), Dose(filler="G2", cvx="20")]).replace(
        "ORC|RE||G2^EHR", "ORC|RE||G2^EHR|||||||^Clerk||^Provider" + "|" * 12
    )
    result = _validate(_glue_after_first_obx(message))
    assert [d.group for d in result.doses] == [1]
    assert result.doses[0].observations[0].loinc == "64994-7"
    glued = [i for i in _find(result, "OBX", 11) if "order group 2" in i.text]
    assert len(glued) == 1
    assert glued[0].hl7_code == "100"
    assert glued[0].text.startswith("order group 2 is glued into OBX-11")
    assert glued[0].text.endswith("order group 2 rejected")
    assert result.rejected_doses == 1


def test_validation_names_the_dose_after_a_short_glued_orc() -> None:
    """An ORC glued into a short OBX is not detectable by length; its RXA is still named.

    OBX (11 fields) plus ORC (3) fit in OBX's 25 fields, so the RXA that
    follows has no ORC of its own: that order group gets its own E.
    """
    message = _glue_after_first_obx(vxu(doses=[Dose(), Dose(cvx="20")]))
    result = _validate(message)
    assert [d.group for d in result.doses] == [1]
    named = [i for i in result.issues if i.text.endswith("order group 2 rejected")]
    assert len(named) == 1
    assert result.rejected_doses == 1


# -- the rules table (handlers.field_rules) and named codes ------------------

_PD1 = "PD1|||||||||||02^Reminder/recall any method^HL70215|N|20230105|||A|20230105|20230105"
_NK1 = "NK1|1|Zzcanaryfam^Parent^^^^^L|MTH^Mother^HL70063"


def test_field_rules_name_only_tables_that_exist() -> None:
    """Every code table a row names is a loaded table, so a typo cannot pass every value."""
    names = CodeTables.load().names()
    assert {t for rule in FIELD_RULES for t in rule.tables} <= names


def test_field_rules_every_row_checks_something() -> None:
    """Each row says what an empty value or a value outside its table does."""
    for rule in FIELD_RULES:
        assert rule.missing is not None or rule.invalid is not None, rule
        if rule.invalid is not None:
            assert rule.tables or rule.values, rule


def test_field_rules_one_row_per_field() -> None:
    """No field has two rows, whose findings would come out twice."""
    keys = [(rule.segment, rule.field) for rule in FIELD_RULES]
    assert len(keys) == len(set(keys))


def test_field_rules_texts_start_with_their_field() -> None:
    """ERR-8 of every row names the field it is about (e.g. ``PD1-12``)."""
    for rule in FIELD_RULES:
        for broken in (rule.missing, rule.invalid):
            if broken is not None:
                assert broken.text.startswith(f"{rule.segment}-{rule.field} "), rule


def test_validation_pd1_date_required_only_with_a_kept_indicator() -> None:
    """PD1-12 outside Y/N is ignored, so its missing PD1-13 date is not reported too."""
    pd1 = "PD1|||||||||||02^Reminder/recall any method^HL70215|X||||A|20230105"
    result = _validate(vxu(doses=[Dose()]).replace(_PD1, pd1))
    assert [
        i.location.field
        for i in result.issues
        if i.location and i.location.segment == "PD1"
    ] == [12]
    assert result.patient is not None and result.patient.protection == ""


def test_validation_pd1_date_missing_with_a_kept_indicator_is_a_warning() -> None:
    """PD1-12 = Y without PD1-13 is kept, with a 101 warning on PD1-13."""
    pd1 = "PD1|||||||||||02^Reminder/recall any method^HL70215|Y||||A|20230105"
    result = _validate(vxu(doses=[Dose()]).replace(_PD1, pd1))
    (found,) = _find(result, "PD1", 13, "W")
    assert (found.hl7_code, found.app_code) == ("101", "7")
    assert result.patient is not None and result.patient.protection == "Y"


def test_validation_yes_no_fields_read_lower_case_as_upper() -> None:
    """A lower-case ``y`` in PD1-12 is read as Y: the lock is set, with no finding."""
    pd1 = _PD1.replace("|N|20230105", "|y|20230105")
    result = _validate(vxu(doses=[Dose()]).replace(_PD1, pd1))
    assert not [i for i in result.issues if i.location and i.location.segment == "PD1"]
    assert result.patient is not None and result.patient.protection == "Y"


def test_validation_nk1_ignored_reports_only_the_first_missing_field() -> None:
    """An NK1 with neither name nor relationship is ignored with one error, at NK1-2."""
    result = _validate(vxu(doses=[Dose()]).replace(_NK1, "NK1|1||"))
    nk1 = [i for i in result.issues if i.location and i.location.segment == "NK1"]
    assert [(i.location.field, i.severity) for i in nk1 if i.location] == [(2, "E")]
    assert result.next_of_kin == []


def test_validation_unknown_relationship_keeps_the_next_of_kin() -> None:
    """NK1-3 outside table 0063 is a warning; the NK1 is still stored with its code."""
    result = _validate(vxu(doses=[Dose()]).replace("MTH^Mother", "ZZZ^Unknown"))
    assert _find(result, "NK1", 3, "W")
    assert [k.relationship for k in result.next_of_kin] == ["ZZZ"]


def test_validation_bad_action_code_rejects_its_group_by_number() -> None:
    """RXA-21 outside table 0323 rejects that order group and ERR-8 says which."""
    result = _validate(vxu(doses=[Dose(), Dose(action="Q")]))
    (found,) = _find(result, "RXA", 21)
    assert found.text.endswith("; order group 2 rejected")
    assert result.rejected_doses == 1


def test_validation_unknown_completion_status_is_treated_as_complete() -> None:
    """RXA-20 outside table 0322 is a warning and the dose is kept as CP."""
    result = _validate(vxu(doses=[Dose(completion="XX")]))
    assert _find(result, "RXA", 20, "W")
    assert [d.completion_status for d in result.doses] == [CompletionStatus.COMPLETE]


def test_validation_every_obx_of_many_is_reported_in_order() -> None:
    """Sixty OBX with an unknown LOINC each get one warning, in message order."""
    bad = [f"OBX|{n}|CE|99999-{n}^Unknown^LN|1|X^X^L||||||F" for n in range(1, 61)]
    result = _validate(vxu(doses=[Dose(observations=bad)]))
    obx = [i for i in result.issues if i.location and i.location.segment == "OBX"]
    assert [i.location.occurrence for i in obx if i.location] == list(range(1, 61))
    assert {i.hl7_code for i in obx} == {"103"}


def test_validation_codes_are_named_members() -> None:
    """Every finding of a message with many problems carries enum codes, never bare strings."""
    pid = "PID|2||X1^^^^ZZ||^^^^^^L||2030|Q|||||||||||||||||||Z||||Q"
    result = _validate(
        vxu(pid=pid, doses=[Dose(cvx="XXX", action="Q", completion="ZZ")])
    )
    assert len(result.issues) > 5
    for found in result.issues:
        assert isinstance(found.severity, Severity)
        assert isinstance(found.hl7_code, Hl7Error)
        assert found.app_code is None or isinstance(found.app_code, AppError)
