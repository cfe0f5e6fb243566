"""Users and roles: look-up, creation and the administrative changes (roles, disabling).

Changes are flushed; the request or command that called commits them (`@committed`).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from authserver import clock, sessions
from authserver.errors import Problem
from authserver.events import Event, EventType, Method, Outcome, emit
from authserver.extensions import db
from authserver.models import Role, User

log = logging.getLogger("authserver.accounts")

ROLE_NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email))


def by_phone(phone: str) -> User | None:
    return db.session.scalar(select(User).where(User.phone == phone))


def get(user_id: str) -> User:
    user = db.session.get(User, user_id) if isinstance(user_id, str) and len(user_id) <= 36 \
        else None
    if user is None:
        raise Problem(404, "not_found", "No such user.")
    return user


def create(*, email: str | None = None, phone: str | None = None, name: str | None = None,
           password_hash: str | None = None, roles: list[str] | None = None,
           method: Method | None = None, via: str = "signup") -> User:
    """Insert a user; 409 email_taken when the address (or phone) is already registered.

    Tells the sinks USER_CREATED (`method`: how the person proved who they are, if they
    did; `via`: signup, first_sign_in, cli)."""
    user = User(email=email, phone=phone, name=name, password_hash=password_hash)
    for role in roles or []:
        user.roles.append(_role(role))
    try:
        # A savepoint: losing a race on the unique e-mail (or phone) undoes only this INSERT,
        # not the rest of the caller's unit of work.
        with db.session.begin_nested():
            db.session.add(user)
    except IntegrityError:
        raise Problem(409, "email_taken", "An account with this e-mail already exists.",
                      field="email") from None
    if roles:
        _reload_roles(user)
    emit(Event(EventType.USER_CREATED, user_id=user.id, method=method,
               outcome=Outcome.SUCCESS, detail={"via": via}))
    log.info("user created id=%s", user.id)
    return user


def find_or_create(*, email: str | None = None, phone: str | None = None) -> User:
    """The account that owns this (normalised) e-mail or phone, created if there is none.

    For the passwordless flows: proving control of an address is enough to open an account.
    Two first sign-ins at the same moment both try to insert; the loser takes the winner's.
    """
    assert (email is None) != (phone is None), "exactly one of email, phone"
    column = User.email if email else User.phone
    value = email or phone
    user = db.session.scalar(select(User).where(column == value))
    if user is None:
        try:
            user = create(email=email, phone=phone, via="first_sign_in",
                          method=Method.EMAIL_LINK if email else Method.SMS)
        except Problem:
            # A locking read sees the winner's committed row, which this transaction's
            # snapshot (MySQL's REPEATABLE READ) would still hide.
            user = db.session.scalar(
                select(User).where(column == value).with_for_update(read=True))
            if user is None:
                raise
    return user


def _reload_roles(user: User) -> None:
    # Flushed, then read back in the relationship's order (by name), as answers show them.
    db.session.flush()
    db.session.expire(user, ["roles"])


def _role(name: str) -> Role:
    # Role names travel in URL paths (DELETE …/roles/<role>) and token claims: keep them plain.
    if not isinstance(name, str) or not ROLE_NAME.fullmatch(name):
        raise Problem(422, "invalid_request",
                      "A role is 1 to 64 letters, digits, '.', '_', ':' or '-'.")
    role = db.session.scalar(select(Role).where(Role.name == name))
    if role is None:
        role = Role(name=name)
        try:
            with db.session.begin_nested():
                db.session.add(role)
        except IntegrityError:
            # Another request created it at the same moment: use theirs (a locking read sees
            # their committed row through this transaction's snapshot).
            role = db.session.scalar(
                select(Role).where(Role.name == name).with_for_update(read=True))
            assert role is not None
    return role


def add_role(user: User, name: str, *, actor_id: str | None = None) -> User:
    role = _role(name)
    if role not in user.roles:
        user.roles.append(role)
        emit(Event(EventType.ROLE_ADDED, user_id=user.id, actor_id=actor_id,
                   detail={"role": role.name}))
    _reload_roles(user)
    log.info("role %s granted to user=%s", role.name, user.id)
    return user


def remove_role(user: User, name: str, *, actor_id: str | None = None) -> User:
    if name in user.role_names:
        emit(Event(EventType.ROLE_REMOVED, user_id=user.id, actor_id=actor_id,
                   detail={"role": name}))
    user.roles = [role for role in user.roles if role.name != name]
    _reload_roles(user)
    log.info("role %s removed from user=%s", name, user.id)
    return user


def disable(user: User, *, actor_id: str | None = None) -> User:
    """Disable the account and end every session it has, at once."""
    if not user.disabled:
        emit(Event(EventType.USER_DISABLED, user_id=user.id, actor_id=actor_id))
        user.disabled = True
        user.disabled_at = clock.now()
        db.session.flush()
    # Commits, with the flag above: revocations never wait for the caller's edge.
    sessions.revoke_all(user.id, reason="user_disabled")
    return user


def enable(user: User, *, actor_id: str | None = None) -> User:
    if user.disabled:
        emit(Event(EventType.USER_ENABLED, user_id=user.id, actor_id=actor_id))
    user.disabled = False
    user.disabled_at = None
    db.session.flush()
    return user


def search(email: str | None, limit: int = 50, *, phone: str | None = None,
           after: tuple[datetime, str] | None = None) -> list[User]:
    """Users oldest first, by (created_at, id); `after`: only those after that key (keyset
    paging: a page costs the same however deep, and users added meanwhile are not skipped)."""
    query = select(User).order_by(User.created_at, User.id).limit(limit)
    if email:
        query = query.where(User.email == email.strip().lower())
    if phone:
        query = query.where(User.phone == phone)
    if after is not None:
        created_at, user_id = after
        query = query.where(or_(User.created_at > created_at,
                                and_(User.created_at == created_at, User.id > user_id)))
    return list(db.session.scalars(query))


class Owner(NamedTuple):
    """Who just proved an address or phone, and whether that proof evicted a squatter."""

    user: User
    #: This was the identifier's first proof, and a password or sessions set up on the
    #: account before it were removed (the person should be told).
    evicted: bool


def verified_owner(*, email: str | None = None, phone: str | None = None,
                   create: bool) -> Owner | None:
    """The account that owns an address or phone just proven by a code or link, marked
    verified; created on its first sign-in when `create`, else None. 403 when disabled.

    Anyone can sign up with someone else's address (or add their phone) and a password of
    their choosing, before the owner ever proves it. So the identifier's first proof evicts
    everything set up before it: the password is removed, every open session revoked, and
    (for an address) a phone added before it removed.
    """
    user = find_or_create(email=email, phone=phone) if create else (
        by_email(email) if email else by_phone(phone))  # type: ignore[arg-type]
    if user is None:
        return None
    if user.disabled:
        log.info("proof of ownership for disabled user=%s", user.id)
        raise Problem(403, "account_disabled", "This account has been disabled.")
    column = User.email_verified_at if email else User.phone_verified_at
    if getattr(user, column.key) is not None:
        return Owner(user, evicted=False)
    had_password = user.password_hash is not None
    # A phone added before the address was ever proven was added by whoever signed up with
    # it, maybe not its owner: it goes too, or it would sign them in after the owner took over.
    had_phone = email is not None and user.phone is not None
    evict: dict[str, None] = {User.password_hash.key: None}
    if had_phone:
        evict.update({User.phone.key: None, User.phone_verified_at.key: None})
    # In the caller's transaction, with the code's use and the new session: all or nothing.
    # This UPDATE comes before the session INSERT, so the transaction holds the user row's
    # exclusive lock before the INSERT's foreign-key check wants a shared one (the other
    # order deadlocks two first sign-ins at once). Only the proof that wins the UPDATE
    # evicts, so a racing second proof can't revoke the first one's new session.
    first = db.session.execute(
        update(User).where(User.id == user.id, column.is_(None))
        .values({column.key: clock.now(), **evict})
        .execution_options(synchronize_session=False)).rowcount == 1  # type: ignore[attr-defined]
    if not first:
        return Owner(user, evicted=False)
    revoked = sessions.revoke_all(user.id, reason="ownership_proven", at_once=False)
    if had_password or had_phone or revoked:
        log.warning("first proof of %s evicted a password=%s, a phone=%s and %d session(s) "
                    "user=%s", "e-mail" if email else "phone", had_password, had_phone,
                    revoked, user.id)
        db.session.expire(user)
    return Owner(user, evicted=had_password or had_phone or revoked > 0)
