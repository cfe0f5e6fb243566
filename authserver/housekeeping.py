"""Deleting what can no longer be used: expired codes, links, hand-offs, cooldowns, sessions,
refresh tokens rotated long ago, and audit events older than AUDIT_RETENTION_DAYS.

Nothing on the sign-in path depends on this running; it keeps the tables small. Run it from
cron or a scheduler: `flask --app authserver prune`.

Every table is emptied in batches (`batch_size` rows, 1,000 by default): the keys of one batch
are read without locking, then deleted by primary key and committed at once, so no statement
locks more than a batch of rows or runs for long, and sign-ins and refreshes touching the
same tables wait at most one small batch. The next batch starts after the last key, so a
large backlog is walked once, not rescanned per batch.

Rotated refresh tokens: a session keeps the row of every token it ever rotated, because a
replay of one is how theft is seen (sessions.rotate revokes the session). Kept for the whole
session (30 days by default) they are most of the largest table. `prune` deletes a rotated
token once `REFRESH_TOKEN_HISTORY` (7 days by default, never less than REFRESH_REUSE_GRACE)
has passed since its rotation. The cost: a token rotated longer ago than that is unknown
when replayed, and answers 401 invalid_token without revoking its session. That matters in
one case — a thief refreshes first with a stolen token and the owner, whose copy it was,
comes back only after the window: the owner is asked to sign in again, and the thief's
session lives on until it expires or is revoked (it still shows in the owner's session list
and under "sign out everywhere"). Set REFRESH_TOKEN_HISTORY to REFRESH_TOKEN_TTL to keep
every rotated token for its session's life, as before. A session's current (unrotated)
token is never deleted here; it goes with its session.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, delete, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from authserver import clock
from authserver.config import settings
from authserver.extensions import db
from authserver.models import (
    AuditEvent,
    HandoffCode,
    OneTimeCode,
    RefreshToken,
    SendCooldown,
    Session,
    WebhookOutbox,
)

log = logging.getLogger("authserver.housekeeping")

BATCH_SIZE = 1000


def _delete_in_batches(model: type[Any], key: InstrumentedAttribute[Any],
                       condition: ColumnElement[bool], batch_size: int) -> int:
    """Delete the rows of `model` matching `condition`, `batch_size` at a time, each batch
    its own transaction; returns how many went."""
    deleted = 0
    after: Any = None
    while True:
        query = select(key).where(condition).order_by(key).limit(batch_size)
        if after is not None:
            query = query.where(key > after)
        keys = list(db.session.scalars(query))
        if not keys:
            break
        # The condition again: a row that changed since it was read stays.
        result = db.session.execute(delete(model).where(key.in_(keys), condition))
        db.session.commit()
        count = int(result.rowcount) if isinstance(result, CursorResult) else 0
        deleted += count
        log.debug("pruned %s: batch of %d", model.__tablename__, count)
        if len(keys) < batch_size:
            break
        after = keys[-1]
    return deleted


def prune(keep_days: int = 7, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Delete rows expired (or revoked) more than `keep_days` ago, and refresh tokens rotated
    longer ago than REFRESH_TOKEN_HISTORY; returns counts per table. Commits per batch.

    The margin keeps recent history for support questions ("did my code arrive?").
    """
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    now = clock.now()
    cutoff = now - timedelta(days=keep_days)
    config = settings()
    history = timedelta(seconds=max(config.refresh_token_history, config.refresh_reuse_grace))
    counts: dict[str, int] = {}
    for name, model, key, condition in (
        ("one_time_codes", OneTimeCode, OneTimeCode.id, OneTimeCode.expires_at < cutoff),
        ("handoff_codes", HandoffCode, HandoffCode.id, HandoffCode.expires_at < cutoff),
        ("send_cooldowns", SendCooldown, SendCooldown.key,
         SendCooldown.next_allowed_at < cutoff),
        # Only rotated ones: a session's current token goes with its session.
        ("refresh_tokens", RefreshToken, RefreshToken.id,
         RefreshToken.rotated_at < now - history),
        # The rest of a session's refresh tokens go with it (ON DELETE CASCADE).
        ("sessions", Session, Session.id,
         or_(Session.expires_at < cutoff, Session.revoked_at < cutoff)),
        # Webhook events delivered or given up (a pending one is never deleted).
        ("webhook_outbox", WebhookOutbox, WebhookOutbox.id,
         or_(WebhookOutbox.delivered_at < cutoff, WebhookOutbox.failed_at < cutoff)),
    ):
        counts[name] = _delete_in_batches(model, key, condition, batch_size)
    # The audit trail keeps AUDIT_RETENTION_DAYS, whatever `keep_days` says (0: forever).
    if config.audit_retention_days > 0:
        counts["audit_events"] = _delete_in_batches(
            AuditEvent, AuditEvent.id,
            AuditEvent.created_at < now - timedelta(days=config.audit_retention_days),
            batch_size)
    return counts
