"""Password reset: a mailed link, or the 6-digit code next to it, sets a new password.

One mail is one code row (codes.py), as for e-mail sign-in: the link's token signs the row
id, the code is the row's HMAC, and using either consumes the row. Where a link may be used
is the engine's rule (codes.LinkUse): in the browser that asked, else with the mail's code.

Every address gets the same answer, the same work and the same failure modes: an address
with an account that can be reset gets the reset mail; an unknown or disabled one gets a
mail saying no password can be reset for it (its row's code, never shown, answers tries
like a real one and can never reset anything). A passwordless account gets a real reset
mail: proving the address is all a reset asks, so it may set its first password.

The new password passes the policy *before* the code or link is used (a refused password
costs nothing). Using it, proving the address, the new hash, revoking every other session
and opening the new one are one transaction; the "your password was changed" notice is sent
only after it committed, and a notice that fails to go out is logged, never undoes the reset.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update

from authserver import accounts, codes, passwords, ratelimits, sessions, tokens
from authserver.config import settings
from authserver.errors import USE_THE_LINK, ErrorCode, Problem, code_used_up, invalid_link
from authserver.events import Event, EventType, Method, emit
from authserver.extensions import client_ip, db
from authserver.flows import attempts, channels
from authserver.identifiers import normalize_email
from authserver.models import User
from authserver.redirects import check_redirect

log = logging.getLogger("authserver.flows.password_reset")

AMR = ["email"]
PURPOSE = codes.Purpose(
    "password_reset", channel=codes.EMAIL, ttl="password_reset_ttl",
    max_attempts="magic_link_max_attempts", cooldown="magic_link_resend_cooldown",
    cooldown_detail="A password reset mail was just sent. Check your inbox, or wait up to "
                    "{wait} seconds before asking for another.",
    key_label="authserver.password-reset.code", link_salt="authserver.password-reset",
    link_path="/auth/reset")


def _invalid_link() -> Problem:
    return invalid_link("reset")


def request_reset(email: str, redirect_to: str | None = None, *,
                  binding: str | None = None) -> dict[str, Any]:
    """Mail a reset link and code to `email`; the same answer for every address.
    Raises 422 (invalid_email, invalid_redirect), 429 rate_limited, 503 service_unavailable."""
    config = settings()
    email = normalize_email(email)
    redirect_to = check_redirect(redirect_to)
    user = accounts.by_email(email)
    resettable = user is not None and not user.disabled
    channels.mail_code(
        PURPOSE, email, "password_reset" if resettable else "reset_no_account",
        f"Reset your {config.app_name} password",
        limits=[(ratelimits.RESET_IP, client_ip()), (ratelimits.RESET_ADDRESS, email)],
        redirect_to=redirect_to, binding=binding,
        user_id=user.id if resettable and user is not None else None)
    return {"sent": True}


def peek_link(token: str, binding: str | None = None
              ) -> tuple[codes.Challenge, codes.LinkUse] | None:
    """The live reset link a token names and what it may do here, or None; changes nothing."""
    return codes.look_at_link(PURPOSE, token, binding)


def reset_with_link(token: str, password: str, *, binding: str | None = None,
                    client: str = "api") -> tuple[tokens.IssuedTokens, codes.Challenge]:
    """Set a new password with a link's token. Through the API (`binding` None) when
    MAGIC_LINK_BINDING is off or the link was asked for through the API; on the web, in the
    browser that asked for it. 401 invalid_link otherwise."""
    with attempts.signin(Method.PASSWORD_RESET) as attempt:
        challenge = codes.open_link(PURPOSE, token)
        if challenge is None or not codes.usable_by_request(challenge, binding):
            log.info("reset link refused (dead, or another browser)")
            raise _invalid_link()
        attempt.user_id = challenge.user_id
        passwords.require_policy(password, challenge.subject)
        if not codes.consume(PURPOSE, challenge.id):
            raise _invalid_link()
        emit(Event(EventType.LINK_USED, user_id=challenge.user_id,
                   detail={"purpose": PURPOSE.name}))
        return _finish(challenge, password, client), challenge


def reset_with_code(email: str, code: str, password: str, *, token: str | None = None,
                    client: str = "api") -> tuple[tokens.IssuedTokens, codes.Challenge]:
    """Set a new password with the mail's 6-digit code (of the mail `token` came in, when
    given): 401 invalid_link when wrong, expired or used; 429 once wrong tries used it up."""
    with attempts.signin(Method.PASSWORD_RESET) as attempt:
        target = codes.mailed_code_target(PURPOSE, email, token)
        if target is None:
            raise _invalid_link()
        passwords.require_policy(password, target[0])
        verdict = codes.verify(PURPOSE, target[0], code, only=target[1])
        attempt.user_id = verdict.challenge.user_id if verdict.challenge else None
        if verdict.outcome is codes.Outcome.MATCHED and verdict.challenge is not None:
            return _finish(verdict.challenge, password, client), verdict.challenge
        if verdict.outcome is codes.Outcome.EXHAUSTED:
            raise code_used_up(codes.seconds_until_resend(PURPOSE, None), USE_THE_LINK)
        log.info("reset code refused")
        raise _invalid_link()


def _finish(challenge: codes.Challenge, password: str, client: str) -> tokens.IssuedTokens:
    """The used row's account gets the new password and one new session; then the notice."""
    user = accounts.by_email(challenge.subject)
    # Only the account the mail was sent for (a row for an unknown or disabled address has
    # no user_id and resets nothing).
    if user is None or user.disabled or challenge.user_id != user.id:
        log.info("reset refused: no resettable account link=%s", challenge.id)
        raise _invalid_link()
    # The reset proves the address. A first proof evicts a squatter's password and sessions
    # (accounts.verified_owner); the new password is written after it, so it stays.
    accounts.verified_owner(email=challenge.subject, create=False)
    revoked = sessions.revoke_all(user.id, reason="password_reset", at_once=False)
    db.session.execute(update(User).where(User.id == user.id)
                       .values(password_hash=passwords.hash_password(password))
                       .execution_options(synchronize_session=False))
    db.session.expire(user)
    codes.supersede(PURPOSE, challenge.subject, keep=challenge.id)
    emit(Event(EventType.PASSWORD_CHANGED, user_id=user.id, detail={"how": "reset"}))
    try:
        issued = tokens.issue(user, AMR, client=client, method=Method.PASSWORD_RESET)
    except Problem as problem:
        if problem.code != ErrorCode.MFA_REQUIRED:
            raise
        # The reset stands (committed with the mfa_token); the sign-in waits for the second
        # factor, and the notice goes out all the same.
        log.info("password reset link=%s user=%s revoked=%d, second factor next",
                 challenge.id, user.id, revoked)
        channels.password_changed(challenge.subject)
        raise
    # Committed here, not at the request's edge: the reset must stand before the notice is
    # sent, and a notice that fails must not undo it.
    db.session.commit()
    log.info("password reset link=%s user=%s revoked=%d", challenge.id, user.id, revoked)
    channels.password_changed(challenge.subject)
    return issued
