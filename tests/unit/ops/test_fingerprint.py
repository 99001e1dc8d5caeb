"""Data fingerprints: files and store ranges hashed, and a fingerprint of nothing says so."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from lyra.core.errors import ValidationError
from lyra.ops.context import DataFile, DataRange, read_entry, record_files, record_reads
from lyra.ops.fingerprint import EMPTY, fingerprint
from lyra.ops.scheduler import LIMITS, check_number


def test_a_file_read_is_hashed_by_its_bytes(tmp_path: Path) -> None:
    f = tmp_path / "bars.csv"
    f.write_bytes(b"ts,close\n1,100\n")
    fp = fingerprint(tmp_path / "market", [DataFile(str(f))])
    assert fp["covers_data"] is True and fp["sha256"] != EMPTY
    assert fp["files"] == [{"file": str(f), "bytes": 15, "sha256": hashlib.sha256(b"ts,close\n1,100\n").hexdigest()}]
    assert fingerprint(tmp_path / "market", [DataFile(str(f)), DataFile(str(f))]) == fp  # reads are a set
    f.write_bytes(b"ts,close\n1,101\n")  # one byte changed: another fingerprint
    assert fingerprint(tmp_path / "market", [DataFile(str(f))])["sha256"] != fp["sha256"]


def test_a_fingerprint_of_nothing_says_so(tmp_path: Path) -> None:
    assert hashlib.sha256(b"").hexdigest() == EMPTY
    none = fingerprint(tmp_path / "market", [])
    assert none == {"sha256": EMPTY, "ranges": [], "files": [], "covers_data": False}
    # Reads of data that is not there prove nothing either: same verdict, the parts say why.
    gone = fingerprint(tmp_path / "market", [DataFile(str(tmp_path / "nope.csv")),
                                             DataRange("coinbase", "BTC/USD", "1h", None, "2017-09-01")])
    assert gone["sha256"] == EMPTY and gone["covers_data"] is False
    assert gone["files"][0]["missing"] and gone["ranges"][0]["rows"] == 0


def test_reads_are_written_only_inside_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert record_files([tmp_path / "a.csv"]) == [DataFile(str(tmp_path / "a.csv"))]
    assert not (tmp_path / "reads.json").exists()
    monkeypatch.setenv("LYRARUN_DIR", str(tmp_path))
    record_files([tmp_path / "a.csv", tmp_path / "a.csv"])
    record_reads([DataRange("coinbase", "BTC/USD", "1h")])
    entries = json.loads((tmp_path / "reads.json").read_text())
    assert [read_entry(e) for e in entries] == [DataFile(str((tmp_path / "a.csv").resolve())),
                                                DataRange("coinbase", "BTC/USD", "1h")]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "abc", None, True])
def test_check_number_refuses_what_is_not_a_finite_number(value: object) -> None:
    with pytest.raises(ValidationError) as exc:
        check_number("--backoff", value, *LIMITS["backoff"])
    assert exc.value.field == "--backoff"


def test_check_number_bounds() -> None:
    assert check_number("--poll", "0.5", *LIMITS["poll"]) == 0.5
    with pytest.raises(ValidationError, match=r"out of range: must be >= 0.01 and <= 3600"):
        check_number("--poll", -1, *LIMITS["poll"])
    with pytest.raises(ValidationError, match=r"must be > 0"):
        check_number("--timeout", 0, *LIMITS["timeout"])
    with pytest.raises(ValidationError, match="whole number"):
        check_number("--retries", 1.5, *LIMITS["retries"], integer=True)
