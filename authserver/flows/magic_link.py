"""Sign in with a link, or the 6-digit code next to it, sent by e-mail (`sign_in_email`).

One mail is one code row (codes.py): the link's token signs the row id, the code is the row's
HMAC; using either consumes the row, and a sign-in kills every other mail to the address.
Guessing codes can use up a mail's code but never its link. A request answers the same
whether or not the address has an account (sign-up off: nothing sent, in a send's time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from flask import render_template

from authserver import accounts, codes, ratelimits, tokens
from authserver.config import settings
from authserver.errors import Problem
from authserver.extensions import client_ip
from authserver.flows import handoff
from authserver.identifiers import normalize_email
from authserver.models import User
from authserver.redirects import check_redirect
from authserver.services import services

log = logging.getLogger("authserver.flows.magic_link")

AMR = ["email"]
PURPOSE = codes.Purpose(
    "sign_in_email", channel=codes.EMAIL, ttl="magic_link_ttl",
    max_attempts="magic_link_max_attempts", cooldown="magic_link_resend_cooldown",
    cooldown_detail="A sign-in mail was just sent. Check your inbox, or wait up to {wait} "
                    "seconds before asking for another.",
    key_label="authserver.magic-link.code", link_salt="authserver.magic-link",
    link_path="/auth/magic")


class LinkPreview(NamedTuple):
    """What the confirmation page may show about a live link, without consuming it."""

    email: str
    expires_at: datetime


@dataclass(frozen=True)
class EmailSignIn:
    """A consumed mail: who proved they own the address, and where the sign-in should go."""

    user: User
    amr: list[str]
    redirect_to: str | None
    code_challenge: str | None


def _invalid_link() -> Problem:
    return Problem(401, "invalid_link", "This sign-in link or code is invalid, expired or "
                                        "already used. Ask for a new one.")


def request_link(email: str, redirect_to: str | None = None,
                 code_challenge: str | None = None,
                 code_challenge_method: str | None = None) -> dict[str, Any]:
    """Mail a sign-in link and code to `email`. Raises 422 (invalid_email, invalid_redirect,
    invalid_request for a bad PKCE challenge), 429 rate_limited, 503 service_unavailable."""
    config = settings()
    email = normalize_email(email)
    redirect_to = check_redirect(redirect_to)
    code_challenge = handoff.check_challenge(code_challenge, code_challenge_method)

    def deliver(link_id: str, code: str | None) -> None:
        context = {"app_name": config.app_name, "link": codes.link_url(PURPOSE, link_id),
                   "code": code, "email": email,
                   "expires_minutes": max(1, config.magic_link_ttl // 60)}
        services().email.send(email, f"Sign in to {config.app_name}",
                              render_template("mail/magic_link.txt", **context),
                              render_template("mail/magic_link.html", **context))

    # Nobody to sign in or create: nothing is sent, but limits, slot and time are a send's.
    nobody = not config.email_signup_enabled and accounts.by_email(email) is None
    codes.send(PURPOSE, email, None if nobody else deliver,
               limits=[(ratelimits.MAIL_IP, client_ip()), (ratelimits.MAIL_ADDRESS, email)],
               redirect_to=redirect_to, code_challenge=code_challenge)
    return {"sent": True, "expires_in": config.magic_link_ttl}


def _finish(challenge: codes.Challenge) -> EmailSignIn:
    user = accounts.verified_owner(email=challenge.subject,
                                   create=settings().email_signup_enabled)
    if user is None:
        raise _invalid_link()
    codes.supersede(PURPOSE, challenge.subject, keep=challenge.id)
    log.info("e-mail sign-in link=%s user=%s", challenge.id, user.id)
    return EmailSignIn(user=user, amr=list(AMR), redirect_to=challenge.redirect_to,
                       code_challenge=challenge.code_challenge)


def _live_link(token: str) -> codes.Challenge | None:
    link_id = codes.link_challenge_id(PURPOSE, token)
    return codes.peek(PURPOSE, link_id) if link_id else None


def peek_link(token: str) -> LinkPreview | None:
    """The live link a token names, or None; consumes and changes nothing (GET-safe)."""
    challenge = _live_link(token)
    return LinkPreview(challenge.subject, challenge.expires_at) if challenge else None


def consume_link(token: str) -> EmailSignIn:
    """Use a link's token once (401 invalid_link otherwise); the web POST calls this."""
    challenge = _live_link(token)
    if challenge is None or not codes.consume(PURPOSE, challenge.id):
        log.info("magic link refused")
        raise _invalid_link()
    return _finish(challenge)


def consume_code(email: str, code: str) -> EmailSignIn:
    """Use the 6-digit code of a mail to `email` once: 401 invalid_link when wrong, expired
    or used; 429 otp_attempts_exceeded once wrong tries used it up (its link still works)."""
    try:
        email = normalize_email(email)
    except Problem:
        raise _invalid_link() from None
    verdict = codes.verify(PURPOSE, email, code)
    if verdict.outcome is codes.Outcome.MATCHED and verdict.challenge is not None:
        return _finish(verdict.challenge)
    if verdict.outcome is codes.Outcome.EXHAUSTED:
        retry = codes.seconds_until_resend(PURPOSE, None)
        raise Problem(429, "otp_attempts_exceeded", "Too many wrong codes: this code no longer "
                      "works. Use the link in the e-mail or ask for a new one.",
                      headers={"Retry-After": str(retry)})
    log.info("magic code refused")
    raise _invalid_link()


def verify_link(token: str, client: str = "api") -> tokens.IssuedTokens:
    """Sign in with a link's token (amr: email)."""
    return tokens.issue(consume_link(token).user, AMR, client=client)


def verify_code(email: str, code: str, client: str = "api") -> tokens.IssuedTokens:
    """Sign in with the e-mailed 6-digit code (amr: email)."""
    return tokens.issue(consume_code(email, code).user, AMR, client=client)
