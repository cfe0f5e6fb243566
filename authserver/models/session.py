"""Sessions (what logout and revocation act on) and their rotating refresh tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from authserver import clock
from authserver.models.base import TABLE_OPTIONS, Model, UTCDateTime, time_ordered_id

# SQLite only auto-increments INTEGER PRIMARY KEY; MySQL gets a BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Session(Model):
    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_user_id_revoked_at", "user_id", "revoked_at"),
        TABLE_OPTIONS,
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=time_ordered_id)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    amr: Mapped[str] = mapped_column(String(64))  # space-separated methods, e.g. "pwd" or "sms"
    client: Mapped[str] = mapped_column(String(16), default="api")  # "api" or "web"
    user_agent: Mapped[str | None] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    # When the holder proved who they are: the sign-in that opened this session, or, for an
    # app's session handed over from a signed-in browser, that browser's sign-in. None on
    # rows from before it was kept (see `authenticated_at`).
    auth_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(32))

    @property
    def authenticated_at(self) -> datetime:
        """When the holder last proved who they are (the access tokens' `auth_time`)."""
        return self.auth_time or self.created_at

    @property
    def amr_list(self) -> list[str]:
        return self.amr.split()

    def is_active(self, at: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > at


class RefreshToken(Model):
    __tablename__ = "refresh_tokens"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of the token: the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("refresh_tokens.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
