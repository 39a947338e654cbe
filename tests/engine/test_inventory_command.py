"""``cairn inventory``: the CLI front of the inventory service (one path, on SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main


def test_inventory_commands_receive_adjust_transfer_list_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A receipt, a wastage and a transfer show in list, and the report writes CSV, HTML and SVG."""
    data = ["--data-dir", str(tmp_path)]
    at = ["--facility", "CLINIC1", "--region", "BAY", *data]
    assert main(["db", "upgrade", *data]) == 0
    assert (
        main(
            [
                "inventory",
                "receive",
                *at,
                "--cvx",
                "3",
                "--mvx",
                "msd",
                "--lot",
                "mmr-a1",
                "--expires",
                "2027-12-31",
                "--funding",
                "VFC",
                "--quantity",
                "10",
                "--on",
                "2026-01-05",
            ]
        )
        == 0
    )
    assert "received 10 doses of lot MMR-A1 (lot id 1, VFC); on hand 10" in (
        capsys.readouterr().out
    )
    assert (
        main(
            [
                "inventory",
                "adjust",
                *at,
                "--lot-id",
                "1",
                "--kind",
                "wasted",
                "--quantity",
                "1",
                "--on",
                "2026-02-03",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "inventory",
                "transfer",
                *at,
                "--lot-id",
                "1",
                "--to",
                "CLINIC2",
                "--quantity",
                "2",
            ]
        )
        == 0
    )
    assert (
        "transferred 2 of lot MMR-A1 to CLINIC2: on hand 7 at CLINIC1, 2 at CLINIC2"
        in capsys.readouterr().out
    )
    assert main(["inventory", "list", *at, "--csv", str(tmp_path / "list")]) == 0
    assert (tmp_path / "list" / "on-hand.csv").read_text().splitlines() == [
        "lot id,lot,CVX,vaccine,MVX,funding,expires,on hand",
        "1,MMR-A1,03,MMR,MSD,VFC,2027-12-31,7",
    ]
    out = tmp_path / "out"
    assert (
        main(
            [
                "inventory",
                "report",
                *at,
                "--as-of",
                "2026-03-31",
                "--csv",
                str(out),
                "--html",
                str(out / "inventory.html"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Usage by month" in printed and "Wasted, expired and returned" in printed
    assert (
        out / "written-off.csv"
    ).read_text() == "kind,doses\nwasted,1\nexpired,0\nreturned,0\n"
    html = (out / "inventory.html").read_text()
    assert "data:image/svg+xml;base64," in html and "MMR-A1" in html
    assert (
        (out / "inventory-usage-by-month.svg").read_text().lstrip().startswith("<?xml")
    )


def test_inventory_command_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another facility's lot, an unconfigured facility without --region, a wrong region: exit 1, one line."""
    data = ["--data-dir", str(tmp_path)]
    assert main(["db", "upgrade", *data]) == 0
    main(
        [
            "inventory",
            "receive",
            "--facility",
            "CLINIC1",
            "--region",
            "BAY",
            *data,
            "--cvx",
            "03",
            "--lot",
            "L1",
            "--expires",
            "2027-01-01",
            "--funding",
            "VFC",
            "--quantity",
            "5",
        ]
    )
    capsys.readouterr()
    cases = [
        (
            [
                "adjust",
                "--facility",
                "CLINIC2",
                "--region",
                "BAY",
                "--lot-id",
                "1",
                "--kind",
                "wasted",
                "--quantity",
                "1",
            ],
            "cairn: --lot-id: 1 is not a lot of facility CLINIC2\n",
        ),
        (
            ["list", "--facility", "NOWHERE"],
            "cairn: --facility: NOWHERE is neither an organization's facility id "
            "(cairn org) nor a configured facility; give --region\n",
        ),
    ]
    for argv, err in cases:
        assert main(["inventory", *argv, *data]) == 1
        assert capsys.readouterr().err == err
