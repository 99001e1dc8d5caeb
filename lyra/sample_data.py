"""Where the shipped sample data lives and what it holds."""

from __future__ import annotations

import os
from pathlib import Path

from lyra.core.errors import ConfigError


def sample_data_dir() -> Path:
    """The folder with the shipped sample data: ``$LYRA_SAMPLE_DATA`` or the repo's ``data/``."""
    env = os.environ.get("LYRA_SAMPLE_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "data"


def sample_ohlcv_dir() -> Path:
    """The folder of the sample OHLCV files: ``<sample data>/ohlcv``, or ``$LYRA_SAMPLE_DATA``
    itself when it points straight at the files."""
    base = sample_data_dir().expanduser()
    return base / "ohlcv" if (base / "ohlcv").is_dir() or "LYRA_SAMPLE_DATA" not in os.environ else base


def sample_ohlcv_files() -> list[Path]:
    """Every shipped OHLCV file (``data/ohlcv/*.csv.gz``), sorted by name."""
    d = sample_ohlcv_dir()
    if not d.is_dir():
        raise ConfigError("sample_data", str(d), "folder not found",
                          "set LYRA_SAMPLE_DATA to the data/ folder")
    return sorted(d.glob("*.csv.gz"))
