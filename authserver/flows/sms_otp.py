"""Sign in with a 6-digit code sent by SMS: the policy of the `sign_in_sms` purpose.

The engine (codes.py) stores, sends, counts and consumes the code. What is particular here:
sending is expensive and abused (SMS pumping), so the number must be a valid mobile number in
an allowed country (phones.py) and the per-phone, per-IP, per-country and global limits must
have room; only the newest code of a phone counts (a new request kills the older one), and
the wrong try that uses the last attempt kills the code. With SMS_BACKEND=twilio_verify
Twilio makes and checks the code; our row still carries expiry, attempts and single use.
SMS_TEST_NUMBERS sign in with their fixed code and are never texted.

Log lines name the row id and a masked phone, never a code.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from authserver import accounts, codes, phones, ratelimits, tokens
from authserver.config import settings
from authserver.errors import Problem, code_used_up, invalid_otp
from authserver.events import Method
from authserver.extensions import client_ip
from authserver.flows import attempts, channels
from authserver.services import services

log = logging.getLogger("authserver.flows.sms_otp")

AMR = ["sms"]

PURPOSE = codes.Purpose(
    "sign_in_sms", channel=codes.SMS, ttl="otp_ttl", max_attempts="otp_max_attempts",
    cooldown="otp_resend_cooldown",
    cooldown_detail="A code was just sent. Wait {wait} seconds before asking for another.",
    supersede_on_send=True, lock_kills=True, key_label="authserver.sms-otp.code",
    signup_setting="phone_signup_enabled")


def message_text(code: str) -> str:
    """The SMS: short, names the app, and ends with the WebOTP line so devices can autofill."""
    config = settings()
    host = urlsplit(config.public_base_url).hostname
    return (f"{config.app_name}: your sign-in code is {code}. It expires in "
            f"{channels.lifetime(config.otp_ttl)}. Don't share it.\n\n@{host} #{code}")


def request_code(phone: str) -> dict[str, Any]:
    """Text a sign-in code to `phone` (any common notation).

    Returns {"sent", "expires_in", "resend_after", "phone"} ("phone" in E.164). Raises 422
    invalid_phone / phone_country_not_allowed, 429 rate_limited (with Retry-After), 503
    service_unavailable when the provider could not take the text.
    """
    config, test_numbers = settings(), services().test_numbers
    number = phones.sms_phone(phone, test_numbers=test_numbers)
    if number.e164 in test_numbers:
        log.info("otp request for test number %s: nothing sent", phones.mask(number.e164))
        return {"sent": True, "expires_in": config.otp_ttl, "resend_after": 0,
                "phone": number.e164}

    try:
        channels.text_code(PURPOSE, number, message_text)
    except Problem:
        log.warning("otp request refused phone=%s ip=%s", phones.mask(number.e164),
                    client_ip())
        raise
    return {"sent": True, "expires_in": config.otp_ttl,
            "resend_after": config.otp_resend_cooldown, "phone": number.e164}


def verify_code(phone: str, code: str, *, client: str = "api") -> tokens.IssuedTokens:
    """Sign in with the code texted to `phone`.

    Raises 401 invalid_otp (wrong, expired, used or replaced code, or no code for this
    phone), 429 otp_attempts_exceeded once the wrong tries used the code up, 403
    account_disabled, 422 invalid_phone when `phone` is not a phone number at all,
    429 rate_limited per client IP, 503 when Twilio Verify can't be asked.
    A refusal is told as SIGNIN_FAILED (flows/attempts.py), naming the phone's account only
    after the code was checked (the lookup costs the same for every number).
    """
    with attempts.signin(Method.SMS, account_of=lambda: _account_of(phone)):
        return _verify_code(phone, code, client)


def _account_of(phone: str) -> str | None:
    try:
        found = accounts.by_phone(phones.parse_phone(phone))
    except Problem:
        return None
    return found.id if found is not None else None


def _verify_code(phone: str, code: str, client: str) -> tokens.IssuedTokens:
    ratelimits.hit(ratelimits.SMS_VERIFY_IP, client_ip())
    e164 = phones.parse_phone(phone)
    test_code = services().test_numbers.get(e164)
    if test_code is not None:
        channels.check_test_code(e164, code, test_code)
    else:
        verdict = codes.verify(PURPOSE, e164, code, provider_check=channels.provider_check())
        if verdict.outcome is codes.Outcome.EXHAUSTED:
            raise code_used_up(codes.seconds_until_resend(PURPOSE, verdict.challenge),
                               "Ask for a new one.", field="code")
        if verdict.outcome is not codes.Outcome.MATCHED:
            log.info("otp verify failed (%s) phone=%s", verdict.outcome.value,
                     phones.mask(e164))
            raise invalid_otp()
    # Whether a number has an account stays secret: no account is a wrong code too.
    owner = accounts.verified_owner(phone=e164, create=settings().phone_signup_enabled)
    if owner is None:
        raise invalid_otp()
    log.info("otp sign-in user=%s phone=%s", owner.user.id, phones.mask(e164))
    return tokens.issue(owner.user, AMR, client=client, method=Method.SMS)
