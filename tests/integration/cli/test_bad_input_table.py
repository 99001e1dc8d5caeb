"""Bad input, refused: malformed session configs, data files and command-line arguments, each
run through the real `lyra` entry point (a subprocess) on a home with data, a finished session
and an audit log. Every case must exit 2 with ONE line naming the field and the value, no
traceback, and leave the state exactly as it was: database row counts, the market store's
listing (`lyra data list`'s source), every file under LYRA_HOME, and the audit check.

The home is built once per backend (SQLite for every case; PostgreSQL for the cases that
reach the database) and shared: a case that changed anything would fail its own check.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lyra.audit.verify import verify
from lyra.feeds.store import MarketStore
from lyra.store.engine import create_engine_for

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

LYRA = str(Path(sys.executable).with_name("lyra"))
REPO = Path(__file__).resolve().parents[3]
HEADER = "timestamp_ms,open,high,low,close,volume\n"
GOOD_ROWS = [f"{1704067200000 + i * 3_600_000},{100 + i},{101 + i},{99 + i},{100.5 + i},{10 + i}"
             for i in range(6)]


def _bars_with(row: int, text: str) -> str:
    rows = list(GOOD_ROWS)
    rows[row] = text
    return HEADER + "\n".join(rows) + "\n"


GOOD_SESSION = {"strategy": '"sma_cross"', "venue": '"coinbase"', "symbols": '["BTC/USD"]',
                "timeframe": '"1h"', "start": '"2017-08-01"', "end": '"2017-09-01"',
                "balances": "{USD = 10000}"}
INSTRUMENT = '[instruments."BTC/USD"]\nprice_increment = "0.01"\nsize_increment = "0.00000001"\n'


def _session_toml(sid: str, **over: str) -> str:
    """A valid session config (as the demo's) with some keys replaced."""
    keys = {"session_id": f'"{sid}"', **GOOD_SESSION, **over}
    params = keys.pop("params", None)
    text = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return text + (f"[params]\n{params}\n" if params else "") + INSTRUMENT


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]  #: after `lyra`; "{f}" is replaced by the path of ``content``
    expect: list[str]  #: each must be in the one error line (field and value among them)
    content: str | bytes | None = None
    name: str = "input.toml"
    db: bool = False  #: reaches the database: run on PostgreSQL too
    extra: dict[str, Any] = field(default_factory=dict)


def _cfg(cid: str, expect: list[str], **over: str) -> Case:
    return Case(cid, ["session", "start", "--quiet", "--config", "{f}"], expect,
                _session_toml(f"bad-{cid}", **over))


CASES: list[Case] = [
    # -- session configs ------------------------------------------------------------------
    _cfg("slippage-1e9", ["slippage_bps=1000000000.0", "<= 1000"], slippage_bps="1e9"),
    _cfg("slippage-nan", ["slippage_bps=", "nan"], slippage_bps="nan"),
    _cfg("slippage-negative", ["slippage_bps=-1", ">= 0"], slippage_bps="-1"),
    _cfg("latency-negative", ["latency_ms=-5", ">= 0"], latency_ms="-5"),
    _cfg("latency-huge", ["latency_ms=1000000000000", "86,400,000"], latency_ms="1000000000000"),
    _cfg("quantity-zero", ["quantity=0", "positive"], quantity="0"),
    _cfg("quantity-inf", ["quantity=inf"], quantity="inf"),
    _cfg("speed-inf", ["speed=inf", "> 0"], mode='"paper"', speed="inf"),
    _cfg("speed-zero", ["speed=0", "> 0"], mode='"paper"', speed="0"),
    _cfg("equity-every-zero", ["equity_every=0", ">= 1"], equity_every="0"),
    _cfg("start-not-a-date", ["start='yesterday'", "ISO-8601"], start='"yesterday"'),
    _cfg("end-before-start", ["end='2017-07-01'", "after start (2017-08-01)"], end='"2017-07-01"'),
    _cfg("end-equals-start", ["end='2017-08-01'", "after start"], end='"2017-08-01"'),
    _cfg("window-huge", ["params.slow=100000000000", "1,000,000 bars"],
         params="fast = 10\nslow = 100000000000"),
    _cfg("window-zero", ["params.fast=0"], params="fast = 0\nslow = 30"),
    _cfg("fast-above-slow", ["params.fast=50", "smaller than slow"], params="fast = 50\nslow = 30"),
    _cfg("param-nan", ["params.fast=nan", "finite"], params="fast = nan\nslow = 30"),
    _cfg("unknown-key", ["slipage_bps=", "unknown key"], slipage_bps="5"),
    _cfg("bad-session-id", ["session_id='bad id!'", "letters, digits"], session_id='"bad id!"'),
    _cfg("unknown-strategy", ["strategy='moon_shot'"], strategy='"moon_shot"'),
    _cfg("bad-timeframe", ["timeframe='7x'", "unsupported timeframe"], timeframe='"7x"'),
    _cfg("unknown-symbol", ["symbols='DOGE/USD'", "no coinbase DOGE/USD 1h bars",
                            "stored: coinbase BTC-USD 1h"], symbols='["DOGE/USD"]'),
    _cfg("unknown-venue", ["symbols='BTC/USD'", "no kraken BTC/USD 1h bars"], venue='"kraken"'),
    _cfg("missing-timeframe", ["symbols='BTC/USD'", "no coinbase BTC/USD 1m bars"], timeframe='"1m"'),
    _cfg("empty-range", ["start='2030-01-01'", "no coinbase BTC/USD 1h bars between start and end",
                         "2017-07-01"], start='"2030-01-01"', end='"2030-02-01"'),
    _cfg("negative-balance", ["balances.USD='-1'", ">= 0"], balances="{USD = -1}"),
    _cfg("live-unconfirmed", ["live_confirm=False", "real money"], mode='"live"'),
    _cfg("unknown-mode", ["mode='warp'"], mode='"warp"'),
    Case("config-binary", ["session", "start", "--config", "{f}"], ["config=", "not a text file"],
         b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", name="session.toml"),
    Case("config-nul-bytes", ["session", "start", "--config", "{f}"], ["config=", "NUL bytes"],
         "session_id = \"x\"\x00\x00\n", name="session.toml"),
    Case("config-not-toml", ["session", "start", "--config", "{f}"], ["config=", "not valid TOML"],
         "session_id = [unclosed\n"),
    Case("config-missing", ["session", "start", "--config", "/nonexistent/x.toml"],
         ["config='/nonexistent/x.toml'", "file not found"]),
    Case("config-is-folder", ["session", "start", "--config", "/tmp"], ["config='/tmp'", "cannot be read"]),
    Case("set-slippage", ["session", "start", "--quiet", "--config", "{f}", "--set", "slippage_bps=1e9"],
         ["slippage_bps=1000000000.0"], _session_toml("bad-set")),
    # -- data files -------------------------------------------------------------------------
    *[Case(f"import-{cid}", ["data", "import", "{f}", "--reject"], expect, _bars_with(2, row),
           name="kraken_ETH-EUR_1h.csv")
      for cid, row, expect in [
          ("inf-price", "1704074400000,102,inf,101,102.5,12", ["non_finite", "h=inf"]),
          ("1e308-price", "1704074400000,102,1e308,101,102.5,12", ["absurd_value", "h=1e+308"]),
          ("negative-price", "1704074400000,102,103,-101,102.5,12", ["nonpositive_price", "l=-101.0"]),
          ("zero-price", "1704074400000,0,103,101,102.5,12", ["nonpositive_price", "o=0.0"]),
          ("nan-price", "1704074400000,102,103,101,,12", ["nan", "c=nan"]),
          ("inf-volume", "1704074400000,102,103,101,102.5,inf", ["non_finite", "v=inf"]),
          ("seconds", "1704074400,102,103,101,102.5,12", ["line 4, column timestamp_ms=1704074400",
                                                          "looks like seconds"]),
          ("text-price", "1704074400000,102,abc,101,102.5,12", ["line 4, column high='abc'",
                                                                "not a number"]),
      ]],
    Case("import-wrong-columns", ["data", "import", "{f}"], ["columns='timestamp_ms,open'", "expected"],
         "timestamp_ms,open\n1,2\n", name="kraken_ETH-EUR_1h.csv"),
    Case("import-empty", ["data", "import", "{f}"], ["kraken_ETH-EUR_1h.csv", "empty"], "",
         name="kraken_ETH-EUR_1h.csv"),
    Case("import-binary-gz", ["data", "import", "{f}"], ["kraken_ETH-EUR_1h.csv.gz", "cannot be read"],
         b"\x00\x01\x02 not gzip at all \xff", name="kraken_ETH-EUR_1h.csv.gz"),
    Case("import-bad-name", ["data", "import", "{f}"], ["file name='prices.csv'", "pass exchange"],
         HEADER + GOOD_ROWS[0] + "\n", name="prices.csv"),
    Case("import-missing", ["data", "import", "/nonexistent/kraken_ETH-EUR_1h.csv"],
         ["file='/nonexistent/kraken_ETH-EUR_1h.csv'", "not found"]),
    Case("import-bad-timeframe", ["data", "import", "{f}", "--timeframe", "7x"],
         ["timeframe='7x'"], HEADER + GOOD_ROWS[0] + "\n", name="kraken_ETH-EUR_1h.csv"),
    # -- command-line arguments ----------------------------------------------------------------
    Case("schedule-every-inf", ["schedule", "add", "nightly", str(REPO / "notebooks" / "daily_report.ipynb"),
                                "--every", "inf"], ["--every=inf", "finite"], db=True),
    Case("kill-unknown-session", ["kill", "--session", "nosuch", "--local-admin", "--reason", "drill"],
         ["--session='nosuch'", "no such session"], db=True),
    Case("stop-finished-session", ["session", "stop", "done"],
         ["session_id='done'", "is finished, not running", "nothing to stop"], db=True),
    Case("resume-unknown-session", ["session", "resume", "nosuch"],
         ["session_id='nosuch'", "no such session"], db=True),
    Case("replay-bad-until", ["audit", "replay", "--until", "notadate"],
         ["--until='notadate'", "ISO-8601"], db=True),
    Case("quality-unknown-dataset", ["data", "quality", "binance", "NOPE/USDT", "1h"],
         ["no stored bars for binance NOPE/USDT 1h"]),
    Case("download-unknown-venue", ["data", "download", "--exchange", "mtgox", "--symbol", "BTC/USD",
                                    "--since", "2024-01-01"], ["exchange='mtgox'", "unknown venue"]),
    Case("download-bad-api-url", ["data", "download", "--exchange", "binance", "--symbol", "BTC/USDT",
                                  "--since", "2024-01-01", "--api-url", "not-a-url"],
         ["--api-url='not-a-url'", "not a base URL"]),
    Case("download-retry-nan", ["data", "download", "--exchange", "binance", "--symbol", "BTC/USDT",
                                "--since", "2024-01-01", "--retry-delay", "nan"],
         ["--retry-delay=nan", "finite"]),
    Case("download-missing-option", ["data", "download", "--exchange", "binance", "--since", "2024-01-01"],
         ["Missing option '--symbol'", "lyra data download --help"]),
    Case("unknown-option", ["data", "list", "--colour"], ["No such option: --colour"]),
    Case("timeout-not-a-number", ["schedule", "add", "nightly", str(REPO / "notebooks" / "daily_report.ipynb"),
                                  "--every", "60", "--timeout", "soon"], ["'--timeout'", "given: 'soon'"]),
]

PARAMS = [pytest.param("sqlite", c, id=f"sqlite-{c.id}") for c in CASES] + [
    pytest.param("postgresql", c, id=f"postgresql-{c.id}") for c in CASES if c.db]


def test_the_table_has_at_least_40_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


# -- the shared homes -------------------------------------------------------------------------
def _env(home: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update(LYRA_HOME=str(home), LYRA_DATABASE_URL=url, COLUMNS="400")
    return env


def _lyra(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LYRA, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
          ) -> Iterator[dict[str, tuple[Path, dict[str, str]]]]:
    """Built on first use per backend: init, the shipped Coinbase 1h data, a finished session
    (``done``) whose events fill the audit log."""
    pg_urls: list[str] = []

    class Lazy(dict[str, tuple[Path, dict[str, str]]]):
        def __missing__(self, backend: str) -> tuple[Path, dict[str, str]]:
            home = tmp_path_factory.mktemp(f"bad-input-{backend}") / "home"
            if backend == "sqlite":
                url = f"sqlite:///{home / 'lyra.db'}"
            else:
                url = request.getfixturevalue("pg_databases").create(migrated=True)
                pg_urls.append(url)
            env = _env(home, url)
            for args in (["init", "--no-load-samples"],
                         ["data", "import", str(REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz")]):
                r = _lyra(env, *args)
                assert r.returncode == 0, r.stdout + r.stderr
            cfg = home / "done.toml"
            cfg.write_text(_session_toml("done", end='"2017-08-03"'))
            r = _lyra(env, "session", "start", "--quiet", "--config", str(cfg))
            assert r.returncode == 0, r.stdout + r.stderr
            self[backend] = (home, env)
            return self[backend]

    lazy = Lazy()
    yield lazy
    for url in pg_urls:
        request.getfixturevalue("pg_databases").drop(url)


def _snapshot(home: Path, url: str) -> dict[str, Any]:
    """Everything a refused command must leave alone."""
    engine = create_engine_for(url)
    try:
        with engine.connect() as conn:
            tables = sorted(sa.inspect(conn).get_table_names())
            counts = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}
        report = verify(engine, home / "audit" / "events.jsonl")
    finally:
        engine.dispose()
    files = {}
    for f in sorted(home.rglob("*")):
        if f.is_file() and not f.name.startswith("lyra.db"):  # SQLite's own files: row counts above
            files[str(f.relative_to(home))] = hashlib.sha256(f.read_bytes()).hexdigest()
    listing = MarketStore(home / "market").list_datasets().astype(str).to_dict("records")
    return {"rows": counts, "files": files, "data list": listing,
            "audit": (report.ok, report.entries, report.file_entries)}


@pytest.mark.parametrize(("backend", "case"), PARAMS)
def test_bad_input_is_refused_in_one_line_and_changes_nothing(
        homes: dict[str, tuple[Path, dict[str, str]]], backend: str, case: Case, tmp_path: Path) -> None:
    home, env = homes[backend]
    args = list(case.args)
    if case.content is not None:
        f = tmp_path / case.name
        if isinstance(case.content, bytes):
            f.write_bytes(case.content)
        elif case.name.endswith(".gz") and case.content:
            f.write_bytes(gzip.compress(case.content.encode()))
        else:
            f.write_text(case.content)
        args = [a.replace("{f}", str(f)) for a in args]
    before = _snapshot(home, env["LYRA_DATABASE_URL"])
    assert before["audit"][0] and before["audit"][1] > 0  # a real log to protect
    assert before["rows"]["sessions"] >= 1

    r = _lyra(env, *args)

    assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    out = r.stdout + r.stderr
    assert "Traceback" not in out and 'File "' not in out
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr  # one line: nothing wrapped, no log noise
    assert lines[0].startswith("error:"), lines[0]
    for want in case.expect:
        assert want in lines[0], f"{want!r} not in {lines[0]!r}"
    assert "np.float64" not in lines[0] and "{'session_id'" not in lines[0]
    assert _snapshot(home, env["LYRA_DATABASE_URL"]) == before

