"""The typed settings tree: defaults, TOML, environment overrides and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import (
    CAIR_REGIONS,
    ConfigError,
    ConfigErrors,
    load_settings,
    with_overrides,
)

EXAMPLE = (
    Path(__file__).resolve().parents[2]
    / "config"
    / "examples"
    / "cairn.production.toml"
)


def test_settings_defaults_serve_embedded_mode() -> None:
    """Without a file, the defaults accept unknown senders and use SQLite."""
    settings = load_settings(None, environ={})
    assert settings.registry.unknown_sender == "accept"
    assert settings.database.url == ""
    assert settings.server.listen == "127.0.0.1:2575"
    assert len(settings.regions) == 9


def test_settings_example_production_config_rejects_unknown_senders() -> None:
    """The shipped production example loads and rejects unknown senders."""
    settings = load_settings(EXAMPLE, environ={})
    assert settings.registry.unknown_sender == "reject"
    assert settings.facility_region("SUTTERPEDS") == "SAC"


def test_settings_example_production_config_is_authenticated() -> None:
    """The production example authenticates every connection by client certificate."""
    settings = load_settings(EXAMPLE, environ={})
    assert settings.server.auth == "tls"
    assert settings.server.tls_client_ca_file


def test_settings_defaults_are_open_for_development() -> None:
    """Without a file the listener is open (development), with no TLS files."""
    settings = load_settings(None, environ={})
    assert settings.server.auth == "open"
    assert settings.server.tls_certificate == ""


def test_settings_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    """An unknown key is an error naming the file and the dotted key."""
    path = tmp_path / "cairn.toml"
    path.write_text("[server]\nlisten = '0.0.0.0:2575'\nbogus = 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value).startswith(f"{path}: server.bogus: unknown key")


def test_settings_wrong_type_names_key_and_reason(tmp_path: Path) -> None:
    """A value of the wrong type names the key, what was expected and what was given."""
    path = tmp_path / "cairn.toml"
    path.write_text("[server]\nmax_message_bytes = 'big'\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert "server.max_message_bytes: expected an integer, got 'big'" in str(err.value)


def test_settings_bad_listen_address(tmp_path: Path) -> None:
    """server.listen must be HOST:PORT."""
    path = tmp_path / "cairn.toml"
    path.write_text("[server]\nlisten = 'nowhere'\n")
    with pytest.raises(ConfigError, match=r"server\.listen: expected HOST:PORT"):
        load_settings(path, environ={})


def test_settings_facility_in_unknown_region(tmp_path: Path) -> None:
    """A facility must point at a configured region."""
    path = tmp_path / "cairn.toml"
    path.write_text("[[facilities]]\nid = 'X'\nregion = 'MARS'\n")
    with pytest.raises(
        ConfigError, match=r"facilities\[0\]\.region: unknown region 'MARS'"
    ):
        load_settings(path, environ={})


def test_settings_environment_overrides_file(tmp_path: Path) -> None:
    """CAIRN_SECTION__KEY overrides the file, converted to the field's type."""
    path = tmp_path / "cairn.toml"
    path.write_text("[server]\nmax_message_bytes = 2048\n")
    settings = load_settings(
        path,
        environ={
            "CAIRN_SERVER__MAX_MESSAGE_BYTES": "4096",
            "CAIRN_REGISTRY__STATEWIDE": "true",
        },
    )
    assert settings.server.max_message_bytes == 4096
    assert settings.registry.statewide is True


def test_settings_bad_environment_value_names_environment() -> None:
    """A bad override is reported against the environment, not the file."""
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ={"CAIRN_SERVER__MAX_MESSAGE_BYTES": "lots"})
    assert str(err.value).startswith("environment: server.max_message_bytes")


def test_settings_missing_file_is_reported(tmp_path: Path) -> None:
    """A --config path that does not exist is a clear error."""
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_settings_invalid_toml_is_reported(tmp_path: Path) -> None:
    """A TOML syntax error names the file."""
    path = tmp_path / "cairn.toml"
    path.write_text("[server\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(path, environ={})


def test_settings_command_line_overrides_are_checked() -> None:
    """with_overrides applies flags and checks them like file values."""
    settings = with_overrides(
        load_settings(None, environ={}), server={"listen": "0.0.0.0:0"}
    )
    assert settings.server.listen == "0.0.0.0:0"
    with pytest.raises(ConfigError):
        with_overrides(settings, server={"listen": "bad"})


def test_settings_region_codes_are_the_nine_cair_regions() -> None:
    """The built-in regions are CAIR's nine, each with a code and a name."""
    assert load_settings(None, environ={}).region_codes() == frozenset(
        r.code for r in CAIR_REGIONS
    )
    assert all(r.name for r in CAIR_REGIONS)


def test_settings_reports_every_unknown_key_in_one_error(tmp_path: Path) -> None:
    """Misspelt keys in several sections, a table array and the top level all come in one error."""
    path = tmp_path / "cairn.toml"
    path.write_text(
        "colour = 'blue'\n"
        "[server]\nlisten = '0.0.0.0:2575'\nlisen = 1\n"
        "[database]\nuri = 'x'\n"
        "[[facilities]]\nid = 'A'\nregion = 'BAY'\n"
        "[[facilities]]\nid = 'B'\nregion = 'BAY'\nregoin = 'SAC'\n"
    )
    with pytest.raises(ConfigErrors) as err:
        load_settings(path, environ={})
    keys = [problem.key for problem in err.value.problems]
    assert keys == ["colour", "server.lisen", "database.uri", "facilities[1].regoin"]
    text = str(err.value)
    for key in keys:
        assert f"{path}: {key}: unknown key" in text
    assert "\n" not in text


def test_settings_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    """A key one typo away from a known one says which was probably meant."""
    path = tmp_path / "cairn.toml"
    path.write_text("[server]\nlisen = '0.0.0.0:2575'\n")
    with pytest.raises(ConfigError, match="did you mean 'listen'"):
        load_settings(path, environ={})


def test_settings_unknown_keys_from_file_and_environment_name_their_source(
    tmp_path: Path,
) -> None:
    """An unknown key set by the environment is named as coming from the environment."""
    path = tmp_path / "cairn.toml"
    path.write_text("[server]\nbogus = 1\n")
    with pytest.raises(ConfigErrors) as err:
        load_settings(path, environ={"CAIRN_DATABASE__URLL": "sqlite://"})
    sources = {(p.source, p.key) for p in err.value.problems}
    assert sources == {(str(path), "server.bogus"), ("environment", "database.urll")}


def test_cli_config_error_lists_every_unknown_key_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI prints all unknown keys in its one configuration-error line and exits 2."""
    from engine.cli import main

    path = tmp_path / "cairn.toml"
    path.write_text("[server]\nbogus = 1\n[logging]\nformatt = 'json'\n")
    assert main(["--config", str(path), "messages", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "server.bogus" in err
    assert "logging.formatt" in err


def test_settings_old_zero_to_one_match_threshold_is_refused(tmp_path: Path) -> None:
    """A 0-1 threshold from before the scores were bits is an error naming the key."""
    path = tmp_path / "cairn.toml"
    path.write_text("[matching]\nmatch_threshold = 0.55\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert "matching.match_threshold" in str(caught.value)
    assert "bits" in str(caught.value)


def test_settings_example_sets_the_tuning_values_to_their_defaults() -> None:
    """The production example spells out every tuning value with the built-in default."""
    example = load_settings(EXAMPLE, environ={})
    defaults = load_settings(None, environ={})
    assert (
        example.server.shutdown_grace_seconds,
        example.server.max_in_flight,
        example.server.max_pipelined,
        example.matching.candidate_limit,
        example.query.max_candidates,
        example.dedup.review_score,
    ) == (
        defaults.server.shutdown_grace_seconds,
        defaults.server.max_in_flight,
        defaults.server.max_pipelined,
        defaults.matching.candidate_limit,
        defaults.query.max_candidates,
        defaults.dedup.review_score,
    )


def test_settings_tuning_defaults_are_the_former_hard_coded_values() -> None:
    """Unset, each tuning value is what the code hard-coded before it became a setting."""
    settings = load_settings(None, environ={})
    assert settings.server.max_in_flight == 4096
    assert settings.server.max_pipelined == 32
    assert settings.matching.candidate_limit == 1000
    assert settings.query.max_candidates == 10
    assert settings.dedup.review_score == 0.5
    assert settings.server.shutdown_grace_seconds == 30.0


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("server", "shutdown_grace_seconds", "-1"),
        ("server", "shutdown_grace_seconds", "nan"),
        ("server", "shutdown_grace_seconds", "inf"),
        ("server", "max_in_flight", "0"),
        ("server", "max_in_flight", "10000000"),
        ("server", "max_pipelined", "0"),
        ("server", "max_pipelined", "-5"),
        ("matching", "candidate_limit", "0"),
        ("matching", "candidate_limit", "1000000"),
        ("query", "max_candidates", "0"),
        ("query", "max_candidates", "101"),
        ("dedup", "review_score", "-0.1"),
        ("dedup", "review_score", "1.5"),
        ("server", "max_connections", "0"),
        ("server", "max_connections_per_address", "0"),
        ("server", "frame_timeout_seconds", "0"),
        ("server", "frame_timeout_seconds", "nan"),
        ("server", "max_buffered_bytes", "1000"),
        ("database", "statement_timeout_seconds", "0"),
        ("database", "statement_timeout_seconds", "nan"),
        ("database", "connect_timeout_seconds", "0"),
        ("limits", "max_segments", "5"),
        ("limits", "max_order_groups", "0"),
        ("limits", "max_repetitions", "0"),
        ("limits", "max_query_identifiers", "0"),
    ],
)
def test_settings_tuning_value_out_of_range_names_the_dotted_key(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    """A tuning value out of its range is an error naming the file, the dotted key and the range."""
    path = tmp_path / "cairn.toml"
    path.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value).startswith(f"{path}: {section}.{key}: expected ")
    assert err.value.key == f"{section}.{key}"


def test_settings_tuning_value_of_the_wrong_type_names_the_dotted_key(
    tmp_path: Path,
) -> None:
    """A tuning value that is not a number is an error naming the dotted key."""
    path = tmp_path / "cairn.toml"
    path.write_text("[query]\nmax_candidates = 'ten'\n")
    with pytest.raises(
        ConfigError, match=r"query\.max_candidates: expected an integer"
    ):
        load_settings(path, environ={})


def test_settings_tuning_value_out_of_range_from_environment_names_environment() -> (
    None
):
    """An override out of range is reported against the environment, not the file."""
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ={"CAIRN_SERVER__MAX_PIPELINED": "0"})
    assert str(err.value).startswith("environment: server.max_pipelined: expected 1")


def test_settings_tuning_values_at_their_bounds_are_accepted(tmp_path: Path) -> None:
    """The ends of each range are valid settings (0 grace means exit at once)."""
    path = tmp_path / "cairn.toml"
    path.write_text(
        "[server]\nshutdown_grace_seconds = 0\nmax_in_flight = 1\nmax_pipelined = 1\n"
        "[matching]\ncandidate_limit = 1\n"
        "[query]\nmax_candidates = 100\n"
        "[dedup]\nreview_score = 1\n"
    )
    settings = load_settings(path, environ={})
    assert settings.server.shutdown_grace_seconds == 0.0
    assert settings.query.max_candidates == 100
    assert settings.dedup.review_score == 1.0


@pytest.mark.parametrize(
    "key", ["tls_certificate", "tls_private_key_file", "tls_client_ca_file"]
)
def test_settings_tls_key_required_with_tls_auth(tmp_path: Path, key: str) -> None:
    """auth = "tls" without one of its files stops startup naming the missing key."""
    keys = {"tls_certificate", "tls_private_key_file", "tls_client_ca_file"} - {key}
    body = "".join(f"{k} = '/etc/cairn/{k}.pem'\n" for k in sorted(keys))
    path = tmp_path / "cairn.toml"
    path.write_text(f"[server]\nauth = 'tls'\n{body}")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == f'{path}: server.{key}: required when server.auth = "tls"'


@pytest.mark.parametrize("auth", ["open", "ip"])
def test_settings_tls_key_without_tls_auth_is_refused(
    tmp_path: Path, auth: str
) -> None:
    """A TLS file on a listener that does not use TLS is refused, not silently ignored."""
    path = tmp_path / "cairn.toml"
    path.write_text(f"[server]\nauth = '{auth}'\ntls_certificate = 'c.pem'\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    message = str(err.value)
    assert message.startswith(f"{path}: server.tls_certificate: only used with")
    assert "\n" not in message


def test_settings_tls_auth_from_environment_names_environment() -> None:
    """A TLS setting from CAIRN_SERVER__* is reported against the environment."""
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ={"CAIRN_SERVER__TLS_CERTIFICATE": "/x.pem"})
    assert str(err.value).startswith("environment: server.tls_certificate: only used")


def test_settings_http_listener_is_off_by_default_and_checked(tmp_path: Path) -> None:
    """http.listen is empty (no HTTP port) unless set; a set value must be HOST:PORT."""
    assert load_settings(None, environ={}).http.listen == ""
    on = load_settings(None, environ={"CAIRN_HTTP__LISTEN": "127.0.0.1:8080"})
    assert on.http.listen == "127.0.0.1:8080"
    path = tmp_path / "cairn.toml"
    path.write_text("[http]\nlisten = '8080'\n")
    with pytest.raises(ConfigError, match=r"http\.listen: expected HOST:PORT"):
        load_settings(path, environ={})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[soap]\nenabled = true\n", r"soap\.enabled: .*set http\.listen"),
        (
            "[http]\nlisten = '127.0.0.1:0'\n[soap]\npath = 'a/b'\n",
            r"soap\.path: expected one URL path segment",
        ),
        (
            "[http]\nlisten = '127.0.0.1:0'\ntls_certificate = 'c.pem'\n",
            r"http\.tls_private_key_file: HTTPS needs both",
        ),
    ],
)
def test_settings_soap_and_https_are_checked(
    tmp_path: Path, text: str, says: str
) -> None:
    """SOAP without an HTTP listener, a path with a slash, half an HTTPS pair: refused by key."""
    path = tmp_path / "cairn.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=says):
        load_settings(path, environ={})


def test_settings_soap_is_off_by_default_and_the_example_turns_it_on_in_one_key() -> (
    None
):
    """No SOAP by default; the production example has its keys, off until HTTPS is set up."""
    assert load_settings(None, environ={}).soap.enabled is False
    example = load_settings(EXAMPLE, environ={})
    assert example.soap.enabled is False
    assert example.soap.wsdl
    assert "enabled = false" in EXAMPLE.read_text()


def test_settings_unknown_auth_mode_is_refused(tmp_path: Path) -> None:
    """The auth mode is one of open, tls, ip."""
    path = tmp_path / "cairn.toml"
    path.write_text("[server]\nauth = 'password'\n")
    with pytest.raises(ConfigError, match=r"server\.auth: expected one of"):
        load_settings(path, environ={})


def test_settings_identity_limits_checked(tmp_path: Path) -> None:
    """Limits below one are refused, naming the key."""
    path = tmp_path / "cairn.toml"
    path.write_text("[identity]\nmessages_per_minute = 0\n")
    with pytest.raises(ConfigError, match=r"identity\.messages_per_minute: expected 1"):
        load_settings(path, environ={})


def test_settings_example_sets_the_limits_to_their_defaults() -> None:
    """The production example spells out the per-message and per-peer limits as built in."""
    example = load_settings(EXAMPLE, environ={})
    defaults = load_settings(None, environ={})
    assert example.limits == defaults.limits
    assert (
        example.server.max_connections,
        example.server.max_connections_per_address,
        example.server.frame_timeout_seconds,
        example.server.max_buffered_bytes,
        example.database.statement_timeout_seconds,
        example.database.connect_timeout_seconds,
    ) == (
        defaults.server.max_connections,
        defaults.server.max_connections_per_address,
        defaults.server.frame_timeout_seconds,
        defaults.server.max_buffered_bytes,
        defaults.database.statement_timeout_seconds,
        defaults.database.connect_timeout_seconds,
    )


def test_settings_buffer_budget_below_one_message_is_refused(tmp_path: Path) -> None:
    """max_buffered_bytes must hold at least one whole message (max_message_bytes)."""
    path = tmp_path / "cairn.toml"
    path.write_text("[server]\nmax_message_bytes = 4096\nmax_buffered_bytes = 4095\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert err.value.key == "server.max_buffered_bytes"
    assert "expected 4,096 to" in str(err.value)
