"""The merged view: a patient and the records merged into it."""

from __future__ import annotations

from sqlalchemy import (
    bindparam,
    select,
)

from storage._records import (
    in_list,
    in_values,
)
from storage._sql import Runner, StatementFamily
from storage.schema import (
    patient_links,
)

_MERGED_INTO = StatementFamily(
    lambda n: (
        select(patient_links.c.merged_id).where(
            patient_links.c.region == bindparam("region"),
            in_list(patient_links.c.survivor_id, "s", n),
            patient_links.c.active.is_(True),
        ),
        [],
    )
)


def merged_members(sql: Runner, region: str, patient_id: int) -> list[int]:
    """A patient and the records merged into it (the merged view)."""
    members = [patient_id]
    frontier = [patient_id]
    while frontier:
        rows = sql.all(
            _MERGED_INTO[len(frontier)],
            {"region": region, **in_values("s", frontier)},
        )
        frontier = [int(r[0]) for r in rows if int(r[0]) not in members]
        members.extend(frontier)
    return members


#: The longest sending facility and control id the journal can key on. A
