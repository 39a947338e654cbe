"""``cairn serve`` refuses, in one line, a configuration it cannot honour."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main


def test_serve_with_a_missing_tls_file_stops_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """auth = "tls" with a certificate file that is not there exits 2 with one line naming it, and opens nothing."""
    config = tmp_path / "cairn.toml"
    config.write_text(
        "[server]\nauth = 'tls'\ntls_certificate = '/nonexistent/cert.pem'\n"
        "tls_private_key_file = '/nonexistent/key.pem'\n"
        "tls_client_ca_file = '/nonexistent/ca.pem'\n"
    )
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
    assert (
        "server.tls_certificate: /nonexistent/cert.pem: file not found" in captured.err
    )
    assert "listening" not in captured.out
    assert not data.exists()  # no database was created
