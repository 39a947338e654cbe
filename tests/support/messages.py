"""Builders of synthetic HL7 messages for tests.

Patients carry canary values (names, birth dates, phones, identifiers): the
autouse fixture in ``tests/conftest.py`` fails any test whose log output
contains one, which is how the "no PHI in logs" rule is enforced.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

#: Values that must never appear in a log line.
CANARY_FAMILY = "Zzcanaryfam"
CANARY_GIVEN = "Qqcanarygiv"
CANARY_MRN = "MRN7Z9Q4X1"
CANARY_PHONE = "5550199876"
CANARY_STREET = "77 Canary Lane"
CANARIES = (CANARY_FAMILY, CANARY_GIVEN, CANARY_MRN, CANARY_PHONE, CANARY_STREET)

_ids = itertools.count(1)


@dataclass
class Dose:
    """One ORDER group."""

    cvx: str = "08"
    date: str = "20240115"
    filler: str = ""
    source: str = "00"
    lot: str = "LOT123"
    mvx: str = "MSD"
    amount: str = "0.5"
    completion: str = "CP"
    action: str = "A"
    refusal: str = ""
    observations: Sequence[str] = field(
        default_factory=lambda: [
            "OBX|1|CE|64994-7^Eligibility^LN|1|V02^Medicaid^HL70064||||||F"
        ]
    )
    with_orc: bool = True
    #: RXA-11.4, the administered-at facility ("": not sent)
    location: str = ""
    #: RXA-5 as sent, when not ``{cvx}^vaccine^CVX`` (an NDC, say)
    code: str = ""

    def segments(self) -> list[str]:
        """The ORC/RXA/RXR/OBX segments of this dose."""
        filler = self.filler or f"F{next(_ids)}"
        out = []
        if self.with_orc:
            out.append(f"ORC|RE||{filler}^EHR")
        if self.completion == "RE":
            out.append(
                f"RXA|0|1|{self.date}||{self.cvx}^vaccine^CVX|999||||||||||||{self.refusal}^refusal^NIP002||RE|{self.action}"
            )
            return out
        if self.source == "00":
            out.append(
                f"RXA|0|1|{self.date}||{self.code or f'{self.cvx}^vaccine^CVX'}|{self.amount}|mL^mL^UCUM||00^New^NIP001||{f'^^^{self.location}' if self.location else ''}||||{self.lot}|20301231|{self.mvx}^maker^MVX|||{self.completion}|{self.action}"
            )
            out.append("RXR|C28161^IM^NCIT|LA^Left Arm^HL70163")
        else:
            out.append(
                f"RXA|0|1|{self.date}||{self.cvx}^vaccine^CVX|999|||{self.source}^Historical^NIP001|||||||||||{self.completion}|{self.action}"
            )
        out.extend(self.observations)
        return out


def vxu(
    *,
    control_id: str | None = None,
    sender: str = "CLINIC1",
    doses: Sequence[Dose] = (),
    mrn: str = CANARY_MRN,
    authority: str = "EHR",
    family: str = CANARY_FAMILY,
    given: str = CANARY_GIVEN,
    dob: str = "20230105",
    sex: str = "F",
    version: str = "2.5.1",
    message_type: str = "VXU^V04^VXU_V04",
    processing_id: str = "P",
    protection: str = "N",
    pid: str | None = None,
    extra_segments: Sequence[str] = (),
    msh16: str = "AL",
) -> str:
    """A VXU^V04 (Z22) with one patient and the given doses, segments joined by CR."""
    control = control_id or f"CTRL{next(_ids)}"
    segments = [
        f"MSH|^~\\&|EHRAPP|{sender}|CAIRN|CAIRN|20240201120000-0800||{message_type}|{control}|{processing_id}|{version}|||ER|{msh16}|||||Z22^CDCPHINVS",
        pid
        if pid is not None
        else f"PID|1||{mrn}^^^{authority}^MR||{family}^{given}^M^^^^L|Mother^Maiden^^^^^M|{dob}|{sex}||2106-3^White^CDCREC|{CANARY_STREET}^^Sacramento^CA^95814^USA^L||^PRN^PH^^^555^0199876|||||||||2186-5^Not Hispanic^CDCREC",
        f"PD1|||||||||||02^Reminder/recall any method^HL70215|{protection}|20230105|||A|20230105|20230105",
        f"NK1|1|{family}^Parent^^^^^L|MTH^Mother^HL70063",
        *extra_segments,
    ]
    for dose in doses:
        segments.extend(dose.segments())
    return "\r".join(segments) + "\r"
