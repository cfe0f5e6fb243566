"""How the flows reach a person: a text under the SMS limits, or a mail from two templates.

The engine (codes.py) reserves the send slot, stores the code and takes it back when the
send fails; what a text or a mail says, which limits a text must pass, and how a test
number's or Twilio Verify's code is checked are the same for every purpose, and said here
once: a new purpose sends its code with `text_code` or `mail_code` and a template.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Sequence
from typing import Any

from flask import render_template

from authserver import codes, phones, ratelimits
from authserver.config import settings
from authserver.errors import invalid_otp
from authserver.extensions import client_ip
from authserver.senders.base import RecipientRejected
from authserver.services import services
from authserver.transactions import irreversible

log = logging.getLogger("authserver.flows.channels")

#: (limit, key) pairs a send must have room in, counted once it went out.
Limits = Sequence[tuple[ratelimits.Limit, str]]


def lifetime(seconds: int) -> str:
    """How long a code works, in words: "5 minutes", "1 hour", "90 seconds"."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


# -- mail ------------------------------------------------------------------------------------
def mail(template: str, to: str, subject: str, **context: Any) -> None:
    """Send mail/`template`.txt and .html to `to`; the templates also see app_name, email
    (the recipient) and base_url."""
    config = settings()
    context = {"app_name": config.app_name, "email": to,
               "base_url": config.public_base_url, **context}
    services().email.send(to, subject, render_template(f"mail/{template}.txt", **context),
                          render_template(f"mail/{template}.html", **context))


def mail_code(purpose: codes.Purpose, email: str, template: str, subject: str, *,
              limits: Limits, user_id: str | None = None, binding: str | None = None,
              redirect_to: str | None = None, code_challenge: str | None = None,
              state: str | None = None, **context: Any) -> None:
    """Mail `purpose`'s link and code to `email` (codes.send: the slot, the row, and no row
    left when the mail server refuses). The template sees link, code (None on a row whose
    code is never shown), expires ("15 minutes") and expires_minutes."""
    ttl = purpose.setting("ttl")

    def deliver(challenge_id: str, code: str | None) -> None:
        mail(template, email, subject, link=codes.link_url(purpose, challenge_id), code=code,
             expires=lifetime(ttl), expires_minutes=max(1, ttl // 60), **context)

    codes.send(purpose, email, deliver, limits=limits, user_id=user_id, binding=binding,
               redirect_to=redirect_to, code_challenge=code_challenge, state=state)


def password_changed(email: str, *, in_account: bool = False) -> None:
    """The "your password was changed" notice, after the change committed: a conflict after
    this must not run the change (and the mail) again, and a mail that fails to go out never
    undoes it (logged)."""
    irreversible()
    config = settings()
    try:
        mail("password_changed", email, f"Your {config.app_name} password was changed",
             in_account=in_account, reset_url=f"{config.public_base_url}/login/forgot")
    except Exception as exc:
        log.warning("password changed notice not sent: %s", type(exc).__name__)


# -- text ------------------------------------------------------------------------------------
def text_code(purpose: codes.Purpose, number: phones.Phone, text: Callable[[str], str], *,
              user_id: str | None = None) -> None:
    """Text `purpose`'s code to `number` (the SMS `text(code)`; with a provider that makes
    its own codes, Twilio Verify, the provider is asked to send one), under the SMS limits:
    per phone, per IP, per country and global. Raises 429 and 503 as codes.send does."""
    sender = services().sms

    def deliver(_challenge_id: str, code: str | None) -> None:
        if code is None:
            sender.start_verification(number.e164)
        else:
            sender.send(number.e164, text(code))

    limits = [(ratelimits.SMS_PHONE, number.e164), (ratelimits.SMS_IP, client_ip()),
              (ratelimits.SMS_COUNTRY, number.country_key),
              (ratelimits.SMS_GLOBAL, "all")]
    codes.send(purpose, number.e164, deliver, limits=limits, provider_code=sender.owns_codes,
               user_id=user_id)


def _check_with_provider(challenge: codes.Challenge, code: str) -> bool:
    """Twilio Verify holds the code (a row without a hash); the engine counted the try."""
    try:
        return services().sms.check_verification(challenge.subject, code)
    except RecipientRejected:
        return False


def provider_check() -> Callable[[codes.Challenge, str], bool] | None:
    """codes.verify's provider_check: the provider's, when it makes the codes."""
    return _check_with_provider if services().sms.owns_codes else None


def check_test_code(e164: str, code: str, test_code: str) -> None:
    """A test number's fixed code (SMS_TEST_NUMBERS); raises 401 invalid_otp when `code` is
    not it. The per-number cap on wrong guesses is all that stands before it (429)."""
    guesses = (ratelimits.CODE_GUESSES, f"sms:{e164}")
    ratelimits.check(*guesses)
    if not hmac.compare_digest(codes.normalize_code(code) or "", test_code):
        ratelimits.count(*guesses)
        raise invalid_otp()
