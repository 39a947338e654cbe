"""Shared fixtures: paths to the shared reference material, and the PHI canary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def shared_path(env: str, default: Path, what: str) -> Path:
    """A path to shared reference material; skip (fail in CI) when it is missing."""
    path = Path(os.environ.get(env, default))
    if not path.exists():
        message = (
            f"{what} not found at {path}: put the project's shared/ folder beside the "
            f"repository or set {env}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(name="samples_dir")
def _samples_dir() -> Path:
    """The folder of real HL7 sample messages (../shared/hl7/samples)."""
    return shared_path("CAIRN_HL7_SAMPLES", SHARED / "hl7" / "samples", "HL7 samples")
