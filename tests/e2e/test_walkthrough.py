"""The README's walk-through, run as written: serve, send the samples, read the journal.

A new user runs ``cairn serve`` with the built-in development settings, then
``cairn send HOST:PORT ../shared/hl7/samples/ config/examples/queries/``, ``cairn messages``
and ``cairn messages show N``. These tests run exactly those commands (the
server on a free port, SQLite and PostgreSQL) and check what the user sees:
the VXUs answered AA except the samples that are wrong on purpose, and the
queries about a sample patient answered with a Z32 and a Z42.

No query in the shared samples is about a patient of the shared VXU samples
(they were written for other registries' test patients), so they all answer
NF whatever the order; ``config/examples/queries/`` holds two queries about the patient of
the NIST IZ-019 sample, which is what makes the demo show a history and a
forecast.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from parsers.batch import read_batch
from parsers.client import Answer, expectation
from tests.conftest import REPO, SHARED, shared_path
from tests.e2e.conftest import ServerProcess, start_server
from tests.support.messages import Dose, vxu

pytestmark = pytest.mark.e2e

#: The development defaults (no [[facilities]]: every sender is accepted
#: into BAY with a warning), with JSON logs so the canary check can read them.
DEVELOPMENT = '[logging]\nformat = "json"\n'


AA = frozenset({"AA"})
ERROR = frozenset({"AE", "AR"})
EITHER = frozenset({"AA", "AE"})

#: What each VXU sample should get, and why when it is not AA.
VXU_EXPECTED: dict[str, frozenset[str]] = {
    "vxu-aidbox-base.hl7": AA,
    # RXA-21 D for ORC-3 65933, which no sample ever reported: ERR 204.
    "vxu-aidbox-entered-in-error.hl7": ERROR,
    "vxu-aidbox-multiple-orders.hl7": AA,
    # RXA-20 RE without RXA-18: the IG's rule, read as a warning or an error.
    "vxu-aidbox-not-administered.hl7": EITHER,
    "vxu-aira-empty-in1-in2.hl7": AA,
    "vxu-aira-historical-then-admin-varicella.hl7": AA,
    "vxu-aira-mmr-no-pid1.hl7": AA,
    "vxu-aira-nte-after-obx.hl7": AA,
    "vxu-cdc-covid-adult-z22.hl7": AA,
    "vxu-cdc-covid-deferral.hl7": AA,
    "vxu-cdc-covid-serologic-evidence.hl7": AA,
    # CVX 902 is not in CDC's CVX table (the extract validator's placeholder).
    "vxu-cdc-extract-default.hl7": ERROR,
    "vxu-cdc-extract-refusal-minimal.hl7": ERROR,
    "vxu-edge-admin-date-future.hl7": ERROR,
    "vxu-edge-aidbox-no-orc-identifiers.hl7": ERROR,
    "vxu-edge-aidbox-no-orc.hl7": ERROR,
    "vxu-edge-batch-envelope-ihs.hl7": AA,
    "vxu-edge-corrupt-pid-segment-id.hl7": ERROR,
    "vxu-edge-izgw-orc-without-rxa-text-race.hl7": ERROR,
    "vxu-edge-missing-admin-date.hl7": ERROR,
    "vxu-edge-missing-race.hl7": AA,
    "vxu-edge-missing-vaccine-code.hl7": ERROR,
    "vxu-edge-partial-admin-date.hl7": ERROR,
    "vxu-edge-pid-missing-name.hl7": ERROR,
    "vxu-edge-segment-out-of-order.hl7": ERROR,
    "vxu-edge-stray-char-in-cvx.hl7": AA,
    "vxu-edge-unknown-cvx-xxx.hl7": ERROR,
    # The unknown WHO segment alone would be a warning; its RXA-5 is CVX 902.
    "vxu-edge-unknown-who-segment.hl7": ERROR,
    "vxu-edge-zzz-z-segment.hl7": AA,
    "vxu-fhirconv-nist-ad-2.1-variant.hl7": AA,
    # MSH-12 2.8: an unsupported version is AR (IG).
    "vxu-fhirconv-vxu-v04-02.hl7": ERROR,
    "vxu-ig-example1-basic-z22.hl7": AA,
    # One of its doses is dated before the patient's birth date.
    "vxu-ihs-2013-multi-order-vis-groups.hl7": ERROR,
    "vxu-ihs-2013-varicella-history-998.hl7": AA,
    "vxu-mcir-dtap-hepb-ipv-msh8.hl7": AA,
    # An RXA without ORC is rejected (README decision).
    "vxu-mcir-ois-rxa-without-orc.hl7": ERROR,
    "vxu-nist-iz-001-admin-child-flu.hl7": AA,
    "vxu-nist-iz-004-admin-adult-hepa.hl7": AA,
    "vxu-nist-iz-010-consent-pd1.hl7": AA,
    "vxu-nist-iz-013-parent-refusal-mmr.hl7": AA,
    "vxu-nist-iz-019-complete-record.hl7": AA,
    "vxu-nist-iz-1.1-admin-child-max.hl7": AA,
    "vxu-ois-dqa-generated-a.hl7": AA,
    "vxu-ois-dqa-generated-b.hl7": AA,
    "vxu-ois-multiple-orders-pv1.hl7": AA,
    "vxu-rpms-ois-three-orders-a.hl7": AA,
}


def _vxu_params() -> list[object]:
    params: list[object] = []
    for name in sorted(VXU_EXPECTED):
        params.append(pytest.param(name, id=name))
    return params


@dataclass
class Walkthrough:
    """The server and what each walk-through command printed."""

    server: ServerProcess
    samples: Path
    send: subprocess.CompletedProcess[str]

    def cairn(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a cairn command against the walk-through's database."""
        where = (
            ["--database", self.server.database_url]
            if self.server.database_url
            else ["--data-dir", str(self.server.data_dir)]
        )
        return _cairn(*args, *where)

    def codes_by_file(self) -> dict[str, set[str]]:
        """Each file's answer codes, from send's summary (files not listed got AA)."""
        listed: dict[str, set[str]] = {}
        for line in self.send.stdout.splitlines():
            match = re.match(r"^  (.+?): (.+?)(?: \(.*\))?$", line)
            if match:
                codes = {part.rsplit(" ", 1)[0] for part in match.group(2).split(", ")}
                listed[Path(match.group(1)).name] = codes
        return listed


def _cairn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(name="walkthrough", scope="module", params=["sqlite", "postgresql"])
def _walkthrough(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Walkthrough]:
    """Serve with the development defaults and send the samples and examples, once per backend."""
    samples = shared_path(
        "CAIRN_HL7_SAMPLES", SHARED / "hl7" / "samples", "HL7 samples"
    )
    extra: list[str] = []
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_databases").new_url()
        upgraded = _cairn("db", "upgrade", "--database", url)
        assert upgraded.returncode == 0, upgraded.stderr
        extra = ["--database", url]
    server = start_server(
        tmp_path_factory.mktemp(request.param), *extra, config_text=DEVELOPMENT
    )
    try:
        sent = _cairn(
            "send",
            f"{server.host}:{server.port}",
            str(samples),
            "config/examples/queries/",
        )
        yield Walkthrough(server, samples, sent)
    finally:
        assert server.stop() == 0, "".join(server.output)[-3000:]


def test_walkthrough_send_gets_every_answer_and_exits_0(
    walkthrough: Walkthrough,
) -> None:
    """cairn send of the samples and examples gets every answer due, and exits 0."""
    assert walkthrough.send.returncode == 0, (
        walkthrough.send.stdout + walkthrough.send.stderr
    )
    assert "no answer 0" in walkthrough.send.stdout


def test_walkthrough_every_vxu_sample_has_a_decided_outcome(
    walkthrough: Walkthrough,
) -> None:
    """Every VXU file in the samples folder is in the table of expected answers."""
    names = {p.name for p in walkthrough.samples.glob("vxu-*.hl7")}
    assert names <= set(VXU_EXPECTED)


@pytest.mark.parametrize("name", _vxu_params())
def test_walkthrough_vxu_sample_gets_its_expected_answer(
    walkthrough: Walkthrough, name: str
) -> None:
    """A well-formed VXU sample gets AA; one that is wrong on purpose gets AE or AR."""
    if not (walkthrough.samples / name).exists():
        pytest.skip(f"{name} is not in this samples folder")
    codes = walkthrough.codes_by_file().get(name, {"AA"})
    assert codes <= VXU_EXPECTED[name], f"{name}: {sorted(codes)}"


def test_walkthrough_sends_vxus_before_queries(walkthrough: Walkthrough) -> None:
    """In the journal, the first message is a VXU and no VXU comes after the first query."""
    listing = walkthrough.cairn("messages", "--limit", "100000").stdout.splitlines()
    # Columns of `cairn messages`: the type is characters 79-88; newest first.
    kinds = [row[79:89].strip().split("^")[0] for row in reversed(listing[1:-1])]
    assert kinds[0] == "VXU"
    assert "VXU" not in kinds[kinds.index("QBP") :]


@pytest.mark.parametrize(
    ("control_id", "profile"), [("DEMO-Z34-1", "Z32"), ("DEMO-Z44-1", "Z42")]
)
def test_walkthrough_demo_queries_answer_with_history(
    walkthrough: Walkthrough, control_id: str, profile: str
) -> None:
    """The example Z34 and Z44 about the NIST IZ-019 patient answer Z32 and Z42, not NF."""
    listing = walkthrough.cairn("messages", "--control-id", control_id)
    rows = listing.stdout.splitlines()[1:-1]
    assert len(rows) == 1, listing.stdout
    assert f" AA  {profile}" in rows[0]
    shown = walkthrough.cairn("messages", "show", rows[0].split()[0])
    assert shown.returncode == 0
    response = shown.stdout.split("--- response\n", 1)[1]
    assert f"|{profile}^CDCPHINVS" in response.splitlines()[0]
    assert f"QAK|{control_id}|OK|" in response
    assert "141^Influenza^CVX" in response  # a dose the IZ-019 sample reported


def test_walkthrough_messages_show_1_is_the_first_vxu_with_its_ack(
    walkthrough: Walkthrough,
) -> None:
    """cairn messages show 1, as the README says, shows a VXU and the ACK it got."""
    shown = walkthrough.cairn("messages", "show", "1")
    assert shown.returncode == 0, shown.stderr
    message, response = shown.stdout.split("--- message\n", 1)[1].split(
        "--- response\n"
    )
    assert "|VXU^V04" in message.splitlines()[0]
    assert "\nMSA|AA|" in "\n" + response


def test_walkthrough_journal_has_a_row_for_every_answer(
    walkthrough: Walkthrough,
) -> None:
    """Every message that was answered has its own journal row (none of the samples is a resend)."""
    due = 0
    contents: set[bytes] = set()
    for path in [
        *walkthrough.samples.glob("*.hl7"),
        *(REPO / "config" / "examples" / "queries").glob("*.hl7"),
    ]:
        for message in read_batch(path.read_bytes()).messages:
            if expectation(message).answer is not Answer.NEVER:
                due += 1
                contents.add(message)
    assert len(contents) == due  # no exact resend among them
    listing = walkthrough.cairn("messages", "--limit", "100000").stdout
    assert listing.splitlines()[-1] == f"{due} message(s)"


def test_send_to_the_engine_does_not_wait_out_msh16_er_or_ne(
    server: ServerProcess, tmp_path: Path
) -> None:
    """A clean VXU with MSH-16 ER (rightly unanswered) and one with NE: exit 0 well before the timeout."""
    er = tmp_path / "er.hl7"
    er.write_bytes(vxu(control_id="ER-1", msh16="ER", doses=[Dose()]).encode())
    ne = tmp_path / "ne.hl7"
    ne.write_bytes(
        vxu(control_id="NE-1", msh16="NE", doses=[Dose(filler="F2")]).encode()
    )
    started = time.monotonic()
    sent = _cairn(
        "send", f"{server.host}:{server.port}", str(er), str(ne), "--grace", "1"
    )
    elapsed = time.monotonic() - started
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "no answer (as MSH-16 allows) 1" in sent.stdout
    assert "not answered (ACK/RSP or MSH-16 NE) 1" in sent.stdout
    assert elapsed < 25  # the --timeout default is 30 s
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = server.query(
            "SELECT control_id, ack_code FROM message_journal ORDER BY control_id"
        )
        if len(rows) == 2:
            break
        time.sleep(0.1)
    assert rows == [("ER-1", "AA"), ("NE-1", "AA")]
