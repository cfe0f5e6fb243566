"""Sign in with a link, or the 6-digit code next to it, sent by e-mail (`sign_in_email`).

One mail is one code row (codes.py): the link's token signs the row id, the code is the row's
HMAC; using either consumes the row, and a sign-in kills every other mail to the address.
Guessing codes can use up a mail's code but never its link. Where a link may sign in is the
engine's rule (codes.LinkUse): in the browser that asked, through the app's PKCE exchange,
or elsewhere with the mail's code. An address without an account, when sign-up is off, gets
a mail saying so: the answer, its failures and its code tries are those of a real account.
"""

from __future__ import annotations

import logging
from typing import Any

from authserver import accounts, codes, pkce, ratelimits, tokens
from authserver.config import settings
from authserver.errors import USE_THE_LINK, code_used_up, invalid_link
from authserver.events import Event, EventType, Method, emit
from authserver.extensions import client_ip
from authserver.flows import attempts, channels, handoff
from authserver.identifiers import normalize_email
from authserver.redirects import check_redirect

log = logging.getLogger("authserver.flows.magic_link")

AMR = ["email"]
PURPOSE = codes.Purpose(
    "sign_in_email", channel=codes.EMAIL, ttl="magic_link_ttl",
    max_attempts="magic_link_max_attempts", cooldown="magic_link_resend_cooldown",
    cooldown_detail="A sign-in mail was just sent. Check your inbox, or wait up to {wait} "
                    "seconds before asking for another.",
    key_label="authserver.magic-link.code", link_salt="authserver.magic-link",
    link_path="/auth/magic", signup_setting="email_signup_enabled")


def request_link(email: str, redirect_to: str | None = None, code_challenge: str | None = None,
                 code_challenge_method: str | None = None, *, state: str | None = None,
                 binding: str | None = None) -> dict[str, Any]:
    """Mail a sign-in link and code to `email` (`binding`: the asking browser's cookie).
    Raises 422 (invalid_email, invalid_redirect, invalid_request for a bad PKCE challenge),
    429 rate_limited, 503 service_unavailable."""
    config = settings()
    email = normalize_email(email)
    redirect_to = check_redirect(redirect_to)
    code_challenge = pkce.check_challenge(code_challenge, code_challenge_method)
    state = pkce.check_state(state)
    # Without an account nothing in the mail signs in: it says so, and the row's code (never
    # shown) answers tries exactly like a real one.
    nobody = not config.email_signup_enabled and accounts.by_email(email) is None
    channels.mail_code(
        PURPOSE, email, "no_account" if nobody else "magic_link", f"Sign in to {config.app_name}",
        limits=[(ratelimits.MAIL_IP, client_ip()), (ratelimits.MAIL_ADDRESS, email)],
        redirect_to=redirect_to, code_challenge=code_challenge, state=state, binding=binding)
    return {"sent": True, "expires_in": config.magic_link_ttl}


def _finish(challenge: codes.Challenge) -> codes.Proof:
    proof = codes.sign_in_owner(challenge)
    if proof is None:
        raise invalid_link("sign-in")
    log.info("e-mail sign-in link=%s user=%s", challenge.id, proof.owner.user.id)
    return proof


def peek_link(token: str, binding: str | None = None
              ) -> tuple[codes.Challenge, codes.LinkUse] | None:
    """The live link a token names and what it may do here, or None; changes nothing."""
    return codes.look_at_link(PURPOSE, token, binding)


def _link_used(proof: codes.Proof) -> codes.Proof:
    emit(Event(EventType.LINK_USED, user_id=proof.owner.user.id,
               detail={"purpose": PURPOSE.name}))
    return proof


def consume_link(token: str, binding: str | None = None) -> codes.Proof:
    """Use a link's token once, in the browser that asked for it (401 invalid_link else)."""
    with attempts.signin(Method.EMAIL_LINK) as attempt:
        challenge = codes.open_link(PURPOSE, token)
        if (challenge is None or codes.link_use(challenge, binding) is not codes.LinkUse.HERE
                or not codes.consume(PURPOSE, challenge.id)):
            log.info("magic link refused")
            raise invalid_link("sign-in")
        proof = _link_used(_finish(challenge))
        attempt.user_id = proof.owner.user.id
        return proof


def hand_off(token: str) -> str:
    """An app's link pressed in a browser: the app's redirect_to with a hand-off code that
    uses the link only when the app exchanges it with its PKCE verifier."""
    challenge = codes.open_link(PURPOSE, token)
    if challenge is None or codes.link_use(challenge, None) is not codes.LinkUse.HANDOFF \
            or not challenge.redirect_to:
        raise invalid_link("sign-in")
    code = handoff.create_link_code(challenge, AMR)
    return handoff.redirect_url(challenge.redirect_to, code, challenge.state)


def consume_code(email: str, code: str, *, token: str | None = None) -> codes.Proof:
    """Use the 6-digit code of a mail to `email` (or of the mail `token` came in) once: 401
    invalid_link when wrong, expired or used; 429 once wrong tries used it up."""
    with attempts.signin(Method.EMAIL_CODE, account_of=lambda: _account_of(email, token)):
        return _consume_code(email, code, token)


def _account_of(email: str, token: str | None) -> str | None:
    target = codes.mailed_code_target(PURPOSE, email, token)
    found = accounts.by_email(target[0]) if target else None
    return found.id if found is not None else None


def _consume_code(email: str, code: str, token: str | None) -> codes.Proof:
    target = codes.mailed_code_target(PURPOSE, email, token)
    if target is None:
        raise invalid_link("sign-in")
    verdict = codes.verify(PURPOSE, target[0], code, only=target[1])
    if verdict.outcome is codes.Outcome.MATCHED and verdict.challenge is not None:
        return _finish(verdict.challenge)
    if verdict.outcome is codes.Outcome.EXHAUSTED:
        raise code_used_up(codes.seconds_until_resend(PURPOSE, None), USE_THE_LINK)
    log.info("magic code refused")
    raise invalid_link("sign-in")


def verify_link(token: str, code_verifier: str | None = None,
                client: str = "api") -> tokens.IssuedTokens:
    """Sign in with a link's token through the API: an app's link needs its PKCE verifier;
    a link asked for in a browser is used only there."""
    with attempts.signin(Method.EMAIL_LINK):
        challenge = codes.open_link(PURPOSE, token)
        if challenge is None or (settings().magic_link_binding and (
                challenge.binding_hash or not pkce.verifier_matches(
                    challenge.code_challenge, code_verifier))) \
                or not codes.consume(PURPOSE, challenge.id):
            raise invalid_link("sign-in")
        return tokens.issue(_link_used(_finish(challenge)).owner.user, AMR, client=client,
                            method=Method.EMAIL_LINK)


def verify_code(email: str, code: str, client: str = "api") -> tokens.IssuedTokens:
    """Sign in with the e-mailed 6-digit code (amr: email)."""
    return tokens.issue(consume_code(email, code).owner.user, AMR, client=client,
                        method=Method.EMAIL_CODE)
