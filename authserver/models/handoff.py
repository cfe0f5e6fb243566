"""One-time codes that hand a web sign-in over to a client app (redirect_to?code=...)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from authserver import clock
from authserver.models.base import TABLE_OPTIONS, Model, UTCDateTime
from authserver.models.session import BigId


class HandoffCode(Model):
    __tablename__ = "handoff_codes"
    __table_args__ = TABLE_OPTIONS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # None when the code stands for a mailed link not yet used (an app's PKCE link): the
    # exchange uses the link and finds or creates its owner then.
    user_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    challenge_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("one_time_codes.id", ondelete="CASCADE"), index=True
    )
    amr: Mapped[str] = mapped_column(String(64))
    redirect_to: Mapped[str] = mapped_column(String(2048))
    code_challenge: Mapped[str | None] = mapped_column(String(128))  # PKCE S256
    # The sign-in time of the browser session a signed-in hand-off came from (None: the
    # sign-in happened just now); the app's session keeps it.
    auth_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
