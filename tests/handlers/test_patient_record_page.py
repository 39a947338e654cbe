"""The printed record's page: empty records, no forecaster, and a sender's markup."""

from __future__ import annotations

from datetime import UTC, date, datetime

from handlers.patient_record import PatientRecord

AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _record(**changes: object) -> PatientRecord:
    values: dict[str, object] = {
        "registry": "CAIRN",
        "requester": "CLINIC1",
        "patient_id": 7,
        "region": "BAY",
        "name": "Ann Example",
        "birth_date": date(2025, 2, 28),
        "sex": "Female",
        "guardians": (),
        "access": "full",
        "as_of": date(2026, 12, 2),
        "history": (),
        "forecast": (),
        "release": "",
        "forecast_note": "Forecast not available: no CDSi supporting data is installed.",
    }
    values.update(changes)
    return PatientRecord(**values)  # type: ignore[arg-type]


def test_a_record_with_no_doses_and_no_forecaster_says_so() -> None:
    """Nothing recorded and no CDSi data: the page says both in words, and shows no empty tables."""
    html = _record().html(AT)
    assert "No vaccinations are recorded." in html
    assert "Forecast not available: no CDSi supporting data is installed." in html
    assert "Feb 28, 2025" in html
    assert "(not recorded)" in html  # no guardian
    assert '<table class="list">' not in html


def test_stored_markup_in_a_name_is_text_on_the_page() -> None:
    """A name a sender stored with HTML in it cannot run or restyle the printed record."""
    html = _record(
        name='<img src=x onerror="alert(1)">', guardians=("</style><b>Mom</b>",)
    ).html(AT)
    assert "<img src=x" not in html and "<b>Mom</b>" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert "&lt;/style&gt;&lt;b&gt;Mom&lt;/b&gt;" in html
