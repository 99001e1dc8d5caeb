"""The RBA F11.1 importer on the shipped sample and on broken files."""

from __future__ import annotations

import gzip
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from lyra.tax.rates import RateFileError, load_rba_f11, parse_rba_f11, read_rates_csv, write_rates_csv

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "rba" / "f11.1-sample.csv"

HEAD = ("F11.1  EXCHANGE RATES ,,\nTitle,A$1=USD,Trade-weighted Index May 1970 = 100\n"
        "Units,USD,Index\n,,\nSeries ID,FXRUSD,FXRTWI\n")


def test_the_shipped_sample_reads_back_its_published_values() -> None:
    t = load_rba_f11(SAMPLE)
    # Read independently with the standard library: the FXRUSD column after the Series ID row.
    lines = SAMPLE.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Series ID")) + 1
    expect = [(ln.split(",")[0], ln.split(",")[1]) for ln in lines[start:] if ln.strip(",")]
    assert len(t) == len(expect) == 63 and t.currency == "USD"
    assert [(r.day.strftime("%d-%b-%Y"), str(r.value)) for r in t.rates] == expect
    assert t.rate_for(date(2023, 1, 3)).value == D("0.6828")  # type: ignore[union-attr]
    # Australia Day (Thu 26 Jan) has no fix: the 25th's rate, with its own date in the source.
    r = t.rate_for(date(2023, 1, 26))
    assert r is not None and r.day == date(2023, 1, 25) and r.value == D("0.7102")
    assert t.rate_for(date(2023, 1, 2)) is None  # before the first rate: nothing to carry
    assert t.rate_for(date(2023, 4, 4)) is not None and t.rate_for(date(2023, 4, 5)) is None  # 4-day gap


def test_gzip_and_store_copy_round_trip(tmp_path: Path) -> None:
    gz = tmp_path / "f11.1-data.csv.gz"
    gz.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    t = load_rba_f11(gz)
    write_rates_csv(t, tmp_path / "stored.csv")
    back = read_rates_csv(tmp_path / "stored.csv")
    assert [(r.day, r.value, r.source) for r in back.rates] == [(r.day, r.value, r.source) for r in t.rates]


@pytest.mark.parametrize(("body", "match"), [
    ("Title,A$1=USD\n03-Jan-2023,0.68\n", "Series ID.*missing"),
    (HEAD.replace("FXRUSD", "FXRXXX") + "03-Jan-2023,0.68,61\n", "FXRUSD.*column not found"),
    (HEAD + "03-Jan-2023,0.68,61\n2023-01-04,0.69,61\n", "row 7, date.*2023-01-04"),
    (HEAD + "03-Jan-2023,0.68,61\n04-Jan-2023,abc,61\n", "row 7, FXRUSD.*'abc'.*not a number"),
    (HEAD + "03-Jan-2023,-0.68,61\n", "row 6, FXRUSD.*positive"),
    (HEAD + "04-Jan-2023,0.68,61\n03-Jan-2023,0.69,61\n", "row 7, date.*out of order"),
    (HEAD + "04-Jan-2023,,61\n", "holds no rates"),
])
def test_a_malformed_file_is_refused_naming_row_and_field(body: str, match: str) -> None:
    with pytest.raises(RateFileError, match=match):
        parse_rba_f11(body, name="f.csv")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(RateFileError, match="cannot read"):
        load_rba_f11(tmp_path / "nope.csv")
    bad = tmp_path / "x.csv.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(RateFileError, match="not a gzip file"):
        load_rba_f11(bad)
