"""``cairn codes import|show|ndc`` and how the server finds the installed release."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config import load_settings, with_overrides
from engine.app import load_code_tables
from engine.cli import main
from handlers.ndc import RELEASE_FILES, NdcStatus, installed_codes
from tests.conftest import SHARED, shared_path


@pytest.fixture(name="codes_dir")
def _codes_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """CDC's code tables; CAIRN_CODES_DIR is cleared so only the data dir counts."""
    folder = shared_path("CAIRN_CODES_DIR", SHARED / "codes", "CDC code tables")
    monkeypatch.delenv("CAIRN_CODES_DIR", raising=False)
    return folder


def _copy(codes_dir: Path, target: Path) -> Path:
    target.mkdir()
    for name in RELEASE_FILES:
        shutil.copy(codes_dir / name, target / name)
        (target / name).chmod(0o644)
    return target


def test_codes_import_installs_a_good_folder(codes_dir, tmp_path, capsys):
    """Importing shared/codes installs it under codes/current in the data dir."""
    var = tmp_path / "var"
    assert main(["codes", "import", str(codes_dir), "--data-dir", str(var)]) == 0
    assert "release 2025-11-19: 1000 NDCs" in capsys.readouterr().out
    current = installed_codes(var)
    assert current is not None
    assert {p.name for p in current.iterdir()} >= set(RELEASE_FILES)
    assert (var / "codes" / "current").is_symlink()


def test_codes_import_broken_file_names_it_and_keeps_the_old_release(
    codes_dir, tmp_path, capsys
):
    """A broken release is refused naming file, line and column; the installed one stays."""
    var = tmp_path / "var"
    assert main(["codes", "import", str(codes_dir), "--data-dir", str(var)]) == 0
    before = installed_codes(var)
    assert before is not None
    before = before.resolve()
    broken = _copy(codes_dir, tmp_path / "broken")
    path = broken / "ndc-cvx.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[4] = lines[4].replace(",sale,", ",crate,", 1).replace(",use,", ",crate,", 1)
    path.write_text("".join(lines), encoding="utf-8")
    capsys.readouterr()
    assert main(["codes", "import", str(broken), "--data-dir", str(var)]) == 1
    err = capsys.readouterr().err
    assert "ndc-cvx.csv: line 5: column kind: 'crate'" in err
    after = installed_codes(var)
    assert after is not None
    assert after.resolve() == before


def test_codes_import_newer_release_replaces_the_old_one(codes_dir, tmp_path, capsys):
    """A second, different release becomes current and the old folder is removed."""
    var = tmp_path / "var"
    assert main(["codes", "import", str(codes_dir), "--data-dir", str(var)]) == 0
    first = installed_codes(var)
    assert first is not None
    first = first.resolve()
    newer = _copy(codes_dir, tmp_path / "newer")
    with (newer / "cvx.csv").open("a", encoding="utf-8") as out:
        out.write("340,New vaccine,new vaccine,Active,2026-01-15,\n")
    assert main(["codes", "import", str(newer), "--data-dir", str(var)]) == 0
    second = installed_codes(var)
    assert second is not None
    assert second.resolve() != first
    assert "2026-01-15" in second.resolve().name
    assert not first.exists()


def test_codes_import_the_same_release_twice_is_harmless(codes_dir, tmp_path):
    """Importing the same files again leaves the same installed release."""
    var = tmp_path / "var"
    assert main(["codes", "import", str(codes_dir), "--data-dir", str(var)]) == 0
    first = installed_codes(var)
    assert first is not None
    first = first.resolve()
    assert main(["codes", "import", str(codes_dir), "--data-dir", str(var)]) == 0
    again = installed_codes(var)
    assert again is not None
    assert again.resolve() == first
    assert sorted(p.name for p in (var / "codes").iterdir()) == sorted(
        ["current", first.name]
    )


def test_codes_import_missing_folder(tmp_path, capsys):
    """A path that is not a folder is refused with one line."""
    assert main(["codes", "import", str(tmp_path / "nope")]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_codes_show_without_release_says_how_to_install(codes_dir, tmp_path, capsys):
    """`codes show` with nothing installed names the import command."""
    assert main(["codes", "show", "--data-dir", str(tmp_path)]) == 1
    assert "cairn codes import PATH" in capsys.readouterr().err


def test_codes_show_prints_the_installed_release(codes_dir, tmp_path, capsys):
    """`codes show` prints the installed release's date and counts."""
    main(["codes", "import", str(codes_dir), "--data-dir", str(tmp_path)])
    capsys.readouterr()
    assert main(["codes", "show", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "release 2025-11-19" in out
    assert "(installed)" in out


def test_codes_ndc_looks_up_one_ndc(codes_dir, tmp_path, capsys):
    """`codes ndc` prints the CVX and MVX of an NDC given in any form."""
    main(["codes", "import", str(codes_dir), "--data-dir", str(tmp_path)])
    capsys.readouterr()
    assert main(["codes", "ndc", "5063200101", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "JYNNEOS" in out
    assert "CVX 206" in out
    assert main(["codes", "ndc", "12345-6789-01", "--data-dir", str(tmp_path)]) == 1


def test_server_tables_use_the_installed_release(codes_dir, tmp_path):
    """The server's code tables carry the release `codes import` installed."""
    main(["codes", "import", str(codes_dir), "--data-dir", str(tmp_path)])
    settings = with_overrides(load_settings(None), server={"data_dir": str(tmp_path)})
    tables = load_code_tables(settings)
    assert tables.ndc("49281-0215-88").status is NdcStatus.FOUND


def test_server_tables_without_release_reject_ndc_alone(codes_dir, tmp_path):
    """Without a release the server still starts; NDC lookups say no table."""
    settings = with_overrides(load_settings(None), server={"data_dir": str(tmp_path)})
    tables = load_code_tables(settings)
    assert tables.release is None
    assert tables.ndc("49281-0215-88").status is NdcStatus.NO_TABLE
    assert "cairn codes import" in tables.no_release_reason


def test_server_tables_from_the_environment(codes_dir, tmp_path, monkeypatch):
    """CAIRN_CODES_DIR names a release folder the server uses without installing."""
    monkeypatch.setenv("CAIRN_CODES_DIR", str(codes_dir))
    settings = with_overrides(load_settings(None), server={"data_dir": str(tmp_path)})
    assert load_code_tables(settings).release is not None


def test_server_tables_with_a_broken_install_say_so(codes_dir, tmp_path):
    """An installed release damaged by hand is reported as unloadable, not absent."""
    main(["codes", "import", str(codes_dir), "--data-dir", str(tmp_path)])
    current = installed_codes(tmp_path)
    assert current is not None
    target = current / "mvx.csv"
    target.chmod(0o644)
    target.unlink()
    settings = with_overrides(load_settings(None), server={"data_dir": str(tmp_path)})
    tables = load_code_tables(settings)
    assert tables.release is None
    assert "could not be loaded" in tables.no_release_reason
