"""Logging: the allow-list keeps patient data out."""

from __future__ import annotations

import pytest

from engine.logging import AllowListProcessor, DisallowedLogKey


def test_allow_list_drops_unknown_keys_in_production() -> None:
    """Unknown keys are dropped, known ones kept."""
    processor = AllowListProcessor()
    event = processor(
        None, "info", {"event": "x", "control_id": "C1", "family_name": "Doe"}
    )
    assert event == {"event": "x", "control_id": "C1"}


def test_allow_list_raises_on_unknown_keys_when_strict() -> None:
    """In tests a key that might carry PHI fails loudly."""
    with pytest.raises(DisallowedLogKey, match="birth_date"):
        AllowListProcessor(strict=True)(
            None, "info", {"event": "x", "birth_date": "20200101"}
        )
