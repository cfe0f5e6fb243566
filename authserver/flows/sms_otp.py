"""Sign in with a 6-digit code sent by SMS.

One code sent is one `OtpChallenge` row. We generate the code with `secrets` and keep only an
HMAC of (phone, code) keyed from SECRET_KEY; with SMS_BACKEND=twilio_verify Twilio generates
and checks the code, and the row (with an empty hash) still carries our expiry, attempt count
and single use. A new request invalidates the previous code of that phone; verifying looks at
the newest code only.

Consuming is one conditional UPDATE whose row count decides, so of concurrent verifies with
the right code exactly one gets tokens. A wrong guess is counted by `attempts = attempts + 1
WHERE attempts < max`, so parallel guessing can't be answered more than OTP_MAX_ATTEMPTS
times; the guess that uses the last attempt kills the code (429 otp_attempts_exceeded).

Sending is expensive and abused (SMS pumping), so before anything is sent: the number must
be a valid mobile number in an allowed country (phones.py), the per-phone, per-IP,
per-country and global limits must have room, and the phone's resend cooldown must have
passed. Those limits count only texts really handed to the provider: a failed send leaves no
usable code and costs the person nothing.

The resend cooldown is a send slot reserved atomically in the database (cooldowns.py) before
the text goes out, so of concurrent requests for one phone exactly one is sent a code, across
worker processes and even on RATELIMIT_STORAGE_URI=memory://. A failed send gives the slot
back, so it doesn't start the cooldown.

Codes are never logged (the console SMS backend prints the text: that is its purpose for
local development). Log lines name the row id and a masked phone.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update

from authserver import accounts, clock, cooldowns, phones, ratelimits, tokens
from authserver.errors import Problem, rate_limited, unavailable
from authserver.extensions import client_ip, db
from authserver.models import OtpChallenge, User
from authserver.senders.base import RecipientRejected, SenderUnavailable
from authserver.senders.sms import SmsSender
from authserver.services import services, settings

log = logging.getLogger("authserver.flows.sms_otp")

AMR = ["sms"]
CODE_LENGTH = 6
CODE_KEY_LABEL = b"authserver.sms-otp.code"
# How long a client should wait after the provider failed before trying again.
PROVIDER_RETRY_AFTER = 30


class _Challenge(NamedTuple):
    id: int
    code_hash: str
    attempts: int
    created_at: datetime
    expires_at: datetime
    consumed_at: datetime | None
    invalidated_at: datetime | None


# -- set-up ----------------------------------------------------------------------------------
def sms_sender() -> SmsSender:
    """The app's SMS sender, built once from its configuration (flows never pick a backend)."""
    return services().sms


def _test_numbers() -> dict[str, str]:
    return services().test_numbers


# -- the code --------------------------------------------------------------------------------
def _new_code() -> str:
    return f"{secrets.randbelow(10 ** CODE_LENGTH):0{CODE_LENGTH}d}"


def code_hash(phone: str, code: str) -> str:
    """The stored form of a code: HMAC-SHA256 keyed from SECRET_KEY over phone and code."""
    key = hmac.new(settings().secret_key.encode(), CODE_KEY_LABEL,
                   hashlib.sha256).digest()
    return hmac.new(key, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def _lifetime(seconds: int) -> str:
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute" + ("s" if minutes != 1 else "")
    return f"{seconds} seconds"


def message_text(code: str) -> str:
    """The SMS: short, names the app, and ends with the WebOTP line so devices can autofill."""
    config = settings()
    host = urlsplit(config.public_base_url).hostname
    return (f"{config.app_name}: your sign-in code is {code}. It expires in "
            f"{_lifetime(int(config.otp_ttl))}. Don't share it.\n\n@{host} #{code}")


# -- requesting ------------------------------------------------------------------------------
def _limits(phone: phones.Phone) -> list[tuple[ratelimits.Limit, str]]:
    return [(ratelimits.SMS_PHONE, phone.e164), (ratelimits.SMS_IP, client_ip()),
            (ratelimits.SMS_COUNTRY, f"+{phone.calling_code}"), (ratelimits.SMS_GLOBAL, "all")]


def _newest(phone: str) -> _Challenge | None:
    row = db.session.execute(
        select(OtpChallenge.id, OtpChallenge.code_hash, OtpChallenge.attempts,
               OtpChallenge.created_at, OtpChallenge.expires_at, OtpChallenge.consumed_at,
               OtpChallenge.invalidated_at)
        .where(OtpChallenge.phone == phone)
        .order_by(OtpChallenge.created_at.desc(), OtpChallenge.id.desc())
        .limit(1)
    ).first()
    return _Challenge(*row) if row is not None else None


def _cooldown_left(newest: _Challenge | None, now: datetime) -> int:
    """Seconds until `newest`'s phone may be sent another code (0: now)."""
    cooldown = settings().otp_resend_cooldown
    if newest is None or cooldown <= 0:
        return 0
    left = (newest.created_at + timedelta(seconds=cooldown) - now).total_seconds()
    return max(0, math.ceil(left))


def request_code(phone: str) -> dict[str, Any]:
    """Text a sign-in code to `phone` (any common notation).

    Returns {"sent", "expires_in", "resend_after", "phone"} ("phone" in E.164). Raises 422
    invalid_phone / phone_country_not_allowed, 429 rate_limited (with Retry-After), 503
    service_unavailable when the provider could not take the text.
    """
    config = settings()
    ttl = config.otp_ttl
    test_numbers = _test_numbers()
    number = phones.sms_phone(phone, test_numbers=test_numbers)
    masked = phones.mask(number.e164)

    if number.e164 in test_numbers:
        log.info("otp request for test number %s: nothing sent", masked)
        return {"sent": True, "expires_in": ttl, "resend_after": 0, "phone": number.e164}

    # These limits are checked now and counted only after a text really went out. That is
    # not atomic, but every send must also win the phone's slot below (OTP_RESEND_COOLDOWN),
    # so the per-phone counts can't be raced; the IP, country and global ones may overshoot
    # by the few requests in flight at once, which does not matter at their sizes.
    limits = _limits(number)
    for limit, key in limits:
        try:
            ratelimits.check(limit, key)
        except Problem:
            log.warning("otp request refused (%s limit) phone=%s ip=%s", limit.name, masked,
                        client_ip())
            raise

    # Last before sending, so a request refused above never holds the phone's slot.
    slot = "sms:" + number.e164
    reserved = config.ratelimit_enabled
    if reserved:
        wait = cooldowns.reserve(slot, config.otp_resend_cooldown)
        if wait:
            log.info("otp request refused (cooldown) phone=%s", masked)
            raise rate_limited(wait, f"A code was just sent. Wait {wait} seconds before "
                                     "asking for another.")

    now = clock.now()
    sender = sms_sender()
    code = None if sender.owns_codes else _new_code()
    # Committed before sending: the code must work the moment the text lands. The previous
    # code of this phone dies now, so only the newest can ever be used.
    db.session.execute(
        update(OtpChallenge)
        .where(OtpChallenge.phone == number.e164, OtpChallenge.consumed_at.is_(None),
               OtpChallenge.invalidated_at.is_(None))
        .values(invalidated_at=now)
        .execution_options(synchronize_session=False)
    )
    challenge = OtpChallenge(
        phone=number.e164, code_hash=code_hash(number.e164, code) if code else "",
        attempts=0, ip=client_ip(), created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    db.session.add(challenge)
    db.session.commit()
    challenge_id = challenge.id

    try:
        if code is None:
            sender.start_verification(number.e164)
        else:
            sender.send(number.e164, message_text(code))
    except BaseException as exc:
        # Nobody can know this code, but drop the row anyway so nothing usable stays.
        db.session.rollback()
        db.session.execute(delete(OtpChallenge).where(OtpChallenge.id == challenge_id))
        db.session.commit()
        if reserved and isinstance(exc, (RecipientRejected, SenderUnavailable)):
            # The provider took nothing: the cooldown doesn't start. After any other error
            # a text may have gone out, so the slot stays taken.
            cooldowns.release(slot, None)
        log.warning("otp not sent id=%s phone=%s: %s", challenge_id, masked,
                    type(exc).__name__)
        if isinstance(exc, RecipientRejected):
            raise Problem(422, "invalid_phone",
                          "Text messages can't be delivered to this number. Check it, or "
                          "use another one.", field="phone") from None
        if isinstance(exc, SenderUnavailable):
            raise unavailable("The text message service is not answering. Try again "
                              "shortly.", PROVIDER_RETRY_AFTER) from None
        raise

    for limit, key in limits:
        ratelimits.count(limit, key)
    log.info("otp sent id=%s phone=%s ip=%s", challenge_id, masked, client_ip())
    return {"sent": True, "expires_in": ttl,
            "resend_after": config.otp_resend_cooldown, "phone": number.e164}


# -- verifying -------------------------------------------------------------------------------
def _invalid_otp() -> Problem:
    # One answer for a wrong, expired, used or replaced code and for a phone with no code.
    return Problem(401, "invalid_otp",
                   "The code is wrong, expired or already used. Check it, or ask for a new "
                   "one.", field="code")


def _attempts_exceeded(challenge: _Challenge) -> Problem:
    retry = max(1, _cooldown_left(challenge, clock.now()))
    return Problem(429, "otp_attempts_exceeded",
                   "Too many wrong codes: this code no longer works. Ask for a new one.",
                   headers={"Retry-After": str(retry)}, field="code")


def _max_attempts() -> int:
    return settings().otp_max_attempts


def _fail(reason: str, phone: str, challenge: _Challenge | None) -> Problem:
    log.info("otp verify failed (%s) id=%s phone=%s", reason,
             challenge.id if challenge else None, phones.mask(phone))
    return _invalid_otp()


def _count_wrong(phone: str, challenge: _Challenge) -> Problem:
    """Record a wrong guess atomically (hashed codes; Twilio Verify reserves its attempt first)."""
    counted = db.session.execute(
        update(OtpChallenge)
        .where(OtpChallenge.id == challenge.id, OtpChallenge.attempts < _max_attempts())
        .values(attempts=OtpChallenge.attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount == 1  # type: ignore[attr-defined]
    return _wrong_try(phone, challenge, counted=counted)


def _wrong_try(phone: str, challenge: _Challenge, *, counted: bool) -> Problem:
    """The answer to a wrong code; the guess that used the last attempt kills the code.

    Each of the OTP_MAX_ATTEMPTS counted wrong guesses answers 401 invalid_otp; any try after
    that (or a concurrent guess that found no attempt left) answers 429 otp_attempts_exceeded.
    """
    attempts = db.session.scalar(
        select(OtpChallenge.attempts).where(OtpChallenge.id == challenge.id)) or 0
    if attempts >= _max_attempts():
        db.session.execute(
            update(OtpChallenge)
            .where(OtpChallenge.id == challenge.id, OtpChallenge.invalidated_at.is_(None),
                   OtpChallenge.consumed_at.is_(None))
            .values(invalidated_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        if not counted:
            return _attempts_exceeded(challenge)
        log.warning("otp locked after %d wrong codes id=%s phone=%s", attempts,
                    challenge.id, phones.mask(phone))
        return _invalid_otp()
    db.session.commit()
    log.info("otp verify failed (wrong code, %d/%d) id=%s phone=%s", attempts,
             _max_attempts(), challenge.id, phones.mask(phone))
    return _invalid_otp()


def _consume(challenge: _Challenge, *, attempts_reserved: bool) -> bool:
    """The one conditional UPDATE that decides who uses a code; True for the winner."""
    now = clock.now()
    # A provider check reserved its attempt first, so it may be holding the last one.
    attempts_ok = (OtpChallenge.attempts <= _max_attempts() if attempts_reserved
                   else OtpChallenge.attempts < _max_attempts())
    won = db.session.execute(
        update(OtpChallenge)
        .where(OtpChallenge.id == challenge.id, OtpChallenge.consumed_at.is_(None),
               OtpChallenge.invalidated_at.is_(None), OtpChallenge.expires_at > now,
               attempts_ok)
        .values(consumed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount == 1  # type: ignore[attr-defined]
    db.session.commit()
    return won


def _check_with_provider(phone: str, code: str, challenge: _Challenge) -> bool:
    """Twilio Verify holds the code: reserve one of our attempts, then ask it."""
    reserved = db.session.execute(
        update(OtpChallenge)
        .where(OtpChallenge.id == challenge.id, OtpChallenge.attempts < _max_attempts(),
               OtpChallenge.consumed_at.is_(None), OtpChallenge.invalidated_at.is_(None))
        .values(attempts=OtpChallenge.attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount == 1  # type: ignore[attr-defined]
    # Committed before the network call: no transaction stays open while Twilio answers.
    db.session.commit()
    if not reserved:
        fresh = _newest(phone)
        if fresh is not None and fresh.id == challenge.id and \
                fresh.attempts >= _max_attempts() and fresh.consumed_at is None:
            raise _attempts_exceeded(challenge)
        raise _fail("used or replaced", phone, challenge)
    try:
        approved = sms_sender().check_verification(phone, code)
    except RecipientRejected:
        approved = False
    except SenderUnavailable:
        # The provider's outage must not use up the person's tries.
        db.session.execute(
            update(OtpChallenge)
            .where(OtpChallenge.id == challenge.id, OtpChallenge.attempts > 0)
            .values(attempts=OtpChallenge.attempts - 1)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        log.warning("otp verify: provider unavailable id=%s phone=%s", challenge.id,
                    phones.mask(phone))
        raise unavailable("The text message service is not answering. Try again shortly.",
                          PROVIDER_RETRY_AFTER) from None
    if approved:
        return True
    raise _wrong_try(phone, challenge, counted=True)


def _user_for(phone: str) -> User:
    """The account that owns `phone`, created on its first SMS sign-in when allowed."""
    if settings().phone_signup_enabled:
        user = accounts.find_or_create(phone=phone)
    else:
        user = accounts.by_phone(phone)
        if user is None:
            # The same answer as a wrong code: whether a number has an account stays secret.
            log.info("otp verified but no account and phone sign-up is off phone=%s",
                     phones.mask(phone))
            raise _invalid_otp()
    if user.disabled:
        log.info("otp verified for disabled user=%s", user.id)
        raise Problem(403, "account_disabled", "This account has been disabled.")
    return user


def _sign_in(phone: str, client: str) -> dict[str, Any]:
    user = _user_for(phone)
    if user.phone_verified_at is None:
        # Committed on its own, before tokens.issue: in one transaction with the session
        # INSERT (whose foreign key share-locks the user row), two first sign-ins of one
        # number at once deadlock on MySQL upgrading that lock for this UPDATE.
        db.session.execute(
            update(User)
            .where(User.id == user.id, User.phone_verified_at.is_(None))
            .values(phone_verified_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    log.info("otp sign-in user=%s phone=%s", user.id, phones.mask(phone))
    return tokens.issue(user, AMR, client=client)


def verify_code(phone: str, code: str, *, client: str = "api") -> dict[str, Any]:
    """Sign in with the code texted to `phone`; returns the token response (amr: sms).

    Raises 401 invalid_otp (wrong, expired, used or replaced code, or no code for this
    phone), 429 otp_attempts_exceeded once the wrong tries used the code up, 403
    account_disabled, 422 invalid_phone when `phone` is not a phone number at all,
    429 rate_limited per client IP, 503 when Twilio Verify can't be asked.
    """
    ratelimits.hit(ratelimits.SMS_VERIFY_IP, client_ip())
    e164 = phones.parse_phone(phone)
    # People paste "123 456" or a trailing newline; anything else than 6 ASCII digits can't
    # be a code and is not worth an attempt.
    code = "".join(code.split()) if isinstance(code, str) else ""
    if len(code) != CODE_LENGTH or not code.isascii() or not code.isdigit():
        raise _fail("malformed code", e164, None)

    test_code = _test_numbers().get(e164)
    if test_code is not None:
        if not hmac.compare_digest(code, test_code):
            raise _fail("wrong code for test number", e164, None)
        return _sign_in(e164, client)

    challenge = _newest(e164)
    # Ends the read transaction, so the UPDATEs below see what other requests committed.
    db.session.commit()
    now = clock.now()
    if challenge is None:
        raise _fail("no code", e164, None)
    if challenge.consumed_at is not None:
        raise _fail("used", e164, challenge)
    if challenge.expires_at <= now:
        raise _fail("expired", e164, challenge)
    if challenge.attempts >= _max_attempts():
        log.info("otp verify refused (locked) id=%s phone=%s", challenge.id,
                 phones.mask(e164))
        raise _attempts_exceeded(challenge)
    if challenge.invalidated_at is not None:
        raise _fail("replaced", e164, challenge)

    if challenge.code_hash:
        if not hmac.compare_digest(code_hash(e164, code), challenge.code_hash):
            raise _count_wrong(e164, challenge)
        won = _consume(challenge, attempts_reserved=False)
    elif sms_sender().owns_codes:
        won = _check_with_provider(e164, code, challenge) and \
            _consume(challenge, attempts_reserved=True)
    else:
        # Sent through Twilio Verify before the backend changed: nobody here can check it.
        raise _count_wrong(e164, challenge)
    if not won:
        raise _fail("lost to a concurrent use", e164, challenge)
    log.info("otp verified id=%s phone=%s", challenge.id, phones.mask(e164))
    return _sign_in(e164, client)
