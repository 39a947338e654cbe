"""Fixtures for the forecaster: CDC's supporting data and test cases from ../shared/cdsi."""

from __future__ import annotations

from pathlib import Path

import pytest

from forecast import Forecaster, SupportingData, load_supporting_data
from tests.conftest import SHARED, shared_path


@pytest.fixture(scope="session")
def supporting_data() -> SupportingData:
    """CDC's CDSi supporting data 4.64 (CAIRN_CDSI_DIR, default ../shared/cdsi/supporting-data)."""
    path = shared_path(
        "CAIRN_CDSI_DIR",
        SHARED / "cdsi" / "supporting-data",
        "CDSi supporting data (CDC release 4.64)",
    )
    return load_supporting_data(path)


@pytest.fixture(scope="session")
def engine(supporting_data: SupportingData) -> Forecaster:
    """A forecaster over the shared release."""
    return Forecaster(supporting_data)


@pytest.fixture(scope="session")
def cases_dir() -> Path:
    """The folder of CDC's test cases (CAIRN_CDSI_CASES, default ../shared/cdsi)."""
    return shared_path("CAIRN_CDSI_CASES", SHARED / "cdsi", "CDSi test cases")
