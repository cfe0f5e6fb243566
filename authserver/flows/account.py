"""What a signed-in person changes on their own account: the password, and the account itself
(deletion). Their sessions are flows/account_sessions.py's.

The callers (api/me.py, web/account_changes.py) have checked the sign-in is recent where the
change is sensitive (password, deletion); these functions take the account's id and the
caller's session id, so they run the same behind a bearer token and behind a web cookie.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select, update

from authserver import codes, cooldowns, lockout, passwords, ratelimits, sessions
from authserver.errors import ErrorCode, Problem, invalid_token
from authserver.events import Event, EventType, emit
from authserver.extensions import client_ip, db
from authserver.flows import channels
from authserver.models import OneTimeCode, User

log = logging.getLogger("authserver.flows.account")

def _gone() -> Problem:
    return invalid_token("The user of this access token no longer exists.")


def signed_in_user(user_id: str) -> User:
    """The caller's account; 401 invalid_token when it is gone or disabled."""
    user = db.session.get(User, user_id)
    if user is None or user.disabled:
        raise _gone()
    return user


# -- password ------------------------------------------------------------------------------
def _wrong_current() -> Problem:
    return Problem(401, ErrorCode.INVALID_CREDENTIALS, "The current password is incorrect.",
                   field="current_password")


def change_password(user_id: str, session_id: str, current_password: str | None,
                    password: str) -> int:
    """Set a new password; every session but `session_id` ends. Returns how many ended.

    `current_password` is required when the account has a password, checked like a sign-in
    (constant time; wrong ones count against the account's sign-in limits and its run of
    wrong passwords, and a locked address refuses it). Counted only when wrong: the caller
    is signed in already, and a right one does not end the run (only a sign-in does).
    400 when it is missing, 401 invalid_credentials when wrong (also when another change
    won meanwhile), 422 weak_password / breached_password, 429, 403 password_signin_locked.
    The notice mail goes out after the change committed.
    """
    user = signed_in_user(user_id)
    had_password = user.password_hash is not None
    if had_password and not current_password:
        raise Problem(400, ErrorCode.INVALID_REQUEST, "Missing field: current_password.",
                      field="current_password")
    # A refused new password costs nothing: checked before the current one.
    passwords.require_policy(password, user.email)
    old_hash = user.password_hash
    if had_password:
        ratelimits.hit(ratelimits.SIGNIN_IP, client_ip())
        account_key = user.email or f"user:{user.id}"
        ratelimits.check(ratelimits.SIGNIN_ACCOUNT, account_key)
        if user.email:
            lockout.check(user.email)
        if not passwords.verify_password(old_hash, current_password or ""):
            ratelimits.count(ratelimits.SIGNIN_ACCOUNT, account_key)
            if user.email:
                lockout.failed(user.email)
            log.info("password change: wrong current password user=%s", user.id)
            raise _wrong_current()
    # Conditional on the hash it was checked against: of concurrent changes one wins; the
    # others' current password is no longer the account's.
    condition = User.password_hash == old_hash if old_hash else User.password_hash.is_(None)
    changed = db.session.execute(
        update(User).where(User.id == user.id, User.disabled.is_(False), condition)
        .values(password_hash=passwords.hash_password(password))
        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    if changed != 1:
        db.session.rollback()
        if db.session.get(User, user_id) is None:
            raise _gone()
        raise _wrong_current()
    revoked = sessions.revoke_others(user.id, session_id, reason="password_changed",
                                     at_once=False)
    emit(Event(EventType.PASSWORD_CHANGED, user_id=user.id,
               detail={"how": "change" if had_password else "first"}))
    db.session.commit()  # the change stands before the notice goes out
    db.session.expire(user)
    log.info("password %s user=%s revoked=%d", "changed" if had_password else "set", user.id,
             revoked)
    if user.email:
        channels.password_changed(user.email, in_account=True)
    return revoked


# -- deletion ------------------------------------------------------------------------------
def delete_account(user_id: str) -> None:
    """Delete the account and everything kept about it, in one transaction: its sessions
    (revoked, then gone with the row), the row itself (name, e-mail, phone, password hash;
    roles, refresh tokens, hand-off codes and its codes go with it by foreign key), and the
    rows keyed by its address or number (codes sent to them, resend cooldowns, the run of
    wrong passwords). 401 invalid_token when it is already gone (a racing deletion won)."""
    # A locking read first: of concurrent deletions one holds the row, the others wait and
    # then find nothing.
    user = db.session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise _gone()
    email, phone = user.email, user.phone
    # Before the row goes, so a sink can still read the user (the trail keeps its id).
    emit(Event(EventType.USER_DELETED, user_id=user.id))
    sessions.revoke_all(user.id, reason="account_deleted", at_once=False)
    subjects = [value for value in (email, phone) if value]
    if subjects:
        db.session.execute(delete(OneTimeCode).where(
            OneTimeCode.purpose.in_(sorted(codes.PURPOSES)), OneTimeCode.subject.in_(subjects)))
        cooldowns.forget(*([f"email:{email}"] if email else []),
                         *([f"sms:{phone}"] if phone else []))
    if email:
        lockout.forget(email)
    db.session.execute(delete(User).where(User.id == user.id))
    db.session.expunge(user)
    db.session.commit()
    log.info("account deleted user=%s", user_id)
