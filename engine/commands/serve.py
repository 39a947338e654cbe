"""``cairn serve``: run the MLLP listener and the message pipeline."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import structlog

from config import Settings
from engine.app import (
    RunningServer,
    StartupError,
    http_address,
    install_graceful_shutdown,
    listening_address,
    open_registry_database,
    start_server,
    startup_summary,
    tls_files,
)
from engine.commands._common import add_database_options, settings_from
from engine.logging import configure_logging
from engine.tls import TlsError, load_server_tls
from storage import StorageError

logger = structlog.get_logger()


def register(subparsers: Any) -> None:
    """Add the ``serve`` sub-command."""
    parser = subparsers.add_parser(
        "serve", help="run the MLLP listener and the message pipeline"
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address to listen on (default 127.0.0.1:2575; port 0 picks a"
        " free one and prints it)",
    )
    parser.add_argument(
        "--http-listen",
        metavar="HOST:PORT",
        help="address of the HTTP listener (/metrics, /healthz, /readyz);"
        " default http.listen, which is empty: no HTTP listener",
    )
    add_database_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the engine and run until SIGTERM or SIGINT."""
    settings = settings_from(args)
    configure_logging(settings.logging.format, settings.logging.level)
    from twisted.internet import reactor  # noqa: TID251 - engine owns the global reactor

    if settings.server.auth == "tls":
        # Before anything is opened or created: a TLS file that cannot be
        # used stops startup with one line.
        try:
            load_server_tls(tls_files(settings), require_client_certificate=True)
        except TlsError as exc:
            print(f"cairn: {exc}", file=sys.stderr)
            return 2
    try:
        db = open_registry_database(settings, upgrade=True)
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    try:
        server = start_server(reactor, settings, db)
    except StartupError as exc:
        db.close()
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    install_graceful_shutdown(reactor, server)
    host, port = listening_address(server)
    auth = settings.server.auth
    how = {"open": "", "tls": " with TLS (client certificates)", "ip": ""}[auth]
    print(f"cairn: listening for MLLP on {host}:{port}{how}", flush=True)
    http = http_address(server)
    if http is not None:
        scheme = "https" if settings.http.tls_certificate else "http"
        print(
            f"cairn: listening for {scheme.upper()} on {http[0]}:{http[1]}", flush=True
        )
        if settings.soap.enabled:
            url = f"{scheme}://{http[0]}:{http[1]}/{settings.soap.path}"
            wsdl = f"{url}?wsdl" if settings.soap.wsdl else "none (set soap.wsdl)"
            print(
                f"cairn: CDC SOAP service at {url}; WSDL: {wsdl}; every request "
                "needs a user's credentials (cairn user add)",
                flush=True,
            )
    if server.test_port is not None:
        host, port = listening_address(server, test=True)
        print(
            f"cairn: test-mode MLLP listener on {host}:{port}{how}: messages are "
            "validated and answered, nothing is stored",
            flush=True,
        )
    if auth == "open":
        print(
            "cairn: OPEN LISTENER (development): anyone who can connect is "
            'whatever MSH-4 says; set server.auth = "tls" or "ip" in production',
            flush=True,
        )
    else:
        print(
            f"cairn: authenticated listener (auth = {auth!r}): each connection is "
            "an organization; MSH-4 must be one of its facility ids",
            flush=True,
        )
    testing = [f.id for f in settings.facilities if f.test]
    if testing:
        print(
            f"cairn: sending facilities in test mode (nothing they send is "
            f"stored): {', '.join(testing)}",
            flush=True,
        )
    registry = settings.registry
    if auth == "open" and registry.unknown_sender == "accept":
        # Said once here (and once per sender in the log), not in every ACK.
        print(
            f"cairn: open to any sender: {len(settings.facilities)} registered "
            "sending facilities; messages from any other MSH-4 are accepted into "
            f"region {registry.unknown_sender_region} (development default; set "
            'registry.unknown_sender = "reject" in production)',
            flush=True,
        )
    announce(settings, server)
    reactor.run()  # type: ignore[misc] # zope interface method
    return 0


def announce(
    settings: Settings, server: RunningServer, err: TextIO | None = None
) -> None:
    """After the addresses: the loud CDSi warning if due, and the ``engine_started`` event.

    The event says once, for the log, how the engine is set up: listeners,
    auth mode, database (without password), CDSi release, regions and
    registered senders (:func:`engine.app.startup_summary`).
    """
    if server.cdsi_release is None:
        print(
            "cairn: WARNING: no CDSi supporting data is loaded: every Z44 query will"
            " be answered WITHOUT a forecast, and /readyz reports not ready"
            " (install it with `cairn cdsi import PATH`, or set cdsi.supporting_data)",
            file=err if err is not None else sys.stderr,
            flush=True,
        )
    logger.info("engine_started", **startup_summary(settings, server))
