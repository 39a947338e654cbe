"""Logs people can tail: every line about a message says which one, none says who the patient is."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing

from config import load_settings, with_overrides
from engine import app
from engine.app import RunningServer, start_server, startup_summary
from engine.commands.serve import announce
from engine.logging import configure_logging
from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from storage import Database, open_database
from tests.e2e.test_queries import qbp
from tests.support.messages import (
    CANARIES,
    CANARY_FAMILY,
    CANARY_GIVEN,
    CANARY_MRN,
    Dose,
    vxu,
)
from tests.support.registry import build_registry

#: The test patient's birth date, and the phone as the PID carries it.
DOB = "20170329"
PHI = (*CANARIES, DOB, "2017-03-29", "0199876", "Canary Lane")
MESSAGE_KEYS = ("control_id", "sender", "region", "message_type")


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _assert_no_phi(text: str) -> None:
    leaked = [value for value in PHI if value in text]
    assert not leaked, f"patient data in the log: {leaked}"


class _Raising:
    """A VXU handler that fails with patient data in the exception's text."""

    def handle(self, message: Any, ctx: Any, uow: Any, log: Any) -> Any:
        raise RuntimeError(f"cannot store {CANARY_FAMILY}^{CANARY_GIVEN} born {DOB}")


def test_every_line_about_a_message_carries_its_fields_and_no_phi(
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Production JSON logs over accepted, erroneous, refused, unreadable, queried, resent and failed messages."""
    registry = build_registry(db, tmp_path, monkeypatch)
    failing = MessagePipeline(
        database=db,
        routes={"VXU": Route(_Raising(), "VXU_V04")},
        senders=SenderPolicy({"CLINIC1": "BAY"}, "reject", "BAY"),
    )
    configure_logging("json", "debug", strict=True)
    capsys.readouterr()
    accepted = vxu(control_id="LOG1", dob=DOB, doses=[Dose()])
    registry.pipeline.process_batch(
        [
            Inbound(m.encode(), "127.0.0.1:9", "mllp")
            for m in (
                accepted,
                vxu(
                    control_id="LOG2",
                    sender="LACLINIC",
                    dob=DOB,
                    doses=[Dose(date="20990101")],
                ),
                vxu(control_id="LOG3", sender="STRANGER", dob=DOB, doses=[Dose()]),
                f"PID|1||{CANARY_MRN}||{CANARY_FAMILY}^{CANARY_GIVEN}||{DOB}\r",
                qbp(
                    control_id="LOG4",
                    ids=f"{CANARY_MRN}^^^EHR^MR",
                    name=f"{CANARY_FAMILY}^{CANARY_GIVEN}",
                    dob=DOB,
                ),
                accepted,  # a resend
            )
        ]
    )
    failing.process_batch(
        [Inbound(vxu(control_id="LOG5", dob=DOB, doses=[Dose()]).encode(), "p", "mllp")]
    )
    # A query read on a reader connection first, as the server does.
    read = registry.pipeline.read_step(
        Inbound(
            qbp(
                control_id="LOG6",
                sender="LACLINIC",
                name=f"{CANARY_FAMILY}^{CANARY_GIVEN}",
                dob=DOB,
            ).encode(),
            "127.0.0.1:9",
            "mllp",
        )
    )
    assert read.prepared is not None and read.prepared.answer is not None
    registry.pipeline.process_batch([read])
    text = capsys.readouterr().out
    _assert_no_phi(text)
    lines = _lines(text)
    assert lines, "nothing was logged"
    for line in lines:
        missing = [key for key in MESSAGE_KEYS if key not in line]
        assert not missing, f"{line['event']} lacks {missing}"

    def summary(event: str, control_id: str) -> tuple[str, str, str, str]:
        (found,) = [
            line
            for line in lines
            if line["event"] == event and line["control_id"] == control_id
        ]
        return (
            found["sender"],
            found["region"],
            found["message_type"],
            found.get("ack_code", ""),
        )

    done = [line for line in lines if line["event"] == "message_done"]
    assert [line["control_id"] for line in done] == [
        "LOG1",
        "LOG2",
        "LOG3",
        "",
        "LOG4",
        "LOG1",
        "LOG6",
    ]
    assert summary("message_done", "LOG2") == ("LACLINIC", "LAO", "VXU^V04", "AE")
    assert summary("message_done", "LOG3") == ("STRANGER", "", "VXU^V04", "AR")
    assert summary("message_done", "LOG4") == ("CLINIC1", "BAY", "QBP^Q11", "AA")
    assert summary("message_resent", "LOG1") == ("CLINIC1", "BAY", "VXU^V04", "AA")
    assert summary("message_failed", "LOG5") == ("CLINIC1", "BAY", "VXU^V04", "")
    assert summary("query_searched", "LOG6") == ("LACLINIC", "LAO", "QBP^Q11", "")
    assert summary("message_done", "LOG6") == ("LACLINIC", "LAO", "QBP^Q11", "AA")
    (failed,) = [line for line in lines if line["event"] == "message_failed"]
    assert failed["error_type"] == "RuntimeError"
    unreadable = [line for line in lines if line["event"] == "message_unreadable"]
    assert [line["control_id"] for line in unreadable] == [""]


def test_message_too_large_says_which_message_it_was(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reject of an oversize message is logged with the fields of its MSH."""
    pipeline = MessagePipeline(
        database=db,
        routes={},
        senders=SenderPolicy({"CLINIC1": "BAY"}, "reject", "BAY"),
    )
    configure_logging("json", strict=True)
    pipeline.oversize(vxu(control_id="BIG9", dob=DOB).encode()[:400], "p", "mllp")
    text = capsys.readouterr().out
    _assert_no_phi(text)
    (line,) = _lines(text)
    assert line["event"] == "message_too_large"
    assert [line[k] for k in MESSAGE_KEYS] == ["BIG9", "CLINIC1", "BAY", "VXU^V04"]


class _Stdout(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize("tty", [True, False])
def test_auto_format_is_coloured_on_a_terminal_and_json_otherwise(
    tty: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """logging.format = auto: structlog's console renderer with colours on a TTY, one JSON object a line off it."""
    out = _Stdout(tty)
    monkeypatch.setattr("sys.stdout", out)
    configure_logging("auto", strict=True)
    structlog.get_logger().info("message_done", control_id="C1", sender="CLINIC1")
    text = out.getvalue()
    assert text.count("\n") == 1
    if tty:
        assert "\x1b[" in text  # ANSI colour
        assert re.search(r"message_done.*control_id.*C1", text)
    else:
        line = json.loads(text)
        assert (line["event"], line["control_id"]) == ("message_done", "C1")


class _Port:
    def __init__(self, port: int) -> None:
        self._port = port

    def getHost(self) -> Any:
        class _Address:
            host = "127.0.0.1"
            port = self._port

        return _Address()


def test_startup_says_once_how_the_engine_is_set_up_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Listeners, auth mode, database without password, CDSi, regions and senders; a loud warning without CDSi."""
    config = tmp_path / "cairn.toml"
    config.write_text(
        '[registry]\nunknown_sender = "reject"\n'
        '[[facilities]]\nid = "CLINIC1"\nregion = "BAY"\n'
        '[[facilities]]\nid = "LACLINIC"\nregion = "LAO"\n'
    )
    settings = load_settings(config, environ={})
    db = open_database("postgresql+psycopg://cairn:s3cretpw@127.0.0.1:1/registry")
    server = RunningServer(
        _Port(2575),
        None,
        None,
        db,
        clock=None,
        grace=0.0,
        http_port=_Port(8080),  # type: ignore[arg-type]
    )
    configure_logging("json", strict=True)
    err = io.StringIO()
    try:
        announce(settings, server, err)
    finally:
        db.close()
    logged = capsys.readouterr().out
    assert "s3cretpw" not in err.getvalue() + logged
    (warning,) = err.getvalue().splitlines()
    assert warning.startswith("cairn: WARNING: no CDSi supporting data is loaded")
    assert "Z44" in warning and "WITHOUT a forecast" in warning
    (started,) = _lines(logged)
    assert started == {
        "event": "engine_started",
        "level": "info",
        "timestamp": started["timestamp"],
        "mllp": "127.0.0.1:2575",
        "http": "127.0.0.1:8080",
        "soap": "off",
        "auth": "registered senders only (MSH-4)",
        "database": "postgresql+psycopg://cairn:***@127.0.0.1:1/registry",
        "cdsi_release": "none (Z44 carries no forecast)",
        "regions": [
            "NORCAL",
            "SAC",
            "BAY",
            "CENVAL",
            "CENCST",
            "LAO",
            "INLAND",
            "SD",
            "SJV",
        ],
        "senders": ["CLINIC1:BAY", "LACLINIC:LAO"],
    }


def test_serve_without_cdsi_data_starts_and_warns(
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No supporting data anywhere: the engine starts, logs cdsi_unavailable and says it in its summary."""
    from twisted.internet.testing import MemoryReactorClock

    monkeypatch.delenv("CAIRN_CDSI_DIR", raising=False)
    settings = with_overrides(
        load_settings(None, environ={}),
        server={"data_dir": str(tmp_path), "listen": "127.0.0.1:0"},
    )
    monkeypatch.setattr(app, "load_code_tables", lambda s: app.CodeTables.load())
    with structlog.testing.capture_logs() as logs:
        server = start_server(MemoryReactorClock(), settings, db)
    try:
        assert server.cdsi_release is None
        warnings = [e for e in logs if e["event"] == "cdsi_unavailable"]
        assert len(warnings) == 1
        assert warnings[0]["log_level"] == "warning"
        assert "Z44 queries are answered without a forecast" in str(
            warnings[0]["reason"]
        )
        summary = startup_summary(settings, server)
        assert summary["cdsi_release"] == "none (Z44 carries no forecast)"
        assert summary["auth"].startswith("open: any MSH-4 accepted")
        assert summary["http"] == "off"
        assert server.metrics is not None
        assert server.metrics.value("cairn_cdsi_loaded") == 0
    finally:
        server.sink.stop()
