"""Organization types, roles and what each role may do (CAIR's confidentiality agreement).

Pure rules, no storage: every front (MLLP, SOAP, the web console to come)
asks the same table, through the VXU and QBP handlers and the services.

=====================  ===============  =========================================
organization type      role             may
=====================  ===============  =========================================
provider               ``provider``     submit (VXU, lock/unlock by PD1-12),
                                        delete its doses (RXA-21 ``D``), query
                                        (Z34, Z44) full records
school, child care     ``requirements`` query (Z34, Z44) to confirm school and
facility, family                        child care requirements: doses and
child care home,                        forecast, without contact details
county welfare                          (PID-11 address, PID-13 phone) and
department, foster                      without guardians (NK1, PID-6
care agency                             mother's maiden name); PID-3 only
                                        the registry's id and the ids it
                                        submitted or named, never an SSN
WIC service provider,  ``benefits``     query (Z34, Z44) full records of the
health care plan                        people they serve
registry staff         ``staff``        administer (organizations, users, review
                                        queue, by the CLI and console) and query
                                        full records for support; never submit:
                                        staff are not a source of clinical data
=====================  ===============  =========================================

A role refused an operation gets AR with an ERR naming the reason, and an
audit row (handlers/vxu.py, handlers/qbp.py).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

__all__ = [
    "ORG_TYPE_ROLES",
    "Operation",
    "OrgType",
    "Role",
    "View",
    "may",
    "refusal_text",
    "role_of",
    "view_of",
]


class OrgType(StrEnum):
    """CAIR's user organization types, plus registry staff."""

    PROVIDER = "provider"
    SCHOOL = "school"
    CHILD_CARE = "child_care"
    COUNTY_WELFARE = "county_welfare"
    FAMILY_CHILD_CARE_HOME = "family_child_care_home"
    FOSTER_CARE = "foster_care"
    WIC = "wic"
    HEALTH_PLAN = "health_plan"
    REGISTRY_STAFF = "registry_staff"


class Role(StrEnum):
    """What an organization's agreement lets it do."""

    PROVIDER = "provider"
    REQUIREMENTS = "requirements"
    BENEFITS = "benefits"
    STAFF = "staff"


class Operation(StrEnum):
    """The operations a role is checked against."""

    #: VXU: add or update a patient and doses (including PD1-12 lock/unlock).
    SUBMIT = "submit"
    #: RXA-21 ``D``: delete a dose the organization reported.
    DELETE = "delete"
    #: QBP Z34: request a complete immunization history.
    QUERY_HISTORY = "query_history"
    #: QBP Z44: request an evaluated history and forecast.
    QUERY_FORECAST = "query_forecast"
    #: Organizations, users, the review queue.
    ADMINISTER = "administer"


#: How much of a record a role sees: everything it may see, or the doses and
#: forecast only (no address, phone, guardians).
View = Literal["full", "requirements"]

ORG_TYPE_ROLES: dict[OrgType, Role] = {
    OrgType.PROVIDER: Role.PROVIDER,
    OrgType.SCHOOL: Role.REQUIREMENTS,
    OrgType.CHILD_CARE: Role.REQUIREMENTS,
    OrgType.FAMILY_CHILD_CARE_HOME: Role.REQUIREMENTS,
    OrgType.COUNTY_WELFARE: Role.REQUIREMENTS,
    OrgType.FOSTER_CARE: Role.REQUIREMENTS,
    OrgType.WIC: Role.BENEFITS,
    OrgType.HEALTH_PLAN: Role.BENEFITS,
    OrgType.REGISTRY_STAFF: Role.STAFF,
}

_QUERIES = frozenset({Operation.QUERY_HISTORY, Operation.QUERY_FORECAST})

_ALLOWED: dict[Role, frozenset[Operation]] = {
    Role.PROVIDER: frozenset({Operation.SUBMIT, Operation.DELETE}) | _QUERIES,
    Role.REQUIREMENTS: _QUERIES,
    Role.BENEFITS: _QUERIES,
    Role.STAFF: _QUERIES | {Operation.ADMINISTER},
}

_VIEWS: dict[Role, View] = {
    Role.PROVIDER: "full",
    Role.REQUIREMENTS: "requirements",
    Role.BENEFITS: "full",
    Role.STAFF: "full",
}

_WHAT = {
    Operation.SUBMIT: "submit immunization data (VXU)",
    Operation.DELETE: "delete a dose (RXA-21 D)",
    Operation.QUERY_HISTORY: "query an immunization history (Z34)",
    Operation.QUERY_FORECAST: "query an evaluated history and forecast (Z44)",
    Operation.ADMINISTER: "administer the registry",
}


def role_of(org_type: str) -> Role:
    """The role of an organization type (``ValueError`` for an unknown type)."""
    return ORG_TYPE_ROLES[OrgType(org_type)]


def may(role: Role, operation: Operation) -> bool:
    """Whether a role may perform an operation."""
    return operation in _ALLOWED[role]


def view_of(role: Role) -> View:
    """How much of a patient record a role sees."""
    return _VIEWS[role]


def refusal_text(role: Role, operation: Operation) -> str:
    """The reason an ERR gives when ``role`` may not perform ``operation``."""
    return (
        f"not authorized: an organization with role {role.value!r} may not "
        f"{_WHAT[operation]} under its agreement with the registry; rejected, "
        "nothing stored"
    )
