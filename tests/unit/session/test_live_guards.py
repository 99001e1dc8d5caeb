"""Live mode's guards: confirmation, credentials only from the environment or an owner-only
secrets file, sandbox where the venue has one; and live bars built from trades."""

from __future__ import annotations

import json
from pathlib import Path

import ccxt
import pytest

from lyra.core.errors import ConfigError
from lyra.core.market import Bar, Trade
from lyra.session.config import load_session_config
from lyra.session.live import bars_from_trades, check_live_config, live_credentials, live_exchange
from lyra.settings import load_settings


def test_live_mode_needs_explicit_confirmation() -> None:
    with pytest.raises(ConfigError, match="live_confirm"):
        load_session_config({"session_id": "l1", "mode": "live"})
    cfg = load_session_config({"session_id": "l1", "mode": "live", "live_confirm": True})
    check_live_config(cfg)  # passes


def test_credentials_in_a_config_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_session_config({"session_id": "l1", "mode": "live", "live_confirm": True, "api_key": "k"})


def test_session_id_must_fit_the_venues_client_order_id() -> None:
    cfg = load_session_config({"session_id": "x" * 30, "mode": "live", "live_confirm": True})
    with pytest.raises(ConfigError, match="at most 36 characters"):
        check_live_config(cfg)
    okx = load_session_config({"session_id": "x" * 24, "mode": "live", "live_confirm": True, "venue": "okx"})
    with pytest.raises(ConfigError, match="at most 32"):
        check_live_config(okx)


def test_credentials_from_the_environment_first() -> None:
    env = {"LYRA_BINANCE_API_KEY": "key", "LYRA_BINANCE_API_SECRET": "sec"}
    assert live_credentials("binance", environ=env) == {"apiKey": "key", "secret": "sec"}
    env["LYRA_BINANCE_PASSWORD"] = "pw"
    assert live_credentials("binance", environ=env)["password"] == "pw"


def test_settings_ignore_credential_variables() -> None:
    s = load_settings({"LYRA_BINANCE_API_KEY": "k", "LYRA_BINANCE_API_SECRET": "s", "LYRA_HOME": "/tmp/x"})
    assert "k" not in repr(s) and str(s.home) == "/tmp/x"


def test_credentials_from_an_owner_only_secrets_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    f = secrets / "binance.json"
    f.write_text(json.dumps({"apiKey": "a", "secret": "b", "extra": "dropped"}))
    f.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others.*chmod 600"):
        live_credentials("binance", home=tmp_path, environ={})
    f.chmod(0o600)
    assert live_credentials("binance", home=tmp_path, environ={}) == {"apiKey": "a", "secret": "b"}
    f.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        live_credentials("binance", home=tmp_path, environ={})
    f.write_text(json.dumps({"apiKey": "a"}))
    with pytest.raises(ConfigError, match="needs"):
        live_credentials("binance", home=tmp_path, environ={})


def test_no_credentials_says_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LYRA_KRAKEN_API_KEY"):
        live_credentials("kraken", home=tmp_path, environ={})


def test_sandbox_where_the_venue_has_one() -> None:
    ex = live_exchange("binance", {"apiKey": "a", "secret": "b"}, sandbox=True)
    assert isinstance(ex, ccxt.binance)
    assert "testnet" in json.dumps(ex.urls["api"])
    # Kraken has no sandbox: ccxt raises a TypeError there, which must become a clear refusal.
    with pytest.raises(ConfigError, match="kraken has no sandbox"):
        live_exchange("kraken", {"apiKey": "a", "secret": "b"}, sandbox=True)


def test_bars_from_trades_closes_a_bar_on_the_next_bars_first_trade() -> None:
    iid = "binance:BTC/USDT"
    trades = [Trade(iid, 60_000 + 1, 10.0, 1.0, trade_id="1"), Trade(iid, 60_000 + 30_000, 12.0, 2.0, trade_id="2"),
              Trade(iid, 60_000 + 40_000, 9.0, 0.5, trade_id="3"), Trade(iid, 30_000, 50.0, 1.0, trade_id="late"),
              Trade(iid, 120_000 + 5, 11.0, 1.0, trade_id="4"), Trade(iid, 240_000, 13.0, 1.0, trade_id="5")]
    bars = [b for b in bars_from_trades(trades, 60_000, "1m") if isinstance(b, Bar)]
    assert bars == [Bar(iid, "1m", 60_000, 10.0, 12.0, 9.0, 9.0, 3.5), Bar(iid, "1m", 120_000, 11.0, 11.0, 11.0, 11.0, 1.0)]
