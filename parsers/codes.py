"""The HL7 and CDC codes Cairn's own code branches on, by name (STYLE rule 18).

One module for the fixed codes that rules and encoders compare against or
emit: the ERR codes (HL7 table 0357, CDC table 0533, severities of table
0516), RXA-20 completion status (0322), RXA-21 action code (0323), RXA-9 information source (NIP001), the OBX-3 LOINC codes of funding,
the special CVX codes and the placeholder values of the CDC guide. They live
in parsers/ because ERR-3/4/5 are part of the HL7 encoding (the ACK encoder
turns them into coded triplets) and because every package that needs them
(handlers, engine) may import parsers, while parsers may import no other.

Code *tables* that are data (CVX, MVX, NIP001 texts, value sets, which change
several times a year) are not here: they are CSV files read by
:class:`handlers.codes.CodeTables`. Every enum is a ``StrEnum``, so a member
is the code itself (``Hl7Error.TABLE_VALUE_NOT_FOUND == "103"``) and is
written to the wire and compared with plain strings unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "CHANGES",
    "CODED_VALUE_TYPES",
    "FUNDING",
    "GIVEN",
    "NOT_A_VACCINE",
    "PLACEHOLDER_FILLER_ID",
    "UNKNOWN_AMOUNT",
    "ActionCode",
    "AppError",
    "CompletionStatus",
    "Cvx",
    "Hl7Error",
    "InformationSource",
    "Loinc",
    "Severity",
]


class Severity(StrEnum):
    """ERR-4 severity (HL7 table 0516)."""

    ERROR = "E"
    WARNING = "W"
    INFORMATION = "I"

    @property
    def text(self) -> str:
        """The table's text for the code (``Error``, ``Warning``...)."""
        return _SEVERITY_TEXT[self]


class Hl7Error(StrEnum):
    """ERR-3 HL7 error code (HL7 table 0357; REFERENCE §9.1)."""

    MESSAGE_ACCEPTED = "0"
    SEGMENT_SEQUENCE_ERROR = "100"
    REQUIRED_FIELD_MISSING = "101"
    DATA_TYPE_ERROR = "102"
    TABLE_VALUE_NOT_FOUND = "103"
    UNSUPPORTED_MESSAGE_TYPE = "200"
    UNSUPPORTED_EVENT_CODE = "201"
    UNSUPPORTED_PROCESSING_ID = "202"
    UNSUPPORTED_VERSION_ID = "203"
    UNKNOWN_KEY_IDENTIFIER = "204"
    DUPLICATE_KEY_IDENTIFIER = "205"
    APPLICATION_RECORD_LOCKED = "206"
    APPLICATION_INTERNAL_ERROR = "207"

    @property
    def text(self) -> str:
        """The table's text for the code, as ERR-3.2 carries it."""
        return _HL7_ERROR_TEXT[self]


class AppError(StrEnum):
    """ERR-5 application error code (CDC table 0533; REFERENCE §9.1)."""

    ILLOGICAL_DATE = "1"
    INVALID_DATE = "2"
    ILLOGICAL_VALUE = "3"
    INVALID_VALUE = "4"
    TABLE_VALUE_NOT_FOUND = "5"
    REQUIRED_OBSERVATION_MISSING = "6"
    REQUIRED_DATA_MISSING = "7"
    DATA_IGNORED = "8"

    @property
    def text(self) -> str:
        """The table's text for the code, as ERR-5.2 carries it."""
        return _APP_ERROR_TEXT[self]


class CompletionStatus(StrEnum):
    """RXA-20 completion status (HL7 table 0322)."""

    COMPLETE = "CP"
    PARTIAL = "PA"
    REFUSED = "RE"
    NOT_ADMINISTERED = "NA"


#: RXA-20 values that mean a vaccine went into the patient (complete or
#: partial); RE and NA record that none did.
GIVEN = frozenset({CompletionStatus.COMPLETE, CompletionStatus.PARTIAL})


class ActionCode(StrEnum):
    """RXA-21 action code (HL7 table 0323)."""

    ADD = "A"
    UPDATE = "U"
    DELETE = "D"


#: RXA-21 values that change a dose reported before (found by ORC-3).
CHANGES = frozenset({ActionCode.UPDATE, ActionCode.DELETE})


class InformationSource(StrEnum):
    """RXA-9 information source (CDC table NIP001) codes that rules test for."""

    #: administered by the sender: a new immunization record
    NEW_RECORD = "00"
    #: historical information, source unspecified (02-08 name the source)
    HISTORICAL = "01"


class Cvx(StrEnum):
    """CVX codes with a special meaning (REFERENCE §4.6)."""

    #: no vaccine administered: the order group carries observations about
    #: the patient (history of disease, immunity), or a forecast in an RSP
    NO_VACCINE = "998"
    #: vaccine type unknown
    UNKNOWN = "999"


#: CVX codes that name no vaccine: never a dose for evaluation or forecast.
NOT_A_VACCINE = frozenset({Cvx.NO_VACCINE, Cvx.UNKNOWN})


class Loinc(StrEnum):
    """OBX-3 observation identifiers (LOINC) that rules and storage act on."""

    #: VFC/funding eligibility at the dose level (OBX-5 from HL7 table 0064)
    FUNDING_ELIGIBILITY = "64994-7"
    #: funding source of the dose (OBX-5 from CDC table CDCPHINVS)
    FUNDING_SOURCE = "30963-3"
    #: the date the Vaccine Information Statement was given to the patient
    VIS_PRESENTED = "29769-7"
    #: the VIS edition: its publication date, or its document (GTIN barcode)
    VIS_PUBLISHED = "29768-9"
    VIS_DOCUMENT = "69764-9"


#: OBX-3 codes whose OBX-5.1 fills the dose's funding columns.
FUNDING = frozenset({Loinc.FUNDING_ELIGIBILITY, Loinc.FUNDING_SOURCE})

#: OBX-2 value types (HL7 table 0125) whose OBX-5 is a code, not text.
CODED_VALUE_TYPES = frozenset({"CE", "CWE", "ID", "IS"})

#: RXA-6 administered amount when the amount is unknown or no vaccine was
#: given (IZ-48, IZ-49).
UNKNOWN_AMOUNT = "999"

#: ORC-3 filler order number of refusals, not-administered records and the
#: forecast order group (NIST IZ-45): meaningless, never an id to look up.
PLACEHOLDER_FILLER_ID = "9999"

_SEVERITY_TEXT = MappingProxyType(
    {
        Severity.ERROR: "Error",
        Severity.WARNING: "Warning",
        Severity.INFORMATION: "Information",
    }
)

_HL7_ERROR_TEXT = MappingProxyType(
    {
        Hl7Error.MESSAGE_ACCEPTED: "Message accepted",
        Hl7Error.SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
        Hl7Error.REQUIRED_FIELD_MISSING: "Required field missing",
        Hl7Error.DATA_TYPE_ERROR: "Data type error",
        Hl7Error.TABLE_VALUE_NOT_FOUND: "Table value not found",
        Hl7Error.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
        Hl7Error.UNSUPPORTED_EVENT_CODE: "Unsupported event code",
        Hl7Error.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
        Hl7Error.UNSUPPORTED_VERSION_ID: "Unsupported version id",
        Hl7Error.UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
        Hl7Error.DUPLICATE_KEY_IDENTIFIER: "Duplicate key identifier",
        Hl7Error.APPLICATION_RECORD_LOCKED: "Application record locked",
        Hl7Error.APPLICATION_INTERNAL_ERROR: "Application internal error",
    }
)

_APP_ERROR_TEXT = MappingProxyType(
    {
        AppError.ILLOGICAL_DATE: "Illogical Date error",
        AppError.INVALID_DATE: "Invalid Date",
        AppError.ILLOGICAL_VALUE: "Illogical Value error",
        AppError.INVALID_VALUE: "Invalid value",
        AppError.TABLE_VALUE_NOT_FOUND: "Table value not found",
        AppError.REQUIRED_OBSERVATION_MISSING: "Required observation missing",
        AppError.REQUIRED_DATA_MISSING: "Required data missing",
        AppError.DATA_IGNORED: "Data was ignored",
    }
)
