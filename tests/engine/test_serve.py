"""``cairn serve`` refuses, in one line, a configuration it cannot honour."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main


def test_serve_with_a_tls_key_stops_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config with server.tls_certificate exits 2 with one line naming the key, and opens nothing."""
    config = tmp_path / "cairn.toml"
    config.write_text("[server]\ntls_certificate = '/etc/cairn/cert.pem'\n")
    data = tmp_path / "data"
    code = main(
        [
            "--config",
            str(config),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(data),
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1
    assert "server.tls_certificate: TLS is not supported yet" in captured.err
    assert "listening" not in captured.out
    assert not data.exists()  # no database was created
