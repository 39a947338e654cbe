"""What a new user typed, and the one line each got back (in process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main


def test_misspelled_logging_level_is_refused_naming_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`level = "loud"` was accepted and silently logged at info."""
    config = tmp_path / "cairn.toml"
    config.write_text('[logging]\nlevel = "loud"\n')
    assert main(["--config", str(config), "messages", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"cairn: configuration error: {config}: logging.level: expected one of "
        "'debug', 'info', 'warning', 'error', 'critical', got 'loud'\n"
    )
