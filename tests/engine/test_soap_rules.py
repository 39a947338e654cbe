"""The SOAP service's rules in process: credentials, facilityID, MSH-4, size, the pipeline.

``SoapGateway`` on the pipeline ``cairn serve`` builds (tests/support/registry),
on SQLite and PostgreSQL. The people on the other side are a clinic with an
account, a clinic that guesses, a disabled user and an organization that
writes another's facility into MSH-4. The wire (zeep reading the WSDL, TLS)
is in tests/e2e/test_soap.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.python.failure import Failure

from engine.access import Session
from engine.pipeline import Inbound
from engine.soap import SoapGateway
from handlers.identity import BAD_CREDENTIALS, IdentityService, Principal, Refusal
from handlers.identity import DISABLED as DISABLED_REASON
from handlers.roles import OrgType, role_of
from parsers.soap import SECURITY_TEXT, FaultKind, SoapFault, SubmitSingleMessage
from storage import Database
from tests.e2e.test_queries import qbp
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code, segments
from tests.support.registry import InProcessRegistry, build_registry


def _org(
    id_: int, code: str, facility: str, region: str, org_type: OrgType
) -> Principal:
    return Principal(
        organization_id=id_,
        organization=code,
        org_type=org_type,
        role=role_of(org_type),
        region=region,
        facility_ids=frozenset({facility}),
    )


CLINIC = _org(1, "CLINIC-ORG", "CLINIC1", "BAY", OrgType.PROVIDER)
LA = _org(2, "LA-ORG", "LACLINIC", "LAO", OrgType.PROVIDER)
SCHOOL = _org(3, "SCHOOL-ORG", "SCHOOLRN", "BAY", OrgType.SCHOOL)

#: username -> (password, organization); "disabled" has the right password
#: but its account is off, which authenticate reports as a refusal too.
ACCOUNTS = {
    "clinic1": ("correct horse battery", CLINIC),
    "la": ("la la la la la la", LA),
    "school": ("school school school", SCHOOL),
}
DISABLED = {"disabled"}


def _authenticate(calls: list[str]) -> Callable[[str, str], Principal | Refusal]:
    """IdentityService.authenticate's contract, without argon2 (tested in tests/handlers)."""

    def authenticate(username: str, password: str) -> Principal | Refusal:
        calls.append(username)
        account = ACCOUNTS.get(username)
        if username in DISABLED:
            return Refusal(DISABLED_REASON, "disabled")
        if account is None or account[0] != password:
            return Refusal(BAD_CREDENTIALS, "bad credentials")
        return account[1]

    return authenticate


@dataclass
class Soap:
    """A gateway on the in-process registry; what authenticate was asked."""

    registry: InProcessRegistry
    gateway: SoapGateway
    auth_calls: list[str]

    def submit(
        self,
        message: str,
        *,
        username: str | None = "clinic1",
        password: str | None = None,
        facility: str | None = "CLINIC1",
    ) -> str | SoapFault:
        if password is None and username in ACCOUNTS:
            password = ACCOUNTS[username][0]
        result: list[str | SoapFault] = []
        d = self.gateway.submit_single_message(
            SubmitSingleMessage(username, password, facility, message),
            "10.1.1.1:5",
            "soap",
        )

        def keep(value: str | Failure) -> None:
            if isinstance(value, Failure):
                assert isinstance(value.value, SoapFault), value
                result.append(value.value)
            else:
                result.append(value)

        d.addBoth(keep)
        assert result, "the gateway did not answer synchronously in process"
        return result[0]

    def journal(self) -> int:
        return int(
            str(self.registry.query("SELECT count(*) FROM message_journal")[0][0])
        )


@pytest.fixture(name="soap")
def _soap(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Soap:
    registry = build_registry(db, tmp_path, monkeypatch)
    calls: list[str] = []

    def submit(
        raw: bytes, peer: str, listener: str, session: Session
    ) -> Deferred[bytes]:
        (outcome,) = registry.pipeline.process_batch(
            [Inbound(raw, peer, listener, principal=session.principal)]
        )
        return succeed(outcome.payload)

    identity = IdentityService(
        db.transaction,
        now=lambda: datetime.now(UTC),
        hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        reading=db.reading,
    )
    gateway = SoapGateway(
        authenticate=_authenticate(calls),
        audit=identity.audit_refusal,
        submit=submit,
        run_blocking=maybeDeferred,
        max_message_bytes=registry.settings.server.max_message_bytes,
    )
    return Soap(registry, gateway, calls)


def _ack(answer: str | SoapFault) -> bytes:
    assert isinstance(answer, str), answer
    return answer.encode("utf-8")


def test_vxu_over_soap_is_stored_and_answered_with_its_ack(soap: Soap) -> None:
    """A clinic's VXU with LF terminators (as XML leaves them) is stored; the return is the AA."""
    message = vxu(control_id="SOAP-VXU-1", doses=[Dose()]).replace("\r", "\n")
    ack = _ack(soap.submit(message))
    assert msa_code(ack) == "AA"
    assert next(s for s in segments(ack) if s[0] == "MSA")[2] == "SOAP-VXU-1"
    rows = soap.registry.query(
        "SELECT sender, control_id, ack_code, peer FROM message_journal"
    )
    assert rows == [("CLINIC1", "SOAP-VXU-1", "AA", "10.1.1.1:5")]
    assert soap.registry.query("SELECT count(*) FROM vaccinations")[0][0] == 1


def test_z44_over_soap_returns_the_rsp(soap: Soap) -> None:
    """A query goes through the same pipeline; the return is the RSP^K11."""
    soap.submit(vxu(control_id="SOAP-Z44-V", doses=[Dose()]))
    rsp = _ack(
        soap.submit(
            qbp(
                query="Z44",
                control_id="SOAP-Z44",
                ids="MRN7Z9Q4X1^^^EHR^MR",
                name="Zzcanaryfam^Qqcanarygiv",
                dob="20230105",
                sex="F",
            )
        )
    )
    msh = segments(rsp)[0]
    assert msh[8] == "RSP^K11^RSP_K11"
    assert msa_code(rsp) == "AA"
    assert any(s[0] == "RXA" for s in segments(rsp))


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("clinic1", "wrong password"),
        ("nobody", "correct horse battery"),
        ("disabled", "whatever it is"),
        ("", "correct horse battery"),
        (None, None),
        ("clinic1", ""),
    ],
)
def test_refused_credentials_are_one_security_fault_and_store_nothing(
    soap: Soap, username: str | None, password: str | None
) -> None:
    """Wrong password, unknown or disabled user, no credentials: the same SecurityFault, no row."""
    answer = soap.submit(
        vxu(control_id="SOAP-BAD", doses=[Dose()]),
        username=username,
        password=password or "",
    )
    assert isinstance(answer, SoapFault)
    assert (answer.kind, answer.text) == (FaultKind.SECURITY, SECURITY_TEXT)
    assert soap.journal() == 0


def test_facility_id_of_another_organization_is_a_security_fault(soap: Soap) -> None:
    """The LA organization naming CLINIC1 in facilityID is refused before the pipeline."""
    answer = soap.submit(
        vxu(control_id="SOAP-FAC", sender="LACLINIC"), username="la", facility="CLINIC1"
    )
    assert isinstance(answer, SoapFault)
    assert answer.kind is FaultKind.SECURITY
    assert soap.journal() == 0
    ((requester, outcome, detail),) = soap.registry.query(
        "SELECT requester, outcome, detail FROM audit_log WHERE action = 'authenticate'"
    )
    assert (requester, outcome) == ("LA-ORG", "refused")
    assert "SOAP facilityID" in str(detail)


def test_empty_facility_id_leaves_the_msh4_check_to_the_pipeline(soap: Soap) -> None:
    """facilityID is optional in the WSDL: without it, MSH-4 still has to be the org's."""
    ack = _ack(soap.submit(vxu(control_id="SOAP-NOFAC", doses=[Dose()]), facility=None))
    assert msa_code(ack) == "AA"


@pytest.mark.parametrize(
    "msh4",
    ["CLINIC2", "CLINIC2^1.2.840.1^ISO", "^1.2.840.99^ISO", ""],
)
def test_msh4_not_of_the_authenticated_organization_gets_ar_naming_msh4(
    soap: Soap, msh4: str
) -> None:
    """Another clinic's MSH-4, in any form (namespace, universal id, empty): AR at MSH-4, nothing kept."""
    answer = _ack(
        soap.submit(vxu(control_id="SOAP-SPOOF", sender=msh4, doses=[Dose()]))
    )
    assert msa_code(answer) == "AR"
    (err,) = errs(answer)
    assert err[2] == "MSH^1^4"
    assert "facility ids of" in err[8]
    assert soap.journal() == 0
    assert soap.registry.query(
        "SELECT requester, outcome FROM audit_log WHERE action = 'authenticate'"
    ) == [("CLINIC-ORG", "refused-msh4")]
    assert soap.registry.query("SELECT count(*) FROM patients")[0][0] == 0


def test_spoofer_cannot_replay_or_preempt_another_clinics_control_id(
    soap: Soap,
) -> None:
    """CLINIC2's message resent under CLINIC2's MSH-4 by CLINIC1's org: AR, not CLINIC2's answer.

    And CLINIC2's next message with that control id is new, with no
    "control id reused" warning planted by the spoofer.
    """
    theirs = vxu(control_id="C2-100", sender="CLINIC2", doses=[Dose()])
    # CLINIC2 sends over open MLLP (no principal): trusted, it is registered.
    assert msa_code(soap.registry.send(theirs)) == "AA"
    assert msa_code(_ack(soap.submit(theirs))) == "AR"
    spoofed_next = vxu(control_id="C2-101", sender="CLINIC2", doses=[Dose(cvx="03")])
    assert msa_code(_ack(soap.submit(spoofed_next))) == "AR"
    real_next = vxu(control_id="C2-101", sender="CLINIC2", doses=[Dose(cvx="20")])
    reply = soap.registry.send(real_next)
    assert msa_code(reply) == "AA"
    assert not [e for e in errs(reply) if e[2] == "MSH^1^10"]


def test_organization_region_is_where_its_data_goes(soap: Soap) -> None:
    """An organization with a region files there, whatever [[facilities]] says."""
    ack = _ack(
        soap.submit(
            vxu(control_id="SOAP-LA", sender="LACLINIC", doses=[Dose()]),
            username="la",
            facility="LACLINIC",
        )
    )
    assert msa_code(ack) == "AA"
    assert soap.registry.query("SELECT region FROM message_journal") == [("LAO",)]


def test_too_large_message_is_refused_before_any_password_is_checked(
    soap: Soap,
) -> None:
    """Over server.max_message_bytes: MessageTooLargeFault, authenticate never runs, nothing kept."""
    limit = soap.registry.settings.server.max_message_bytes
    big = vxu(control_id="SOAP-BIG", extra_segments=["NTE|1||" + "x" * limit])
    answer = soap.submit(big)
    assert isinstance(answer, SoapFault)
    assert answer.kind is FaultKind.MESSAGE_TOO_LARGE
    assert f"{limit:,}" in answer.text
    assert soap.auth_calls == []
    assert soap.journal() == 0


def test_school_may_not_submit_over_soap_either(soap: Soap) -> None:
    """Roles are the registry's rules: a school's VXU over SOAP gets AR, as over MLLP."""
    ack = _ack(
        soap.submit(
            vxu(control_id="SOAP-SCHOOL", sender="SCHOOLRN", doses=[Dose()]),
            username="school",
            facility="SCHOOLRN",
        )
    )
    assert msa_code(ack) == "AR"
    assert soap.registry.query("SELECT count(*) FROM vaccinations")[0][0] == 0


def test_hl7_junk_is_answered_in_hl7_not_as_a_fault(soap: Soap) -> None:
    """Content problems are the ACK's business (REFERENCE §13): junk gets an AR, not a fault."""
    answer = _ack(soap.submit("this is not HL7 at all"))
    assert msa_code(answer) == "AR"


def test_ne_message_returns_an_empty_return(soap: Soap) -> None:
    """MSH-16 NE asks for no answer: the return is empty, the message is still stored."""
    answer = soap.submit(vxu(control_id="SOAP-NE", doses=[Dose()], msh16="NE"))
    assert answer == ""
    assert soap.journal() == 1


def test_every_sample_vxu_over_soap_gets_the_answer_it_gets_over_mllp(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, samples_dir: Path
) -> None:
    """The public sample VXUs, wrapped as an EHR's toolkit would, get MLLP's answers.

    Each sample travels as XML text (CRs turned to LF, as XML parsing
    leaves them; delimiters escaped), through the envelope codec and the
    gateway, as an organization that owns its MSH-4. MSA-1 and the first
    error must be those tests/engine/test_ingest_rules.py expects over MLLP:
    one pipeline. A sample with an empty MSH-4 gets one filled in: an
    authenticated sender must name its facility.
    """
    from xml.sax.saxutils import escape

    from parsers import decode_message, read_header, tokenize
    from parsers.batch import iter_messages
    from parsers.soap import read_request
    from tests.engine.test_ingest_rules import SAMPLE_ANSWERS, _unique_control_id

    registry = build_registry(
        db, tmp_path, monkeypatch, config_text='[logging]\nformat = "json"\n'
    )
    owners: dict[str, Principal] = {}

    def authenticate(username: str, password: str) -> Principal | Refusal:
        return owners[username]

    def submit(
        raw: bytes, peer: str, listener: str, session: Session
    ) -> Deferred[bytes]:
        (outcome,) = registry.pipeline.process_batch(
            [Inbound(raw, peer, listener, principal=session.principal)]
        )
        return succeed(outcome.payload)

    gateway = SoapGateway(
        authenticate=authenticate,
        submit=submit,
        run_blocking=maybeDeferred,
        max_message_bytes=registry.settings.server.max_message_bytes,
    )
    seen = {}
    for index, path in enumerate(sorted(samples_dir.glob("vxu-*.hl7"))):
        (raw,) = list(iter_messages(path.read_bytes()))
        text = decode_message(_unique_control_id(raw, f"soap{index}")).text
        facility = read_header(tokenize(text).msh).sending_facility
        ids = frozenset(p for p in (facility.namespace, facility.universal_id) if p)
        if not ids:
            # An authenticated sender must name its facility (an empty MSH-4
            # is AR at MSH-4, tested above): this EHR fills it in.
            sep = text[3]
            msh, _, rest = text.partition("\r")
            fields = msh.split(sep)
            fields[3] = "SOAPCLINIC"
            text = sep.join(fields) + "\r" + rest
            ids = frozenset({"SOAPCLINIC"})
        owners[path.name] = Principal(
            index,
            f"ORG{index}",
            OrgType.PROVIDER,
            role_of(OrgType.PROVIDER),
            "BAY",
            ids,
        )
        envelope = (
            f'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            f'xmlns:c="urn:cdc:iisb:2011"><s:Body><c:submitSingleMessage>'
            f"<c:username>{path.name}</c:username><c:password>pw</c:password>"
            f"<c:hl7Message>{escape(text.replace(chr(13), chr(10)))}</c:hl7Message>"
            "</c:submitSingleMessage></s:Body></s:Envelope>"
        ).encode()
        request = read_request(envelope).operation
        assert isinstance(request, SubmitSingleMessage)
        answers: list[object] = []
        gateway.submit_single_message(request, "10.0.0.1:1", "soap").addBoth(
            answers.append
        )
        (answer,) = answers
        assert isinstance(answer, str), (path.name, answer)
        reply = answer.encode("utf-8")
        first_error = next(
            ((e[2], e[3].split("^")[0]) for e in errs(reply) if e[4] == "E"), None
        )
        seen[path.name] = (msa_code(reply), first_error)
    assert seen == {name: SAMPLE_ANSWERS[name] for name in seen}
    assert len(seen) >= 40
