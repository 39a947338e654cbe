"""Cairn's configuration: one typed, frozen settings tree read from TOML.

Imports only the standard library. Only ``engine`` reads settings; it hands
plain values down to the other packages.
"""

from config._settings import (
    CAIR_REGIONS,
    CdsiSettings,
    DatabaseSettings,
    DedupSettings,
    Facility,
    HttpSettings,
    IdentitySettings,
    LimitsSettings,
    LoggingSettings,
    MatchingSettings,
    QuerySettings,
    Region,
    RegistrySettings,
    ServerSettings,
    Settings,
    SoapSettings,
    load_settings,
    with_overrides,
)
from config.errors import ConfigError, ConfigErrors

__all__ = [
    "CAIR_REGIONS",
    "CdsiSettings",
    "ConfigError",
    "ConfigErrors",
    "DatabaseSettings",
    "DedupSettings",
    "Facility",
    "HttpSettings",
    "IdentitySettings",
    "LimitsSettings",
    "LoggingSettings",
    "MatchingSettings",
    "QuerySettings",
    "Region",
    "RegistrySettings",
    "ServerSettings",
    "Settings",
    "SoapSettings",
    "load_settings",
    "with_overrides",
]
