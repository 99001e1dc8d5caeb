"""The control plane works on time and never blocks other writers: a paper session paced at one
bar per second (a real `lyra` process) answers tickets, stops, SIGTERM and the kill switch within
2 s, and other processes get the database's write lock within milliseconds while it runs — on
SQLite and PostgreSQL. Reaction times are printed (p50/p99) for the issue's closing note."""

from __future__ import annotations

import signal
import statistics
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from lyra.audit import EventLog, verify
from lyra.auth.permissions import Principal, Role
from lyra.core.enums import OrderType, Side
from lyra.core.orders import OrderIntent
from lyra.risk.killswitch import KillSwitch
from lyra.risk.state import TradingStateStore
from lyra.session.commands import CommandQueue
from lyra.store.tables_risk import kill_acks
from lyra.testing.sessions import SessionProcesses, lyra_cli, wait_for

IID = "coinbase:BTC/USD"
TRADER = Principal("tina", Role.TRADER)
LIMIT_EVENTS = 4  # bars of a 1 bar/s paced session: "within 2 s" in the session's own time


def p50_p99(xs: list[float]) -> tuple[float, float]:
    s = sorted(xs)
    return statistics.median(s), s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]


@pytest.mark.subprocess
@pytest.mark.slow
def test_a_paced_session_answers_tickets_stops_and_kills_within_two_seconds(session_home, tmp_path, capsys):
    h = session_home
    eng, env = h["engine"], h["env"]
    jsonl = h["home"] / "audit" / "events.jsonl"
    db = eng.dialect.name
    s = SessionProcesses(eng, env, tmp_path)  # one bar a second: a session a person watches
    q = CommandQueue(eng, jsonl)
    figures: dict[str, list[float]] = {"ticket": [], "stop": [], "kill": [], "write lock": []}
    try:
        [proc] = s.start("cp")

        # Other writers get the write lock within milliseconds while the session runs: the
        # event log's chain head, the lock the session itself commits under.
        probe = EventLog(eng, jsonl)
        for i in range(40):
            t0 = time.monotonic()
            probe.append("probe.write", {"i": i}, actor="probe")
            figures["write lock"].append(time.monotonic() - t0)
            time.sleep(0.02)

        # 20 tickets (limit buys resting below the market), each answered by the session.
        # On time means within a bar or two of the paced data (the old heartbeat took a
        # ticket only every 1,024 events): counted in the session's own events, so the
        # check holds however busy the machine is; the wall-clock figures are printed.
        lags: dict[str, list[int]] = {"ticket": [], "stop": [], "kill": []}
        for i in range(20):
            at = s.reg.get("cp")["events_processed"]
            t0 = time.monotonic()
            cmd = q.submit_order("cp", OrderIntent(IID, Side.BUY, Decimal("0.01"), OrderType.LIMIT,
                                                   Decimal(1000 + i)), TRADER, f"ticket {i}")
            done = wait_for(lambda c=cmd: (x := q.get(c.id)).finished and x, 30, "the ticket's answer",
                            every=0.005)
            figures["ticket"].append(time.monotonic() - t0)
            assert done.status == "done", done.result
            assert done.result == f"order {done.client_order_id} accepted by risk (status accepted)"
            taken = next(e.data() for e in EventLog(eng).read(session_id="cp", kinds=("session.command",))
                         if e.data()["command_id"] == done.id)
            lags["ticket"].append(int(taken["at_event"]) - at)

        # `lyra session stop` from another process, on SQLite too: no "database is locked".
        r = lyra_cli(["session", "stop", "cp"], env, timeout=60)
        # counted from the request's commit (the CLI's own start-up is not the session's doing)
        at = s.reg.get("cp")["events_processed"]
        assert r.returncode == 0 and "stop requested for cp" in r.stdout, r.stderr
        assert "locked" not in r.stderr
        figures["stop"].append(s.wait_stopped("cp", time.monotonic()))
        assert proc.wait(30) == 0
        lags["stop"].append(s.reg.get("cp")["events_processed"] - at)

        # Two more stops (as the dashboards ask), then SIGTERM: each a clean stop.
        for _ in range(2):
            proc = s.resume("cp")
            at = s.reg.get("cp")["events_processed"]
            t0 = time.monotonic()
            s.reg.request_stop("cp")
            figures["stop"].append(s.wait_stopped("cp", t0))
            assert proc.wait(30) == 0
            lags["stop"].append(s.reg.get("cp")["events_processed"] - at)
        proc = s.resume("cp")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        figures["stop"].append(s.wait_stopped("cp", t0))
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in out
        log = list(EventLog(eng).read(session_id="cp"))
        assert log[-1].kind == "session.stopped" and log[-1].actor == "session:cp"
        assert sum(1 for e in log if e.kind == "session.stopped") == 4

        # The kill switch, on three sessions (a kill halts the session's account until re-armed).
        ks = KillSwitch(TradingStateStore(EventLog(eng, jsonl)))
        # Started together: three start-ups overlap, each kill is still timed on its own.
        for k, proc in zip(("k1", "k2", "k3"), s.start("k1", "k2", "k3"), strict=True):
            at = s.reg.get(k)["events_processed"]
            t0 = time.monotonic()
            req = ks.pull(session_id=k, actor="rita", reason="drill")
            figures["kill"].append(s.wait_stopped(k, t0))
            lags["kill"].append(s.reg.get(k)["events_processed"] - at)
            with eng.connect() as c:
                acks = c.execute(sa.select(kill_acks.c.session_id).where(kill_acks.c.request_id == req.id)).all()
            assert acks == [(k,)]
            assert proc.wait(30) == 0
            kinds = [e.kind for e in EventLog(eng).read(session_id=k)]
            assert "session.kill" in kinds and kinds[-1] == "session.stopped"
    finally:
        s.close()
    with capsys.disabled():
        print(f"\ncontrol plane, paced 1 bar/s, {db}:")
        for what, xs in figures.items():
            p50, p99 = p50_p99(xs)
            print(f"  {what:10s} n={len(xs):2d}  p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms")
    # Acted on within the bars that arrive while a heartbeat comes round (a bar a second, a
    # heartbeat every 0.25 s; the registry's count can trail by one heartbeat): the event
    # counts, not the wall clock, so this holds on a loaded machine. The wall-clock p99 figures
    # (issue target < 2 s) are printed above and by benchmarks/bench_control_plane.py.
    for what, xs in lags.items():
        assert xs and max(xs) <= LIMIT_EVENTS, (what, xs)
    assert verify(eng, jsonl).ok
