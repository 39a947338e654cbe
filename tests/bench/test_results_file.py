"""bench/run_all.py rewrites RESULTS.md section by section, keeping people's notes."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.run_all as run_all


def test_rerunning_one_section_keeps_the_others_and_their_notes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-written paragraph under a section not rerun survives a rerun of another."""
    results = tmp_path / "RESULTS.md"
    results.write_text(
        "# Benchmark results\n\n"
        "## Ingest (`python -m bench.ingest`)\n\n"
        "    old figure 1\n\n"
        "Loaded while five other suites ran: read the ratios, not the rates.\n\n"
        "## Query (`python -m bench.query`)\n\n"
        "    old query figure\n"
    )
    monkeypatch.setattr(run_all, "RESULTS", results)
    run_all.write([("Query (`python -m bench.query`)", ["new query figure"])])
    text = results.read_text()
    assert "    old figure 1\n" in text
    assert (
        "Loaded while five other suites ran: read the ratios, not the rates.\n" in text
    )
    assert "    new query figure\n" in text
    assert "old query figure" not in text
    assert text.index("## Ingest") < text.index("## Query")
