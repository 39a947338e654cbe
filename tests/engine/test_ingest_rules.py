"""VXU ingest rules in process: validation, resends, matching, senders, encodings.

The same assertions the e2e tests made through ``cairn serve``, on the
pipeline the server builds (``engine.app.build_pipeline`` from the same
configuration), on SQLite and PostgreSQL. The wire (framing, oversize,
idle and many connections, SIGTERM) stays in tests/e2e/test_vxu_ingest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import Database
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code, segments
from tests.support.registry import InProcessRegistry, build_registry


def _counts(registry: InProcessRegistry) -> tuple[int, int, int]:
    patients = registry.query("SELECT count(*) FROM patients")[0][0]
    doses = registry.query("SELECT count(*) FROM vaccinations")[0][0]
    journal = registry.query("SELECT count(*) FROM message_journal")[0][0]
    return int(str(patients)), int(str(doses)), int(str(journal))


def _unique_control_id(raw: bytes, suffix: str) -> bytes:
    """Several samples are variants of one NIST message with the same MSH-10; make each unique."""
    text = raw.decode("latin-1")
    msh_at = text.find("MSH")
    sep = text[msh_at + 3]
    end = min(
        (i for i in (text.find("\r", msh_at), text.find("\n", msh_at)) if i >= 0),
        default=len(text),
    )
    fields = text[msh_at:end].split(sep)
    fields[9] = f"{fields[9]}-{suffix}"
    return (text[:msh_at] + sep.join(fields) + text[end:]).encode("latin-1")


#: What each sample VXU gets, and the (ERR-2, ERR-3) of its first error, if any.
SAMPLE_ANSWERS = {
    "vxu-aidbox-base.hl7": ("AA", None),
    "vxu-aidbox-entered-in-error.hl7": ("AE", ("ORC^1^3", "204")),
    "vxu-aidbox-multiple-orders.hl7": ("AA", None),
    "vxu-aidbox-not-administered.hl7": ("AA", None),
    "vxu-aira-empty-in1-in2.hl7": ("AA", None),
    "vxu-aira-historical-then-admin-varicella.hl7": ("AA", None),
    "vxu-aira-mmr-no-pid1.hl7": ("AA", None),
    "vxu-aira-nte-after-obx.hl7": ("AA", None),
    "vxu-cdc-covid-adult-z22.hl7": ("AA", None),
    "vxu-cdc-covid-deferral.hl7": ("AA", None),
    "vxu-cdc-covid-serologic-evidence.hl7": ("AA", None),
    "vxu-cdc-extract-default.hl7": ("AE", ("RXA^1^5^1^1", "103")),
    "vxu-cdc-extract-refusal-minimal.hl7": ("AE", ("RXA^1^5^1^1", "103")),
    "vxu-edge-admin-date-future.hl7": ("AE", ("RXA^1^3", "102")),
    "vxu-edge-aidbox-no-orc-identifiers.hl7": ("AE", ("ORC^1^3", "101")),
    "vxu-edge-aidbox-no-orc.hl7": ("AE", ("ORC^1", "100")),
    "vxu-edge-batch-envelope-ihs.hl7": ("AA", None),
    "vxu-edge-corrupt-pid-segment-id.hl7": ("AE", ("PID^1", "100")),
    "vxu-edge-izgw-orc-without-rxa-text-race.hl7": ("AE", ("OBX^4", "100")),
    "vxu-edge-missing-admin-date.hl7": ("AE", ("RXA^1^3", "101")),
    "vxu-edge-missing-race.hl7": ("AA", None),
    "vxu-edge-missing-vaccine-code.hl7": ("AE", ("RXA^1^5", "101")),
    "vxu-edge-partial-admin-date.hl7": ("AE", ("PID^1^7", "102")),
    "vxu-edge-pid-missing-name.hl7": ("AE", ("PID^1^5^1^1", "101")),
    "vxu-edge-segment-out-of-order.hl7": ("AE", ("PD1^1", "100")),
    "vxu-edge-stray-char-in-cvx.hl7": ("AA", None),
    "vxu-edge-unknown-cvx-xxx.hl7": ("AE", ("RXA^1^5^1^1", "103")),
    "vxu-edge-unknown-who-segment.hl7": ("AE", ("RXA^1^5^1^1", "103")),
    "vxu-edge-zzz-z-segment.hl7": ("AA", None),
    "vxu-fhirconv-nist-ad-2.1-variant.hl7": ("AA", None),  # NDC-only RXA-5, mapped
    "vxu-fhirconv-vxu-v04-02.hl7": ("AR", ("MSH^1^12", "203")),
    "vxu-ig-example1-basic-z22.hl7": ("AA", None),
    "vxu-ihs-2013-multi-order-vis-groups.hl7": ("AE", ("RXA^2^3", "102")),
    "vxu-ihs-2013-varicella-history-998.hl7": ("AA", None),
    "vxu-mcir-dtap-hepb-ipv-msh8.hl7": ("AA", None),
    "vxu-mcir-ois-rxa-without-orc.hl7": ("AE", ("ORC^3", "100")),
    "vxu-nist-iz-001-admin-child-flu.hl7": ("AA", None),
    "vxu-nist-iz-004-admin-adult-hepa.hl7": ("AA", None),
    "vxu-nist-iz-010-consent-pd1.hl7": ("AA", None),
    "vxu-nist-iz-013-parent-refusal-mmr.hl7": ("AA", None),
    "vxu-nist-iz-019-complete-record.hl7": ("AA", None),
    "vxu-nist-iz-1.1-admin-child-max.hl7": ("AA", None),
    "vxu-ois-dqa-generated-a.hl7": ("AA", None),
    "vxu-ois-dqa-generated-b.hl7": ("AA", None),
    "vxu-ois-multiple-orders-pv1.hl7": ("AA", None),
    "vxu-rpms-ois-three-orders-a.hl7": ("AA", None),
}


@pytest.fixture(name="registry")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    """The e2e servers' pipeline in process, on SQLite then PostgreSQL."""
    return build_registry(db, tmp_path, monkeypatch)


def test_ingest_resend_gets_original_response_and_changes_nothing(
    registry: InProcessRegistry,
) -> None:
    """The same (MSH-4, MSH-10) sent twice gets byte-identical answers and is stored once."""
    message = vxu(control_id="RESEND-1", doses=[Dose()])
    first = registry.send(message)
    before = _counts(registry)
    second = registry.send(message)
    assert first == second
    assert _counts(registry) == before


def test_ingest_same_patient_twice_is_one_patient(registry: InProcessRegistry) -> None:
    """Two messages with the same identifier and authority update one patient."""
    registry.send(vxu(control_id="P-1", doses=[Dose(filler="D1")]))
    registry.send(vxu(control_id="P-2", doses=[Dose(filler="D2", cvx="20")]))
    patients, doses, _ = _counts(registry)
    assert (patients, doses) == (1, 2)


def test_ingest_future_administration_date_rejects_the_dose(
    registry: InProcessRegistry,
) -> None:
    """A future RXA-3 gives AE with an ERR on RXA-3 and stores the other dose only."""
    reply = registry.send(
        vxu(control_id="FUT-1", doses=[Dose(date="20990101"), Dose(date="20240110")])
    )
    assert msa_code(reply) == "AE"
    located = [e for e in errs(reply) if e[2].startswith("RXA^1^3")]
    assert located and located[0][4] == "E" and "future" in located[0][8]
    assert registry.query("SELECT administered_on FROM vaccinations") == [
        ("2024-01-10",)
    ]


def test_ingest_unknown_cvx_is_reported(registry: InProcessRegistry) -> None:
    """An unknown CVX gives AE with 103 on RXA-5; with no other dose nothing is stored."""
    reply = registry.send(vxu(control_id="CVX-1", doses=[Dose(cvx="XXX")]))
    assert msa_code(reply) == "AE"
    assert any(
        e[2].startswith("RXA^1^5") and e[3].startswith("103") for e in errs(reply)
    )
    assert _counts(registry)[:2] == (0, 0)


def test_ingest_missing_pid3_rejects_message(registry: InProcessRegistry) -> None:
    """A PID without identifiers gives AE with 101 on PID-3 and stores nothing."""
    pid = "PID|1||||Zzcanaryfam^Qqcanarygiv^^^^^L||20230105|F"
    reply = registry.send(vxu(control_id="NOPID3", pid=pid, doses=[Dose()]))
    assert msa_code(reply) == "AE"
    assert any(
        e[2] == "PID^1^3" and e[3].startswith("101") and e[4] == "E"
        for e in errs(reply)
    )
    assert _counts(registry)[:2] == (0, 0)


def test_ingest_wrong_version_is_rejected_with_203(registry: InProcessRegistry) -> None:
    """MSH-12 other than 2.5.1 gives AR with 203 and stores nothing."""
    reply = registry.send(vxu(control_id="V231", version="2.3.1", doses=[Dose()]))
    assert msa_code(reply) == "AR"
    assert errs(reply)[0][2] == "MSH^1^12"
    assert errs(reply)[0][3].startswith("203")
    assert _counts(registry)[:2] == (0, 0)


def test_ingest_unsupported_message_type_is_rejected_with_200(
    registry: InProcessRegistry,
) -> None:
    """An ADT message gives AR with 200 on MSH-9."""
    reply = registry.send(vxu(control_id="ADT1", message_type="ADT^A04^ADT_A01"))
    assert msa_code(reply) == "AR"
    assert errs(reply)[0][3].startswith("200")
    assert segments(reply)[0][8] == "ACK^A04^ACK"


def test_ingest_unknown_sender_is_rejected_by_production_policy(
    registry: InProcessRegistry,
) -> None:
    """A sending facility that is not configured gets AR naming MSH-4."""
    reply = registry.send(vxu(control_id="WHO-1", sender="STRANGER", doses=[Dose()]))
    assert msa_code(reply) == "AR"
    assert errs(reply)[0][2] == "MSH^1^4"
    assert _counts(registry)[:2] == (0, 0)


def test_ingest_frame_without_msh_is_rejected(registry: InProcessRegistry) -> None:
    """A frame that holds segments but no MSH gets AR."""
    reply = registry.send("PID|1||123^^^A^MR||Doe^Jane||20200101|F\r")
    assert msa_code(reply) == "AR"


def test_ingest_latin1_bytes_declared_utf8_are_read_with_a_warning(
    registry: InProcessRegistry,
) -> None:
    """Latin-1 bytes in a message that declares UTF-8 are decoded and reported on MSH-18."""
    text = vxu(control_id="LATIN1", doses=[Dose()], family="Zzcanaryfam\u00e9")
    msh, rest = text.split("\r", 1)
    msh_fields = msh.split("|")
    msh_fields += [""] * (21 - len(msh_fields))
    msh_fields[17] = "UNICODE UTF-8"
    raw = ("|".join(msh_fields) + "\r" + rest).encode("latin-1")
    reply = registry.send(raw)
    assert msa_code(reply) == "AA"
    assert any(e[2] == "MSH^1^18" and e[4] == "W" for e in errs(reply))
    assert registry.query("SELECT family_name FROM patients") == [
        ("Zzcanaryfam\u00e9",)
    ]


def test_ingest_unusual_encoding_characters_are_honoured(
    registry: InProcessRegistry,
) -> None:
    """A message with MSH-1/2 other than |^~\\& is read as declared and answered in kind."""
    text = vxu(control_id="ODD-1", doses=[Dose()])
    odd = (
        text.replace("|", "#")
        .replace("^", "$")
        .replace("~", "*")
        .replace("&", "@")
        .replace("\\", "%")
    )
    odd = odd.replace("MSH#$*%@#", "MSH#$*%@#", 1)
    reply = registry.send(odd)
    fields = reply.decode().split("\r")[1].split("#")
    assert fields[:3] == ["MSA", "AA", "ODD-1"]
    assert registry.query("SELECT cvx FROM vaccinations") == [("08",)]


def test_ingest_every_sample_vxu_gets_the_answer_the_guide_calls_for(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, samples_dir: Path
) -> None:
    """Every sample VXU is answered as the guide calls for, MSA-2 echoing its MSH-10.

    Runs with the development policy (unknown senders accepted with a
    warning), since the public samples come from senders no registry knows.
    """
    from parsers.batch import iter_messages

    registry = build_registry(
        db, tmp_path, monkeypatch, config_text='[logging]\nformat = "json"\n'
    )
    seen = {}
    for index, path in enumerate(sorted(samples_dir.glob("vxu-*.hl7"))):
        (message,) = list(iter_messages(path.read_bytes()))
        message = _unique_control_id(message, str(index))
        reply = registry.send(message)
        control_id = message.decode("latin-1").split("\r")[0].split("|")[9]
        assert segments(reply)[1][2] == control_id, path.name
        first_error = next(
            ((e[2], e[3].split("^")[0]) for e in errs(reply) if e[4] == "E"), None
        )
        seen[path.name] = (msa_code(reply), first_error)
    assert seen == {name: SAMPLE_ANSWERS[name] for name in seen}
    assert len(seen) >= 40
    patients = registry.query("SELECT count(*) FROM patients")[0][0]
    assert isinstance(patients, int)
    assert patients >= 18
