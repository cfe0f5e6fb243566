"""Webhooks: security events as signed POSTs to WEBHOOK_URL, through an outbox.

The sink (`init_app` registers it with `events.listen` only when WEBHOOK_URL is set) turns
an event into a `webhook_outbox` row added to the caller's session: the row commits or rolls
back with the change it reports, so an event is never sent for a change that did not happen
and never lost for one that did. Delivery is authserver/webhook_delivery.py (`flask
webhooks run`, `flask webhooks deliver --once`).

Body: `{"type", "timestamp", "data"}`. The internal events map to five webhook types:

- `user.created` ← USER_CREATED (a sign-up, a first SMS or e-mail sign-in, `flask users
  create`; a seed import emits USERS_IMPORTED, not sent);
- `user.signed_in` ← SIGNIN_SUCCEEDED (tokens issued, whatever the method);
- `user.updated` ← any change of what `/api/v1/me` shows or of the account's credentials:
  USER_UPDATED, EMAIL_CHANGED, EMAIL_VERIFIED, PHONE_CHANGED, PASSWORD_CHANGED, ROLE_ADDED,
  ROLE_REMOVED, USER_DISABLED, USER_ENABLED, MFA_ENROLLED, MFA_DISABLED, MFA_RESET,
  RECOVERY_CODES_REGENERATED;
- `user.deleted` ← USER_DELETED (emitted before the row goes: `data` is the account as it
  was);
- `session.revoked` ← SESSION_REVOKED; `data` is `{"user_id", "session_id", "scope",
  "reason"}` (`session_id` null when not one session). REFRESH_REUSE_DETECTED is not sent
  itself: the revocation it causes emits SESSION_REVOKED (reason `refresh_reuse`), and
  sending both would report one revocation twice.

For the user events `data` is the user object as `GET /api/v1/me` shows it (with `mfa`),
as it stands in the transaction at the moment of the event. A user the session no longer
holds (an event emitted after a deletion) is sent as `{"id": …}` only. Other events (failed
sign-ins, codes sent, refreshes, key rotation, imports) are not sent. WEBHOOK_EVENTS limits
the types written to the outbox at all.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from flask import Flask

from authserver import clock, events, mfa
from authserver.config import settings
from authserver.events import Event, EventType
from authserver.extensions import db
from authserver.models import User, WebhookOutbox
from authserver.schemas.responses import me_object

USER_CREATED = "user.created"
USER_SIGNED_IN = "user.signed_in"
USER_UPDATED = "user.updated"
USER_DELETED = "user.deleted"
SESSION_REVOKED = "session.revoked"

#: Internal event → webhook type; events not listed are not sent.
WEBHOOK_TYPES: dict[EventType, str] = {
    EventType.USER_CREATED: USER_CREATED,
    EventType.SIGNIN_SUCCEEDED: USER_SIGNED_IN,
    EventType.USER_UPDATED: USER_UPDATED,
    EventType.EMAIL_CHANGED: USER_UPDATED,
    EventType.EMAIL_VERIFIED: USER_UPDATED,
    EventType.PHONE_CHANGED: USER_UPDATED,
    EventType.PASSWORD_CHANGED: USER_UPDATED,
    EventType.ROLE_ADDED: USER_UPDATED,
    EventType.ROLE_REMOVED: USER_UPDATED,
    EventType.USER_DISABLED: USER_UPDATED,
    EventType.USER_ENABLED: USER_UPDATED,
    EventType.MFA_ENROLLED: USER_UPDATED,
    EventType.MFA_DISABLED: USER_UPDATED,
    EventType.MFA_RESET: USER_UPDATED,
    EventType.RECOVERY_CODES_REGENERATED: USER_UPDATED,
    EventType.USER_DELETED: USER_DELETED,
    EventType.SESSION_REVOKED: SESSION_REVOKED,
}


def init_app(app: Flask) -> None:
    """Listen to the app's events when it has somewhere to send them."""
    if app.config.get("WEBHOOK_URL"):
        events.listen(app, sink)


def new_event_id() -> str:
    """The `webhook-id`: random, unique, the same on every attempt."""
    return "msg_" + secrets.token_hex(16)


def sink(event: Event) -> None:
    """Add the event's outbox row to the caller's transaction (when it is sent at all)."""
    kind = WEBHOOK_TYPES.get(event.type)
    if kind is None or event.user_id is None or kind not in settings().webhook_events:
        return
    now = clock.now()
    body = {"type": kind, "timestamp": _iso(now), "data": _data(kind, event)}
    db.session.add(WebhookOutbox(
        event_id=new_event_id(), type=kind,
        payload=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        created_at=now, attempts=0, next_attempt_at=now))


def _data(kind: str, event: Event) -> dict[str, Any]:
    assert event.user_id is not None  # sink's check
    if kind == SESSION_REVOKED:
        return {"user_id": event.user_id, "session_id": event.detail.get("session_id"),
                "scope": event.detail.get("scope"), "reason": event.detail.get("reason")}
    return user_data(event.user_id)


def user_data(user_id: str) -> dict[str, Any]:
    """The user object as `GET /api/v1/me` shows it, from the caller's session."""
    user = db.session.get(User, user_id)
    if user is None:
        return {"id": user_id}
    return me_object(user, mfa.status(user.id)).model_dump(mode="json")


def _iso(moment: Any) -> str:
    return str(moment.isoformat().replace("+00:00", "Z"))
