"""The audit trail: one row per security event (events.py), written in the transaction of the
action it records, so an action that rolls back leaves no row and a row means it happened.

`user_id` and `actor_id` are plain columns, not foreign keys: deleting an account must not
erase (or cascade into) its history, so a deleted user's rows stay, naming an id that no
longer resolves. AUDIT_RETENTION_DAYS (`flask prune`) is what removes rows.

Reads are keyset queries by id, newest first: everything (`id`), one user's (`user_id, id`),
one type's (`type, id`); retention deletes by `created_at`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from authserver.models.base import TABLE_OPTIONS, Model, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")

#: The longest user agent kept (longer ones are cut).
USER_AGENT_LENGTH = 255


class AuditEvent(Model):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_created_at_id", "created_at", "id"),
        Index("ix_audit_events_user_id_id", "user_id", "id"),
        Index("ix_audit_events_type_id", "type", "id"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    type: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(36))
    actor_id: Mapped[str | None] = mapped_column(String(36))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_LENGTH))
    method: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id,
                "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
                "type": self.type, "user_id": self.user_id, "actor_id": self.actor_id,
                "ip": self.ip, "user_agent": self.user_agent, "method": self.method,
                "outcome": self.outcome, "detail": self.detail or {}}
