"""Every rate limit in one table, and the one layer that applies them.

A limit has a name (its counters' namespace in RATELIMIT_STORAGE_URI: memory, or Redis when
several processes serve together), the settings that give its rate, and what a person is
told when it is reached. Two ways to apply one:

- `route(LIMIT)` on a view: Flask-Limiter counts every request to it per client IP;
- `check` / `count` / `hit` from a flow, for limits keyed by a value in the body (a phone,
  an address, a country) or that count only what really happened (a failed SMS send must
  not use up the person's budget).

A new limit is a row here and one of those two calls where it applies.

Counting: Flask-Limiter's moving-window strategy (extensions.limiter), which `check`/`count`
use too, so no limit lets twice its rate through at a window's edge. A `per_ip` limit counts
an IPv6 client's whole /64 as one address (extensions.ip_key). A `shared` limit is counted
in the database (counters.py), one budget across every process whatever the storage; its
`check` takes a unit at once (atomically) and a unit no `count` confirmed by the end of the
request is given back, so it never lets more through than its rate, even when racing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import methodcaller
from typing import Any, NoReturn, TypeVar

from flask import Response, after_this_request, g, has_request_context
from limits import RateLimitItem, parse_many
from limits.strategies import RateLimiter

from authserver import counters
from authserver.config import Settings, settings
from authserver.errors import db_error_summary, rate_limited
from authserver.extensions import db, ip_key, limiter

log = logging.getLogger("authserver.ratelimits")

BUSY = "Too many requests. Try again later."
TOO_MANY_CODES = "Too many codes were asked for. Try again later."
TOO_MANY_MAILS = "Too many sign-in mails were asked for. Try again later."


@dataclass(frozen=True)
class Limit:
    name: str
    #: Settings whose values, joined with ";", are the rate ("5/hour;10/day"); empty: off.
    settings: tuple[str, ...]
    detail: str = BUSY
    #: The key is a client address: IPv6 counts by /64.
    per_ip: bool = False
    #: Counted in the database: one budget across processes, whatever the storage.
    shared: bool = False

    def rate(self, config: Settings | None = None) -> str:
        config = config or settings()
        return ";".join(value for value in (getattr(config, name) for name in self.settings)
                        if value)


# -- the table -------------------------------------------------------------------------------
#                 name                 settings                                  told
SIGNIN_IP = Limit("signin-ip", ("signin_limit_per_ip",), per_ip=True)
#: Password sign-ins for one address from clients without its device token ("untrusted").
SIGNIN_ACCOUNT = Limit("signin-account", ("signin_limit_per_account",))
#: Password sign-ins from one device that signed in before (keyed by its token's nonce).
SIGNIN_DEVICE = Limit("signin-device", ("signin_limit_per_device",))
#: Sign-ups that made an account (or were answered as if: EMAIL_VERIFICATION_REQUIRED);
#: checked first, counted after. A refused one (bad address, weak password, address taken)
#: costs only the attempts budget below, at the password sign-ins' rate.
SIGNUP_IP = Limit("signup-ip", ("signup_limit_per_ip",), per_ip=True)
SIGNUP_ATTEMPT_IP = Limit("signup-attempt-ip", ("signin_limit_per_ip",), per_ip=True)
SMS_PHONE = Limit("otp-phone", ("otp_limit_per_phone_hour", "otp_limit_per_phone_day"),
                  "Too many codes were sent to this number. Try again later.")
SMS_IP = Limit("otp-ip", ("otp_limit_per_ip_hour",), TOO_MANY_CODES, per_ip=True)
SMS_COUNTRY = Limit("otp-country", ("otp_limit_per_country_hour",), TOO_MANY_CODES)
SMS_GLOBAL = Limit("otp-global", ("otp_limit_global_hour",), TOO_MANY_CODES, shared=True)
SMS_VERIFY_IP = Limit("otp-verify-ip", ("token_limit_per_ip",), per_ip=True)
MAIL_IP = Limit("magic-link-ip", ("magic_link_limit_per_ip_hour",), TOO_MANY_MAILS,
                per_ip=True)
MAIL_ADDRESS = Limit("magic-link-email", ("magic_link_limit_per_email_hour",), TOO_MANY_MAILS)
#: Password reset mails: a budget of their own, at the magic links' rates.
RESET_IP = Limit("reset-ip", ("magic_link_limit_per_ip_hour",), TOO_MANY_MAILS, per_ip=True)
RESET_ADDRESS = Limit("reset-email", ("magic_link_limit_per_email_hour",), TOO_MANY_MAILS)
#: E-mail verification (sign-up's mail, resend) and e-mail change mails: budgets of their own,
#: at the magic links' rates (the address is the one mailed: the account's, or the new one).
VERIFY_IP = Limit("verify-email-ip", ("magic_link_limit_per_ip_hour",), TOO_MANY_MAILS,
                  per_ip=True)
VERIFY_ADDRESS = Limit("verify-email-email", ("magic_link_limit_per_email_hour",),
                       TOO_MANY_MAILS)
CHANGE_IP = Limit("change-email-ip", ("magic_link_limit_per_ip_hour",), TOO_MANY_MAILS,
                  per_ip=True)
CHANGE_ADDRESS = Limit("change-email-email", ("magic_link_limit_per_email_hour",),
                       TOO_MANY_MAILS)
#: Wrong codes per phone or address across all its codes (each new code brings fresh tries).
CODE_GUESSES = Limit("code-guesses", ("code_guess_limit",),
                     "Too many wrong codes for this phone number or address. Wait, or sign in "
                     "another way.")
#: Route limits (per client IP, counted by Flask-Limiter on every request to the view).
LINK_VERIFY_IP = Limit("link-verify", ("magic_link_verify_limit_per_ip",), per_ip=True)
TOKEN_IP = Limit("token", ("token_limit_per_ip",), per_ip=True)

LIMITS = (SIGNIN_IP, SIGNIN_ACCOUNT, SIGNIN_DEVICE, SIGNUP_IP, SMS_PHONE, SMS_IP, SMS_COUNTRY,
          SMS_GLOBAL, SMS_VERIFY_IP, MAIL_IP, MAIL_ADDRESS, RESET_IP, RESET_ADDRESS, CODE_GUESSES,
          LINK_VERIFY_IP, TOKEN_IP, VERIFY_IP, VERIFY_ADDRESS, CHANGE_IP, CHANGE_ADDRESS,
          SIGNUP_ATTEMPT_IP)


# -- applying them ---------------------------------------------------------------------------
def route(limit: Limit) -> Callable[[Any], Any]:
    """Decorator: `limit` per client IP on this view (RATELIMIT_ENABLED=false turns it off)."""
    decorate = limiter.limit(lambda: limit.rate())

    def apply(view: Any) -> Any:
        limited = decorate(view)
        limiter.limited_views.add(limited)
        return limited

    return apply


def _items(limit: Limit) -> list[RateLimitItem]:
    rate = limit.rate()
    return list(parse_many(rate)) if rate else []


def _key(limit: Limit, key: str) -> str:
    return ip_key(key) if limit.per_ip else key


T = TypeVar("T")


def _counted(call: Callable[[RateLimiter], T]) -> T:
    """`call` with the strategy that counts now; if the storage (Redis) fails, again with the
    per-process in-memory fallback: a down limit store costs nobody a sign-in, and a count
    recorded after a successful send never turns that success into an error."""
    strategy = limiter.strategy()
    try:
        return call(strategy)
    except Exception as exc:
        limiter.storage_failed(exc)  # re-raises when there is no fallback
        fallback = limiter.limiter
        if fallback is strategy:
            raise
        return call(fallback)


def check(limit: Limit, key: str) -> None:
    """Raise 429 (with Retry-After) if one more hit would pass `limit`; count nothing.

    (A `shared` limit takes its unit here and gives it back at the end of the request
    unless `count` confirmed it: the same outcome, without a gap between look and count.)
    """
    if not settings().ratelimit_enabled:
        return
    key = _key(limit, key)
    if limit.shared:
        _take_shared(limit, key)
        return
    for item in _items(limit):
        if not _counted(methodcaller("test", item, limit.name, key)):
            _refuse(limit, item, key)


def count(limit: Limit, key: str) -> None:
    """Record one hit against `limit`."""
    if not settings().ratelimit_enabled:
        return
    key = _key(limit, key)
    if limit.shared:
        _confirm_shared(limit, key)
        return
    for item in _items(limit):
        _counted(methodcaller("hit", item, limit.name, key))


def hit(limit: Limit, key: str) -> None:
    """check, then count: for attempts that count whether or not they succeed.

    One round trip per rate: the moving window's hit is itself the atomic "count if there
    is room" (a refused hit counts nothing). Of a limit with several rates ("10/minute;50/
    hour"), the rates before the one that refuses have counted the attempt: it was made.
    """
    if not settings().ratelimit_enabled:
        return
    if limit.shared:
        check(limit, key)
        count(limit, key)
        return
    key = _key(limit, key)
    for item in _items(limit):
        if not _counted(methodcaller("hit", item, limit.name, key)):
            _refuse(limit, item, key)


def _refuse(limit: Limit, item: RateLimitItem, key: str) -> NoReturn:
    stats = _counted(methodcaller("get_window_stats", item, limit.name, key))
    raise rate_limited(max(1, math.ceil(stats.reset_time - time.time())), limit.detail)


def reset(limit: Limit, key: str) -> None:
    if not settings().ratelimit_enabled:
        return
    key = _key(limit, key)
    for item in _items(limit):
        if limit.shared:
            counters.clear_windows(f"{limit.name}:{key}", item.get_expiry())
        else:
            _counted(methodcaller("clear", item, limit.name, key))


# -- shared limits: counted in the database --------------------------------------------------
#: g's list of (limit name, key, counter row) taken by `check` and not yet confirmed.
_TAKEN = "ratelimits_shared_taken"


def _take_shared(limit: Limit, key: str) -> None:
    taken: list[tuple[str, str, str]] = []
    try:
        for item in _items(limit):
            row, wait = counters.take(f"{limit.name}:{key}", item.amount, item.get_expiry())
            if row is None:
                raise rate_limited(wait, limit.detail)
            taken.append((limit.name, key, row))
    except BaseException:
        for _, _, row in taken:
            counters.give_back(row)
        raise
    if not has_request_context():
        return  # a command: nothing ends it to give units back, so they stay counted
    pending: list[tuple[str, str, str]] | None = g.get(_TAKEN)
    if pending is None:
        pending = g.setdefault(_TAKEN, [])
        after_this_request(_give_back_unconfirmed)
    pending.extend(taken)


def _confirm_shared(limit: Limit, key: str) -> None:
    pending: list[tuple[str, str, str]] = g.get(_TAKEN, []) if has_request_context() else []
    mine = [entry for entry in pending if entry[:2] == (limit.name, key)]
    if mine:
        for entry in mine:
            pending.remove(entry)
        return
    for item in _items(limit):  # counted without a check: record it if there is room
        counters.take(f"{limit.name}:{key}", item.amount, item.get_expiry())


def _give_back_unconfirmed(response: Response) -> Response:
    """End of a request: units `check` took for what never happened (a refused or failed
    send) go back, so a request that sent nothing costs the shared budget nothing."""
    pending: list[tuple[str, str, str]] = g.pop(_TAKEN, [])
    try:
        for _, _, row in pending:
            counters.give_back(row)
    except Exception as exc:  # the answer stands; the unit stays counted (errs on the safe side)
        # The database may be gone: even the rollback can fail, and nothing here may turn
        # the answer into a 500.
        with contextlib.suppress(Exception):
            db.session.rollback()
        log.error("could not give back %d shared rate-limit units: %s", len(pending),
                  db_error_summary(exc))
    return response
