"""UTC timestamps. Lyra keeps time as int milliseconds since the Unix epoch (UTC) in hot paths
and as timezone-aware UTC ``datetime`` at the edges."""

from __future__ import annotations

from datetime import UTC, datetime

from lyra.core.clock import WALL_CLOCK
from lyra.core.errors import ValidationError

_TIMEFRAME_UNITS_MS = {
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
}


def ms_to_datetime(ms: int) -> datetime:
    """Milliseconds since the epoch -> aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def datetime_to_ms(dt: datetime) -> int:
    """Aware datetime -> milliseconds since the epoch. Naive datetimes are refused."""
    if dt.tzinfo is None:
        raise ValidationError("datetime", dt, "naive datetime", "pass a timezone-aware UTC datetime")
    return round(dt.timestamp() * 1000)


def utc_now_ms() -> int:
    """The wall clock in ms (:data:`lyra.core.clock.WALL_CLOCK`). Components take a ``clock``
    argument instead, so that tests can move time."""
    return WALL_CLOCK.now_ms()


def parse_utc(text: str) -> datetime:
    """Parse an ISO-8601 date or datetime; naive input is taken as UTC."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(
            "time", text, "not an ISO-8601 date/time", "use e.g. 2024-01-01 or 2024-01-01T12:00Z"
        ) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def timeframe_to_ms(timeframe: str) -> int:
    """'1m' -> 60000, '4h' -> 14400000. Months ('1M') have no fixed length and are refused."""
    if len(timeframe) < 2 or timeframe[-1] not in _TIMEFRAME_UNITS_MS or not timeframe[:-1].isdigit():
        raise ValidationError(
            "timeframe", timeframe, "unsupported timeframe", "use <n><unit> with unit in s, m, h, d, w"
        )
    n = int(timeframe[:-1])
    if n <= 0:
        raise ValidationError("timeframe", timeframe, "must be positive")
    return n * _TIMEFRAME_UNITS_MS[timeframe[-1]]
