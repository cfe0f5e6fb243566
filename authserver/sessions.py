"""Sessions and their rotating refresh tokens: open, rotate, revoke, list, check.

A session row is what logout and revocation act on; disabling a user revokes their sessions,
and the check of a token reads the session row joined to its user's disabled flag, so that one
lookup answers "is this token still good?" even for a session some race left open. A refresh
token is 256 random bits stored only as a SHA-256 hash; each use rotates it, and its successor
is derived from it (see `_successor`) so that concurrent uses of one token don't fork the
session.

Writes are flushed, and the request or command that called commits (`@committed`), except
where a commit here is what makes the rule hold; each of those says why.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from flask import has_request_context, request
from sqlalchemy import CursorResult, insert, literal, select, update
from sqlalchemy.orm import make_transient_to_detached

from authserver import clock
from authserver.config import settings
from authserver.errors import ErrorCode, Problem, invalid_token
from authserver.events import Event, EventType, Method, Outcome, emit
from authserver.extensions import db
from authserver.models import RefreshToken, Session, User
from authserver.models.base import time_ordered_id

# The logger these lines always had: log filters and alerts (refresh reuse) select on it.
log = logging.getLogger("authserver.tokens")

ACCOUNT_PAGE_LIMIT = 50  # sessions listed on /account


@dataclass(frozen=True)
class Rotated:
    """The outcome of a refresh: the session, its user and the refresh token that replaces the
    presented one."""

    session: Session
    user: User
    refresh_token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _client_meta() -> tuple[str | None, str | None]:
    if not has_request_context():
        return None, None
    agent = (request.user_agent.string or "")[:255] or None
    return request.remote_addr, agent


# -- opening ---------------------------------------------------------------------------------
def open_session(user: User, amr: list[str], client: str,
                 auth_time: datetime | None = None) -> tuple[Session, str]:
    """A new session for `user` and its first refresh token (flushed, not committed).
    `auth_time`: when the user proved who they are, if not now (see tokens.issue).

    403 account_disabled when the user is disabled in the database, whatever `user` says: the
    caller read it before checking a password or a code, and a disable may have committed
    since. The INSERT is conditional on the user row being enabled, so no session of a
    disabled user is ever written (a Problem commits at the edge: nothing may be left to).
    On MySQL its SELECT is a locking read of the user row, held to the commit: a disable
    either commits first (and this sees it) or waits for this sign-in and then revokes the
    session with the others. SQLite runs one writer at a time, which serialises them alike.
    """
    now = clock.now()
    ip, agent = _client_meta()
    values: dict[str, Any] = {
        "id": time_ordered_id(),
        "user_id": user.id,
        "amr": " ".join(amr),
        "client": client,
        "ip": ip,
        "user_agent": agent,
        "created_at": now,
        "auth_time": auth_time or now,
        "last_used_at": now,
        "expires_at": now + timedelta(seconds=settings().refresh_token_ttl),
    }
    columns = Session.__table__.c
    enabled_user = (
        select(*(literal(value, columns[name].type) for name, value in values.items()))
        .where(User.id == user.id, User.disabled.is_(False))
    )
    inserted = _rowcount(db.session.execute(
        insert(Session).from_select(list(values), enabled_user)))
    if inserted != 1:
        log.info("session refused: user=%s is disabled", user.id)
        raise Problem(403, ErrorCode.ACCOUNT_DISABLED, "This account has been disabled.")
    # The row just written, as a persistent object without reading it back.
    session = Session(**values, revoked_at=None, revoked_reason=None)
    make_transient_to_detached(session)
    db.session.add(session)
    refresh_token = _mint_refresh(session, parent_id=None)
    db.session.flush()
    log.info("session opened user=%s sid=%s amr=%s client=%s", user.id, session.id,
             session.amr, client)
    return session, refresh_token


def _successor(refresh_token: str, secret_key: str = "") -> str:
    """The token that replaces `refresh_token`: derived, not random, so that every request
    that presents the same token inside the grace window gets the very same successor.

    A thief replaying a just-rotated token therefore shares the one chain with the owner, and
    the next rotation by either of them is a reuse the other one trips over.
    """
    key = (secret_key or settings().secret_key).encode()
    digest = hmac.new(key, b"authserver.refresh-successor:" + refresh_token.encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _stored_successor(refresh_token: str, parent_id: int) -> str:
    """The successor the winning rotation stored, derived under whichever of SECRET_KEY and
    SECRET_KEY_FALLBACKS it used: a SECRET_KEY rotation between the winner and a replay inside
    the grace window must not hand the replay a token that was never stored."""
    candidates = {_hash(successor): successor for successor in (
        _successor(refresh_token, secret) for secret in settings().secret_keys())}
    stored = db.session.scalar(select(RefreshToken.token_hash).where(  # the unique index
        RefreshToken.token_hash.in_(list(candidates)), RefreshToken.parent_id == parent_id))
    # None: made under a key no longer held, so no successor we could give would work.
    return candidates[stored] if stored is not None else _successor(refresh_token)


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


# -- rotating --------------------------------------------------------------------------------
def rotate(refresh_token: str) -> Rotated:
    """Rotate a refresh token: the old one dies, its (derived) successor comes back.

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
    won = _rowcount(db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.rotated_at.is_(None))
        .values(rotated_at=now)
    )) == 1
    if not won:
        # Ends this transaction, so the read below sees what the winner committed.
        db.session.rollback()
        rotated_at = db.session.scalar(
            select(RefreshToken.rotated_at).where(RefreshToken.id == row.id))
        grace = timedelta(seconds=settings().refresh_reuse_grace)
        if rotated_at is None or now - rotated_at > grace:
            emit(Event(EventType.REFRESH_REUSE_DETECTED, user_id=user.id,
                       method=Method.REFRESH, outcome=Outcome.REUSE_DETECTED,
                       detail={"session_id": session.id}))
            revoke(session.id, reason="refresh_reuse", user_id=user.id)
            log.warning("refresh token reuse: session %s revoked", session.id)
            raise invalid_token("The refresh token was already used; the session is revoked.")
        # A concurrent client inside the grace window gets the same successor the winner
        # got (already stored by the winner's transaction).
        log.info("refresh inside grace window sid=%s", session.id)
        return Rotated(session, user, _stored_successor(refresh_token, row.id))
    session.last_used_at = now
    new_token = _mint_refresh(session, parent_id=row.id, token=_successor(refresh_token))
    # Committed here, not at the edge: the winner's successor must be stored before the
    # losers of the UPDATE above (waiting on its row lock) read it inside the grace window.
    db.session.commit()
    return Rotated(session, user, new_token)


# -- revoking --------------------------------------------------------------------------------
# Revocations commit at once: a later failure of the request must not undo them (a replayed
# refresh token answers 401 and its session must stay revoked), and every worker must see
# them on its next check.
def _revoked(user_id: str | None, scope: str, reason: str, **detail: Any) -> None:
    """Tell the sinks (events.py) of a revocation, before the commit that keeps both."""
    emit(Event(EventType.SESSION_REVOKED, user_id=user_id,
               detail={"scope": scope, "reason": reason, **detail}))


def revoke(session_id: str, *, reason: str = "logout", user_id: str | None = None) -> None:
    """End one session: its access and refresh tokens stop working at once (`user_id`: its
    owner, named in the event; looked up when not given)."""
    ended = _rowcount(db.session.execute(
        update(Session)
        .where(Session.id == session_id, Session.revoked_at.is_(None))
        .values(revoked_at=clock.now(), revoked_reason=reason)
    )) == 1
    if ended:
        if user_id is None:
            user_id = db.session.scalar(select(Session.user_id).where(Session.id == session_id))
        _revoked(user_id, "local", reason, session_id=session_id)
    db.session.commit()  # at once, whatever the caller does next (see above)
    log.info("session revoked sid=%s reason=%s", session_id, reason)


def revoke_all(user_id: str, *, reason: str, at_once: bool = True) -> int:
    """End every open session of a user; returns how many there were.

    `at_once=False`: in the caller's transaction, to stand or fall with it (a first proof
    of ownership evicting what was set up before it, together with the proof's sign-in).
    """
    count = _rowcount(db.session.execute(
        update(Session)
        .where(Session.user_id == user_id, Session.revoked_at.is_(None))
        .values(revoked_at=clock.now(), revoked_reason=reason)
    ))
    if count:
        _revoked(user_id, "global", reason, count=count)
    if at_once:
        db.session.commit()  # whatever the caller does next (see above)
    log.info("all sessions revoked user=%s count=%s reason=%s", user_id, count, reason)
    return count


def revoke_others(user_id: str, keep: str, *, reason: str, at_once: bool = True) -> int:
    """End every open session of a user but `keep` (the caller's); returns how many."""
    count = _rowcount(db.session.execute(
        update(Session)
        .where(Session.user_id == user_id, Session.id != keep, Session.revoked_at.is_(None))
        .values(revoked_at=clock.now(), revoked_reason=reason)
    ))
    if count:
        _revoked(user_id, "others", reason, count=count)
    if at_once:
        db.session.commit()  # whatever the caller does next (see above)
    log.info("other sessions revoked user=%s kept=%s count=%s reason=%s", user_id, keep,
             count, reason)
    return count


def revoke_own(user_id: str, session_id: str, *, reason: str = "logout") -> bool:
    """End one open session if it is `user_id`'s; False when it is not theirs, unknown or
    already ended (one conditional UPDATE: the caller can't tell those apart, nor end
    anybody else's session)."""
    ended = _rowcount(db.session.execute(
        update(Session)
        .where(Session.id == session_id, Session.user_id == user_id,
               Session.revoked_at.is_(None), Session.expires_at > clock.now())
        .values(revoked_at=clock.now(), revoked_reason=reason)
    )) == 1
    if ended:
        _revoked(user_id, "local", reason, session_id=session_id)
    db.session.commit()  # at once (see above)
    if ended:
        log.info("session revoked sid=%s reason=%s", session_id, reason)
    return ended


# -- reading ---------------------------------------------------------------------------------
def active(session_id: str) -> Session | None:
    """The session row if it is open (for cookie-based web sessions)."""
    session = db.session.get(Session, session_id)
    if session is None or not session.is_active(clock.now()):
        return None
    return session


def signed_in(session_id: str) -> tuple[Session, User] | None:
    """The open session and its enabled user (what a browser's cookie stands for), or None."""
    session = active(session_id)
    if session is None:
        return None
    user = db.session.get(User, session.user_id)
    if user is None or user.disabled:
        return None
    return session, user


def active_for(user: User) -> list[Session]:
    """The user's open sessions, most recently used first (what /account lists)."""
    return list(db.session.scalars(
        select(Session)
        .where(Session.user_id == user.id, Session.revoked_at.is_(None),
               Session.expires_at > clock.now())
        .order_by(Session.last_used_at.desc())
        .limit(ACCOUNT_PAGE_LIMIT)
    ).all())
