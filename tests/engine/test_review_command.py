"""``cairn review``: the CLI front of the review service."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from storage import open_database
from tests.handlers.test_confidentiality import BOBBIE, DOROTHY, _pipeline, _send
from tests.support.messages import Dose, vxu


def test_review_command_merges_once_and_refuses_a_second_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """list shows the open item; merge prints the undo hint; a second merge exits 1."""
    assert main(["db", "upgrade", "--data-dir", str(tmp_path)]) == 0
    db = open_database(f"sqlite:///{tmp_path / 'cairn.sqlite3'}")
    pipeline = _pipeline(db)
    _send(pipeline, vxu(control_id="D1", pid=DOROTHY, doses=[Dose()]))
    _send(pipeline, vxu(control_id="B1", sender="CLINIC2", pid=BOBBIE, doses=[Dose()]))
    db.close()
    capsys.readouterr()
    data = ["--data-dir", str(tmp_path)]
    assert main(["review", "list", *data]) == 0
    listing = capsys.readouterr().out
    assert listing.rstrip().endswith("1 item(s)")
    item = listing.split()[0]
    assert main(["review", "merge", item, *data]) == 0
    assert f"undo: cairn review separate {item}" in capsys.readouterr().out
    assert main(["review", "merge", item, *data]) == 1
    assert "already decided: merged" in capsys.readouterr().err
