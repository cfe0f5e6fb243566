"""The one source of "now". Tests move it with `travel`; nothing else calls datetime.now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def now() -> datetime:
    """The current time, timezone-aware UTC, shifted by any travel a test asked for."""
    return datetime.now(UTC) + _offset


def timestamp() -> int:
    return int(now().timestamp())


def travel(seconds: float) -> None:
    """Move the clock forward (or back, with a negative value). For tests."""
    global _offset
    _offset += timedelta(seconds=seconds)


def reset() -> None:
    global _offset
    _offset = timedelta(0)
