"""Where ``cairn cdsi import`` installs a release inside the data directory."""

from __future__ import annotations

from pathlib import Path


def installed_release(data_dir: str | Path) -> Path | None:
    """The installed release folder under ``DATA_DIR/cdsi/current``, or None."""
    folder = Path(data_dir) / "cdsi" / "current"
    if (folder / "ScheduleSupportingData.xml").exists():
        return folder
    return None
