"""The webhook outbox: one row per event to send to WEBHOOK_URL (see authserver/webhooks.py).

A row is added in the transaction of the change it reports, so it exists exactly when the
change committed. The delivery worker (authserver/webhook_delivery.py) claims due rows by
moving `next_attempt_at` forward by a lease and stamping `claimed_by`; a row is

- pending while `delivered_at` and `failed_at` are NULL and `next_attempt_at` is set (due
  when it is in the past: new, a retry whose back-off ran out, or a claim whose worker died),
- delivered once `delivered_at` is set (by one conditional UPDATE: at most once),
- given up once `failed_at` is set (undelivered after WEBHOOK_MAX_AGE; `next_attempt_at`
  is then NULL, so the worker's pick never sees it again).

`payload` is the exact JSON body sent (and signed) on every attempt; `event_id` is the
`webhook-id` header, stable across retries so receivers can drop a repeat.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from authserver.models.base import TABLE_OPTIONS, Model, UTCDateTime

#: SQLite gives only an INTEGER PRIMARY KEY an automatic rowid value.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class WebhookOutbox(Model):
    __tablename__ = "webhook_outbox"
    __table_args__ = (
        Index("ix_webhook_outbox_pick", "delivered_at", "next_attempt_at"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The claim (a random token per batch) that last took the row; only it records a failure.
    claimed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Short and never secret: "HTTP 500", "ConnectionError", "Timeout".
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
