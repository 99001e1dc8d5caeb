"""Execution algorithms in paper sessions on the shipped Coinbase BTC/USD hourly data: every
child through risk, exact fills, the algo entries in the log, a denied child failing its
parent, crashes and resumes that reproduce the log, and the kill switch stopping children."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from lyra.audit import verify
from lyra.audit.log import EventLog
from lyra.core import ConfigError
from lyra.core.enums import Side
from lyra.core.orders import OrderIntent
from lyra.execution.algos import AlgoSpec, ParentIntent
from lyra.feeds import MarketStore
from lyra.risk.killswitch import KillSwitch
from lyra.session import runtime
from lyra.session.algo_runtime import AlgoBook, AlgoDriver
from lyra.session.config import load_session_config
from lyra.session.factory import open_session
from lyra.session.recorder import is_operational
from lyra.session.registry import SessionRegistry
from lyra.store import create_engine_for, upgrade
from lyra.testing.sessions import demo_config

HOUR = 3_600_000
D = Decimal
TWAP = {"kind": "twap", "duration_ms": 4 * HOUR, "slices": 4}
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def algo_config(sid: str, execution: dict, **kw):
    return demo_config(session_id=sid, params={"fast": 10, "slow": 30, "execution": execution}, **kw)


def open_(cfg, h, engine=None):
    return open_session(cfg, engine=engine or h["engine"], market_dir=h["home"] / "market",
                        jsonl_path=h["home"] / "audit" / "events.jsonl")


def entries(engine, sid):
    return list(EventLog(engine).read(session_id=sid))


def deterministic(engine, sid):
    """The session's own stream: what a resumed run must reproduce exactly."""
    return [(e.kind, e.ts, e.payload) for e in entries(engine, sid)
            if not is_operational(e.kind) and e.kind != "session.stopped"]


def parents(log):
    started = {e.data()["parent_id"]: e for e in log if e.kind == "algo.started"}
    finished = {e.data()["parent_id"]: e for e in log if e.kind == "algo.finished"}
    return started, finished


def assert_nothing_bypassed_risk(log):
    decided = {}
    for e in log:
        d = e.data()
        if e.kind == "risk.decision":
            decided[d["client_order_id"]] = d["approved"]
        elif e.kind == "order.created":
            assert d["client_order_id"] in decided, f"order {d['client_order_id']} without a risk decision"
        elif e.kind == "order.submit":
            assert decided[d["client_order_id"]] is True, f"{d['client_order_id']} sent without approval"


def test_twap_session_children_each_pass_risk_and_fill_the_parent_exactly(session_home):
    h = session_home
    s = open_(algo_config("twap1", TWAP, end="2017-09-01"), h)
    assert s._fast_bars() is None  # algorithms need every bar: the generic loop
    r = s.run()
    log = entries(h["engine"], "twap1")
    started, finished = parents(log)
    assert len(started) > 20
    assert set(finished) == set(started)  # every parent ended (4 h each, data goes on)
    assert_nothing_bypassed_risk(log)
    decisions = [e.data() for e in log if e.kind == "risk.decision"]
    created = [e.data() for e in log if e.kind == "order.created"]
    assert [d["client_order_id"] for d in decisions] == [c["client_order_id"] for c in created]
    assert r.orders == len(created) == 4 * len(started)
    fills = collections.defaultdict(list)
    for _, f in s.ledger.state.fills:
        fills[f.client_order_id].append(f)
    created_ts = {c["client_order_id"]: c["created_ts"] for c in created}
    for pid, fin in finished.items():
        st, p = started[pid].data(), fin.data()
        assert st["spec"] == {"kind": "twap", "duration_ms": 4 * HOUR, "slices": 4}
        assert (p["status"], p["reason"], p["children"]) == ("completed", "filled", 4)
        kids = p["child_ids"]
        # 0.1 in 4: 0.025 each, one an hour from the signal's bar on.
        assert [created_ts[c] for c in kids] == [started[pid].ts + k * HOUR for k in range(4)]
        assert st["tag"] in ("entry", "exit")
        assert all(D(c["quantity"]) == D("0.025") and c["tag"] == f"{st['tag']}@{pid}"
                   for c in created if c["client_order_id"] in kids)
        got = [f for c in kids for f in fills[c]]
        assert sum(f.quantity for f in got) == D(st["quantity"]) == D(p["filled"]) == D("0.1")
        assert D(p["avg_price"]) == sum(f.quantity * f.price for f in got) / D("0.1")
        assert fin.ts == max(f.ts for f in got) + HOUR  # logged at the close of the last fill's bar
    # The ledger is exact: cash moved by the fills alone.
    all_fills = [f for _, f in s.ledger.state.fills]
    assert r.balances["USD"] == D(10_000) - sum(f.side.sign * f.quantity * f.price + f.fee for f in all_fills)
    assert verify(h["engine"], h["home"] / "audit" / "events.jsonl").ok


@sqlite_only
def test_a_child_denied_by_risk_fails_its_parent_with_the_reason(session_home):
    h = session_home
    # 0.1 in 3 slices: 0.03333333, 0.03333333 and the remainder 0.03333334, which a
    # 0.03333333 BTC order limit denies: each parent fills two thirds, then fails.
    cfg = algo_config("deny", {"kind": "twap", "duration_ms": 3 * HOUR, "slices": 3}, end="2017-08-15",
                      risk={"defaults": {"max_order_qty": "0.03333333"}})
    s = open_(cfg, h)
    r = s.run()
    log = entries(h["engine"], "deny")
    assert_nothing_bypassed_risk(log)
    started, finished = parents(log)
    assert set(finished) == set(started)
    first = finished[min(finished)].data()
    assert first["status"] == "failed"
    assert first["filled"] == "0.06666666"
    assert first["reason"].startswith(f"child {first['child_ids'][2]} denied by risk: max_order_qty: 0.03333334")
    assert first["children"] == 3  # nothing after the denial
    denied = [e.data()["client_order_id"] for e in log if e.kind == "order.deny"]
    submitted = {e.data()["client_order_id"] for e in log if e.kind == "order.submit"}
    assert r.denied == len(denied) > 0
    assert not set(denied) & submitted
    # Every parent asked for 0.03333334 at its third slice and failed on it.
    for fin in finished.values():
        p = fin.data()
        assert p["status"] == "failed"
        assert "max_order_qty: 0.03333334 > 0.03333333" in p["reason"]
        assert p["child_ids"][-1] in denied
        assert p["children"] == 3


@sqlite_only
def test_crashes_inside_parents_resume_to_the_same_log(session_home, tmp_path):
    """The process dies while it sends a child (entries since the last commit are lost), twice;
    each resume re-verifies the log and the end result is entry for entry the log of an
    uninterrupted run."""
    h = session_home
    cfg = algo_config("crash", TWAP, end="2017-09-01")

    class Crash(Exception):
        pass

    for crash_at in (7, 150):  # the 7th child sent (2nd parent), then the 150th
        s = open_(cfg, h)
        # Commit by count, never by elapsed time, so each crash follows a commit whatever the
        # machine's speed (a fast run reaches child 150 within the 50 ms time window).
        s.recorder.group.max_entries, s.recorder.group.max_wait_s = 64, 3600.0
        send, n = s.broker.submit, [0]

        def submit(order, decision_id, send=send, n=n, crash_at=crash_at):
            n[0] += 1
            if n[0] == crash_at:
                raise Crash
            send(order, decision_id)

        s.broker.submit = submit
        with pytest.raises(Crash):
            s.run()
    s = open_(cfg, h)
    r = s.run()
    assert r.replayed_entries > 0

    ref_engine = create_engine_for(f"sqlite:///{tmp_path / 'ref.db'}")
    upgrade(ref_engine)
    ref = open_session(cfg, engine=ref_engine, market_dir=h["home"] / "market").run()
    got, want = deterministic(h["engine"], "crash"), deterministic(ref_engine, "crash")
    ref_engine.dispose()
    assert got == want
    assert sum(1 for k, _, _ in got if k == "algo.finished") > 20
    assert (r.fills, r.equity, r.balances) == (ref.fills, ref.equity, ref.balances)


CRASH_TOML = """
session_id = "algo-kill9"
mode = "paper"
strategy = "sma_cross"
venue = "coinbase"
symbols = ["BTC/USD"]
timeframe = "1h"
end = "2017-08-20"
quantity = "0.1"
speed = 1800000.0
slippage_bps = "2"
[params]
fast = 10
slow = 30
[params.execution]
kind = "iceberg"
display_quantity = "0.03"
limit_price = "2900"
[balances]
USD = "10000"
[instruments."BTC/USD"]
price_increment = "0.01"
size_increment = "0.00000001"
min_notional = "1"
maker_fee = "0.004"
taker_fee = "0.006"
"""


@pytest.mark.subprocess
@pytest.mark.slow
@sqlite_only
def test_sigkilled_algo_session_resumes_to_the_uninterrupted_log(session_home, tmp_path):
    """A real process killed with SIGKILL mid-run and resumed with `lyra session resume` (the
    in-process test above crashes at chosen points; this one where the OS happens to stop it)."""
    h = session_home
    env = dict(h["env"])
    path = tmp_path / "kill9.toml"
    path.write_text(CRASH_TOML)
    reg = SessionRegistry(h["engine"])
    rng = random.Random(7)

    def lyra(*args):
        return subprocess.Popen([sys.executable, "-m", "lyra.cli", "session", *args, "--quiet"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    proc = lyra("start", "--config", str(path))
    kills = 0
    while kills < 1:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:  # wait until it is running
            row = reg.get("algo-kill9")
            if row is not None and row["status"] == "running":
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.3, 1.5))
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()  # waits, and closes its stderr pipe
        kills += 1
        proc = lyra("resume", "algo-kill9")
    err = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 0, err
    assert kills == 1

    cfg = load_session_config(path)
    ref_engine = create_engine_for(f"sqlite:///{tmp_path / 'ref.db'}")
    upgrade(ref_engine)
    ref = open_session(cfg, engine=ref_engine, market_dir=h["home"] / "market")
    ref.feed.speed = None  # same entries, no pacing
    ref.run()
    got, want = deterministic(h["engine"], "algo-kill9"), deterministic(ref_engine, "algo-kill9")
    ref_engine.dispose()
    kinds = collections.Counter(k for k, _, _ in got)
    assert kinds["algo.started"] > 5
    assert kinds["order.created"] > kinds["algo.started"]  # icebergs: several children each
    created = collections.Counter(p for k, _, p in got if k == "order.created")
    assert max(created.values()) == 1
    assert got == want


@sqlite_only
def test_kill_switch_stops_every_parent_and_no_child_follows(session_home):
    h = session_home
    # Icebergs bidding far below the market: each parent keeps one child resting for good, so
    # parents are working when the switch is acted on (1024 events after it was pulled; in
    # between, risk already denies every new child: the account is halted).
    cfg = algo_config("killalgo", {"kind": "iceberg", "display_quantity": "0.03", "limit_price": "1000"},
                      end="2018-01-01")
    s = open_(cfg, h)
    pulled = []

    def progress(n):
        if not pulled and s.algos.active:
            KillSwitch(s.risk.state).pull(session_id="killalgo", actor="tester", reason="drill")
            pulled.append(n)

    orig = runtime.POLL_INTERVAL_S
    runtime.POLL_INTERVAL_S = 0.0
    try:
        r = s.run(on_progress=progress)
    finally:
        runtime.POLL_INTERVAL_S = orig
    assert pulled
    assert r.stopped
    log = entries(h["engine"], "killalgo")
    [kill] = [i for i, e in enumerate(log) if e.kind == "session.kill"]
    before, after = log[:kill], log[kill + 1:]
    started, finished_before = parents(before)
    working = set(started) - set(finished_before)
    assert working  # parents were working when the switch was acted on
    stopped = {e.data()["parent_id"]: e.data() for e in after if e.kind == "algo.finished"}
    assert set(stopped) == working
    assert all(p["status"] == "cancelled" and p["reason"] == "kill switch" for p in stopped.values())
    # Their resting children were cancelled by the kill switch, not left at the venue.
    cancels = {e.data()["client_order_id"] for e in after if e.kind == "order.request_cancel"}
    assert cancels == {p["child_ids"][-1] for p in stopped.values()}
    assert not [e for e in after if e.kind in ("order.created", "order.submit", "algo.started")]
    assert not s.algos.active

    # Resumed while still halted: the kill is re-done at the same event, the log re-verifies,
    # and every child after it is denied by risk, failing its parent.
    s2 = open_(cfg, h)
    r2 = s2.run()
    assert r2.replayed_entries >= len([e for e in log if not is_operational(e.kind)]) - 1
    log2 = entries(h["engine"], "killalgo")
    assert_nothing_bypassed_risk(log2)
    [kill2] = [i for i, e in enumerate(log2) if e.kind == "session.kill"]
    later = log2[kill2 + 1:]
    assert not [e for e in later if e.kind == "order.submit"]
    failed = [e.data() for e in later if e.kind == "algo.finished" and e.data()["parent_id"] not in working]
    assert failed
    assert all(p["status"] == "failed" and "halted" in p["reason"] for p in failed)


def test_execution_config_is_validated_naming_the_key(session_home):
    h = session_home
    with pytest.raises(ConfigError) as err:
        open_(algo_config("bad1", {**TWAP, "sliced": 3}), h)
    assert err.value.field == "params.execution.sliced"
    with pytest.raises(ConfigError) as err:
        open_(algo_config("bad2", {"kind": "pov", "participation": 0.7}), h)
    assert err.value.field == "params.execution.participation"
    assert "<= 0.5" in str(err.value)
    with pytest.raises(ConfigError) as err:
        open_(algo_config("bad3", {"kind": "iceberg", "display_quantity": "0.5", "limit_price": "3000"}), h)
    assert err.value.field == "params.execution.display_quantity"
    assert "larger than the order quantity 0.1" in str(err.value)
    with pytest.raises(ConfigError) as err:
        open_(algo_config("bad4", "twap"), h)
    assert err.value.field == "params.execution"
    # Sessions without an algorithm are untouched: no wrapper, the array fast path.
    plain = open_(demo_config(session_id="plain", end="2017-08-01"), h)
    assert plain.algos is None
    assert plain._fast_bars() is not None


class OnePovBuy:
    """A strategy that asks, on its 40th bar, for 0.5 BTC bought at 0.02 % of the volume."""

    emits_parents = True

    def __init__(self, instrument_id):
        self.instrument_id = instrument_id
        self.n = 0

    def on_bar(self, bar):
        self.n += 1
        if self.n != 40:
            return []
        spec = AlgoSpec("pov", participation=D("0.0002"), min_child=D("0.01"))
        return [ParentIntent(OrderIntent(self.instrument_id, Side.BUY, D("0.5"), tag="pov"), spec)]


@sqlite_only
def test_strategy_parent_intent_pov_tracks_real_bar_volume(session_home):
    h = session_home
    s = open_(demo_config(session_id="pov", end="2017-07-10"), h)
    iid = "coinbase:BTC/USD"
    s.strategies[iid] = OnePovBuy(iid)
    with pytest.raises(ConfigError, match="emits_parents"):
        s.run()  # the session was built without algorithms for it: refused, not ignored
    s = open_(demo_config(session_id="pov2", end="2017-07-10"), h)
    s.algos = AlgoBook("pov2", s.instruments)
    s.strategies[iid] = AlgoDriver(OnePovBuy(iid), iid, s.algos, None, s.clock, s._algo_changed)
    s.run()
    log = entries(h["engine"], "pov2")
    assert_nothing_bypassed_risk(log)
    [st] = [e for e in log if e.kind == "algo.started"]
    [fin] = [e.data() for e in log if e.kind == "algo.finished"]
    assert st.data()["spec"] == {"kind": "pov", "participation": "0.0002", "min_child": "0.01"}
    children = [(e.ts, D(e.data()["quantity"])) for e in log if e.kind == "order.created"]
    # Reference from the stored bars: after each bar closing past the start, the allowance is
    # 0.02 % of the volume since the start (floored to the 1e-8 lot, capped at 0.5); a child
    # goes out when it is at least 0.01 above what is already out.
    bars = MarketStore(h["home"] / "market").read_bars_arrays("coinbase", "BTC/USD", "1h", end="2017-07-10")
    vol, out, ref = D(0), D(0), []
    for ts, v in zip(bars.ts.tolist(), bars.volume.tolist(), strict=True):
        if ts + HOUR <= st.ts:
            continue
        vol += D(repr(v))
        allowance = min(D("0.5"), (D("0.0002") * vol).quantize(D("1e-8"), rounding="ROUND_DOWN"))
        if allowance - out >= D("0.01") or (allowance == D("0.5") and out < allowance):
            ref.append((ts + HOUR, allowance - out))
            out = allowance
    assert children == ref
    assert len(children) > 5
    assert (fin["status"], fin["filled"], fin["children"]) == ("completed", "0.50000000", len(ref))
