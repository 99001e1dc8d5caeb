"""The one Clock protocol and its three clocks: wall, replay (data time), manual (tests)."""

from __future__ import annotations

import time

import pytest

import lyra.core
import lyra.feeds
from lyra.core.clock import WALL_CLOCK, Clock, ManualClock, ReplayClock, WallClock
from lyra.core.errors import ValidationError


def _read(clock: Clock) -> tuple[int, float]:  # typed: every clock satisfies the protocol
    return clock.now_ms(), clock.monotonic_s()


def test_the_wall_clock_is_the_real_time() -> None:
    before = time.time_ns() // 1_000_000
    now_ms, mono = _read(WALL_CLOCK)
    assert before <= now_ms <= time.time_ns() // 1_000_000
    assert mono <= time.monotonic()
    assert WALL_CLOCK.monotonic_s() >= mono  # never goes back
    assert isinstance(WALL_CLOCK, WallClock) and repr(WALL_CLOCK) == "WallClock()"


def test_the_replay_clock_follows_the_data_forward_only() -> None:
    c = ReplayClock(1_000)
    assert _read(c) == (1_000, 1.0)
    c.advance_to(61_000)
    c.advance_to(61_000)  # standing still is fine
    assert _read(c) == (61_000, 61.0)
    with pytest.raises(ValidationError, match="cannot go back"):
        c.advance_to(60_999)
    assert c.now_ms() == 61_000


def test_the_manual_clock_moves_only_when_told() -> None:
    c = ManualClock(1_700_000_000_000)
    assert c.now_ms() == 1_700_000_000_000
    assert c.advance(0.249) == 1_700_000_000_249  # ms resolution, both readings together
    assert c.monotonic_s() == pytest.approx(1_700_000_000.249)
    assert c.advance(0) == 1_700_000_000_249
    c.advance_to(1_700_000_060_000)  # it is a ReplayClock too: a session can drive it
    with pytest.raises(ValidationError, match="only moves forward"):
        c.advance(-0.001)
    with pytest.raises(ValidationError):
        c.advance(float("nan"))
    assert c.now_ms() == 1_700_000_060_000
    assert repr(c) == "ManualClock(1700000060000)"


def test_one_clock_protocol_in_the_package() -> None:
    assert lyra.core.Clock is Clock and lyra.core.WALL_CLOCK is WALL_CLOCK
    assert lyra.core.ManualClock is ManualClock
    assert not hasattr(lyra.feeds, "Clock")  # the replay's protocol is AdvanceableClock
    assert isinstance(ManualClock(), lyra.feeds.AdvanceableClock)
