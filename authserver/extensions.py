"""Flask extensions, created once here and bound to an app in create_app with init_app."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

import flask_limiter
from flask import Flask, current_app, request
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from limits.strategies import RateLimiter
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

log = logging.getLogger("authserver.ratelimits")

# Stable constraint names so Alembic migrations are the same on MySQL and SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def client_ip() -> str:
    """The caller's address; ProxyFix (PROXY_FIX_HOPS) makes this the real client behind proxies."""
    return request.remote_addr or "unknown"


def ip_key(address: str | None = None) -> str:
    """The budget a per-IP limit counts `address` (default: the caller's) against.

    IPv4 addresses count one by one. An IPv6 client is given a whole /64 (the smallest
    prefix a network hands a subscriber) and can pick any address in it, so its /64 is one
    budget; an IPv4-mapped IPv6 address counts as its IPv4 address.
    """
    address = client_ip() if address is None else address
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("%eth0")
    except ValueError:
        return address  # "unknown", or a key that is already a network
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Base(DeclarativeBase):
    """The declarative base that Flask-SQLAlchemy builds `db.Model` from (see models/base.py)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Limiter(flask_limiter.Limiter):
    """Flask-Limiter, with its in-memory fallback serving every count, not just route limits.

    When the storage (Redis) fails, Flask-Limiter switches its route limits to a per-process
    memory storage (RATELIMIT_IN_MEMORY_FALLBACK_ENABLED, set in config.py); ratelimits.py
    counts through `strategy()` and reports failures to `storage_failed`, so the limits flows
    check by hand fall back the same way instead of answering 500. One warning per outage;
    the storage is tried again every RETRY_INTERVAL seconds (Flask-Limiter tries too, with
    its own backoff) and counting returns to it once it answers. `/readyz` reads `degraded`.
    """

    #: Seconds between tries of a storage that failed.
    RETRY_INTERVAL = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The view functions that carry a route limit (ratelimits.route adds them).
        self.limited_views: set[Callable[..., Any]] = set()

    def _limited(self) -> bool:
        return current_app.view_functions.get(request.endpoint or "") in self.limited_views

    def _check_request_limit(self, callable_name: str | None = None,
                             in_middleware: bool = True) -> None:
        # A request to a view without a route limit skips Flask-Limiter's per-request work of
        # finding that out: the token check is on every request of every service using us.
        if self._limited():
            super()._check_request_limit(callable_name, in_middleware)

    def init_app(self, app: Flask) -> None:
        self._storage_options = {}  # this app's RATELIMIT_STORAGE_OPTIONS, not the last one's
        super().init_app(app)
        self._only_for_limited_views(app)
        # One limiter serves every app this process builds (tests build many): a new app's
        # storage starts out trusted.
        self._storage_dead = False
        self._last_try = 0.0

    def _only_for_limited_views(self, app: Flask) -> None:
        """Flask-Limiter's after-request hook (rate-limit headers, conditional deductions)
        and teardown (its request context) run for every request; a view it never checked
        has neither headers nor a context, so they are skipped there too."""
        def for_limited_views(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
            def hook_if_limited(value: Any = None) -> Any:
                return hook(value) if self._limited() else value
            return hook_if_limited

        for hooks in (app.after_request_funcs[None], app.teardown_request_funcs[None]):
            for index, hook in enumerate(hooks):
                name = getattr(getattr(hook, "func", hook), "__name__", "")
                if name in ("__inject_headers", "__release_context"):
                    hooks[index] = for_limited_views(hook)

    @property
    def degraded(self) -> bool:
        """Counting in this process's memory because the storage failed."""
        return bool(self._in_memory_fallback_enabled and self._storage_dead)

    def strategy(self) -> RateLimiter:
        """The strategy to count with now: the storage's, or the fallback while it is down."""
        if self.degraded and time.monotonic() - self._last_try > self.RETRY_INTERVAL:
            self.probe()
        return self.limiter

    def probe(self) -> bool:
        """Ask the storage whether it answers (bounded by its timeouts); track the outage."""
        self._last_try = time.monotonic()
        try:
            healthy = bool(self.storage.check())
        except Exception:
            healthy = False
        if healthy and self._storage_dead:
            self._storage_dead = False
            log.warning("rate-limit storage answers again: counting there again")
        elif not healthy and self._in_memory_fallback_enabled and not self._storage_dead:
            self._outage("no answer")
        return healthy

    def storage_failed(self, exc: Exception) -> None:
        """A storage call raised `exc`: count in memory from now on (or re-raise `exc` when
        there is no fallback)."""
        if not self._in_memory_fallback_enabled:
            raise exc
        self._last_try = time.monotonic()
        if not self._storage_dead:
            self._outage(type(exc).__name__)

    def _outage(self, reason: str) -> None:
        self._storage_dead = True
        # Once per outage, and without a traceback: the state matters, not the stack.
        log.warning("rate-limit storage unreachable (%s): counting limits in this process's "
                    "memory until it answers again", reason)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
#: Moving windows: a limit of N per window holds over *any* window of that length, so a
#: client can't spend N at the end of one fixed window and N more at the start of the next.
#: Memory and Redis storages both support it; ratelimits.check/count use this same strategy.
#: When the storage fails, counting goes on in this process's memory (see Limiter above).
limiter = Limiter(key_func=ip_key, strategy="moving-window", in_memory_fallback_enabled=True)
