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

from flask import render_template
from sqlalchemy import update

from authserver import accounts, codes, passwords, ratelimits, sessions, tokens
from authserver.config import settings
from authserver.errors import ErrorCode, Problem
from authserver.events import Event, EventType, Method, emit
from authserver.extensions import client_ip, db
from authserver.flows import attempts
from authserver.identifiers import normalize_email
from authserver.models import User
from authserver.redirects import check_redirect
from authserver.services import services
from authserver.transactions import irreversible

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
    return Problem(401, "invalid_link", "This reset link or code is invalid, expired or "
                                        "already used. Ask for a new one.")


def request_reset(email: str, redirect_to: str | None = None, *,
                  binding: str | None = None) -> dict[str, Any]:
    """Mail a reset link and code to `email`; the same answer for every address.
    Raises 422 (invalid_email, invalid_redirect), 429 rate_limited, 503 service_unavailable."""
    config = settings()
    email = normalize_email(email)
    redirect_to = check_redirect(redirect_to)
    user = accounts.by_email(email)
    resettable = user is not None and not user.disabled

    def deliver(challenge_id: str, code: str | None) -> None:
        context = {"app_name": config.app_name, "link": codes.link_url(PURPOSE, challenge_id),
                   "code": code, "email": email,
                   "expires_minutes": max(1, config.password_reset_ttl // 60)}
        template = "mail/password_reset" if resettable else "mail/reset_no_account"
        services().email.send(email, f"Reset your {config.app_name} password",
                              render_template(f"{template}.txt", **context),
                              render_template(f"{template}.html", **context))

    codes.send(PURPOSE, email, deliver,
               limits=[(ratelimits.RESET_IP, client_ip()), (ratelimits.RESET_ADDRESS, email)],
               redirect_to=redirect_to, binding=binding,
               user_id=user.id if resettable and user is not None else None)
    return {"sent": True}


def _check_policy(password: str, email: str) -> None:
    reason = passwords.check_policy(password, email)  # 422 breached_password raised inside
    if reason is not None:
        raise Problem(422, "weak_password", reason, field="password")


def _subject_of(email: str) -> str:
    try:
        return normalize_email(email)
    except Problem:
        raise _invalid_link() from None


def peek_link(token: str, binding: str | None = None
              ) -> tuple[codes.Challenge, codes.LinkUse] | None:
    """The live reset link a token names and what it may do here, or None; changes nothing."""
    challenge = codes.open_link(PURPOSE, token)
    return (challenge, codes.link_use(challenge, binding)) if challenge else None


def reset_with_link(token: str, password: str, *, binding: str | None = None,
                    client: str = "api") -> tuple[tokens.IssuedTokens, codes.Challenge]:
    """Set a new password with a link's token. Through the API (`binding` None) when
    MAGIC_LINK_BINDING is off or the link was asked for through the API; on the web, in the
    browser that asked for it. 401 invalid_link otherwise."""
    with attempts.signin(Method.PASSWORD_RESET) as attempt:
        return _reset_with_link(attempt, token, password, binding, client)


def _reset_with_link(attempt: attempts.Attempt, token: str, password: str,
                     binding: str | None, client: str
                     ) -> tuple[tokens.IssuedTokens, codes.Challenge]:
    challenge = codes.open_link(PURPOSE, token)
    if challenge is None:
        raise _invalid_link()
    usable = (codes.link_use(challenge, binding) is codes.LinkUse.HERE if binding is not None
              else not (settings().magic_link_binding and challenge.binding_hash))
    if not usable:
        log.info("reset link refused (another browser)")
        raise _invalid_link()
    attempt.user_id = challenge.user_id
    _check_policy(password, challenge.subject)
    if not codes.consume(PURPOSE, challenge.id):
        raise _invalid_link()
    emit(Event(EventType.LINK_USED, user_id=challenge.user_id, detail={"purpose": PURPOSE.name}))
    return _finish(challenge, password, client), challenge


def reset_with_code(email: str, code: str, password: str, *, token: str | None = None,
                    client: str = "api") -> tuple[tokens.IssuedTokens, codes.Challenge]:
    """Set a new password with the mail's 6-digit code (of the mail `token` came in, when
    given): 401 invalid_link when wrong, expired or used; 429 once wrong tries used it up."""
    with attempts.signin(Method.PASSWORD_RESET) as attempt:
        return _reset_with_code(attempt, email, code, password, token, client)


def _reset_with_code(attempt: attempts.Attempt, email: str, code: str, password: str,
                     token: str | None, client: str
                     ) -> tuple[tokens.IssuedTokens, codes.Challenge]:
    challenge = codes.open_link(PURPOSE, token) if token is not None else None
    if token is not None and challenge is None:
        raise _invalid_link()
    subject = challenge.subject if challenge else _subject_of(email)
    _check_policy(password, subject)
    verdict = codes.verify(PURPOSE, subject, code, only=challenge.id if challenge else None)
    attempt.user_id = verdict.challenge.user_id if verdict.challenge else None
    if verdict.outcome is codes.Outcome.MATCHED and verdict.challenge is not None:
        return _finish(verdict.challenge, password, client), verdict.challenge
    if verdict.outcome is codes.Outcome.EXHAUSTED:
        raise Problem(429, "otp_attempts_exceeded", "Too many wrong codes: this code no longer "
                      "works. Use the link in the e-mail or ask for a new one.",
                      headers={"Retry-After": str(codes.seconds_until_resend(PURPOSE, None))})
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
        _notify(challenge.subject)
        raise
    # Committed here, not at the request's edge: the reset must stand before the notice is
    # sent, and a notice that fails must not undo it.
    db.session.commit()
    log.info("password reset link=%s user=%s revoked=%d", challenge.id, user.id, revoked)
    _notify(challenge.subject)
    return issued


def _notify(email: str) -> None:
    config = settings()
    context = {"app_name": config.app_name, "email": email,
               "reset_url": f"{config.public_base_url}/login/forgot"}
    irreversible()  # a conflict after this must not run the change (and this mail) again
    try:
        services().email.send(email, f"Your {config.app_name} password was changed",
                              render_template("mail/password_changed.txt", **context),
                              render_template("mail/password_changed.html", **context))
    except Exception as exc:  # the reset stands; the person still signed in with it
        log.warning("password changed notice not sent: %s", type(exc).__name__)
