"""The audit trail: every security event (events.py) as a row of `audit_events`.

The sink adds its row to the caller's database session, so the row commits or rolls back
with the action it records (a Problem commits, any other error rolls back: transactions.py).
It adds the request's client IP (`extensions.client_ip`, ProxyFix-aware) and user agent (cut
to 255 characters); a CLI command has neither. An event's `detail` never holds a secret
(events.py); the sink keeps it as given.

Reading: `page` (the admin API, keyset by id, newest first) and `recent` (one user's own
events, for `GET /api/v1/me/activity` and the account page). `flask prune` (housekeeping.py)
deletes rows older than AUDIT_RETENTION_DAYS (0 keeps them forever).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, has_request_context, request
from sqlalchemy import select

from authserver import clock, events
from authserver.events import Event, EventType
from authserver.extensions import client_ip, db
from authserver.models import AuditEvent
from authserver.models.audit import USER_AGENT_LENGTH

#: The longest page the admin API answers, and its default.
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
#: How many of their own events a person sees.
OWN_ACTIVITY = 20

#: Readable labels for the account page ("Recent activity").
LABELS: dict[str, str] = {
    EventType.USER_CREATED: "Account created",
    EventType.USER_UPDATED: "Account details changed",
    EventType.USER_DELETED: "Account deleted",
    EventType.USER_DISABLED: "Account disabled by an administrator",
    EventType.USER_ENABLED: "Account enabled by an administrator",
    EventType.ROLE_ADDED: "Role granted",
    EventType.ROLE_REMOVED: "Role taken away",
    EventType.SIGNIN_SUCCEEDED: "Signed in",
    EventType.SIGNIN_FAILED: "Sign-in refused",
    EventType.MFA_REQUIRED: "Second factor asked for",
    EventType.CODE_SENT: "Code or link sent",
    EventType.CODE_LOCKED: "Code locked after wrong tries",
    EventType.LINK_USED: "E-mailed link used",
    EventType.REFRESHED: "Session refreshed",
    EventType.REFRESH_REUSE_DETECTED: "Reused refresh token: session ended",
    EventType.SESSION_REVOKED: "Signed out",
    EventType.PASSWORD_CHANGED: "Password changed",
    EventType.EMAIL_VERIFIED: "E-mail address confirmed",
    EventType.EMAIL_CHANGED: "E-mail address changed",
    EventType.PHONE_CHANGED: "Phone number changed",
    EventType.MFA_ENROLLED: "Authenticator app set up",
    EventType.MFA_DISABLED: "Authenticator app removed",
    EventType.MFA_RESET: "Authenticator app removed by an administrator",
    EventType.RECOVERY_CODES_REGENERATED: "New recovery codes",
    EventType.KEY_ROTATED: "Signing key rotated",
    EventType.USERS_IMPORTED: "Users imported",
}
METHOD_LABELS = {"password": "password", "sms": "text message", "email_link": "e-mailed link",
                 "email_code": "e-mailed code", "totp": "authenticator app",
                 "recovery_code": "recovery code", "password_reset": "password reset",
                 "handoff": "app hand-off", "refresh": "refresh token"}


def record(event: Event) -> None:
    """The sink: one row, in the caller's transaction."""
    ip = agent = None
    if has_request_context():
        ip = client_ip()
        agent = (request.user_agent.string or "")[:USER_AGENT_LENGTH] or None
    db.session.add(AuditEvent(
        created_at=clock.now(), type=event.type.value, user_id=event.user_id,
        actor_id=event.actor_id, ip=ip, user_agent=agent,
        method=event.method.value if event.method else None,
        outcome=event.outcome.value if event.outcome else None, detail=dict(event.detail)))


def init_app(app: Flask) -> None:
    events.listen(app, record)


def page(*, user_id: str | None = None, type_: str | None = None, before: int | None = None,
         limit: int = DEFAULT_LIMIT) -> tuple[list[AuditEvent], int | None]:
    """Newest first, ids below `before`; returns the rows and the `before` of the next page
    (None on the last one)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    if type_ is not None:
        query = query.where(AuditEvent.type == type_)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    rows = list(db.session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def recent(user_id: str, limit: int = OWN_ACTIVITY) -> list[AuditEvent]:
    """A person's own newest events (what they did, and what was done to their account)."""
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.user_id == user_id)
                                   .order_by(AuditEvent.id.desc()).limit(limit)))


def label(row: AuditEvent) -> str:
    """"Signed in (text message)", "Sign-in refused (password)": for the account page."""
    text = LABELS.get(row.type, row.type)
    method = METHOD_LABELS.get(row.method or "")
    return f"{text} ({method})" if method else text


def own_view(row: AuditEvent) -> dict[str, Any]:
    """What a person is shown of their own event: no actor id, nothing about others."""
    return {"id": row.id, "created_at": row.to_dict()["created_at"], "type": row.type,
            "method": row.method, "outcome": row.outcome, "ip": row.ip,
            "user_agent": row.user_agent, "label": label(row)}

