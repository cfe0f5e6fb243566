"""Add or change a signed-in account's phone: the `add_phone` purpose on codes.py.

The code is texted under the SMS sign-in's rules: a mobile number in an allowed country
(phones.py), the same per-phone, per-IP, per-country and global limits, and the phone's one
resend cooldown (the slot is the phone's, whatever the code is for). The row remembers who
asked (`user_id`), and only that account can use it.

No enumeration: a number another account holds is texted like any other. Only the person who
then types the code (and so holds the phone) learns it is taken: 409 phone_taken. The switch
is one UPDATE of the account row; the unique index on `users.phone` decides a race for one
number (IntegrityError, or a MySQL deadlock victim: 409 as well).

SMS_TEST_NUMBERS take their fixed code here too and are never texted.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError, IntegrityError

from authserver import accounts, clock, codes, phones, ratelimits
from authserver.config import settings
from authserver.errors import (
    ErrorCode,
    Problem,
    code_used_up,
    db_error_summary,
    invalid_otp,
    invalid_token,
    is_deadlock,
)
from authserver.events import Event, EventType, emit
from authserver.extensions import client_ip, db
from authserver.flows import channels
from authserver.models import User
from authserver.services import services

log = logging.getLogger("authserver.flows.phone_change")

PURPOSE = codes.Purpose(
    "add_phone", channel=codes.SMS, ttl="otp_ttl", max_attempts="otp_max_attempts",
    cooldown="otp_resend_cooldown",
    cooldown_detail="A code was just sent. Wait {wait} seconds before asking for another.",
    supersede_on_send=True, lock_kills=True, key_label="authserver.add-phone.code")


def message_text(code: str) -> str:
    config = settings()
    host = urlsplit(config.public_base_url).hostname
    return (f"{config.app_name}: your code to add this phone to your account is {code}. "
            f"It expires in {channels.lifetime(config.otp_ttl)}. Don't share it.\n\n"
            f"@{host} #{code}")


def request_code(user: User, phone: str) -> dict[str, Any]:
    """Text `phone` a code that adds it to `user`'s account; the answer of an SMS sign-in
    request ({"sent", "expires_in", "resend_after", "phone"}), whoever holds the number.
    Raises 422 invalid_phone / phone_country_not_allowed, 429, 503."""
    config, test_numbers = settings(), services().test_numbers
    number = phones.sms_phone(phone, test_numbers=test_numbers)
    if number.e164 in test_numbers:
        log.info("add-phone request for test number %s: nothing sent",
                 phones.mask(number.e164))
        return {"sent": True, "expires_in": config.otp_ttl, "resend_after": 0,
                "phone": number.e164}
    channels.text_code(PURPOSE, number, message_text, user_id=user.id)
    log.info("add-phone code sent user=%s phone=%s", user.id, phones.mask(number.e164))
    return {"sent": True, "expires_in": config.otp_ttl,
            "resend_after": config.otp_resend_cooldown, "phone": number.e164}


def _taken() -> Problem:
    return Problem(409, ErrorCode.PHONE_TAKEN, "This phone number belongs to another "
                   "account. Sign in with it there, or use another number.", field="phone")


def _check_code(user: User, e164: str, code: str) -> None:
    """The texted (or test) code for `e164`, asked for by `user`; raises when it is not."""
    test_code = services().test_numbers.get(e164)
    if test_code is not None:
        channels.check_test_code(e164, code, test_code)
        return
    verdict = codes.verify(PURPOSE, e164, code, provider_check=channels.provider_check())
    if verdict.outcome is codes.Outcome.EXHAUSTED:
        raise code_used_up(codes.seconds_until_resend(PURPOSE, verdict.challenge),
                           "Ask for a new one.", field="code")
    if verdict.outcome is not codes.Outcome.MATCHED or verdict.challenge is None:
        raise invalid_otp()
    if verdict.challenge.user_id != user.id:
        # Another account's code for this number (used up now: it was typed right, so
        # whoever typed it holds the phone; the other account asks again).
        log.info("add-phone code of another account used user=%s", user.id)
        raise invalid_otp()


def verify_code(user: User, phone: str, code: str) -> User:
    """Set `user`'s phone to `phone`, proven by the texted code (phone_verified true).

    Raises 401 invalid_otp, 429 otp_attempts_exceeded / rate_limited, 409 phone_taken,
    422 invalid_phone, 503 when Twilio Verify can't be asked.
    """
    ratelimits.hit(ratelimits.SMS_VERIFY_IP, client_ip())
    e164 = phones.parse_phone(phone)
    _check_code(user, e164, code)
    holder = accounts.by_phone(e164)
    if holder is not None and holder.id != user.id:
        log.info("add-phone refused: number held by another account user=%s", user.id)
        raise _taken()
    try:
        with db.session.begin_nested():
            changed = db.session.execute(
                update(User).where(User.id == user.id, User.disabled.is_(False))
                .values(phone=e164, phone_verified_at=clock.now(), updated_at=clock.now())
                .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    except IntegrityError:
        log.info("add-phone lost the number to another account user=%s", user.id)
        raise _taken() from None
    except DBAPIError as exc:
        if not is_deadlock(exc):
            raise
        # MySQL rolled the whole transaction back: nothing was used or changed.
        db.session.rollback()
        log.info("add-phone deadlock victim user=%s: %s", user.id, db_error_summary(exc))
        raise _taken() from None
    if changed != 1:
        raise invalid_token("The user of this access token no longer exists.")
    codes.supersede(PURPOSE, e164)
    emit(Event(EventType.PHONE_CHANGED, user_id=user.id,
               detail={"first": user.phone is None}))
    db.session.expire(user)
    log.info("phone set user=%s phone=%s", user.id, phones.mask(e164))
    return user
