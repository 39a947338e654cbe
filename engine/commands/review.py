"""``cairn review list|show|merge|separate``: the review queue of possible matches and unsure duplicates."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from engine.app import database_url
from engine.commands._common import add_database_options, settings_from
from storage import ReviewItem, StorageError, UnitOfWork, open_database


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


def run_list(args: argparse.Namespace) -> int:
    """List review items."""
    settings = settings_from(args)
    try:
        db = open_database(database_url(settings))
        with db.transaction() as uow:
            items = uow.review.list(args.status, args.kind)
        db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    for item in items:
        print(_line(item))
    print(f"{len(items)} item(s)")
    return 0


def _show(uow: UnitOfWork, item: ReviewItem) -> None:
    print(_line(item))
    print(f"  reasons: {item.reasons}")
    if item.kind == "patient":
        for pid in (item.left_id, item.right_id):
            record = uow.patients.get(item.region, pid)
            if record is not None:
                print(
                    f"  patient {pid}: {record.family_name}, {record.given_name} {record.middle_name} born {record.birth_date} sex {record.sex}"
                )
    else:
        for did in (item.left_id, item.right_id):
            d = uow.vaccinations.get(item.region, did)
            if d is not None:
                print(
                    f"  dose {did}: CVX {d.cvx} on {d.administered_on} from {d.sending_facility} source {d.information_source or '-'} lot {d.lot_numbers or '-'}"
                )


def run_decision(args: argparse.Namespace) -> int:
    """Show, merge or separate one item."""
    settings = settings_from(args)
    who = getpass.getuser()
    try:
        db = open_database(database_url(settings))
        with db.transaction() as uow:
            item = uow.review.get(args.id)
            if item is None:
                print(f"cairn: no review item {args.id}", file=sys.stderr)
                return 1
            if args.action == "show":
                _show(uow, item)
                return 0
            if item.kind == "patient":
                if args.action == "merge":
                    uow.patients.link(item.region, item.left_id, item.right_id, item.id)
                    uow.review.decide(item.id, "merged", who)
                    print(
                        f"cairn: patient {item.left_id} merged into {item.right_id} (undo: cairn review separate {item.id})"
                    )
                else:
                    undone = uow.patients.unlink(item.region, item.left_id)
                    uow.review.decide(item.id, "separated", who)
                    print(
                        f"cairn: patients {item.left_id} and {item.right_id} kept apart"
                        + (" (merge undone)" if undone else "")
                    )
            elif args.action == "merge":
                uow.vaccinations.mark_duplicate(
                    item.region, item.left_id, item.right_id, "reviewed: same event"
                )
                uow.review.decide(item.id, "same", who)
                print(f"cairn: dose {item.left_id} is a duplicate of {item.right_id}")
            else:
                uow.vaccinations.mark_duplicate(item.region, item.left_id, None, "")
                uow.review.decide(item.id, "different", who)
                print(
                    f"cairn: doses {item.left_id} and {item.right_id} kept as different events"
                )
        db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    return 0
