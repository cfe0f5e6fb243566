"""Deleting what can no longer be used: expired codes, links, hand-offs, cooldowns, sessions.

Nothing on the sign-in path depends on this running; it keeps the tables small. Run it from
cron or a scheduler: `flask --app authserver prune`, which commits once at the end.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_

from authserver import clock
from authserver.extensions import db
from authserver.models import HandoffCode, OneTimeCode, SendCooldown, Session


def prune(keep_days: int = 7) -> dict[str, int]:
    """Delete rows expired (or revoked) more than `keep_days` ago; returns counts per table.

    The margin keeps recent history for support questions ("did my code arrive?").
    """
    cutoff = clock.now() - timedelta(days=keep_days)
    counts = {}
    for name, statement in (
        ("one_time_codes", delete(OneTimeCode).where(OneTimeCode.expires_at < cutoff)),
        ("handoff_codes", delete(HandoffCode).where(HandoffCode.expires_at < cutoff)),
        ("send_cooldowns",
         delete(SendCooldown).where(SendCooldown.next_allowed_at < cutoff)),
        # Refresh tokens go with their session (ON DELETE CASCADE).
        ("sessions", delete(Session).where(or_(Session.expires_at < cutoff,
                                               Session.revoked_at < cutoff))),
    ):
        counts[name] = int(db.session.execute(statement).rowcount)  # type: ignore[attr-defined]
    return counts
