"""``cairn org`` and ``cairn user``: the CLI front of the identity service."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engine.cli import main
from storage import open_database
from tests.support.certs import CertificateAuthority

PASSWORD = "a long enough passphrase"


@pytest.fixture(name="data")
def _data(tmp_path: Path) -> list[str]:
    return ["--data-dir", str(tmp_path / "var")]


def _audit(tmp_path: Path) -> list[tuple[str, str, str]]:
    db = open_database(f"sqlite:///{tmp_path / 'var' / 'cairn.sqlite3'}")
    try:
        return [(r.requester, r.action, r.detail) for r in db.audit_search(limit=100)]
    finally:
        db.close()


def test_org_add_list_show_disable(tmp_path, data, capsys):
    """An organization is added with facility ids, a certificate and an address, listed, shown, disabled; each change audited."""
    ca = CertificateAuthority(tmp_path)
    client = ca.issue("sutter-ehr")
    args = [
        "org", "add", "SUTTER", "--type", "provider", "--region", "SAC",
        "--name", "Sutter Pediatrics", "--facility", "SUTTERPEDS",
        "--facility", "2.16.840.1.113883.3.72.5.9.1",
        "--client-certificate", str(client.cert_path), "--allow-ip", "10.1.0.0/16",
        *data,
    ]  # fmt: skip
    assert main(args) == 0
    assert (
        "organization SUTTER added (provider, role provider, region SAC"
        in capsys.readouterr().out
    )
    assert main(["org", "list", *data]) == 0
    out = capsys.readouterr().out
    assert "SUTTER" in out and "SUTTERPEDS" in out and "1 organization(s)" in out
    assert main(["org", "show", "SUTTER", *data]) == 0
    shown = capsys.readouterr().out
    assert f"certificate: {client.fingerprint}" in shown
    assert "address: 10.1.0.0/16" in shown
    assert main(["org", "disable", "SUTTER", *data]) == 0
    assert main(["org", "list", *data]) == 0
    assert "disabled" in capsys.readouterr().out
    actions = [a for _, a, _ in _audit(tmp_path)]
    for action in ("org-add", "org-certificate", "org-address", "org-disable"):
        assert action in actions


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (["--region", "ATLANTIS"], "region: unknown region 'ATLANTIS'"),
        (["--region", "SAC", "--allow-ip", "10.1.2.3/8"], "allow-ip: "),
        (
            ["--region", "SAC", "--client-certificate", "/nonexistent.pem"],
            "client-certificate: /nonexistent.pem",
        ),
    ],
)
def test_org_add_refuses_bad_input_in_one_line_storing_nothing(
    data, capsys, extra, error
):
    """A bad region, network or certificate file is one line, exit 1, and no organization."""
    assert main(["org", "add", "X", "--type", "school", *extra, *data]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and error in err
    assert main(["org", "list", *data]) == 0
    assert "0 organization(s)" in capsys.readouterr().out


def test_user_add_passwd_disable_with_password_from_stdin(
    tmp_path, data, capsys, monkeypatch
):
    """The password comes from standard input, never argv; it appears in no output or audit row."""
    assert (
        main(["org", "add", "SUTTER", "--type", "provider", "--region", "SAC", *data])
        == 0
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "SUTTER", "nurse1", "--password-stdin", *data]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("another long passphrase\n"))
    assert main(["user", "passwd", "nurse1", "--password-stdin", *data]) == 0
    assert main(["user", "disable", "nurse1", *data]) == 0
    assert main(["user", "list", *data]) == 0
    out = capsys.readouterr()
    assert "nurse1" in out.out and "disabled" in out.out
    assert PASSWORD not in out.out + out.err
    rows = _audit(tmp_path)
    assert {a for _, a, _ in rows} >= {"user-add", "user-passwd", "user-disable"}
    assert all(PASSWORD not in d and "another long" not in d for _, _, d in rows)


def test_user_add_without_a_terminal_asks_for_password_stdin(data, capsys, monkeypatch):
    """With no terminal and no --password-stdin, the command says how, and creates nobody."""
    assert (
        main(["org", "add", "SUTTER", "--type", "provider", "--region", "SAC", *data])
        == 0
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["user", "add", "SUTTER", "nurse1", *data]) == 1
    assert "--password-stdin" in capsys.readouterr().err
    assert main(["user", "list", *data]) == 0
    assert "0 user(s)" in capsys.readouterr().out


def test_user_short_password_refused(data, capsys, monkeypatch):
    """A short password is refused naming the field."""
    assert (
        main(["org", "add", "SUTTER", "--type", "provider", "--region", "SAC", *data])
        == 0
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "add", "SUTTER", "nurse1", "--password-stdin", *data]) == 1
    assert "password: expected at least 12 characters" in capsys.readouterr().err


def test_load_as_an_organization_applies_its_facility_ids_and_role(
    tmp_path, data, capsys
):
    """cairn load --org files as that organization: a foreign MSH-4 gets AR, as on an authenticated listener."""
    from tests.support.messages import Dose, vxu

    assert (
        main(
            [
                "org",
                "add",
                "SUTTER",
                "--type",
                "provider",
                "--region",
                "SAC",
                "--facility",
                "CLINIC1",
                *data,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "org",
                "add",
                "SCHOOL1",
                "--type",
                "school",
                "--region",
                "SAC",
                "--facility",
                "SCH1",
                *data,
            ]
        )
        == 0
    )
    batch = tmp_path / "batch.hl7"
    batch.write_text(
        vxu(control_id="L1", sender="CLINIC1", doses=[Dose()])
        + vxu(control_id="L2", sender="CLINIC2", doses=[Dose()])
    )
    assert main(["load", str(batch), "--org", "SUTTER", *data]) == 0
    acks = (tmp_path / "batch.hl7.ack").read_text().splitlines()
    codes = [
        line.split("|")[1]
        for ack in acks
        for line in ack.split("\r")
        if line.startswith("MSA")
    ]
    assert codes == ["AA", "AR"]
    school = tmp_path / "school.hl7"
    school.write_text(vxu(control_id="S1", sender="SCH1", doses=[Dose()]))
    assert main(["load", str(school), "--org", "SCHOOL1", *data]) == 0
    assert "not authorized" in (tmp_path / "school.hl7.ack").read_text()
    assert main(["load", str(school), "--org", "NOBODY", *data]) == 1
    assert "no enabled organization 'NOBODY'" in capsys.readouterr().err
