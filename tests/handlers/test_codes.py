"""Tests for the packaged code tables and their loader."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from handlers.codes import CodeEntry, CodeTables
from handlers.ndc import CodeRelease, NdcStatus, load_code_release
from tests.conftest import SHARED, shared_path

#: Tables the validator and the response builders look codes up in.
EXPECTED_TABLES = frozenset(
    {
        "CVX",
        "MVX",
        "NIP001",
        "NIP002",
        "NIP003",
        "HL70001",
        "HL70005",
        "HL70189",
        "HL70063",
        "HL70064",
        "FUNDING_SOURCE",
        "HL70136",
        "HL70200",
        "HL70203",
        "HL70215",
        "HL70322",
        "HL70323",
        "HL70441",
        "HL70162",
        "NCIT_ROUTE",
        "HL70163",
        "HL70103",
        "HL70155",
        "HL70008",
        "HL70357",
        "HL70516",
        "HL70533",
        "HL70208",
        "HL70190",
        "HL70201",
        "HL70202",
        "VXC_CONDITION",
        "VIS_VACCINE",
    }
)

#: Codes in the samples that are deliberately not CVX codes: edge cases, NDCs in
#: the first triplet, and CDC's pre-EUA COVID extract placeholders (900-902) and
#: a tester's made-up 806, none of which are in CDC's CVX list.
NOT_CVX = frozenset({"XXX", "03^MMR<", "806", "900", "901", "902"})

#: Manufacturer codes in the samples that are deliberately not MVX codes.
NOT_MVX = frozenset({"AAA"})


@pytest.fixture(name="tables", scope="module")
def _tables() -> CodeTables:
    return CodeTables.load()


def _vxu_codes(samples_dir: Path) -> tuple[set[str], set[str]]:
    """CVX (RXA-5) and MVX (RXA-17) codes of every vxu-*.hl7 sample."""
    cvx: set[str] = set()
    mvx: set[str] = set()
    for path in sorted(samples_dir.glob("vxu-*.hl7")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for segment in text.replace("\r\n", "\r").replace("\n", "\r").split("\r"):
            fields = segment.split("|")
            if fields[0] != "RXA":
                continue
            if len(fields) > 5:
                parts = fields[5].split("^")
                if len(parts) > 2 and parts[2] == "CVX":
                    cvx.add(parts[0])
                elif len(parts) > 5 and parts[5] == "CVX":
                    cvx.add(parts[3])
            if len(fields) > 17 and fields[17]:
                parts = fields[17].split("^")
                if len(parts) < 3 or parts[2] in ("MVX", ""):
                    mvx.add(parts[0])
    return cvx, mvx


def test_codes_load_every_table(tables):
    """Every table the validator needs is packaged and has codes."""
    assert tables.names() >= EXPECTED_TABLES
    for name in tables.names():
        assert tables.codes(name), name


def test_codes_load_is_cached():
    """Loading twice returns the same object: the CSVs are read once."""
    assert CodeTables.load() is CodeTables.load()


def test_codes_cvx_is_the_full_list(tables):
    """CVX holds the full CDC list, active and inactive, with 998 and 999."""
    assert len(tables.codes("CVX")) >= 280
    assert tables.text("CVX", "998") == "no vaccine administered"
    assert tables.text("CVX", "999") == "unknown"


def test_codes_cvx_08_is_hep_b_pediatric(tables):
    """CVX 08 is hepatitis B, adolescent or pediatric, and active."""
    entry = tables.entry("CVX", "08")
    assert entry is not None
    assert "Hep B" in entry.text
    assert "pediatric" in entry.text
    assert entry.status == "active"


def test_codes_cvx_statuses(tables):
    """CVX statuses use CDC's five words; known codes have the right one."""
    statuses = {tables.entry("CVX", code).status for code in tables.codes("CVX")}
    assert statuses <= {"active", "inactive", "non-US", "never active", "pending"}
    assert tables.entry("CVX", "01").status == "inactive"
    assert tables.entry("CVX", "510").status == "non-US"
    assert tables.entry("CVX", "49").status == "active"
    assert tables.entry("CVX", "57").status == "never active"


def test_codes_cvx_leading_zero_normalized(tables):
    """A one-digit CVX code finds its two-digit entry, blanks stripped."""
    assert tables.has("CVX", "3")
    assert tables.has("CVX", " 03 ")
    assert tables.entry("CVX", "8") == tables.entry("CVX", "08")


def test_codes_cvx_unknown_codes_absent(tables):
    """Codes not in CDC's list are not found."""
    for code in ("XXX", "03^MMR<", "0", "", "1000", "MMR"):
        assert not tables.has("CVX", code), code


def test_codes_mvx_key_manufacturers(tables):
    """MVX has Merck, GSK and Sanofi Pasteur, compared without regard to case."""
    assert "Merck" in tables.text("MVX", "MSD")
    assert "GlaxoSmithKline" in tables.text("MVX", "SKB")
    assert "sanofi" in tables.text("MVX", "PMC").lower()
    assert tables.has("MVX", "msd")
    assert not tables.has("MVX", "AAA")


def test_codes_hl70357_texts(tables):
    """HL7 table 0357 carries the texts ERR-3 repeats."""
    assert tables.text("HL70357", "103") == "Table value not found"
    assert tables.text("HL70357", "0") == "Message accepted"
    assert tables.text("HL70357", "207") == "Application internal error"


def test_codes_hl70533_texts(tables):
    """CDC table 0533 carries the texts ERR-5 repeats."""
    assert tables.text("HL70533", "5") == "Table value not found"
    assert tables.text("HL70533", "7") == "Required data missing"


def test_codes_text_empty_when_unknown(tables):
    """text() is empty for an unknown code or table; entry() is None."""
    assert tables.text("HL70357", "998") == ""
    assert tables.text("NOPE", "1") == ""
    assert tables.entry("NOPE", "1") is None
    assert not tables.has("NOPE", "1")


def test_codes_case_sensitive_tables_compare_exactly(tables):
    """CDCREC race codes are compared exactly; HL7 letter codes ignore case."""
    assert tables.has("HL70005", "2106-3")
    assert not tables.has("HL70005", "asku")
    assert tables.has("HL70001", "f")
    assert tables.has("HL70322", "cp")


def test_codes_small_tables_key_values(tables):
    """Key values of the small HL7 and CDC tables are present."""
    cases = {
        "HL70001": ("F", "M", "U"),
        "HL70189": ("2135-2", "2186-5"),
        "HL70064": ("V01", "V02", "V03", "V04", "V05", "V07", "V22", "V25"),
        "FUNDING_SOURCE": ("VXC50", "VXC51", "VXC52", "PHC70"),
        "NIP001": ("00", "01", "08"),
        "NIP002": ("00", "01", "02", "03"),
        "HL70322": ("CP", "RE", "NA", "PA"),
        "HL70323": ("A", "U", "D"),
        "HL70441": ("A", "I", "L", "M", "P", "U"),
        "NCIT_ROUTE": ("C28161", "C38299"),
        "HL70162": ("IM", "SC"),
        "HL70008": ("AA", "AE", "AR"),
        "HL70516": ("E", "W", "I"),
        "NIP003": ("64994-7", "30963-3", "69764-9", "30956-7", "59784-9"),
    }
    for table, codes in cases.items():
        for code in codes:
            assert tables.has(table, code), (table, code)


def test_codes_entry_fields(tables):
    """An entry carries its code, text, status and extra columns."""
    entry = tables.entry("CVX", "03")
    assert isinstance(entry, CodeEntry)
    assert entry.code == "03"
    assert entry.text == "MMR"
    assert entry.extra["kind"] == "vaccine"


def test_codes_sample_cvx_codes_found(tables, samples_dir):
    """Every real CVX code in the VXU samples is in the CVX table."""
    cvx, _ = _vxu_codes(samples_dir)
    assert cvx
    missing = {code for code in cvx - NOT_CVX if not tables.has("CVX", code)}
    assert not missing


def test_codes_sample_mvx_codes_found(tables, samples_dir):
    """Every real MVX code in the VXU samples is in the MVX table."""
    _, mvx = _vxu_codes(samples_dir)
    assert mvx
    missing = {code for code in mvx - NOT_MVX if not tables.has("MVX", code)}
    assert not missing


def test_codes_cvx_groups(tables):
    """CVX rows name their vaccine groups; combinations name each of them."""
    assert tables.entry("CVX", "08").extra["group"] == "HepB"
    assert set(tables.entry("CVX", "94").extra["group"].split(";")) == {
        "MMR",
        "VARICELLA",
    }
    assert set(tables.entry("CVX", "146").extra["group"].split(";")) == {
        "DTAP",
        "POLIO",
        "HIB",
        "HepB",
    }
    assert tables.entry("CVX", "998").extra["group"] == ""


def test_codes_mvx_statuses(tables):
    """MVX rows are active or inactive; historical manufacturers stay findable."""
    statuses = {tables.entry("MVX", code).status for code in tables.codes("MVX")}
    assert statuses == {"active", "inactive"}
    assert tables.entry("MVX", "MSD").status == "active"
    assert tables.entry("MVX", "WAL").status == "inactive"


def test_codes_nip003_value_types(tables):
    """NIP003 LOINCs carry the OBX-2 value type they expect."""
    assert tables.entry("NIP003", "64994-7").extra["value_type"] == "CE"
    assert tables.entry("NIP003", "29769-7").extra["value_type"] == "DT"
    assert tables.entry("NIP003", "30973-2").extra["value_type"] == "NM"
    assert not tables.has("NIP003", "VXC8")


def test_codes_conditions_by_value_set(tables):
    """Immunity, contraindication and reaction codes name their value set."""
    assert tables.entry("VXC_CONDITION", "38907003").extra["set"] == "history"
    assert tables.entry("VXC_CONDITION", "371113008").extra["set"] == "serology"
    assert tables.entry("VXC_CONDITION", "VXC30").extra["set"] == "contraindication"
    assert tables.entry("VXC_CONDITION", "VXC9").extra["set"] == "reaction"
    assert tables.entry("VXC_CONDITION", "VXC7").extra["set"] == "indication"


def test_codes_vis_vaccines_are_active_cvx(tables):
    """Every VIS vaccine is an active CVX code; 998 and inactive codes need no VIS."""
    vis = tables.codes("VIS_VACCINE")
    assert {"03", "08", "20", "115", "133"} <= vis
    for code in vis:
        entry = tables.entry("CVX", code)
        assert entry is not None, code
        assert entry.status == "active", code
    assert not tables.has("VIS_VACCINE", "998")
    assert not tables.has("VIS_VACCINE", "01")


def test_codes_legacy_race_codes_deprecated(tables):
    """Legacy single-letter race codes are found but marked deprecated."""
    assert tables.entry("HL70005", "W").status == "deprecated"
    assert tables.entry("HL70005", "2106-3").status == "active"
    assert tables.entry("HL70189", "N").status == "deprecated"
    assert tables.entry("HL70064", "V06").status == "deprecated"
    assert not tables.has("HL70005", "POL")


def test_codes_every_table_names_its_source():
    """Every CSV opens with a comment naming its source and who wrote it."""
    folder = resources.files("handlers") / "tables"
    for item in folder.iterdir():
        if item.name.endswith(".csv"):
            text = item.read_text(encoding="utf-8")
            assert text.startswith("# "), item.name
            header = "".join(line for line in text.splitlines() if line.startswith("#"))
            assert "Cairn" in header, item.name
            assert "CDC" in header or "HL7" in header, item.name


@pytest.fixture(name="release", scope="module")
def _release() -> CodeRelease:
    folder = shared_path("CAIRN_CODES_DIR", SHARED / "codes", "CDC code tables")
    return load_code_release(folder)


def test_codes_release_adds_cvx_codes_the_builtin_table_lacks(tables, release):
    """A CVX only the imported release knows is added, in Cairn's group names."""
    assert not tables.has("CVX", "321")
    merged = tables.with_release(release)
    entry = merged.entry("CVX", "321")
    assert entry is not None
    assert entry.extra["group"] == "FLU"  # CDC calls the group "FLU-Avian-H5"
    assert merged.entry("CVX", "318").extra["group"] == "ANTHRAX"


def test_codes_release_keeps_builtin_entries_whole(tables, release):
    """A code both tables know keeps its built-in text, status and groups."""
    merged = tables.with_release(release)
    for code in ("150", "28", "08", "146"):
        assert merged.entry("CVX", code) == tables.entry("CVX", code), code
    assert merged.entry("MVX", "MSD") == tables.entry("MVX", "MSD")


def test_codes_release_adds_mvx_codes_and_leaves_builtin_unchanged(tables, release):
    """A manufacturer only the release knows is added; load() is not changed."""
    merged = tables.with_release(release)
    assert merged.has("MVX", "VBI")
    assert not tables.has("MVX", "VBI")
    assert tables.release is None
    assert merged.release is release


def test_codes_without_release_says_why(tables):
    """Tables without a release find no NDC and carry the reason given."""
    bare = tables.with_release(None, reason="the NDC table could not be loaded")
    assert bare.ndc("49281-0215-88").status is NdcStatus.NO_TABLE
    assert bare.no_release_reason == "the NDC table could not be loaded"
    assert "cairn codes import" in tables.no_release_reason
