"""The test listener through a real server: what an onboarding sender meets.

The rules (every table untouched, MSH-11 T/D, test senders, resends across
modes) are tested in process in tests/engine/test_test_mode_rules.py; this
is the one path over the wire: ``server.test_listen`` opens a second port,
``cairn serve`` prints it, and a VXU sent there is answered and not stored.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import CONFIG, start_server
from tests.support.messages import CANARIES, Dose, vxu
from tests.support.mllp import MllpTestClient, errs, msa_code

pytestmark = pytest.mark.e2e

_TEST_LISTENING = re.compile(r"test-mode MLLP listener on ([^:\s]+):(\d+)")


def test_a_vxu_on_the_test_listener_is_answered_and_not_stored(tmp_path: Path) -> None:
    """The test port answers AA with a note; the production port then stores the same message."""
    config = CONFIG + '\n[server]\ntest_listen = "127.0.0.1:0"\n'
    server = start_server(tmp_path, config_text=config)
    try:
        deadline = time.monotonic() + 30
        found = None
        while found is None and time.monotonic() < deadline:
            found = _TEST_LISTENING.search("".join(server.output))
            time.sleep(0.05)
        assert found is not None, "".join(server.output)
        message = vxu(control_id="WIRE1", doses=[Dose()]).encode()
        with MllpTestClient(found.group(1), int(found.group(2))) as client:
            tested = bytes(client.send_message(message))
        assert msa_code(tested) == "AA"
        assert any("nothing was kept" in e[8] for e in errs(tested))
        assert server.query("SELECT count(*) FROM patients") == [(0,)]
        assert server.query("SELECT outcome FROM message_journal")[0][0].startswith(
            "not stored (test listener)"
        )
        real = server.send(message)
        assert msa_code(real) == "AA"
        assert not any("nothing was kept" in e[8] for e in errs(real))
        assert server.query("SELECT count(*) FROM vaccinations") == [(1,)]
    finally:
        code = server.stop()
    assert code == 0
    assert not [c for c in CANARIES if c in "".join(server.output)]
