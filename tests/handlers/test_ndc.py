"""NDC-coded vaccines: reading NDCs, CDC's crosswalk, and the RXA-5 rules."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.ndc import (
    CodeRelease,
    CodeReleaseError,
    NdcStatus,
    load_code_release,
    parse_ndc,
)
from handlers.vxu import VxuHandler
from handlers.vxu_validation import ValidatedVxu, VxuValidator
from parsers import Issue, read_vxu, tokenize
from storage import Database
from tests.conftest import SHARED, shared_path
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code

TODAY = date(2024, 6, 1)

#: The six ENGERIX-B NDCs that CDC maps to both CVX 43 and CVX 44.
ENGERIX_43_44 = (
    "58160-0821-01",
    "58160-0821-05",
    "58160-0821-11",
    "58160-0821-34",
    "58160-0821-43",
    "58160-0821-52",
)


@pytest.fixture(name="codes_dir", scope="module")
def _codes_dir() -> Path:
    """CDC's code tables (../shared/codes, or CAIRN_CODES_DIR)."""
    return shared_path("CAIRN_CODES_DIR", SHARED / "codes", "CDC code tables")


@pytest.fixture(name="release", scope="module")
def _release(codes_dir: Path) -> CodeRelease:
    return load_code_release(codes_dir)


@pytest.fixture(name="tables", scope="module")
def _tables(release: CodeRelease) -> CodeTables:
    return CodeTables.load().with_release(release)


def _message(rxa5: str, mvx: str = "MSD") -> str:
    """A VXU with one new administration whose RXA-5 is ``rxa5``."""
    text = vxu(doses=[Dose(mvx=mvx)])
    assert "08^vaccine^CVX" in text
    return text.replace("08^vaccine^CVX", rxa5)


def _validate(text: str, tables: CodeTables) -> ValidatedVxu:
    return VxuValidator(tables).validate(read_vxu(tokenize(text)), TODAY)


def _rxa5(result: ValidatedVxu, severity: str) -> list[Issue]:
    return [
        i
        for i in result.issues
        if i.location is not None
        and i.location.segment == "RXA"
        and i.location.field == 5
        and i.severity == severity
    ]


# -- reading an NDC -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ndc11"),
    [
        ("0006-4109-02", "00006410902"),  # 4-4-2 GARDASIL
        ("49281-425-50", "49281042550"),  # 5-3-2 FLUZONE
        ("54868-0980-0", "54868098000"),  # 5-4-1 M-M-R II
        ("49281-0425-50", "49281042550"),  # 5-4-2, the 11-digit form with dashes
        ("49281042550", "49281042550"),
        (" 49281-425-50 ", "49281042550"),
    ],
)
def test_parse_ndc_pads_every_labeled_shape_to_11_digits(text, ndc11):
    """Each dashed shape pads its short segment, giving the 11-digit form."""
    assert parse_ndc(text) == ("ndc11", ndc11)


def test_parse_ndc_keeps_ten_digits_without_dashes_unpadded():
    """Ten digits without dashes have no known shape, so they are not padded."""
    assert parse_ndc("5063200101") == ("ndc10", "5063200101")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "08",
        "123456789",
        "123456789012",
        "4928104255O",
        "49281-04255-0",
        "492-81042-550",
        "49281--425",
        "4928-1042-550",
        "４９２８１０４２５５０",  # full-width digits are not ASCII digits
        "49281\x00042550",
        "49281-425-50-1",
    ],
)
def test_parse_ndc_refuses_what_is_not_an_ndc(text):
    """Wrong lengths, letters, odd shapes and non-ASCII digits are not NDCs."""
    assert parse_ndc(text) is None


# -- the crosswalk ------------------------------------------------------------


def test_ndc_release_reads_cdc_tables(release):
    """The shared release has CDC's 1000 NDCs, dated 2025-11-19."""
    assert len(release.products) == 1000
    assert release.release == "2025-11-19"
    assert len(release.cvx) == 288
    assert {p.ndc11 for p in release.products.values() if len(p.cvx) > 1} == {
        n.replace("-", "") for n in ENGERIX_43_44
    }


@pytest.mark.parametrize(
    "text", ["0006-4109-02", "00006-4109-02", "00006410902", "0006410902"]
)
def test_ndc_lookup_finds_every_form_of_one_ndc(release, text):
    """GARDASIL's NDC is found as NDC-10, NDC-11, with or without dashes."""
    match = release.lookup(text)
    assert match.status is NdcStatus.FOUND
    assert match.ndc == "00006410902"
    assert match.product is not None
    assert match.product.cvx == ("62",)


def test_ndc_lookup_ten_digits_uses_the_ndc10_column_not_a_guess(release):
    """5063200101 is JYNNEOS 50632-001-01, not the RabAvert carton 50632-0010-01."""
    match = release.lookup("5063200101")
    assert match.product is not None
    assert match.product.name == "JYNNEOS"
    assert match.product.cvx == ("206",)


def test_ndc_lookup_unit_of_use(release):
    """A unit-of-use NDC (the TENIVAC syringe) maps like a unit of sale."""
    match = release.lookup("49281-0215-88")
    assert match.product is not None
    assert match.product.kinds == frozenset({"use"})
    assert match.product.cvx == ("113",)
    assert match.product.mvx == ("PMC",)


def test_ndc_lookup_unit_of_sale(release):
    """A unit-of-sale NDC (a carton) maps to its CVX."""
    match = release.lookup("49281-0215-10")
    assert match.product is not None
    assert "sale" in match.product.kinds
    assert match.product.cvx == ("113",)


def test_ndc_lookup_unknown_ndc(release):
    """A well-formed NDC the table does not have is unknown, kept as 11 digits."""
    match = release.lookup("12345-6789-01")
    assert match.status is NdcStatus.UNKNOWN
    assert match.ndc == "12345678901"
    assert match.product is None


# -- RXA-5 --------------------------------------------------------------------


def test_rxa5_ndc_alone_maps_to_its_cvx(tables):
    """An RXA-5 with only an NDC stores the CVX from the crosswalk and the NDC."""
    result = _validate(_message("49281-0215-88^TENIVAC^NDC"), tables)
    assert not [i for i in result.issues if i.severity == "E"]
    (dose,) = result.doses
    assert (dose.cvx, dose.ndc) == ("113", "49281021588")
    assert dose.cvx_text == tables.text("CVX", "113")


@pytest.mark.parametrize(
    ("text", "cvx"),
    [("0006-4109-02", "62"), ("49281-415-10", "150"), ("54868-0980-0", "03")],
)
def test_rxa5_ndc10_hyphenated_forms(tables, text, cvx):
    """4-4-2, 5-3-2 and 5-4-1 NDCs in RXA-5 map to their CVX."""
    result = _validate(_message(f"{text}^vaccine^NDC"), tables)
    (dose,) = result.doses
    assert dose.cvx == cvx
    assert len(dose.ndc) == 11


def test_rxa5_ndc11_without_dashes(tables):
    """An 11-digit NDC without dashes maps, as in the NIST sample."""
    result = _validate(_message("49281021588^TENIVAC^NDC"), tables)
    assert [d.cvx for d in result.doses] == ["113"]


def test_rxa5_ndc_fills_an_empty_rxa17(tables):
    """With RXA-17 empty, the manufacturer the NDC names is stored."""
    result = _validate(_message("49281-0215-88^TENIVAC^NDC", mvx=""), tables)
    assert [d.mvx for d in result.doses] == ["PMC"]


def test_rxa5_ndc_leaves_a_sent_rxa17_alone(tables):
    """A manufacturer the sender gave is stored as sent."""
    result = _validate(_message("49281-0215-88^TENIVAC^NDC", mvx="SKB"), tables)
    assert [d.mvx for d in result.doses] == ["SKB"]


def test_rxa5_ndc_without_mvx_in_the_table_fills_nothing(tables):
    """An NDC whose linker row is missing leaves RXA-17 empty."""
    result = _validate(_message("49281-0415-88^flu^NDC", mvx=""), tables)
    assert [(d.cvx, d.mvx) for d in result.doses] == [("150", "")]


def test_rxa5_cvx_with_matching_ndc_stores_both(tables):
    """A CVX with an NDC that agrees stores both, with nothing to report."""
    result = _validate(
        _message("113^Td^CVX^49281-0215-88^TENIVAC^NDC", mvx="PMC"), tables
    )
    assert not _rxa5(result, "W")
    assert not _rxa5(result, "E")
    assert [(d.cvx, d.ndc) for d in result.doses] == [("113", "49281021588")]


def test_rxa5_ndc_first_and_cvx_alternate(tables):
    """The NDC may be the first triplet and the CVX the alternate."""
    result = _validate(_message("49281-0215-88^TENIVAC^NDC^113^Td^CVX"), tables)
    assert [(d.cvx, d.ndc) for d in result.doses] == [("113", "49281021588")]


def test_rxa5_unknown_ndc_alone_rejects_the_dose(tables):
    """An NDC the table lacks, with no CVX, rejects the dose naming RXA-5 and the NDC."""
    result = _validate(_message("12345-6789-01^new^NDC"), tables)
    assert not result.doses
    (error,) = _rxa5(result, "E")
    assert error.hl7_code == "103"
    assert "12345-6789-01" in error.text
    assert "2025-11-19" in error.text


def test_rxa5_unknown_ndc_beside_a_cvx_is_a_warning(tables):
    """An unknown NDC beside a valid CVX is a warning; the CVX and NDC are stored."""
    result = _validate(_message("08^HepB^CVX^12345-6789-01^new^NDC"), tables)
    (warning,) = _rxa5(result, "W")
    assert "12345-6789-01" in warning.text
    assert [(d.cvx, d.ndc) for d in result.doses] == [("08", "12345678901")]


def test_rxa5_not_an_ndc_alone_rejects_the_dose(tables):
    """A code marked NDC that is not shaped like one, alone, rejects the dose."""
    result = _validate(_message("ABC123^x^NDC"), tables)
    assert not result.doses
    (error,) = _rxa5(result, "E")
    assert error.hl7_code == "102"


def test_rxa5_not_an_ndc_beside_a_cvx_is_ignored_with_a_warning(tables):
    """A malformed NDC beside a valid CVX is warned about and not stored."""
    result = _validate(_message("08^HepB^CVX^123^x^NDC"), tables)
    assert len(_rxa5(result, "W")) == 1
    assert [(d.cvx, d.ndc) for d in result.doses] == [("08", "")]


def test_rxa5_ndc_and_cvx_disagree_the_cvx_wins(tables):
    """A CVX the NDC does not map to is kept, with a warning naming both codes."""
    result = _validate(
        _message("08^HepB peds^CVX^49281-0215-88^TENIVAC^NDC", mvx=""), tables
    )
    (warning,) = _rxa5(result, "W")
    assert "113" in warning.text
    assert "08" in warning.text
    assert [(d.cvx, d.ndc, d.mvx) for d in result.doses] == [("08", "49281021588", "")]


def test_rxa5_unknown_cvx_with_known_ndc_uses_the_ndc(tables):
    """A CVX no table knows, beside a known NDC, gives way to the NDC's CVX."""
    result = _validate(_message("900^x^CVX^49281-0215-88^TENIVAC^NDC"), tables)
    assert not _rxa5(result, "E")
    assert len(_rxa5(result, "W")) == 1
    assert [d.cvx for d in result.doses] == ["113"]


@pytest.mark.parametrize("ndc", ENGERIX_43_44)
def test_rxa5_engerix_ndc_alone_assumes_cvx_43(tables, ndc):
    """Each ENGERIX-B NDC mapped to CVX 43 and 44 is stored as 43, with a warning."""
    result = _validate(_message(f"{ndc}^ENGERIX-B^NDC", mvx="SKB"), tables)
    (warning,) = _rxa5(result, "W")
    assert "43/44" in warning.text
    assert [(d.cvx, d.ndc) for d in result.doses] == [("43", ndc.replace("-", ""))]


@pytest.mark.parametrize("ndc", ENGERIX_43_44)
def test_rxa5_engerix_ndc_with_cvx_44_keeps_44(tables, ndc):
    """Each ENGERIX-B NDC sent with CVX 44 (dialysis dosing) keeps 44 silently."""
    result = _validate(
        _message(f"44^HepB dialysis^CVX^{ndc}^ENGERIX-B^NDC", mvx="SKB"), tables
    )
    assert not _rxa5(result, "W")
    assert [d.cvx for d in result.doses] == ["44"]


def test_rxa5_ndc_alone_without_a_table_is_rejected_saying_so():
    """With no NDC table installed, an NDC-only dose is rejected with the fix."""
    result = _validate(_message("49281-0215-88^TENIVAC^NDC"), CodeTables.load())
    assert not result.doses
    (error,) = _rxa5(result, "E")
    assert "no NDC table is installed" in error.text
    assert "cairn codes import" in error.text


def test_rxa5_cvx_with_ndc_without_a_table_is_accepted():
    """With no NDC table, a CVX beside an NDC is accepted and both are stored."""
    result = _validate(
        _message("113^Td^CVX^49281-0215-88^TENIVAC^NDC", mvx="PMC"), CodeTables.load()
    )
    assert [(d.cvx, d.ndc) for d in result.doses] == [("113", "49281021588")]


def test_rxa5_hostile_ndc_text_stays_short_and_printable(tables):
    """A huge NDC with control characters gives a short, printable ERR text."""
    junk = "\x01\x7f" + "9" * 5000
    result = _validate(_message(f"{junk}^x^NDC"), tables)
    errors = _rxa5(result, "E")
    assert errors, "the dose is rejected at RXA-5"
    assert not result.doses
    for error in errors:  # the length/control check and the NDC check may both speak
        assert len(error.text) < 300
        assert error.text.isprintable()


# -- a release with an NDC of two CVX codes CDC never published ----------------


def _copy_release(codes_dir: Path, target: Path) -> Path:
    target.mkdir()
    for name in ("ndc-cvx.csv", "cvx.csv", "mvx.csv", "cvx-vaccine-group.csv"):
        shutil.copy(codes_dir / name, target / name)
        (target / name).chmod(0o644)
    return target


def test_rxa5_ndc_of_two_cvx_without_a_stated_default_is_rejected(codes_dir, tmp_path):
    """An NDC mapped to a CVX pair with no stated rule, alone, rejects the dose."""
    folder = _copy_release(codes_dir, tmp_path / "codes")
    path = folder / "ndc-cvx.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    (tenivac,) = [line for line in lines if line.startswith("49281021588,")]
    path.write_text(
        "".join(lines) + tenivac.replace(",113,", ",09,", 1), encoding="utf-8"
    )
    tables = CodeTables.load().with_release(load_code_release(folder))
    result = _validate(_message("49281-0215-88^TENIVAC^NDC"), tables)
    assert not result.doses
    (error,) = _rxa5(result, "E")
    assert "09/113" in error.text


# -- a VXU through the pipeline stores both codes -------------------------------


def test_pipeline_stores_the_ndc_and_its_cvx(db: Database, tables):
    """An NDC-only VXU is answered AA and stored with its CVX, NDC and MVX."""
    from sqlalchemy import text

    pipeline = MessagePipeline(
        database=db,
        routes={"VXU": Route(VxuHandler(tables), "VXU_V04")},
        senders=SenderPolicy({"CLINIC1": "BAY"}, "reject", "BAY"),
        now=lambda: datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
    )
    message = _message("49281-0215-88^TENIVAC^NDC", mvx="")
    (outcome,) = pipeline.process_batch([Inbound(message.encode(), "test", "mllp")])
    assert msa_code(outcome.payload) == "AA", errs(outcome.payload)
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT cvx, ndc, mvx FROM vaccinations")).all()
    assert [tuple(r) for r in rows] == [("113", "49281021588", "PMC")]


def test_pipeline_rejects_an_unknown_ndc_alone_and_stores_nothing(db: Database, tables):
    """An unknown NDC with no CVX is answered AE at RXA-5 and no dose is stored."""
    from sqlalchemy import text

    pipeline = MessagePipeline(
        database=db,
        routes={"VXU": Route(VxuHandler(tables), "VXU_V04")},
        senders=SenderPolicy({"CLINIC1": "BAY"}, "reject", "BAY"),
        now=lambda: datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
    )
    message = _message("12345-6789-01^new^NDC")
    (outcome,) = pipeline.process_batch([Inbound(message.encode(), "test", "mllp")])
    assert msa_code(outcome.payload) == "AE"
    assert any(e[2].startswith("RXA^1^5") for e in errs(outcome.payload))
    with db.engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM vaccinations")).scalar_one()
    assert count == 0


# -- broken releases ---------------------------------------------------------------


def _break(folder: Path, name: str, line: int, old: str, new: str) -> None:
    path = folder / name
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("".join(lines), encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "line", "old", "new", "expected"),
    [
        ("cvx.csv", 3, "02,", "X2,", "cvx.csv: line 3: column cvx: 'X2'"),
        ("cvx.csv", 2, "Inactive", "Gone", "cvx.csv: line 2: column status: 'Gone'"),
        ("mvx.csv", 1, "mvx,", "code,", "mvx.csv: line 1: column 'mvx'"),
        (
            "ndc-cvx.csv",
            2,
            "00005010001,",
            "0000501000,",
            "ndc-cvx.csv: line 2: column ndc11",
        ),
        (
            "ndc-cvx.csv",
            2,
            ",162,",
            ",999999,",
            "ndc-cvx.csv: line 2: column cvx: '999999'",
        ),
        (
            "ndc-cvx.csv",
            2,
            ",162,",
            ",400,",
            "ndc-cvx.csv: line 2: column cvx: '400' is not in cvx.csv",
        ),
        (
            "ndc-cvx.csv",
            3,
            ",0005-0100-02,",
            ",0005-0100-03,",
            "ndc-cvx.csv: line 3: column ndc10",
        ),
        ("ndc-cvx.csv", 2, ",use,", ",box,", "ndc-cvx.csv: line 2: column kind"),
        (
            "ndc-cvx.csv",
            2,
            "2014-11-05",
            "2014-13-05",
            "ndc-cvx.csv: line 2: column start_date",
        ),
        ("ndc-cvx.csv", 2, ",PFR,", ",PFR,extra,", "ndc-cvx.csv: line 2: 20 fields"),
        (
            "cvx-vaccine-group.csv",
            2,
            "01,",
            "400,",
            "cvx-vaccine-group.csv: line 2: column cvx",
        ),
    ],
)
def test_load_code_release_names_file_line_and_column(
    codes_dir, tmp_path, name, line, old, new, expected
):
    """Each broken field is reported with its file, line and column."""
    folder = _copy_release(codes_dir, tmp_path / "codes")
    _break(folder, name, line, old, new)
    with pytest.raises(CodeReleaseError) as caught:
        load_code_release(folder)
    assert expected in str(caught.value)


def test_load_code_release_missing_file(codes_dir, tmp_path):
    """A release without one of its four files names the file."""
    folder = _copy_release(codes_dir, tmp_path / "codes")
    (folder / "mvx.csv").unlink()
    with pytest.raises(CodeReleaseError, match=r"mvx\.csv: not found"):
        load_code_release(folder)


def test_load_code_release_not_utf8(codes_dir, tmp_path):
    """A file that is not UTF-8 is refused with the line of the bad byte."""
    folder = _copy_release(codes_dir, tmp_path / "codes")
    path = folder / "cvx.csv"
    path.write_bytes(path.read_bytes().replace(b"DTP", b"DT\xff", 1))
    with pytest.raises(CodeReleaseError, match=r"cvx\.csv: line 2: not UTF-8"):
        load_code_release(folder)


def test_load_code_release_header_only(codes_dir, tmp_path):
    """A table with a header and no rows is refused."""
    folder = _copy_release(codes_dir, tmp_path / "codes")
    path = folder / "ndc-cvx.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    with pytest.raises(CodeReleaseError, match=r"ndc-cvx\.csv: no rows"):
        load_code_release(folder)
