"""Logging: the allow-list keeps patient data out."""

from __future__ import annotations

import pytest

from engine.logging import AllowListProcessor, DisallowedLogKey


def test_allow_list_drops_unknown_keys_in_production() -> None:
    """Unknown keys are dropped, known ones kept."""
    processor = AllowListProcessor()
    event = processor(
        None, "info", {"event": "x", "control_id": "C1", "family_name": "Doe"}
    )
    assert event == {"event": "x", "control_id": "C1"}


def test_allow_list_raises_on_unknown_keys_when_strict() -> None:
    """In tests a key that might carry PHI fails loudly."""
    with pytest.raises(DisallowedLogKey, match="birth_date"):
        AllowListProcessor(strict=True)(
            None, "info", {"event": "x", "birth_date": "20200101"}
        )


def _raise_chained() -> None:
    from parsers import ParseError, tokenize

    try:
        tokenize("PID|1||MRN7Z9Q4X1")  # not a message: our parser raises
    except ParseError as exc:
        raise RuntimeError("while storing Zzcanaryfam") from exc


def test_exception_summary_keeps_type_and_place_not_text() -> None:
    """An exception is reduced to its type, its cause's type and our innermost frame."""
    from engine.logging import exception_summary

    try:
        _raise_chained()
    except RuntimeError as exc:
        summary = exception_summary(exc)
    assert summary["error_type"] == "RuntimeError"
    assert summary["error_cause"] == "ParseError"
    assert summary["error_at"].startswith("parsers.tokenizer:read_encoding:")
    assert set(summary) == {"error_type", "error_cause", "error_at"}


def test_exception_summary_processor_replaces_exc_info() -> None:
    """``log.exception`` anywhere renders no message and no traceback."""
    from engine.logging import ExceptionSummary

    try:
        _raise_chained()
    except RuntimeError:
        event = ExceptionSummary()(None, "error", {"event": "x", "exc_info": True})
    assert set(event) == {"event", "error_type", "error_at", "error_cause"}
    assert "Zzcanaryfam" not in repr(event)


def test_configured_logging_renders_logged_exceptions_without_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With production logging, ``log.exception`` prints type and place, never the text."""
    import json

    import structlog

    from engine.logging import configure_logging

    configure_logging("json", strict=True)
    try:
        _raise_chained()
    except RuntimeError:
        structlog.get_logger().exception("sink_raised", peer="127.0.0.1:1")
    line = json.loads(capsys.readouterr().out)
    assert line["error_type"] == "RuntimeError"
    assert "MRN7Z9Q4X1" not in repr(line)
    assert "exception" not in line
