"""The HTTP listener as an operator meets it: a real ``cairn serve``, curl-like requests.

On PostgreSQL, the production backend, where "the database is down" is an
event an operator meets: the registry's database is dropped under the
running engine (its connections killed) and restored.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SHARED, shared_path
from tests.e2e.conftest import ServerProcess, start_server
from tests.support.db import PG_ADMIN_URL, PostgresDatabases
from tests.support.messages import CANARIES, Dose, vxu
from tests.support.mllp import msa_code

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]

_HTTP = re.compile(r"listening for HTTP on ([^:\s]+):(\d+)")


def _http_base(server: ServerProcess) -> str:
    """The HTTP listener's address, from the line serve prints after the MLLP one."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in list(server.output):
            found = _HTTP.search(line)
            if found:
                return f"http://{found.group(1)}:{found.group(2)}"
        time.sleep(0.05)
    raise AssertionError("no HTTP listener announced:\n" + "".join(server.output))


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, reply.headers["content-type"], reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["content-type"], err.read()


def _upgrade(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "engine.cli", "db", "upgrade", "--database", url],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def _admin(sql: str) -> None:
    with psycopg.connect(
        PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql"), autocommit=True
    ) as admin:
        admin.execute(sql)


def test_metrics_health_and_readiness_over_http(
    tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    """/healthz and /readyz answer JSON; /metrics counts exactly what was sent; /readyz is 503 while the database is gone."""
    shared_path("CAIRN_CDSI_DIR", SHARED / "cdsi" / "supporting-data", "CDSi data")
    url = pg_databases.new_url()
    name = url.rsplit("/", 1)[1]
    _upgrade(url)
    server = start_server(tmp_path, "--database", url, "--http-listen", "127.0.0.1:0")
    try:
        base = _http_base(server)
        assert _get(f"{base}/healthz") == (
            200,
            "application/json; charset=utf-8",
            b'{"ok": true, "status": "alive"}\n',
        )
        status, _type, body = _get(f"{base}/readyz")
        assert status == 200
        ready = json.loads(body)
        assert ready["ok"] is True
        assert (ready["database"], ready["schema"]) == ("ok", "current")
        assert ready["cdsi"]  # the release

        replies = [
            server.send(vxu(control_id="H1", doses=[Dose()])),
            server.send(vxu(control_id="H2", doses=[Dose()])),
            server.send(vxu(control_id="H3", sender="STRANGER", doses=[Dose()])),
        ]
        assert [msa_code(r) for r in replies] == ["AA", "AA", "AR"]

        status, content_type, page = _get(f"{base}/metrics")
        assert status == 200
        assert content_type.startswith("text/plain")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(page.decode())
            for s in family.samples
        }

        def value(name: str, **labels: str) -> float:
            return samples.get((name, tuple(sorted(labels.items()))), 0.0)

        assert (
            value(
                "cairn_messages_total",
                message_type="VXU",
                outcome="AA",
                sender="CLINIC1",
            )
            == 2
        )
        assert (
            value(
                "cairn_messages_total",
                message_type="VXU",
                outcome="AR",
                sender="STRANGER",
            )
            == 1
        )
        assert value("cairn_ack_latency_seconds_count", path="ingest") == 3
        assert value("cairn_group_commit_size_sum") == 3
        assert value("cairn_cdsi_loaded") == 1
        assert value("cairn_queue_depth") == 0
        for canary in CANARIES:
            assert canary.encode() not in page
        assert _get(f"{base}/nothing-here")[0] == 404

        # The database goes away under the running engine.
        _admin(f'DROP DATABASE "{name}" WITH (FORCE)')
        status, _type, body = _get(f"{base}/readyz")
        assert status == 503
        assert json.loads(body) == {
            "ok": False,
            "database": "unreachable",
            "schema": "unknown",
            "cdsi": ready["cdsi"],
        }
        assert _get(f"{base}/healthz")[0] == 200  # alive: do not restart it
        # Restored (an empty database brought to the schema): ready again.
        _admin(f'CREATE DATABASE "{name}"')
        _upgrade(url)
        assert _get(f"{base}/readyz")[0] == 200
        assert msa_code(server.send(vxu(control_id="H4", doses=[Dose()]))) == "AA"
    finally:
        code = server.stop()
    log = "".join(server.output)
    assert code == 0, log[-3000:]
    assert not [c for c in CANARIES if c in log]
