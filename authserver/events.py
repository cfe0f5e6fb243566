"""Security events: what happened to whom, said once where it happens, heard by every sink.

A flow that signs someone in, sends a code, changes an account or revokes a session calls
`emit(Event(...))` at that point, inside the request's transaction. Each sink registered on
the app (`listen(app, sink)`: the audit trail, the webhook outbox, the metrics) is called
synchronously, in registration order, with the same event: a sink that writes rows writes
them in the caller's transaction, so they commit or roll back with the action itself (a
Problem commits, see transactions.py; any other error rolls everything back).

An event never carries a secret: no code, link, token, password or hash in `detail`. Sinks
take the client's IP and user agent from the request themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flask import Flask, current_app, has_app_context

EXTENSION_KEY = "authserver.events"


class EventType(StrEnum):
    """Every event type: the audit trail's `type`, mapped by the sinks to what they need."""

    USER_CREATED = "user.created"  # a sign-up or a first sign-in that made the account
    USER_UPDATED = "user.updated"  # name or other non-credential details
    USER_DELETED = "user.deleted"
    USER_DISABLED = "user.disabled"
    USER_ENABLED = "user.enabled"
    ROLE_ADDED = "role.added"
    ROLE_REMOVED = "role.removed"
    SIGNIN_SUCCEEDED = "signin.succeeded"  # tokens issued (method: see Method)
    SIGNIN_FAILED = "signin.failed"  # outcome: see Outcome
    MFA_REQUIRED = "signin.mfa_required"  # a first factor passed; the second is asked for
    CODE_SENT = "code.sent"  # detail: purpose, channel; outcome: sent | failed
    CODE_LOCKED = "code.locked"  # a code or link killed by wrong tries
    LINK_USED = "link.used"  # detail: purpose
    REFRESHED = "token.refreshed"
    REFRESH_REUSE_DETECTED = "token.reuse_detected"  # the whole session was revoked
    SESSION_REVOKED = "session.revoked"  # detail: scope (local | others | global), reason
    PASSWORD_CHANGED = "password.changed"  # detail: how (change | reset | first)
    EMAIL_VERIFIED = "email.verified"
    EMAIL_CHANGED = "email.changed"
    PHONE_CHANGED = "phone.changed"
    MFA_ENROLLED = "mfa.enrolled"
    MFA_DISABLED = "mfa.disabled"
    MFA_RESET = "mfa.reset"  # by an admin (actor)
    RECOVERY_CODES_REGENERATED = "mfa.recovery_codes_regenerated"
    KEY_ROTATED = "key.rotated"
    USERS_IMPORTED = "users.imported"


class Method(StrEnum):
    """How someone proved who they are (a sign-in's `method`)."""

    PASSWORD = "password"
    SMS = "sms"
    EMAIL_LINK = "email_link"
    EMAIL_CODE = "email_code"
    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"
    PASSWORD_RESET = "password_reset"
    HANDOFF = "handoff"  # a web sign-in handed over to an app (token/exchange)
    REFRESH = "refresh"


class Outcome(StrEnum):
    """What came of an attempt (a failed sign-in's `outcome`, a send's, a refresh's)."""

    SUCCESS = "success"
    WRONG_SECRET = "wrong_secret"  # wrong password, code or link
    EXPIRED = "expired"
    LOCKED = "locked"  # password sign-in locked, code used up
    RATE_LIMITED = "rate_limited"
    DISABLED = "disabled"
    NOT_VERIFIED = "not_verified"
    SENT = "sent"
    FAILED = "failed"
    REUSE_DETECTED = "reuse_detected"


@dataclass(frozen=True)
class Event:
    type: EventType
    #: Whom it is about (None: an unknown address or phone, which is never named here).
    user_id: str | None = None
    #: Who did it, when not the user themself (an admin).
    actor_id: str | None = None
    method: Method | None = None
    outcome: Outcome | None = None
    #: Small, never secret: e.g. {"purpose": "password_reset", "channel": "email"}.
    detail: dict[str, Any] = field(default_factory=dict)


Sink = Callable[[Event], None]


def listen(app: Flask, sink: Sink) -> None:
    """Register `sink` to hear every event of `app` (called from a sink's init_app)."""
    app.extensions.setdefault(EXTENSION_KEY, []).append(sink)


def emit(event: Event) -> None:
    """Tell every sink of the current app; outside an app (a bare unit test) nobody hears."""
    if not has_app_context():
        return
    for sink in current_app.extensions.get(EXTENSION_KEY, ()):
        sink(event)
