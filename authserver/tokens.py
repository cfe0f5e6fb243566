"""The convergence point: issue, verify, refresh and revoke. Nothing else touches tokens.

Every sign-in flow ends in `issue(user, amr)`: it opens a session row, signs a short-lived
JWT access token and mints an opaque refresh token (stored only as a SHA-256 hash). Every
protected endpoint goes through `verify` (or the `require_auth` / `require_role` decorators).

Verification is on the hot path of every service that uses us, so it costs one signature
check against an in-memory key and, when revocation must be checked, one primary-key lookup
of the session row. Disabling a user revokes their sessions, so the session row alone
answers "is this token still good?".
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import jwt
from flask import g, has_request_context, request
from sqlalchemy import select, update

from authserver import clock
from authserver.config import settings
from authserver.errors import Problem, invalid_token
from authserver.extensions import db
from authserver.keys import keyring
from authserver.models import RefreshToken, Session, User

log = logging.getLogger("authserver.tokens")

ALLOWED_ALGORITHMS = ("ES256", "EdDSA", "RS256", "HS256")
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti", "sid"]
LEEWAY = 5  # seconds of clock skew tolerated between us and the services verifying

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Claims:
    """A verified access token."""

    user_id: str
    session_id: str
    roles: list[str]
    amr: list[str]
    raw: dict[str, Any]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _client_meta() -> tuple[str | None, str | None]:
    if not has_request_context():
        return None, None
    agent = (request.user_agent.string or "")[:255] or None
    return request.remote_addr, agent


# -- issuing -------------------------------------------------------------------------------
def issue(user: User, amr: list[str], *, client: str = "api") -> dict[str, Any]:
    """Open a session for a user who just proved who they are; return the token response."""
    if user.disabled:
        raise Problem(403, "account_disabled", "This account has been disabled.")
    now = clock.now()
    ip, agent = _client_meta()
    session = Session(
        user_id=user.id,
        amr=" ".join(amr),
        client=client,
        ip=ip,
        user_agent=agent,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(seconds=settings().refresh_token_ttl),
    )
    db.session.add(session)
    db.session.flush()
    refresh_token = _mint_refresh(session, parent_id=None)
    db.session.commit()
    log.info("session opened user=%s sid=%s amr=%s client=%s", user.id, session.id,
             session.amr, client)
    return _token_response(user, session, refresh_token)


def _successor(refresh_token: str) -> str:
    """The token that replaces `refresh_token`: derived, not random, so that every request
    that presents the same token inside the grace window gets the very same successor.

    A thief replaying a just-rotated token therefore shares the one chain with the owner, and
    the next rotation by either of them is a reuse the other one trips over.
    """
    key = settings().secret_key.encode()
    digest = hmac.new(key, b"authserver.refresh-successor:" + refresh_token.encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _mint_refresh(session: Session, parent_id: int | None, token: str | None = None) -> str:
    token = token or secrets.token_urlsafe(32)  # 256 bits
    db.session.add(RefreshToken(
        session_id=session.id,
        token_hash=_hash(token),
        parent_id=parent_id,
        created_at=clock.now(),
        expires_at=session.expires_at,
    ))
    return token


def _sign_access(user: User, session: Session) -> tuple[str, int]:
    config = settings()
    key = keyring().active()
    now = clock.timestamp()
    ttl = config.access_token_ttl
    claims = {
        "iss": config.jwt_issuer,
        "aud": config.jwt_audience,
        "sub": user.id,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(16),
        "sid": session.id,
        "amr": session.amr_list,
        "roles": user.role_names,
    }
    token = jwt.encode(claims, key.signing_key, algorithm=key.algorithm,
                       headers={"kid": key.kid, "typ": "at+jwt"})
    return token, ttl


def _token_response(user: User, session: Session, refresh_token: str) -> dict[str, Any]:
    access_token, ttl = _sign_access(user, session)
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "refresh_token": refresh_token,
        "user": user.to_dict(),
    }


# -- verifying -----------------------------------------------------------------------------
def decode(token: str) -> dict[str, Any]:
    """Check signature, algorithm, iss, aud and exp. Raises Problem(401 invalid_token)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise invalid_token("The access token is malformed.") from None
    kid = header.get("kid")
    alg = header.get("alg")
    if not isinstance(kid, str) or alg not in ALLOWED_ALGORITHMS:
        raise invalid_token("The access token is malformed.")
    key = keyring().get(kid)
    # The algorithm is pinned to the key's own: an RS/ES public key can never be used as an
    # HMAC secret, and `alg: none` never reaches a key at all.
    if key is None or key.algorithm != alg:
        raise invalid_token("The access token was not signed by this server.")
    config = settings()
    try:
        claims = jwt.decode(
            token,
            key.verifying_key,
            algorithms=[key.algorithm],
            audience=config.jwt_audience,
            issuer=config.jwt_issuer,
            # exp/nbf/iat are checked below against clock.now(), the server's one clock.
            options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_nbf": False,
                     "verify_iat": False},
        )
    except jwt.PyJWTError:
        raise invalid_token() from None
    now = clock.timestamp()
    try:
        expired = int(claims["exp"]) + LEEWAY < now
        early = int(claims.get("nbf", claims["iat"])) - LEEWAY > now
    except (TypeError, ValueError):
        raise invalid_token("The access token is malformed.") from None
    if expired:
        raise invalid_token("The access token has expired.")
    if early:
        raise invalid_token("The access token is not valid yet.")
    return claims


def verify(token: str, *, check_revocation: bool = True) -> Claims:
    """A verified access token; with `check_revocation`, also that its session is still open."""
    claims = decode(token)
    if not isinstance(claims["sid"], str) or not isinstance(claims["sub"], str):
        raise invalid_token("The access token is malformed.")
    if check_revocation:
        row = db.session.execute(
            select(Session.user_id, Session.revoked_at, Session.expires_at)
            .where(Session.id == claims["sid"])
        ).first()
        if (row is None or row.user_id != claims["sub"] or row.revoked_at is not None
                or row.expires_at <= clock.now()):
            raise invalid_token("The session of this access token has ended.")
    return Claims(
        user_id=str(claims["sub"]),
        session_id=str(claims["sid"]),
        roles=list(claims.get("roles") or []),
        amr=list(claims.get("amr") or []),
        raw=claims,
    )


def bearer_token(*, allow_legacy_header: bool = False) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if allow_legacy_header and request.headers.get("x-access-token"):
        return request.headers["x-access-token"].strip()
    raise invalid_token("Send the access token as 'Authorization: Bearer <token>'.")


def require_auth(func: F | None = None, *, allow_legacy_header: bool = False) -> Any:
    """Decorator: the request must carry a valid, unrevoked access token (sets g.claims)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.claims = verify(bearer_token(allow_legacy_header=allow_legacy_header))
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


def require_role(role: str) -> Callable[[F], F]:
    """Decorator: like require_auth, and the token's user must hold `role`."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            claims = verify(bearer_token())
            g.claims = claims
            # Roles are re-read from the database: a role just taken away stops working now.
            user = db.session.get(User, claims.user_id)
            if user is None or role not in user.role_names:
                raise Problem(403, "forbidden", f"This needs the '{role}' role.")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def current_user() -> User:
    """The user of the verified token of this request."""
    user = db.session.get(User, g.claims.user_id)
    if user is None or user.disabled:
        raise invalid_token("The user of this access token no longer exists.")
    return user


# -- refreshing ----------------------------------------------------------------------------
def refresh(refresh_token: str) -> dict[str, Any]:
    """Rotate a refresh token: the old one dies, a new one and a new access token come back.

    Replaying an already-rotated token after the grace window means two parties hold the
    same session (one of them a thief): the whole session is revoked.
    """
    if (not isinstance(refresh_token, str) or not 20 <= len(refresh_token) <= 200
            or not refresh_token.isascii()):
        raise invalid_token("The refresh token is invalid.")
    row = db.session.scalar(select(RefreshToken).where(
        RefreshToken.token_hash == _hash(refresh_token)))
    if row is None:
        raise invalid_token("The refresh token is invalid.")
    now = clock.now()
    session = db.session.get(Session, row.session_id)
    if session is None or not session.is_active(now) or row.expires_at <= now:
        raise invalid_token("The session of this refresh token has ended.")
    user = db.session.get(User, session.user_id)
    if user is None or user.disabled:
        raise invalid_token("The session of this refresh token has ended.")

    # One conditional UPDATE decides which of concurrent refreshes rotates the token.
    won = db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.rotated_at.is_(None))
        .values(rotated_at=now)
    ).rowcount == 1
    if not won:
        db.session.rollback()
        rotated_at = db.session.scalar(
            select(RefreshToken.rotated_at).where(RefreshToken.id == row.id))
        grace = timedelta(seconds=settings().refresh_reuse_grace)
        if rotated_at is None or now - rotated_at > grace:
            revoke_session(session.id, reason="refresh_reuse")
            log.warning("refresh token reuse: session %s revoked", session.id)
            raise invalid_token("The refresh token was already used; the session is revoked.")
        # A concurrent client inside the grace window gets the same successor the winner
        # got (already stored by the winner's transaction).
        log.info("refresh inside grace window sid=%s", session.id)
        return _token_response(user, session, _successor(refresh_token))
    session.last_used_at = now
    new_token = _mint_refresh(session, parent_id=row.id, token=_successor(refresh_token))
    db.session.commit()
    return _token_response(user, session, new_token)


# -- revoking ------------------------------------------------------------------------------
def revoke_session(session_id: str, *, reason: str = "logout") -> None:
    db.session.execute(
        update(Session)
        .where(Session.id == session_id, Session.revoked_at.is_(None))
        .values(revoked_at=clock.now(), revoked_reason=reason)
    )
    db.session.commit()
    log.info("session revoked sid=%s reason=%s", session_id, reason)


def revoke_user_sessions(user_id: str, *, reason: str) -> int:
    result = db.session.execute(
        update(Session)
        .where(Session.user_id == user_id, Session.revoked_at.is_(None))
        .values(revoked_at=clock.now(), revoked_reason=reason)
    )
    db.session.commit()
    log.info("all sessions revoked user=%s count=%s reason=%s", user_id, result.rowcount, reason)
    return int(result.rowcount)


def session_is_active(session_id: str) -> Session | None:
    """The session row if it is open and its user enabled (for cookie-based web sessions)."""
    session = db.session.get(Session, session_id)
    if session is None or not session.is_active(clock.now()):
        return None
    return session
