"""``cairn org`` and ``cairn user``: organizations, their credentials, and their users.

Every change goes through the identity service (handlers/identity.py) and is
audited there, with the operator's login name as the actor. Passwords are
read from a prompt (typed twice) or, for scripts, from standard input with
``--password-stdin``; never from the command line, where other users of the
machine and the shell history would see them.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.app import build_identity, open_registry_database
from engine.commands._common import add_database_options, settings_from
from engine.tls import TlsError, certificate_fingerprint
from handlers.identity import IdentityError, IdentityService
from handlers.roles import OrgType, role_of
from storage import Organization, StorageError


def register(subparsers: Any) -> None:
    """Add the ``org`` and ``user`` sub-commands."""
    _register_org(subparsers)
    _register_user(subparsers)


def _register_org(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "org", help="organizations: their type, region, facility ids and credentials"
    )
    sub = parser.add_subparsers(dest="org_command", metavar="ACTION")
    sub.required = True
    add = sub.add_parser("add", help="register an organization")
    add.add_argument("code", help="short code that names it (e.g. SUTTERPEDS)")
    add.add_argument(
        "--type",
        required=True,
        choices=[t.value for t in OrgType],
        help="its CAIR organization type (decides its role)",
    )
    add.add_argument("--region", required=True, help="the region its data belongs to")
    add.add_argument("--name", default="", help="its full name")
    _credential_options(add)
    add.add_argument(
        "--max-messages-per-minute",
        type=int,
        help="its own message rate limit (default: identity.messages_per_minute)",
    )
    add.add_argument(
        "--max-connections",
        type=int,
        help="its own concurrent connection limit (default: identity.max_connections)",
    )
    add_database_options(add)
    add.set_defaults(func=run_org_add)
    grant = sub.add_parser(
        "grant",
        help="give an existing organization more facility ids, certificates or addresses",
    )
    grant.add_argument("code", help="the organization's code")
    _credential_options(grant)
    add_database_options(grant)
    grant.set_defaults(func=run_org_grant)
    listing = sub.add_parser("list", help="every organization")
    add_database_options(listing)
    listing.set_defaults(func=run_org_list)
    show = sub.add_parser(
        "show", help="one organization with its credentials and users"
    )
    show.add_argument("code", help="the organization's code")
    add_database_options(show)
    show.set_defaults(func=run_org_show)
    disable = sub.add_parser(
        "disable", help="stop an organization: its users, certificates and addresses"
    )
    disable.add_argument("code", help="the organization's code")
    disable.add_argument(
        "--enable", action="store_true", help="enable it again instead"
    )
    add_database_options(disable)
    disable.set_defaults(func=run_org_disable)


def _credential_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--facility",
        action="append",
        default=[],
        metavar="ID",
        help="an MSH-4 value it sends as: namespace id or universal id (repeat for more)",
    )
    parser.add_argument(
        "--client-certificate",
        action="append",
        default=[],
        metavar="PEM",
        help="a client certificate file (PEM or DER) that authenticates it on a"
        " TLS listener; its SHA-256 fingerprint is stored (repeat for more)",
    )
    parser.add_argument(
        "--allow-ip",
        action="append",
        default=[],
        metavar="CIDR",
        help="an address or network that authenticates it on an ip listener"
        " (repeat for more)",
    )


def _register_user(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "user", help="users of organizations (SOAP, console)"
    )
    sub = parser.add_subparsers(dest="user_command", metavar="ACTION")
    sub.required = True
    add = sub.add_parser("add", help="create a user of an organization")
    add.add_argument("org", help="the organization's code")
    add.add_argument("username", help="the user's login name")
    _password_option(add)
    add_database_options(add)
    add.set_defaults(func=run_user_add)
    passwd = sub.add_parser("passwd", help="set a user's password (clears a lockout)")
    passwd.add_argument("username", help="the user's login name")
    _password_option(passwd)
    add_database_options(passwd)
    passwd.set_defaults(func=run_user_passwd)
    disable = sub.add_parser("disable", help="stop a user's logins")
    disable.add_argument("username", help="the user's login name")
    disable.add_argument(
        "--enable", action="store_true", help="enable it again instead"
    )
    add_database_options(disable)
    disable.set_defaults(func=run_user_disable)
    listing = sub.add_parser("list", help="users, of one organization or all")
    listing.add_argument("--org", help="only this organization's users")
    add_database_options(listing)
    listing.set_defaults(func=run_user_list)


def _password_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead"
        " of prompting (for scripts; never put a password on the command line)",
    )


class _Failure(Exception):
    """One line for the operator."""


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _with_service(args: argparse.Namespace, work: Any) -> int:
    """Open the database, run ``work(service, settings)``, report one line on failure."""
    settings = settings_from(args)
    try:
        db = open_registry_database(settings, upgrade=True)
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    try:
        return int(work(build_identity(settings, db), settings))
    except (IdentityError, _Failure) as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()


def _fingerprints(paths: list[str]) -> list[tuple[str, str]]:
    found = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise _Failure(f"client-certificate: {path}: {exc.strerror}") from None
        try:
            found.append((certificate_fingerprint(data), Path(path).name))
        except TlsError as exc:
            raise _Failure(f"client-certificate: {path}: {exc}") from None
    return found


def _grant(service: IdentityService, code: str, args: argparse.Namespace) -> None:
    certificates = _fingerprints(args.client_certificate)
    if args.facility:
        service.add_facilities(_actor(), code, args.facility)
    for fingerprint, label in certificates:
        service.add_certificate(_actor(), code, fingerprint, label)
    for network in args.allow_ip:
        service.allow_address(_actor(), code, network)


def run_org_add(args: argparse.Namespace) -> int:
    """Register an organization with its facility ids and credentials."""

    def work(service: IdentityService, settings: Any) -> int:
        if args.region not in settings.region_codes():
            known = ", ".join(sorted(settings.region_codes()))
            raise _Failure(f"region: unknown region {args.region!r} (known: {known})")
        # Every file and address checked before anything is stored.
        _fingerprints(args.client_certificate)
        for network in args.allow_ip:
            try:
                ipaddress.ip_network(network, strict=True)
            except ValueError as exc:
                raise _Failure(f"allow-ip: {exc}") from None
        org = service.add_organization(
            _actor(),
            code=args.code,
            name=args.name,
            org_type=args.type,
            region=args.region,
            facility_ids=args.facility,
            max_messages_per_minute=args.max_messages_per_minute,
            max_connections=args.max_connections,
        )
        certificates, addresses = args.client_certificate, args.allow_ip
        args.facility = []
        _grant(service, org.code, args)
        print(
            f"cairn: organization {org.code} added ({org.org_type}, role "
            f"{role_of(org.org_type).value}, region {org.region}; "
            f"{len(org.facility_ids)} facility id(s), {len(certificates)} "
            f"certificate(s), {len(addresses)} address(es))"
        )
        return 0

    return _with_service(args, work)


def run_org_grant(args: argparse.Namespace) -> int:
    """Give an organization more facility ids, certificates or addresses."""

    def work(service: IdentityService, _settings: Any) -> int:
        if not (args.facility or args.client_certificate or args.allow_ip):
            raise _Failure(
                "nothing to grant: give --facility, --client-certificate or --allow-ip"
            )
        service.organization(args.code)
        _grant(service, args.code, args)
        print(f"cairn: organization {args.code} updated")
        return 0

    return _with_service(args, work)


def _org_line(org: Organization) -> str:
    state = "disabled" if org.disabled else "enabled"
    return (
        f"{org.code:<20} {org.org_type:<24} {role_of(org.org_type).value:<13} "
        f"{org.region:<8} {state:<9} {', '.join(org.facility_ids)}"
    )


def run_org_list(args: argparse.Namespace) -> int:
    """List organizations."""

    def work(service: IdentityService, _settings: Any) -> int:
        orgs = service.organizations()
        for org in orgs:
            print(_org_line(org))
        print(f"{len(orgs)} organization(s)")
        return 0

    return _with_service(args, work)


def run_org_show(args: argparse.Namespace) -> int:
    """Show one organization with its credentials and users."""

    def work(service: IdentityService, _settings: Any) -> int:
        org = service.organization(args.code)
        print(_org_line(org))
        if org.name:
            print(f"  name: {org.name}")
        print(
            "  limits: "
            f"{org.max_messages_per_minute or 'default'} messages a minute, "
            f"{org.max_connections or 'default'} connections"
        )
        for cred in service.credentials(args.code):
            label = f" ({cred.label})" if cred.label else ""
            print(f"  {cred.kind}: {cred.value}{label}")
        for user, _org in service.users(args.code):
            state = "disabled" if user.disabled else "enabled"
            print(f"  user: {user.username} {state}")
        return 0

    return _with_service(args, work)


def run_org_disable(args: argparse.Namespace) -> int:
    """Disable (or enable) an organization."""

    def work(service: IdentityService, _settings: Any) -> int:
        service.set_organization_disabled(_actor(), args.code, not args.enable)
        print(
            f"cairn: organization {args.code} {'enabled' if args.enable else 'disabled'}"
        )
        return 0

    return _with_service(args, work)


def _password(args: argparse.Namespace) -> str:
    """The new password, from standard input or a prompt typed twice."""
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise _Failure(
            "no terminal to prompt for the password: pipe it with --password-stdin"
        )
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise _Failure("password: the two entries differ; nothing changed")
    return first


def run_user_add(args: argparse.Namespace) -> int:
    """Create a user."""

    def work(service: IdentityService, _settings: Any) -> int:
        service.organization(args.org)
        service.add_user(_actor(), args.org, args.username, _password(args))
        print(f"cairn: user {args.username} of {args.org} added")
        return 0

    return _with_service(args, work)


def run_user_passwd(args: argparse.Namespace) -> int:
    """Set a user's password."""

    def work(service: IdentityService, _settings: Any) -> int:
        service.set_password(_actor(), args.username, _password(args))
        print(f"cairn: password of {args.username} changed")
        return 0

    return _with_service(args, work)


def run_user_disable(args: argparse.Namespace) -> int:
    """Disable (or enable) a user."""

    def work(service: IdentityService, _settings: Any) -> int:
        service.set_user_disabled(_actor(), args.username, not args.enable)
        print(f"cairn: user {args.username} {'enabled' if args.enable else 'disabled'}")
        return 0

    return _with_service(args, work)


def run_user_list(args: argparse.Namespace) -> int:
    """List users."""

    def work(service: IdentityService, _settings: Any) -> int:
        found = service.users(args.org)
        for user, org in found:
            state = "disabled" if user.disabled else "enabled"
            until = user.locked_until
            locked = " locked-out" if until and until > datetime.now(UTC) else ""
            print(f"{user.username:<24} {org.code:<20} {state}{locked}")
        print(f"{len(found)} user(s)")
        return 0

    return _with_service(args, work)
