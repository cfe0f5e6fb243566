"""Handing a web sign-in over to a client app: redirect_to?code=… and POST /token/exchange.

The browser never carries an access or refresh token in a URL. After a web sign-in that began
with an allow-listed `redirect_to`, the app receives a one-time code (60 s, single use) and
exchanges it server-to-server, proving with PKCE (S256) that it is the app that started the
sign-in when it gave a `code_challenge`. A code and its exchange must agree on PKCE: a
verifier for a code minted without a challenge is refused as firmly as a missing verifier for
one minted with it, so a code from a sign-in without PKCE can't pass for one with it.

An app's `state` (OAuth-style, opaque to us) rides along from the start of its sign-in to
`redirect_to?code=…&state=…`, so the app can tell the sign-in it started from one somebody
pushed into it (login CSRF).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from sqlalchemy import select, update

from authserver import clock, codes, pkce, tokens
from authserver.config import settings
from authserver.errors import Problem
from authserver.events import Method
from authserver.extensions import db
from authserver.flows import attempts
from authserver.models import HandoffCode, User
from authserver.tokens import IssuedTokens

log = logging.getLogger("authserver.flows.handoff")


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def create_link_code(challenge: codes.Challenge, amr: list[str]) -> str:
    """A hand-off code standing for an app's mailed link, not yet used: the exchange uses the
    link (and finds or creates its owner), so a mail scanner's press redeems nothing."""
    return _store(None, amr, challenge.redirect_to or "", challenge.code_challenge,
                  challenge_id=challenge.id)


def create_code(user: User, amr: list[str], redirect_to: str,
                code_challenge: str | None = None, *, auth_time: datetime | None = None) -> str:
    """Store a one-time code for `user` and return it (only its hash is kept). `auth_time`:
    when the user signed in, if not just now (a signed-in browser's hand-off); the app's
    session keeps it, so an old browser session mints no "recent" sign-in."""
    return _store(user.id, amr, redirect_to, code_challenge, auth_time=auth_time)


def _store(user_id: str | None, amr: list[str], redirect_to: str, code_challenge: str | None,
           challenge_id: str | None = None, auth_time: datetime | None = None) -> str:
    code = secrets.token_urlsafe(32)
    now = clock.now()
    db.session.add(HandoffCode(
        code_hash=_hash(code),
        user_id=user_id,
        challenge_id=challenge_id,
        amr=" ".join(amr),
        redirect_to=redirect_to,
        code_challenge=code_challenge,
        auth_time=auth_time,
        created_at=now,
        expires_at=now + timedelta(seconds=settings().handoff_code_ttl),
    ))
    # Committed before the code leaves (like every one-time code: stored before it is sent),
    # so the app can redeem it on any connection the moment it has it.
    db.session.commit()
    return code


def redirect_url(redirect_to: str, code: str, state: str | None = None) -> str:
    """redirect_to with ?code=… (and &state=… when the app gave one) added.

    The app's own query is kept byte for byte; check_redirect has refused any redirect_to
    that already names `code` or `state`, so the app reads exactly ours.
    """
    parts = urlsplit(redirect_to)
    ours = [("code", code)] + ([("state", state)] if state is not None else [])
    query = "&".join(filter(None, [parts.query, urlencode(ours, quote_via=quote, safe="")]))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _invalid_grant() -> Problem:
    return Problem(401, "invalid_grant", "The code is unknown, used, expired, or the "
                                         "code_verifier does not match.")


def exchange(code: str, code_verifier: str | None = None) -> IssuedTokens:
    """Trade a hand-off code for the token response (see _exchange); a refusal is told as
    SIGNIN_FAILED with method handoff (flows/attempts.py)."""
    with attempts.signin(Method.HANDOFF) as attempt:
        return _exchange(attempt, code, code_verifier)


def _exchange(attempt: attempts.Attempt, code: str,
              code_verifier: str | None = None) -> IssuedTokens:
    """Trade a hand-off code for the token response; the code dies whatever the outcome.

    PKCE must match the code: its challenge needs the right verifier, and a code minted
    without one takes no verifier (401 invalid_grant, the code burnt, either way)."""
    row = db.session.scalar(select(HandoffCode).where(HandoffCode.code_hash == _hash(code)))
    now = clock.now()
    if row is None:
        raise _invalid_grant()
    attempt.user_id = row.user_id
    # Burn it first: one conditional UPDATE decides the single winner of concurrent exchanges,
    # and a wrong verifier burns it too so a stolen code can't be brute-forced.
    won = db.session.execute(
        update(HandoffCode)
        .where(HandoffCode.id == row.id, HandoffCode.used_at.is_(None),
               HandoffCode.expires_at > now)
        .values(used_at=now)
    ).rowcount == 1  # type: ignore[attr-defined]
    # Committed before the PKCE check: a wrong verifier must burn the code for good, even
    # though this request then answers 401.
    db.session.commit()
    if not won:
        log.info("hand-off code refused: used or expired")
        raise _invalid_grant()
    if not pkce.verifier_matches(row.code_challenge, code_verifier):
        log.info("hand-off code refused: PKCE verifier missing, unexpected or wrong")
        raise _invalid_grant()
    user = _link_owner(row.challenge_id) if row.challenge_id else \
        db.session.get(User, row.user_id)
    if user is None:
        raise _invalid_grant()
    return tokens.issue(user, row.amr.split(), auth_time=row.auth_time, method=Method.HANDOFF)


def _link_owner(challenge_id: str) -> User | None:
    """Use the mailed link a hand-off code stood for (the first good exchange of its codes
    wins; the others find it used) and return its owner."""
    challenge = codes.redeem(challenge_id)
    proof = codes.sign_in_owner(challenge) if challenge is not None else None
    return proof.owner.user if proof is not None else None
