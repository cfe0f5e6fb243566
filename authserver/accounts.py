"""Users and roles: look-up, creation and the administrative changes (roles, disabling)."""

from __future__ import annotations

import logging
import re

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from authserver import clock, tokens
from authserver.errors import Problem
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
           password_hash: str | None = None, roles: list[str] | None = None) -> User:
    """Insert a user; 409 email_taken when the address (or phone) is already registered."""
    user = User(email=email, phone=phone, name=name, password_hash=password_hash)
    for role in roles or []:
        user.roles.append(_role(role))
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Problem(409, "email_taken", "An account with this e-mail already exists.",
                      field="email") from None
    log.info("user created id=%s", user.id)
    return user


def find_or_create(*, email: str | None = None, phone: str | None = None) -> User:
    """The account that owns this (normalised) e-mail or phone, created if there is none.

    For the passwordless flows: proving control of an address is enough to open an account.
    Two first sign-ins at the same moment both try to insert; the loser takes the winner's.
    """
    assert (email is None) != (phone is None), "exactly one of email, phone"
    find = (lambda: by_email(email)) if email else (lambda: by_phone(phone))  # type: ignore[arg-type]
    user = find()
    if user is None:
        try:
            user = create(email=email, phone=phone)
        except Problem:
            user = find()
            if user is None:
                raise
    return user


def _role(name: str) -> Role:
    # Role names travel in URL paths (DELETE …/roles/<role>) and token claims: keep them plain.
    if not isinstance(name, str) or not ROLE_NAME.fullmatch(name):
        raise Problem(422, "invalid_request",
                      "A role is 1 to 64 letters, digits, '.', '_', ':' or '-'.")
    role = db.session.scalar(select(Role).where(Role.name == name))
    if role is None:
        role = Role(name=name)
        db.session.add(role)
        try:
            db.session.flush()
        except IntegrityError:
            # Another request created it at the same moment: use theirs.
            db.session.rollback()
            role = db.session.scalar(select(Role).where(Role.name == name))
            assert role is not None
    return role


def add_role(user: User, name: str) -> User:
    role = _role(name)
    if role not in user.roles:
        user.roles.append(role)
    db.session.commit()
    log.info("role %s granted to user=%s", role.name, user.id)
    return user


def remove_role(user: User, name: str) -> User:
    user.roles = [role for role in user.roles if role.name != name]
    db.session.commit()
    log.info("role %s removed from user=%s", name, user.id)
    return user


def disable(user: User) -> User:
    """Disable the account and end every session it has, at once."""
    if not user.disabled:
        user.disabled = True
        user.disabled_at = clock.now()
        db.session.commit()
    tokens.revoke_user_sessions(user.id, reason="user_disabled")
    return user


def enable(user: User) -> User:
    user.disabled = False
    user.disabled_at = None
    db.session.commit()
    return user


def search(email: str | None, limit: int = 50) -> list[User]:
    query = select(User).order_by(User.created_at).limit(limit)
    if email:
        query = query.where(User.email == email.strip().lower())
    return list(db.session.scalars(query))


def verified_owner(*, email: str | None = None, phone: str | None = None,
                   create: bool) -> User | None:
    """The account that owns an address or phone just proven by a code or link, marked
    verified; created on its first sign-in when `create`, else None. 403 when disabled."""
    user = find_or_create(email=email, phone=phone) if create else (
        by_email(email) if email else by_phone(phone))  # type: ignore[arg-type]
    if user is None:
        return None
    if user.disabled:
        log.info("proof of ownership for disabled user=%s", user.id)
        raise Problem(403, "account_disabled", "This account has been disabled.")
    column = User.email_verified_at if email else User.phone_verified_at
    if getattr(user, column.key) is None:
        # Committed on its own, before a session is opened: in one transaction with the
        # session INSERT (whose foreign key share-locks the user row), two first sign-ins at
        # once deadlock on MySQL upgrading that lock for this UPDATE.
        db.session.execute(update(User).where(User.id == user.id, column.is_(None))
                           .values({column.key: clock.now()})
                           .execution_options(synchronize_session=False))
        db.session.commit()
    return user
