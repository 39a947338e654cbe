"""The typed settings tree and its TOML/environment loader.

Every section is a frozen dataclass with defaults that serve the embedded
(SQLite, development) mode. ``load_settings`` reads a TOML file, rejects
unknown keys, converts and checks each value, then applies environment
overrides of the form ``CAIRN_<SECTION>__<KEY>`` (e.g.
``CAIRN_DATABASE__URL``). Every problem raises :class:`ConfigError` naming
the file, the dotted key and the reason.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from config.errors import ConfigError, ConfigErrors

UnknownSenderPolicy = Literal["accept", "reject"]
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
SqliteSynchronous = Literal["FULL", "NORMAL"]
AuthMode = Literal["open", "tls", "ip"]


@dataclass(frozen=True)
class Region:
    """One regional registry: CAIR has nine."""

    code: str
    name: str


#: The nine CAIR regions, in the order CDPH lists its regional registries.
CAIR_REGIONS: tuple[Region, ...] = (
    Region("NORCAL", "Northern California"),
    Region("SAC", "Greater Sacramento"),
    Region("BAY", "Bay Area"),
    Region("CENVAL", "Central Valley"),
    Region("CENCST", "Central Coast"),
    Region("LAO", "Los Angeles-Orange"),
    Region("INLAND", "Inland Empire"),
    Region("SD", "San Diego-Imperial"),
    Region("SJV", "San Joaquin Valley"),
)


@dataclass(frozen=True)
class Facility:
    """A known sending facility (MSH-4) and the region its data belongs to."""

    id: str
    region: str
    name: str = ""
    #: Test mode: this sender's messages are validated and answered as
    #: usual, journaled and marked, and nothing reaches the registry.
    test: bool = False


@dataclass(frozen=True)
class ServerSettings:
    """The MLLP listener."""

    listen: str = "127.0.0.1:2575"
    #: A second MLLP listener in test mode (HOST:PORT; empty: none): every
    #: message it receives is validated and answered, and nothing is stored.
    test_listen: str = ""
    data_dir: str = "var"
    max_message_bytes: int = 1024 * 1024
    idle_timeout_seconds: float = 300.0
    #: On SIGTERM or SIGINT, ``cairn serve`` stops accepting and waits at most
    #: this long for the messages in flight to be committed and answered, then
    #: exits anyway (0: no wait). A message not answered by then was either
    #: committed (its resend gets the stored answer) or rolled back (its
    #: resend is new); the sender resends it in both cases. Keep it below the
    #: service manager's stop timeout (systemd ``TimeoutStopSec``).
    shutdown_grace_seconds: float = 30.0
    #: Messages, from all connections together, waiting for the writer; one
    #: more is refused: its connection is closed without an answer, so the
    #: sender resends it later (the engine is overloaded).
    max_in_flight: int = 4096
    #: Answers one connection may be waiting for; beyond that the connection
    #: is not read until it is back to this many (back-pressure).
    max_pipelined: int = 32
    #: How the listener knows who is speaking: ``open`` (development: MSH-4
    #: is trusted, the ``[[facilities]]`` map gives the region; said loudly
    #: at startup), ``tls`` (a client certificate mapped to an organization)
    #: or ``ip`` (the peer address on an organization's allow-list). An
    #: authenticated listener never falls back to plaintext or to MSH-4.
    auth: AuthMode = "open"
    #: ``auth = "tls"``: the server's certificate chain (PEM, leaf first),
    #: its private key (PEM) and the CA(s) client certificates must chain to.
    tls_certificate: str = ""
    tls_private_key_file: str = ""
    tls_client_ca_file: str = ""
    #: Connections the listener keeps open at once; one more is closed as
    #: soon as it is accepted.
    max_connections: int = 1000
    #: Connections from one source address at once; one more is closed as
    #: soon as it is accepted.
    max_connections_per_address: int = 100
    #: Seconds a frame may take to arrive, from its first byte to its end
    #: block; a connection that has not finished it by then is closed (so a
    #: byte a second cannot hold a connection for ever).
    frame_timeout_seconds: float = 60.0
    #: Bytes of unfinished frames the listener holds for all connections
    #: together; a connection whose bytes would go over it is closed.
    max_buffered_bytes: int = 256 * 1024 * 1024
    #: Worker processes that decode, check and validate messages before the
    #: writer thread stores them, so that both cores work (0: the writer
    #: does it itself). Forked at start-up; they hold no database connection.
    reader_processes: int = 1


@dataclass(frozen=True)
class IdentitySettings:
    """Users' logins (SOAP, console) and per-organization limits."""

    #: Wrong passwords in a row that lock an account.
    max_failed_logins: int = 5
    #: How long a locked account stays locked.
    lockout_seconds: float = 900.0
    #: Default per-organization limits (an organization may have its own,
    #: ``cairn org add --max-messages-per-minute / --max-connections``).
    #: Counted per engine node. Beyond them a message gets AR naming the
    #: limit, never a silent drop.
    messages_per_minute: int = 6000
    max_connections: int = 8
    #: How often an authenticated listener looks its open connections'
    #: certificates and addresses up again, so that disabling an
    #: organization (or removing a credential) reaches connections already
    #: open: their next messages get AR.
    revalidate_seconds: float = 30.0


@dataclass(frozen=True)
class HttpSettings:
    """The engine's HTTP listener (/metrics, /healthz, /readyz, and what mounts on it).

    Off by default, so that two engines on one machine (or tests in
    parallel) never fight for a port nobody asked for; ``make run`` and the
    production example turn it on. Plain HTTP unless ``tls_certificate`` and
    ``tls_private_key_file`` are set; keep a plain one on a private address.
    """

    #: HOST:PORT to listen on; empty: no HTTP listener.
    listen: str = ""
    #: HTTPS: the server's certificate chain (PEM, leaf first) and its
    #: unencrypted PEM key; both or neither (empty: plain HTTP).
    tls_certificate: str = ""
    tls_private_key_file: str = ""


@dataclass(frozen=True)
class SoapSettings:
    """The CDC IIS SOAP web service (``urn:cdc:iisb:2011``), on the HTTP listener.

    Every request carries a username and password (``cairn user add``);
    there is no open mode. The service is served at
    ``http(s)://HOST:PORT/<path>`` of ``http.listen``.
    """

    #: Serve the SOAP service (needs ``http.listen``).
    enabled: bool = False
    #: The one path segment it is served at.
    path: str = "soap"
    #: The operator's copy of CDC's single-file WSDL (``cdc-iis-2011.wsdl``),
    #: served at ``?wsdl`` with its endpoint address set to the address the
    #: client called; empty: ``?wsdl`` answers 404.
    wsdl: str = ""


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the registry's data lives; empty URL means SQLite in data_dir."""

    url: str = ""
    sqlite_synchronous: SqliteSynchronous = "FULL"
    pool_size: int = 8
    group_commit_max: int = 64
    #: Milliseconds the writer waits for more messages when fewer are queued
    #: than its last transaction held (0: never waits).
    group_commit_wait_ms: float = 1.0
    #: PostgreSQL with autovacuum off: how often the engine analyzes tables
    #: whose statistics went stale (0: never).
    statistics_interval_seconds: int = 10
    #: Seconds one statement may take before it is abandoned (PostgreSQL:
    #: cancelled by the server, or its connection closed when the server
    #: does not answer; SQLite: how long a write waits for the database
    #: lock). The message gets a transient AE, or its connection is closed,
    #: and the sender resends it.
    statement_timeout_seconds: float = 30.0
    #: Seconds to open a connection to PostgreSQL before giving up.
    connect_timeout_seconds: int = 10


@dataclass(frozen=True)
class RegistrySettings:
    """Registry-wide policy."""

    name: str = "CAIRN"
    facility_id: str = "CAIRN"
    statewide: bool = False
    unknown_sender: UnknownSenderPolicy = "accept"
    unknown_sender_region: str = "BAY"
    processing_ids: tuple[str, ...] = ("P", "T", "D")


@dataclass(frozen=True)
class LoggingSettings:
    """structlog output."""

    format: LogFormat = "auto"
    level: LogLevel = "info"


@dataclass(frozen=True)
class CdsiSettings:
    """The CDSi supporting data release the forecaster uses."""

    supporting_data: str = ""


#: Below this a common name and a birth date one digit off would be a match.
MIN_MATCH_THRESHOLD = 10.0


@dataclass(frozen=True)
class MatchingSettings:
    """Patient matching thresholds on the Fellegi-Sunter score.

    The score is the evidence for a match in bits: the sum over the fields
    compared of log2(m/u), negative for a disagreement (handlers/scoring.py).
    A common name and an exact birth date and sex alone make about 24; two
    strangers who share them and disagree on everything else about 8.
    ``bench/matching.py`` measures the precision and recall they give.
    """

    match_threshold: float = 22.0
    possible_threshold: float = 12.0
    #: The most stored records an incoming VXU patient is compared with (the
    #: blocking look-up's cap, lowest ids first); more than this is a data
    #: problem (a default birth date), not people to compare one by one.
    candidate_limit: int = 1000


@dataclass(frozen=True)
class DedupSettings:
    """Vaccination de-duplication windows."""

    window_days: int = 23
    group_window_days: Mapping[str, int] = field(default_factory=dict)
    #: The score (0 to 1) of the review item made for two doses that may be
    #: one (an "unsure" de-duplication verdict).
    review_score: float = 0.5


@dataclass(frozen=True)
class QuerySettings:
    """QBP queries (Z34, Z44)."""

    #: The most patients one Z34 answer lists, whatever RCP-2 asks for; more
    #: matches than this (or than RCP-2) are answered TM (too many).
    max_candidates: int = 10
    #: Threads that answer queries on reader connections, outside the
    #: writer's transaction (ingest and queries do not wait for each other).
    reader_threads: int = 2


@dataclass(frozen=True)
class LimitsSettings:
    """The most work one message may ask for; a message over a limit gets AR.

    The defaults are far above what real messages carry; the message size
    in bytes is ``server.max_message_bytes``.
    """

    #: Segments in one message.
    max_segments: int = 2000
    #: Order groups (ORC/RXA) in one VXU.
    max_order_groups: int = 250
    #: Repetitions of any one field.
    max_repetitions: int = 100
    #: Patient identifiers (QPD-3 repetitions) in one query.
    max_query_identifiers: int = 25


@dataclass(frozen=True)
class Settings:
    """The whole settings tree."""

    server: ServerSettings = field(default_factory=ServerSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    soap: SoapSettings = field(default_factory=SoapSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    cdsi: CdsiSettings = field(default_factory=CdsiSettings)
    matching: MatchingSettings = field(default_factory=MatchingSettings)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    query: QuerySettings = field(default_factory=QuerySettings)
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    regions: tuple[Region, ...] = CAIR_REGIONS
    facilities: tuple[Facility, ...] = ()

    def region_codes(self) -> frozenset[str]:
        """The configured region codes."""
        return frozenset(r.code for r in self.regions)

    def facility_region(self, facility_id: str) -> str | None:
        """The region of a known sending facility, or None when unknown."""
        for facility in self.facilities:
            if facility.id == facility_id:
                return facility.region
        return None


def _convert(value: Any, hint: Any, source: str, key: str) -> Any:
    """Convert a TOML (or environment string) value to the annotated type."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigError(source, key, f"expected one of {choices}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        raise ConfigError(source, key, "unsupported union type")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {
            "true",
            "1",
            "yes",
            "false",
            "0",
            "no",
        }:
            return value.lower() in {"true", "1", "yes"}
        raise ConfigError(source, key, f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(source, key, f"expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(source, key, f"expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(source, key, f"expected a number, got {value!r}")
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, f"expected a string, got {value!r}")
        return value
    if origin is tuple:
        (item_hint, _ellipsis) = typing.get_args(hint)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(source, key, f"expected a list, got {value!r}")
        return tuple(
            _convert(item, item_hint, source, f"{key}[{i}]")
            for i, item in enumerate(value)
        )
    if origin in (Mapping, dict):
        _key_hint, value_hint = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"expected a table, got {value!r}")
        return {
            str(k): _convert(v, value_hint, source, f"{key}.{k}")
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"expected a table, got {value!r}")
        return _build(hint, value, source, key)
    raise ConfigError(
        source, key, f"unsupported setting type {hint!r}"
    )  # pragma: no cover


def _build(cls: type[Any], table: Mapping[str, Any], source: str, prefix: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(source, key, f"unknown key (known keys: {known})")
        kwargs[name] = _convert(value, hints[name], source, key)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        key = f"{prefix}.{missing[0]}" if prefix else missing[0]
        raise ConfigError(source, key, "required key is missing")
    return cls(**kwargs)


def _unknown_keys(
    cls: type[Any], table: Mapping[str, Any], source: str, prefix: str
) -> list[ConfigError]:
    """Every key of ``table`` (and of its sub-tables) that ``cls`` does not know.

    :func:`_build` stops at the first problem; this walk finds them all
    first, so that a file with several misspelt keys is fixed in one go.
    Values of the wrong shape are left for :func:`_build` to report.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    problems: list[ConfigError] = []
    for name, value in table.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(fields))
            problems.append(
                ConfigError(source, key, f"unknown key (known keys: {known}){hint}")
            )
            continue
        hint_type = hints[name]
        if dataclasses.is_dataclass(hint_type) and isinstance(value, dict):
            problems += _unknown_keys(hint_type, value, source, key)  # type: ignore[arg-type]
        elif typing.get_origin(hint_type) is tuple and isinstance(value, list):
            item_type = typing.get_args(hint_type)[0]
            if dataclasses.is_dataclass(item_type):
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        problems += _unknown_keys(
                            item_type,  # type: ignore[arg-type]
                            item,
                            source,
                            f"{key}[{i}]",
                        )
    return problems


#: Keys that older configurations may set but this release cannot honour:
#: they stop startup rather than be accepted and ignored.
_UNSUPPORTED: dict[tuple[str, str], str] = {}


def _unsupported_keys(
    table: Mapping[str, Any], source: str, overridden: list[str]
) -> list[ConfigError]:
    """Every key of ``table`` that names a feature this release does not have."""
    problems: list[ConfigError] = []
    for (section, name), reason in _UNSUPPORTED.items():
        sub = table.get(section)
        if isinstance(sub, dict) and name in sub:
            key = f"{section}.{name}"
            where = "environment" if key in overridden else source
            problems.append(ConfigError(where, key, reason))
    return problems


def _apply_environment(
    table: dict[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """Overlay ``CAIRN_SECTION__KEY`` variables onto a raw settings table."""
    overridden: list[str] = []
    sections = {f.name for f in dataclasses.fields(Settings)}
    for var, raw in environ.items():
        if not var.startswith("CAIRN_") or "__" not in var:
            continue
        section, _, key = var[len("CAIRN_") :].lower().partition("__")
        if section not in sections:
            raise ConfigError(
                "environment", var, f"unknown settings section {section!r}"
            )
        sub = table.setdefault(section, {})
        if not isinstance(sub, dict):
            raise ConfigError("environment", var, f"{section} is not a table")
        sub[key] = raw
        overridden.append(f"{section}.{key}")
    return table, overridden


def _check_address(source: str, key: str, value: str, alternative: str = "") -> None:
    """A listening address must be HOST:PORT, with a port from 0 to 65535."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        expected = f"HOST:PORT {alternative}".strip()
        raise ConfigError(source, key, f"expected {expected}, got {value!r}")


#: One URL path segment, as HttpRoot.mount takes it.
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def _check(settings: Settings, source: str) -> None:
    """Cross-field rules: regions unique, facilities point at known regions."""
    seen: set[str] = set()
    for i, region in enumerate(settings.regions):
        if not region.code:
            raise ConfigError(source, f"regions[{i}].code", "must not be empty")
        if region.code in seen:
            raise ConfigError(
                source, f"regions[{i}].code", f"duplicate region {region.code!r}"
            )
        seen.add(region.code)
    facility_ids: set[str] = set()
    for i, facility in enumerate(settings.facilities):
        if facility.region not in seen:
            raise ConfigError(
                source,
                f"facilities[{i}].region",
                f"unknown region {facility.region!r} (known: {', '.join(sorted(seen))})",
            )
        if facility.id in facility_ids:
            raise ConfigError(
                source, f"facilities[{i}].id", f"duplicate facility {facility.id!r}"
            )
        facility_ids.add(facility.id)
    if settings.registry.unknown_sender_region not in seen:
        raise ConfigError(
            source,
            "registry.unknown_sender_region",
            f"unknown region {settings.registry.unknown_sender_region!r}",
        )
    _check_address(source, "server.listen", settings.server.listen)
    test_listen = settings.server.test_listen
    if test_listen:
        _check_address(source, "server.test_listen", test_listen)
        if test_listen == settings.server.listen and not test_listen.endswith(":0"):
            raise ConfigError(
                source,
                "server.test_listen",
                "must differ from server.listen (it is a second listener)",
            )
    if settings.http.listen:
        _check_address(
            source, "http.listen", settings.http.listen, "or empty (no HTTP listener)"
        )
    if bool(settings.http.tls_certificate) != bool(settings.http.tls_private_key_file):
        raise ConfigError(
            source,
            "http.tls_private_key_file"
            if settings.http.tls_certificate
            else "http.tls_certificate",
            "HTTPS needs both http.tls_certificate and http.tls_private_key_file",
        )
    if settings.soap.enabled and not settings.http.listen:
        raise ConfigError(
            source,
            "soap.enabled",
            "the SOAP service is served on the HTTP listener: set http.listen too",
        )
    if not _SEGMENT.fullmatch(settings.soap.path):
        raise ConfigError(
            source,
            "soap.path",
            "expected one URL path segment (letters, digits, '.', '_', '-'), "
            f"got {settings.soap.path!r}",
        )
    if settings.server.max_message_bytes < 1024:
        raise ConfigError(source, "server.max_message_bytes", "must be at least 1024")
    for key, value, low, high in (
        (
            "server.shutdown_grace_seconds",
            settings.server.shutdown_grace_seconds,
            0,
            3600,
        ),
        ("server.max_in_flight", settings.server.max_in_flight, 1, 1_000_000),
        ("server.max_pipelined", settings.server.max_pipelined, 1, 10_000),
        ("server.max_connections", settings.server.max_connections, 1, 1_000_000),
        (
            "server.max_connections_per_address",
            settings.server.max_connections_per_address,
            1,
            1_000_000,
        ),
        (
            "server.frame_timeout_seconds",
            settings.server.frame_timeout_seconds,
            0.1,
            86_400,
        ),
        (
            "server.max_buffered_bytes",
            settings.server.max_buffered_bytes,
            settings.server.max_message_bytes,
            2**40,
        ),
        (
            "database.statement_timeout_seconds",
            settings.database.statement_timeout_seconds,
            0.1,
            86_400,
        ),
        (
            "database.connect_timeout_seconds",
            settings.database.connect_timeout_seconds,
            1,
            3600,
        ),
        ("limits.max_segments", settings.limits.max_segments, 10, 1_000_000),
        ("limits.max_order_groups", settings.limits.max_order_groups, 1, 1_000_000),
        ("limits.max_repetitions", settings.limits.max_repetitions, 1, 1_000_000),
        (
            "limits.max_query_identifiers",
            settings.limits.max_query_identifiers,
            1,
            1_000_000,
        ),
        ("server.reader_processes", settings.server.reader_processes, 0, 64),
        (
            "database.group_commit_wait_ms",
            settings.database.group_commit_wait_ms,
            0,
            50,
        ),
        ("matching.candidate_limit", settings.matching.candidate_limit, 1, 100_000),
        ("query.max_candidates", settings.query.max_candidates, 1, 100),
        ("query.reader_threads", settings.query.reader_threads, 1, 64),
        ("dedup.review_score", settings.dedup.review_score, 0, 1),
        ("identity.max_failed_logins", settings.identity.max_failed_logins, 1, 1000),
        ("identity.lockout_seconds", settings.identity.lockout_seconds, 0, 86400 * 30),
        (
            "identity.messages_per_minute",
            settings.identity.messages_per_minute,
            1,
            10_000_000,
        ),
        ("identity.max_connections", settings.identity.max_connections, 1, 100_000),
        ("identity.revalidate_seconds", settings.identity.revalidate_seconds, 1, 3600),
    ):
        # Written so that NaN (a float setting from the environment) fails too.
        if not low <= value <= high:
            raise ConfigError(
                source, key, f"expected {low:,} to {high:,}, got {value!r}"
            )
    _check_tls(settings.server, source)
    m = settings.matching
    if m.match_threshold < MIN_MATCH_THRESHOLD:
        # The score was a weighted mean from -1 to 1 before; an old setting
        # such as 0.55 would now merge strangers who share a birth date.
        raise ConfigError(
            source,
            "matching.match_threshold",
            f"expected at least {MIN_MATCH_THRESHOLD:g} (bits of evidence; "
            f"the default is 22), got {m.match_threshold!r}",
        )
    if not 0 < m.possible_threshold <= m.match_threshold:
        raise ConfigError(
            source,
            "matching",
            "expected 0 < possible_threshold <= match_threshold",
        )


_TLS_KEYS = ("tls_certificate", "tls_private_key_file", "tls_client_ca_file")


def _check_tls(server: ServerSettings, source: str) -> None:
    """TLS files are required with ``auth = "tls"`` and read by nothing else."""
    for key in _TLS_KEYS:
        value = getattr(server, key)
        if server.auth == "tls" and not value:
            raise ConfigError(
                source, f"server.{key}", 'required when server.auth = "tls"'
            )
        if server.auth != "tls" and value:
            raise ConfigError(
                source,
                f"server.{key}",
                f'only used with server.auth = "tls" (auth is {server.auth!r}): '
                'remove it or set auth = "tls"',
            )


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load settings from an optional TOML file plus environment overrides.

    Args:
        path: the TOML file (``--config``); None for the built-in defaults.
        environ: the environment to read ``CAIRN_*__*`` overrides from.

    Returns:
        The checked, frozen settings tree.

    Raises:
        ConfigError: naming the file, the dotted key and what is wrong.
    """
    source = "defaults"
    table: dict[str, Any] = {}
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as handle:
                table = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(
                source,
                "",
                "file not found (start from config/examples/cairn.production.toml,"
                " or leave --config out for the development defaults)",
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "", f"invalid TOML: {exc}") from None
    env = os.environ if environ is None else environ
    table, overridden = _apply_environment(table, env)
    unsupported = _unsupported_keys(table, source, overridden)
    if unsupported:
        raise ConfigErrors(unsupported)
    unknown = [
        ConfigError("environment", problem.key, problem.reason)
        if problem.key in overridden
        else problem
        for problem in _unknown_keys(Settings, table, source, "")
    ]
    if unknown:
        raise ConfigErrors(unknown)
    try:
        settings: Settings = _build(Settings, table, source, "")
    except ConfigError as exc:
        if exc.key.split("[")[0] in overridden:
            raise ConfigError("environment", exc.key, exc.reason) from None
        raise
    try:
        _check(settings, source)
    except ConfigError as exc:
        if exc.key in overridden:
            raise ConfigError("environment", exc.key, exc.reason) from None
        raise
    return settings


def with_overrides(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """Return settings with some section values replaced (command-line flags).

    Example: ``with_overrides(s, server={"listen": "0.0.0.0:2575"})``.
    """
    changes: dict[str, Any] = {}
    for section, values in sections.items():
        current = getattr(settings, section)
        changes[section] = dataclasses.replace(current, **values)
    updated = dataclasses.replace(settings, **changes)
    _check(updated, "command line")
    return updated
