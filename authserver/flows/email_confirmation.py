"""Using a mailed confirmation: the link or 6-digit code of a verification mail
(flows/email_verification.py) or of a change of address (flows/email_change.py).

Both purposes share one page (/auth/verify-email) and one endpoint (POST /email/verify);
their links are signed with different salts, so a token names its purpose, and a code typed
without one is tried against the address's live mails of both.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from authserver import codes, tokens
from authserver.config import settings
from authserver.errors import USE_THE_LINK, ErrorCode, Problem, code_used_up, invalid_link
from authserver.events import Event, EventType, emit
from authserver.extensions import db
from authserver.flows import email_change, email_verification
from authserver.models import User

log = logging.getLogger("authserver.flows.email_confirmation")

AMR = ["email"]
PURPOSES = (email_verification.VERIFY, email_change.CHANGE)


class Confirmed(NamedTuple):
    """A used verification or change link or code: the account, now with its proven address."""

    user: User
    purpose: codes.Purpose
    challenge: codes.Challenge
    #: The sign-in a verification opens under EMAIL_VERIFICATION_REQUIRED, else None.
    issued: tokens.IssuedTokens | None


def _invalid_link() -> Problem:
    return invalid_link("confirmation")


def peek_link(token: str, binding: str | None = None
              ) -> tuple[codes.Challenge, codes.LinkUse] | None:
    """The live link a token names and what it may do here, or None; changes nothing."""
    opened = codes.open_link_of(PURPOSES, token)
    return (opened[1], codes.link_use(opened[1], binding)) if opened else None


def confirm_link(token: str, *, binding: str | None = None, client: str = "api") -> Confirmed:
    """Use a link's token once. Through the API (`binding` None) unless it was asked for in
    a browser while MAGIC_LINK_BINDING is on; on the web, in the browser that asked for it.
    401 invalid_link otherwise."""
    opened = codes.open_link_of(PURPOSES, token)
    if opened is None:
        raise _invalid_link()
    purpose, challenge = opened
    if not codes.usable_by_request(challenge, binding) \
            or not codes.consume(purpose, challenge.id):
        log.info("%s link refused", purpose.name)
        raise _invalid_link()
    emit(Event(EventType.LINK_USED, user_id=challenge.user_id, detail={"purpose": purpose.name}))
    return _finish(purpose, challenge, client)


def confirm_code(email: str, code: str, *, token: str | None = None,
                 client: str = "api") -> Confirmed:
    """Use the 6-digit code of a mail to `email` (or of the mail `token` came in) once: 401
    invalid_link when wrong, expired or used; 429 once wrong tries used it up."""
    opened = codes.open_link_of(PURPOSES, token) if token is not None else None
    if token is not None and opened is None:
        raise _invalid_link()
    exhausted = None
    for purpose in (opened[0],) if opened else PURPOSES:
        # The mail's own row under its link (read once, above), else the address's codes.
        target = (opened[1].subject, opened[1].id) if opened \
            else codes.mailed_code_target(purpose, email, None)
        if target is None:
            raise _invalid_link()
        verdict = codes.verify(purpose, target[0], code, only=target[1])
        if verdict.outcome is codes.Outcome.MATCHED and verdict.challenge is not None:
            return _finish(purpose, verdict.challenge, client)
        if verdict.outcome is codes.Outcome.EXHAUSTED:
            exhausted = purpose
    if exhausted is not None:
        raise code_used_up(codes.seconds_until_resend(exhausted, None), USE_THE_LINK)
    log.info("e-mail confirmation code refused")
    raise _invalid_link()


def _finish(purpose: codes.Purpose, challenge: codes.Challenge, client: str) -> Confirmed:
    user = db.session.get(User, challenge.user_id) if challenge.user_id else None
    if user is None:  # a "someone tried to sign up" row: it proves nothing
        log.info("%s refused: no account link=%s", purpose.name, challenge.id)
        raise _invalid_link()
    if user.disabled:
        raise Problem(403, ErrorCode.ACCOUNT_DISABLED, "This account has been disabled.")
    if purpose is email_change.CHANGE:
        return Confirmed(email_change.change(user, challenge), purpose, challenge, None)
    if not email_verification.verify(user, challenge):
        raise _invalid_link()  # the address changed since the mail was sent
    issued = tokens.issue(user, AMR, client=client) \
        if settings().email_verification_required else None
    return Confirmed(user, purpose, challenge, issued)
