"""How long each stored VXU value may be, and what happens to one that is longer.

One row per value that VXU storage writes into a bounded column (patients,
patient_identifiers, next_of_kin, vaccinations, observations; STYLE rule 18).
The limit is the column's size in ``storage/schema.py`` (a test keeps the two
equal), which is never below the HL7 2.5.1 / CDC IG conformance length, so a
conformant value always fits. What happens to a longer value follows the IG:

- names, addresses and code texts may be truncated (HL7 2.5.1 section 2.5.5.2
  allows truncating such values at the conformance length): the value is cut,
  with a warning at the field;
- codes and identifiers are never truncated (a cut identifier names someone
  else): the value is rejected, an error at the field. A rejected value in
  PID-3/5/7/8 rejects the message; in ORC, RXA or RXR it rejects the dose;
  elsewhere that value is ignored (IG Table 3-1: treated as empty).

Values checked against a code table before they are stored (PID-8 sex, PID-24,
PD1-11/12/16, RXA-5.1 CVX, RXA-9, RXA-20, RXA-21, OBX-3.1 LOINC) are bounded
by their tables and need no row; dates are bounded by their format.

Control characters (C0 but CR/LF/TAB in OBX-5 text, DEL, C1, NUL) after
unescaping are an error at the field with the same consequences as a
rejected value, in every field of the segments below.
"""

from __future__ import annotations

from parsers import CODED_VALUE_TYPES, FUNDING
from parsers.fields import FieldLimit, FieldRules

TRUNCATE = True
REJECT = False

#: OBX-2 value types whose OBX-5 is a code (stored in observations.value_code).
_CODED = (2, CODED_VALUE_TYPES)
#: OBX-3 codes whose OBX-5.1 is also stored in vaccinations' funding columns.
_FUNDING = (3, FUNDING)

#: (segment, field, component, subcomponent, max length, truncate?, what)
FIELD_LIMITS = (
    # patient_identifiers
    FieldLimit("PID", 3, 1, 1, 100, REJECT, "identifier"),
    FieldLimit("PID", 3, 4, 1, 180, REJECT, "assigning authority"),
    FieldLimit("PID", 3, 4, 2, 180, REJECT, "assigning authority id"),
    FieldLimit("PID", 3, 5, 1, 10, REJECT, "identifier type"),
    # patients
    FieldLimit("PID", 5, 1, 1, 100, TRUNCATE, "family name"),
    FieldLimit("PID", 5, 2, 1, 100, TRUNCATE, "given name"),
    FieldLimit("PID", 5, 3, 1, 100, TRUNCATE, "middle name"),
    FieldLimit("PID", 5, 4, 1, 20, TRUNCATE, "suffix"),
    FieldLimit("PID", 6, 1, 1, 100, TRUNCATE, "mother's maiden family name"),
    FieldLimit("PID", 6, 2, 1, 100, TRUNCATE, "mother's maiden given name"),
    FieldLimit("PID", 11, 1, 1, 200, TRUNCATE, "street"),
    FieldLimit("PID", 11, 3, 1, 100, TRUNCATE, "city"),
    FieldLimit("PID", 11, 4, 1, 10, REJECT, "state"),
    FieldLimit("PID", 11, 5, 1, 20, REJECT, "postal code"),
    FieldLimit("PID", 11, 6, 1, 10, REJECT, "country"),
    FieldLimit("PID", 13, 1, 1, 20, REJECT, "telephone number"),
    FieldLimit("PID", 13, 4, 1, 200, REJECT, "email address"),
    FieldLimit("PID", 13, 6, 1, 5, REJECT, "area code"),
    FieldLimit("PID", 13, 7, 1, 15, REJECT, "local number"),
    FieldLimit("PID", 25, 1, 1, 2, REJECT, "birth order"),
    # next_of_kin
    FieldLimit("NK1", 1, 1, 1, 4, REJECT, "set id"),
    FieldLimit("NK1", 2, 1, 1, 100, TRUNCATE, "family name"),
    FieldLimit("NK1", 2, 2, 1, 100, TRUNCATE, "given name"),
    FieldLimit("NK1", 3, 1, 1, 10, REJECT, "relationship"),
    FieldLimit("NK1", 4, 1, 1, 200, TRUNCATE, "street"),
    FieldLimit("NK1", 4, 3, 1, 100, TRUNCATE, "city"),
    FieldLimit("NK1", 4, 4, 1, 10, REJECT, "state"),
    FieldLimit("NK1", 4, 5, 1, 20, REJECT, "postal code"),
    FieldLimit("NK1", 5, 1, 1, 20, REJECT, "telephone number"),
    FieldLimit("NK1", 5, 6, 1, 5, REJECT, "area code"),
    FieldLimit("NK1", 5, 7, 1, 15, REJECT, "local number"),
    # vaccinations
    FieldLimit("ORC", 2, 1, 1, 100, REJECT, "placer order number"),
    FieldLimit("ORC", 3, 1, 1, 100, REJECT, "filler order number"),
    FieldLimit("ORC", 3, 2, 1, 180, REJECT, "filler namespace"),
    FieldLimit("ORC", 3, 3, 1, 180, REJECT, "filler universal id"),
    FieldLimit("RXA", 5, 1, 1, 20, REJECT, "administered code"),
    FieldLimit("RXA", 5, 2, 1, 200, TRUNCATE, "administered code text"),
    FieldLimit("RXA", 5, 4, 1, 20, REJECT, "alternate administered code"),
    FieldLimit("RXA", 5, 5, 1, 200, TRUNCATE, "alternate administered code text"),
    FieldLimit("RXA", 6, 1, 1, 20, REJECT, "administered amount"),
    FieldLimit("RXA", 7, 1, 1, 20, REJECT, "administered units"),
    FieldLimit("RXA", 10, 1, 1, 100, REJECT, "administering provider id"),
    FieldLimit("RXA", 11, 4, 1, 180, REJECT, "administered-at facility"),
    FieldLimit("RXA", 15, 1, 1, 200, REJECT, "lot number"),
    FieldLimit("RXA", 17, 1, 1, 10, REJECT, "manufacturer"),
    FieldLimit("RXA", 18, 1, 1, 4, REJECT, "refusal reason"),
    FieldLimit("RXR", 1, 1, 1, 20, REJECT, "route"),
    FieldLimit("RXR", 2, 1, 1, 10, REJECT, "site"),
    # observations (and the funding columns of vaccinations, from OBX-5)
    FieldLimit("OBX", 1, 1, 1, 4, REJECT, "set id"),
    FieldLimit("OBX", 2, 1, 1, 4, REJECT, "value type"),
    FieldLimit("OBX", 3, 2, 1, 200, TRUNCATE, "observation identifier text"),
    FieldLimit("OBX", 4, 1, 1, 20, REJECT, "observation sub-id"),
    FieldLimit("OBX", 5, 1, 1, 60, REJECT, "observation value code", _CODED),
    FieldLimit("OBX", 5, 1, 1, 20, REJECT, "funding code", _FUNDING),
    FieldLimit("OBX", 5, 3, 1, 40, REJECT, "observation value coding system", _CODED),
)

#: Every value of these segments is checked for control characters.
CHECKED_SEGMENTS = ("PID", "PD1", "NK1", "ORC", "RXA", "RXR", "OBX")

#: Free text, where a line break or tab (``\.br\``, ``\X0D\``...) is text.
TEXT_FIELDS = (("OBX", 5),)

#: Required patient fields: a rejected value there rejects the message.
MESSAGE_FIELDS = frozenset({("PID", 3), ("PID", 5), ("PID", 7), ("PID", 8)})

#: Segments of an order group: a rejected value there rejects the dose.
DOSE_SEGMENTS = frozenset({"ORC", "RXA", "RXR"})

VXU_FIELD_RULES = FieldRules(FIELD_LIMITS, CHECKED_SEGMENTS, TEXT_FIELDS)
