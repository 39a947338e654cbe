"""Loading a supporting-data release: folder, zip, and errors that say what is wrong."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from forecast import (
    SupportingData,
    SupportingDataError,
    installed_release,
    load_supporting_data,
)
from tests.conftest import SHARED, shared_path


def test_data_loads_every_antigen(supporting_data: SupportingData) -> None:
    """The 4.64 release has 30 antigens, the CVX map and the vaccine groups."""
    assert len(supporting_data.antigens) == 30
    assert supporting_data.version == "4.64"
    assert "MMR" in supporting_data.full_group
    assert supporting_data.vaccine_groups["DTaP/Tdap/Td"] == (
        "Diphtheria",
        "Pertussis",
        "Tetanus",
    )


def test_data_loads_from_cdc_zip(tmp_path: Path) -> None:
    """A release zipped the way CDC ships it loads too."""
    source = shared_path(
        "CAIRN_CDSI_DIR", SHARED / "cdsi" / "supporting-data", "CDSi supporting data"
    )
    archive = tmp_path / "Version_4.64-508.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for item in source.glob("*.xml"):
            zf.write(item, f"Version 4.64 - 508/XML/{item.name}")
    data = load_supporting_data(archive)
    assert len(data.antigens) == 30
    assert data.version == "4.64"


def test_data_missing_schedule_is_reported(tmp_path: Path) -> None:
    """A folder without ScheduleSupportingData.xml is rejected by name."""
    source = shared_path(
        "CAIRN_CDSI_DIR", SHARED / "cdsi" / "supporting-data", "CDSi supporting data"
    )
    shutil.copy(source / "AntigenSupportingData- Polio-508.xml", tmp_path)
    with pytest.raises(
        SupportingDataError, match=r"ScheduleSupportingData\.xml is missing"
    ):
        load_supporting_data(tmp_path)


def test_data_malformed_xml_is_reported(tmp_path: Path) -> None:
    """A broken file is named in the error."""
    (tmp_path / "ScheduleSupportingData.xml").write_text("<schedule>")
    with pytest.raises(
        SupportingDataError, match=r"ScheduleSupportingData\.xml: not well-formed"
    ):
        load_supporting_data(tmp_path)


def test_data_missing_path_is_reported(tmp_path: Path) -> None:
    """A path that does not exist says so."""
    with pytest.raises(SupportingDataError, match="no such file or directory"):
        load_supporting_data(tmp_path / "nope")


def test_data_installed_release_is_found(tmp_path: Path) -> None:
    """installed_release finds DATA_DIR/cdsi/current once a release is there."""
    assert installed_release(tmp_path) is None
    current = tmp_path / "cdsi" / "current"
    current.mkdir(parents=True)
    (current / "ScheduleSupportingData.xml").write_text("<x/>")
    assert installed_release(tmp_path) == current
