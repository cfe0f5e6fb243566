"""Every rate limit in one table, and the one layer that applies them.

A limit has a name (its counters' namespace in RATELIMIT_STORAGE_URI: memory, or Redis when
several processes serve together), the settings that give its rate, and what a person is
told when it is reached. Two ways to apply one:

- `route(LIMIT)` on a view: Flask-Limiter counts every request to it per client IP;
- `check` / `count` / `hit` from a flow, for limits keyed by a value in the body (a phone,
  an address, a country) or that count only what really happened (a failed SMS send must
  not use up the person's budget).

A new limit is a row here and one of those two calls where it applies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse_many

from authserver.config import Settings, settings
from authserver.errors import rate_limited
from authserver.extensions import limiter

BUSY = "Too many requests. Try again later."
TOO_MANY_CODES = "Too many codes were asked for. Try again later."
TOO_MANY_MAILS = "Too many sign-in mails were asked for. Try again later."


@dataclass(frozen=True)
class Limit:
    name: str
    #: Settings whose values, joined with ";", are the rate ("5/hour;10/day"); empty: off.
    settings: tuple[str, ...]
    detail: str = BUSY

    def rate(self, config: Settings | None = None) -> str:
        config = config or settings()
        return ";".join(value for value in (getattr(config, name) for name in self.settings)
                        if value)


# -- the table -------------------------------------------------------------------------------
#                 name                 settings                                  told
SIGNIN_IP = Limit("signin-ip", ("signin_limit_per_ip",))
SIGNIN_ACCOUNT = Limit("signin-account", ("signin_limit_per_account",))
SIGNUP_IP = Limit("signup-ip", ("signup_limit_per_ip",))
SMS_PHONE = Limit("otp-phone", ("otp_limit_per_phone_hour", "otp_limit_per_phone_day"),
                  "Too many codes were sent to this number. Try again later.")
SMS_IP = Limit("otp-ip", ("otp_limit_per_ip_hour",), TOO_MANY_CODES)
SMS_COUNTRY = Limit("otp-country", ("otp_limit_per_country_hour",), TOO_MANY_CODES)
SMS_GLOBAL = Limit("otp-global", ("otp_limit_global_hour",), TOO_MANY_CODES)
SMS_VERIFY_IP = Limit("otp-verify-ip", ("token_limit_per_ip",))
MAIL_IP = Limit("magic-link-ip", ("magic_link_limit_per_ip_hour",), TOO_MANY_MAILS)
MAIL_ADDRESS = Limit("magic-link-email", ("magic_link_limit_per_email_hour",), TOO_MANY_MAILS)
#: Wrong codes per phone or address across all its codes (each new code brings fresh tries).
CODE_GUESSES = Limit("code-guesses", ("code_guess_limit",),
                     "Too many wrong codes for this phone number or address. Wait, or sign in "
                     "another way.")
#: Route limits (per client IP, counted by Flask-Limiter on every request to the view).
LINK_VERIFY_IP = Limit("link-verify", ("magic_link_verify_limit_per_ip",))
TOKEN_IP = Limit("token", ("token_limit_per_ip",))

LIMITS = (SIGNIN_IP, SIGNIN_ACCOUNT, SIGNUP_IP, SMS_PHONE, SMS_IP, SMS_COUNTRY, SMS_GLOBAL,
          SMS_VERIFY_IP, MAIL_IP, MAIL_ADDRESS, CODE_GUESSES, LINK_VERIFY_IP, TOKEN_IP)


# -- applying them ---------------------------------------------------------------------------
def route(limit: Limit) -> Callable[[Any], Any]:
    """Decorator: `limit` per client IP on this view (RATELIMIT_ENABLED=false turns it off)."""
    return limiter.limit(lambda: limit.rate())


def _items(limit: Limit) -> list[RateLimitItem]:
    rate = limit.rate()
    return list(parse_many(rate)) if rate else []


def check(limit: Limit, key: str) -> None:
    """Raise 429 (with Retry-After) if one more hit would pass `limit`; count nothing."""
    if not settings().ratelimit_enabled:
        return
    strategy = limiter.limiter
    for item in _items(limit):
        if not strategy.test(item, limit.name, key):
            stats = strategy.get_window_stats(item, limit.name, key)
            retry = max(1, math.ceil(stats.reset_time - time.time()))
            raise rate_limited(retry, limit.detail)


def count(limit: Limit, key: str) -> None:
    """Record one hit against `limit`."""
    if not settings().ratelimit_enabled:
        return
    for item in _items(limit):
        limiter.limiter.hit(item, limit.name, key)


def hit(limit: Limit, key: str) -> None:
    """check, then count: for attempts that count whether or not they succeed."""
    check(limit, key)
    count(limit, key)


def reset(limit: Limit, key: str) -> None:
    if not settings().ratelimit_enabled:
        return
    for item in _items(limit):
        limiter.limiter.clear(item, limit.name, key)
