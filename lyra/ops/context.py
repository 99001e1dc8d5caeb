"""What a notebook tells the run registry: the data it read and its key results.

Import-light on purpose (no papermill, no database): notebooks call these at the top and the
end. Outside ``lyra run`` / ``lyra schedule`` (plain JupyterLab) they return what they were
given and write nothing.

>>> from lyra.ops.context import current_run_id, record_files, record_reads, record_results, session_reads
>>> config = {"venue": "binance", "symbols": ["BTC/USDT"], "timeframe": "1h", "end": "2018-05-01"}
>>> record_reads(session_reads(config))           # the bars a session will replay
[DataRange(venue='binance', symbol='BTC/USDT', timeframe='1h', start=None, end='2018-05-01')]
>>> record_files(["data/ohlcv/coinbase_BTC-USD_1h.csv.gz"])   # files read directly
[DataFile(path='data/ohlcv/coinbase_BTC-USD_1h.csv.gz')]
>>> record_results({"fills": 12, "final_equity": "10012.50"})
{'fills': 12, 'final_equity': '10012.50'}
>>> current_run_id() is None                      # plain JupyterLab: nothing was written
True
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Environment variables the runner sets for the notebook's kernel (not LYRA_*: the settings
#: loader refuses unknown LYRA_ variables).
ENV_RUN_ID = "LYRARUN_ID"
ENV_RUN_DIR = "LYRARUN_DIR"
READS_FILE = "reads.json"
RESULTS_FILE = "results.json"


@dataclass(frozen=True, slots=True)
class DataRange:
    """A range of one dataset of the market store: bars of ``timeframe`` (or ``trades``)
    with time in [start, end); ``None`` bounds are open."""

    venue: str
    symbol: str
    timeframe: str
    start: str | None = None
    end: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataRange:
        return cls(str(d["venue"]), str(d["symbol"]), str(d["timeframe"]),
                   None if d.get("start") is None else str(d["start"]),
                   None if d.get("end") is None else str(d["end"]))


@dataclass(frozen=True, slots=True)
class DataFile:
    """A data file a notebook read directly (not through the market store): the fingerprint
    hashes its bytes."""

    path: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataFile:
        return cls(str(d["file"]))


def read_entry(d: Mapping[str, Any]) -> DataRange | DataFile:
    """One entry of ``reads.json``: a store range or a file."""
    return DataFile.from_dict(d) if "file" in d else DataRange.from_dict(d)


def current_run_id() -> str | None:
    """The id of the run executing this notebook, or None outside the runner."""
    return os.environ.get(ENV_RUN_ID) or None


def current_run_dir() -> Path | None:
    """``$LYRA_HOME/runs/<run-id>`` of the run executing this notebook, or None."""
    d = os.environ.get(ENV_RUN_DIR)
    return Path(d) if d else None


def session_reads(config: Any) -> list[DataRange]:
    """The ranges a session config replays (a ``SessionConfig`` or its dict form)."""
    get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(config, k, d)
    return [DataRange(str(get("venue")), str(s), str(get("timeframe", "1h")), get("start"), get("end"))
            for s in get("symbols", ())]


def record_reads(ranges: Iterable[DataRange | Mapping[str, Any]]) -> list[DataRange]:
    """Tell the runner which data this notebook read; it hashes those rows of the store into
    the run's data fingerprint. Calls accumulate (a notebook may read several things)."""
    out = [r if isinstance(r, DataRange) else DataRange.from_dict(r) for r in ranges]
    _append_reads([asdict(r) for r in out])
    return out


def record_files(paths: Iterable[str | os.PathLike[str]]) -> list[DataFile]:
    """Tell the runner which data files this notebook read directly (sample CSVs, exports);
    the run's data fingerprint hashes their bytes. Calls accumulate."""
    out = [DataFile(os.fspath(p)) for p in paths]
    _append_reads([{"file": str(Path(f.path).resolve())} for f in out])
    return out


def _append_reads(entries: list[dict[str, Any]]) -> None:
    run_dir = current_run_dir()
    if run_dir is None:
        return
    path = run_dir / READS_FILE
    known = json.loads(path.read_text()) if path.exists() else []
    for e in entries:
        if e not in known:
            known.append(e)
    _atomic_json(path, known)


def record_results(results: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Record the run's key results (JSON-able). ``results`` is what a rerun must reproduce
    exactly; ``info`` is kept alongside but not compared (ids, timings)."""
    data = {"results": dict(results), "info": dict(info or {})}
    text = json.dumps(data, sort_keys=True, default=str)  # refuse what JSON cannot hold early
    run_dir = current_run_dir()
    if run_dir is not None:
        _atomic_json(run_dir / RESULTS_FILE, json.loads(text))
    return dict(results)


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    tmp.replace(path)
