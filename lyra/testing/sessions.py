"""Builders for session tests, benchmarks and notebooks: the demo session's config with
changes, paced paper sessions run as real ``lyra session`` processes, and waiting on a
condition (never a fixed sleep: a busy machine only makes it take longer)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from lyra.demo import DEMO_SESSION
from lyra.session.config import SessionConfig, load_session_config


def demo_config(**changes: Any) -> SessionConfig:
    """The demo session's config (Coinbase BTC/USD 1h, SMA 10/30), with changes."""
    data = dict(DEMO_SESSION)
    data.update(changes)
    return load_session_config(data)


class WaitTimeout(AssertionError):
    """A condition did not hold within its deadline (a test failure, not an error)."""


def wait_for(pred: Callable[[], Any], timeout: float = 60.0, what: str = "", *, every: float = 0.05,
             procs: Iterable[subprocess.Popen[Any]] = ()) -> Any:
    """``pred()``'s first truthy value, polled every ``every`` s (at once if it already holds).
    Raises :class:`WaitTimeout` after ``timeout`` s, or as soon as one of ``procs`` exits
    (with its output, which says why)."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        for p in procs:
            if p.poll() is not None:
                out, err = p.communicate()
                raise WaitTimeout(f"{what}: a process exited with {p.returncode}: "
                                  f"{str(out or '')[-2000:]} {str(err or '')[-2000:]}")
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def paced_toml(session_id: str, *, speed: float, fast: int = 2, slow: int = 5, start: str | None = None,
               end: str | None = None, quantity: str = "0.01", extra: Mapping[str, Any] | None = None,
               max_order_qty: str | None = None) -> str:
    """The TOML of a paper session on the shipped Coinbase BTC/USD hourly bars, replayed at
    ``speed`` x real time (3,600: one bar a second, a session a person watches), SMA
    ``fast``/``slow``, 100,000 USD; ``extra`` top-level keys (``lease_s``, ``latency_ms``...),
    ``max_order_qty``: risk refuses orders above it."""
    lines = [f'session_id = "{session_id}"', 'mode = "paper"', 'strategy = "sma_cross"',
             'venue = "coinbase"', 'symbols = ["BTC/USD"]', 'timeframe = "1h"', f'quantity = "{quantity}"',
             f"speed = {float(speed)!r}"]
    if start is not None:
        lines.append(f'start = "{start}"')
    if end is not None:
        lines.append(f'end = "{end}"')
    for k, v in (extra or {}).items():
        lines.append(f"{k} = {v!r}" if isinstance(v, (int, float)) else f'{k} = "{v}"')
    lines += ["[params]", f"fast = {fast}", f"slow = {slow}", "[balances]", 'USD = "100000"',
              '[instruments."BTC/USD"]', 'price_increment = "0.01"', 'size_increment = "0.00000001"',
              'min_notional = "1"', 'maker_fee = "0.004"', 'taker_fee = "0.006"']
    if max_order_qty is not None:
        lines += ["[risk.defaults]", f'max_order_qty = "{max_order_qty}"']
    return "\n".join(lines) + "\n"


def lyra_cli(args: list[str], env: Mapping[str, str], *, timeout: float = 300
             ) -> subprocess.CompletedProcess[str]:
    """Run ``lyra <args>`` to its end (a wide terminal: messages are not wrapped)."""
    return subprocess.run([sys.executable, "-m", "lyra.cli", *args], env={**env, "COLUMNS": "250"},
                          capture_output=True, text=True, timeout=timeout)


def session_process(env: Mapping[str, str], *args: str, output: bool = True) -> subprocess.Popen[str]:
    """Start ``lyra session <args> --quiet`` (``output``: keep its stdout/stderr to read)."""
    pipe = subprocess.PIPE if output else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "lyra.cli", "session", *args, "--quiet"], env=dict(env),
                            stdout=pipe, stderr=pipe, text=True)


class SessionProcesses:
    """Paced paper sessions as real ``lyra session`` processes on one LYRA_HOME (``env``), for
    tests and benchmarks: start/resume one, wait until it steps through paced bars, wait for it
    to stop; :meth:`close` kills what is left."""

    def __init__(self, engine: Any, env: Mapping[str, str], config_dir: Path, *, speed: float = 3600.0,
                 start: str | None = "2017-07-02", output: bool = True, **toml: Any) -> None:
        from lyra.session.registry import SessionRegistry

        self.env = dict(env)
        self.dir = config_dir
        self.reg = SessionRegistry(engine)
        self.toml = {"speed": speed, "start": start, **toml}
        self.output = output
        self.procs: list[subprocess.Popen[str]] = []

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """``lyra session <args>``, killed by :meth:`close` if still running."""
        p = session_process(self.env, *args, output=self.output)
        self.procs.append(p)
        return p

    def start(self, *sids: str, steps: int = 1) -> list[subprocess.Popen[str]]:
        """Start sessions ``sids`` at once (their start-ups overlap); each returned once it owns
        its session and has stepped ``steps`` paced bars."""
        procs = []
        for sid in sids:
            cfg = self.dir / f"{sid}.toml"
            cfg.write_text(paced_toml(sid, **self.toml))
            procs.append(self.popen("start", "--config", str(cfg)))
        return [self.ready(sid, p, steps) for sid, p in zip(sids, procs, strict=True)]

    def resume(self, sid: str, steps: int = 1) -> subprocess.Popen[str]:
        return self.ready(sid, self.popen("resume", sid), steps)

    def ready(self, sid: str, p: subprocess.Popen[str], steps: int = 1) -> subprocess.Popen[str]:
        """Wait until ``p`` owns ``sid`` and steps through live (paced) bars, not starting up."""
        reg = self.reg
        wait_for(lambda: (r := reg.get(sid)) is not None and r["status"] == "running" and r["pid"] == p.pid,
                 120, f"{sid} to run", procs=[p])
        at = reg.get(sid)["events_processed"]  # type: ignore[index]
        wait_for(lambda: reg.get(sid)["events_processed"] >= at + steps, 60, f"{sid} to step",  # type: ignore[index]
                 procs=[p])
        return p

    def wait_stopped(self, sid: str, t0: float, timeout: float = 60.0) -> float:
        """Seconds from ``t0`` (``time.monotonic()``) until ``sid`` is stopped."""
        wait_for(lambda: self.reg.get(sid)["status"] == "stopped", timeout, f"{sid} to stop",  # type: ignore[index]
                 every=0.005)
        return time.monotonic() - t0

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate()


__all__ = ["SessionProcesses", "WaitTimeout", "demo_config", "lyra_cli", "paced_toml", "session_process",
           "wait_for"]
