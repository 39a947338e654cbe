"""``cairn review list|show|merge|separate``: the review queue of possible matches and unsure duplicates."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from typing import Any

from engine.app import database_url
from engine.commands._common import add_database_options, settings_from
from handlers.review import ReviewError, ReviewService, ReviewView
from storage import ReviewItem, StorageError, open_database


def register(subparsers: Any) -> None:
    """Add the ``review`` sub-command."""
    parser = subparsers.add_parser(
        "review", help="decide possible patient matches and unsure dose duplicates"
    )
    sub = parser.add_subparsers(dest="review_command", metavar="ACTION")
    sub.required = True
    listing = sub.add_parser(
        "list", help="open items (or --status merged/separated/...)"
    )
    listing.add_argument(
        "--status",
        default="open",
        help="items in this state: open (default, still to decide), merged or"
        " separated",
    )
    listing.add_argument(
        "--kind",
        choices=["patient", "dose"],
        help="only possible patient matches, or only unsure duplicate doses",
    )
    add_database_options(listing)
    listing.set_defaults(func=run_list)
    for name, helptext in (
        ("show", "one item with both records"),
        ("merge", "the two records are one: merge (patients) or keep one dose (doses)"),
        ("separate", "the two records are different; undoes a merge"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument(
            "id", type=int, help="review item id (first column of review list)"
        )
        add_database_options(cmd)
        cmd.set_defaults(func=run_decision, action=name)


def _line(item: ReviewItem) -> str:
    return f"{item.id:>6}  {item.kind:<7} {item.region:<7} {item.left_id:>8} ~ {item.right_id:<8} score {item.score:.2f}  {item.status}"


def _service() -> ReviewService:
    return ReviewService(lambda: datetime.now(UTC))


def run_list(args: argparse.Namespace) -> int:
    """List review items."""
    settings = settings_from(args)
    try:
        db = open_database(database_url(settings))
        with db.transaction() as uow:
            items = _service().list(uow, args.status, args.kind)
        db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    for item in items:
        print(_line(item))
    print(f"{len(items)} item(s)")
    return 0


def _show(view: ReviewView) -> None:
    item = view.item
    print(_line(item))
    print(f"  reasons: {item.reasons}")
    for record in view.patients:
        print(
            f"  patient {record.id}: {record.family_name}, {record.given_name} {record.middle_name} born {record.birth_date} sex {record.sex}"
        )
    for d in view.doses:
        print(
            f"  dose {d.id}: CVX {d.cvx} on {d.administered_on} from {d.sending_facility} source {d.information_source or '-'} lot {d.lot_numbers or '-'}"
        )


def run_decision(args: argparse.Namespace) -> int:
    """Show, merge or separate one item (the rules are handlers.review's)."""
    settings = settings_from(args)
    service = _service()
    try:
        db = open_database(database_url(settings))
        try:
            with db.transaction() as uow:
                if args.action == "show":
                    _show(service.show(uow, args.id))
                    return 0
                decision = service.decide(uow, args.id, args.action, getpass.getuser())
        finally:
            db.close()
    except ReviewError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    print(f"cairn: {decision.summary}")
    return 0
