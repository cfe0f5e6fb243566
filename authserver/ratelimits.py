"""Limits keyed by things other than the route: a phone, an address, a country, the world.

Flask-Limiter's decorators cover per-route, per-IP limits. Flows need limits on values in
the body and limits that count only what really happened (a failed SMS send must not use up
the person's cooldown), so they call these helpers against the same storage
(RATELIMIT_STORAGE_URI: memory, or Redis when several processes serve together).
"""

from __future__ import annotations

import math
import time

from flask import current_app
from limits import RateLimitItem, parse_many

from authserver.errors import rate_limited
from authserver.extensions import limiter


def _items(spec: str) -> list[RateLimitItem]:
    return list(parse_many(spec))


def _enabled() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED", True))


def check(name: str, key: str, spec: str, detail: str | None = None) -> None:
    """Raise 429 (with Retry-After) if one more hit would pass `spec`; count nothing."""
    if not _enabled():
        return
    strategy = limiter.limiter
    for item in _items(spec):
        if not strategy.test(item, name, key):
            stats = strategy.get_window_stats(item, name, key)
            retry = max(1, math.ceil(stats.reset_time - time.time()))
            raise rate_limited(retry, detail or "Too many requests. Try again later.")


def count(name: str, key: str, spec: str) -> None:
    """Record one hit against every limit in `spec`."""
    if not _enabled():
        return
    for item in _items(spec):
        limiter.limiter.hit(item, name, key)


def hit(name: str, key: str, spec: str, detail: str | None = None) -> None:
    """check, then count: for attempts that count whether or not they succeed."""
    check(name, key, spec, detail)
    count(name, key, spec)


def reset(name: str, key: str, spec: str) -> None:
    if not _enabled():
        return
    for item in _items(spec):
        limiter.limiter.clear(item, name, key)
