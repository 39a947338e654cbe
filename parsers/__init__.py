"""Parsers: HL7 v2 tokenizing, typed views, response encoding and MLLP framing.

Pure: no I/O. Reads and writes HL7 with its own tokenizer and encoder
(python-hl7 and hl7apy are test oracles only); must not import any other
Cairn package.
"""

from parsers.decoding import DecodedText, decode_message
from parsers.errors import ParseError
from parsers.response import (
    Acknowledgement,
    Issue,
    Location,
    ResponseHeader,
    Severity,
    ack_code_for,
    encode_ack,
    encode_err,
    encode_msh,
)
from parsers.tokenizer import (
    STANDARD_ENCODING,
    Encoding,
    GluePoint,
    Message,
    Segment,
    tokenize,
)
from parsers.views import (
    HD,
    Address,
    AdministrationView,
    CodedValue,
    Identifier,
    MessageHeader,
    NextOfKinView,
    ObservationView,
    OrderGroup,
    OrderView,
    PatientAdditionalView,
    PatientView,
    PersonName,
    Phone,
    RouteView,
    StructureProblem,
    VxuView,
    read_header,
    read_vxu,
)

__all__ = [
    "HD",
    "STANDARD_ENCODING",
    "Acknowledgement",
    "Address",
    "AdministrationView",
    "CodedValue",
    "DecodedText",
    "Encoding",
    "GluePoint",
    "Identifier",
    "Issue",
    "Location",
    "Message",
    "MessageHeader",
    "NextOfKinView",
    "ObservationView",
    "OrderGroup",
    "OrderView",
    "ParseError",
    "PatientAdditionalView",
    "PatientView",
    "PersonName",
    "Phone",
    "ResponseHeader",
    "RouteView",
    "Segment",
    "Severity",
    "StructureProblem",
    "VxuView",
    "ack_code_for",
    "decode_message",
    "encode_ack",
    "encode_err",
    "encode_msh",
    "read_header",
    "read_vxu",
    "tokenize",
]
