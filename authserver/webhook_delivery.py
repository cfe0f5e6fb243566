"""Sending the webhook outbox (authserver/webhooks.py fills it) to WEBHOOK_URL.

At least once, never lost, never twice at once:

- **Claim, then send outside any transaction.** A worker claims up to `batch_size` due rows
  in one short transaction: on MySQL/MariaDB `SELECT … FOR UPDATE SKIP LOCKED` (rows another
  worker is claiming at that instant are skipped, not waited for), then one UPDATE moves
  their `next_attempt_at` forward by a lease and stamps `claimed_by` with a random token; on
  SQLite (one writer at a time anyway) a single `UPDATE … WHERE id IN (SELECT … LIMIT n)`
  does the same. The transaction commits before the first HTTP request, so no row lock or
  transaction is held while a receiver is slow. A claimed row is not due until its lease
  ends, so a second worker never picks it while the first is sending it.
- **The lease is the crash safety.** A worker killed mid-batch leaves its rows claimed;
  their lease (`batch_size * (WEBHOOK_TIMEOUT + 1) + 30` seconds) runs out and any worker
  picks them again (the 30 s margin also absorbs clock skew between worker hosts). A
  worker checks before each send that the lease has more than WEBHOOK_TIMEOUT left, and
  hands back the rest of its batch (due at once) when it stops early (SIGTERM, lease
  running out).
- **Marked once.** A 2xx answer sets `delivered_at` with `UPDATE … WHERE delivered_at IS
  NULL`; anything else (a status, a refused connection, a timeout) counts an attempt and
  schedules the next at `min(1 h, 5 s · 2^(attempts-1))`, times a random factor between 0.5
  and 1 (jitter, so a receiver coming back is not hit by every event at once), never later
  than WEBHOOK_MAX_AGE after the event; an event still undelivered then is given up
  (`failed_at`, logged). Only the claim that took a row records its failure.
- **Stable ids.** `webhook-id` is the row's `event_id` on every attempt, so a receiver drops
  the rare repeat (a worker killed after the receiver answered 2xx but before the row was
  marked; a receiver slower than the lease).

Signatures follow Standard Webhooks: headers `webhook-id`, `webhook-timestamp` (Unix
seconds of the attempt) and `webhook-signature` = `v1,` + base64(HMAC-SHA256(key,
"{id}.{timestamp}.{body}")), the key being the bytes after `whsec_` base64-decoded, or a raw
secret's UTF-8 bytes. The body is the stored payload, byte for byte, on every attempt.
Logs name the event id, type and outcome; never the body, the secret or a signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from sqlalchemy import select, update

from authserver import clock
from authserver.config import settings
from authserver.extensions import db
from authserver.models import WebhookOutbox

log = logging.getLogger("authserver.webhooks")

BATCH_SIZE = 20
BACKOFF_BASE = 5.0  # seconds before the second attempt (before jitter)
BACKOFF_CAP = 3600.0  # the longest wait between two attempts (before jitter)
LEASE_MARGIN = 30.0
_random = secrets.SystemRandom()


@dataclass
class Report:
    delivered: int = 0
    retrying: int = 0
    given_up: int = 0


@dataclass(frozen=True)
class _Claimed:
    id: int
    event_id: str
    type: str
    payload: str
    created_at: datetime
    attempts: int


def signing_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (Standard Webhooks), or of a raw one."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode("utf-8")


def sign(key: bytes, event_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header's value."""
    digest = hmac.new(key, f"{event_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def lease_seconds(batch_size: int) -> float:
    return batch_size * (settings().webhook_timeout + 1) + LEASE_MARGIN


def backoff(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt, jitter included."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempts - 1, 30))
    return delay * _random.uniform(0.5, 1.0)


def deliver_due(batch_size: int = BATCH_SIZE, stop: threading.Event | None = None) -> Report:
    """Send every event due now, a batch at a time, until none is due (or `stop` is set)."""
    report = Report()
    while stop is None or not stop.is_set():
        token, rows = claim(batch_size)
        if not rows:
            break
        _send_batch(token, rows, batch_size, report, stop)
    return report


def claim(batch_size: int) -> tuple[str, list[_Claimed]]:
    """Take up to `batch_size` due rows for one lease, in a short transaction of its own."""
    now = clock.now()
    token = secrets.token_hex(16)
    lease_end = now + timedelta(seconds=lease_seconds(batch_size))
    due = (WebhookOutbox.delivered_at.is_(None), WebhookOutbox.next_attempt_at <= now)
    pick = (select(WebhookOutbox.id).where(*due)
            .order_by(WebhookOutbox.next_attempt_at, WebhookOutbox.id).limit(batch_size))
    try:
        if db.session.get_bind().dialect.name == "sqlite":
            ids: list[int] | None = None
            condition = WebhookOutbox.id.in_(pick.scalar_subquery())
        else:
            ids = list(db.session.scalars(pick.with_for_update(skip_locked=True)))
            condition = WebhookOutbox.id.in_(ids)
        if ids != []:
            db.session.execute(
                update(WebhookOutbox).where(condition, *due)
                .values(next_attempt_at=lease_end, claimed_by=token)
                .execution_options(synchronize_session=False))
        db.session.commit()
        rows = [_Claimed(*row) for row in db.session.execute(
            select(WebhookOutbox.id, WebhookOutbox.event_id, WebhookOutbox.type,
                   WebhookOutbox.payload, WebhookOutbox.created_at, WebhookOutbox.attempts)
            .where(WebhookOutbox.claimed_by == token, WebhookOutbox.delivered_at.is_(None))
            .order_by(WebhookOutbox.id))]
        db.session.commit()  # nothing stays open while the receiver is called
    except BaseException:
        db.session.rollback()
        raise
    return token, rows


def _send_batch(token: str, rows: list[_Claimed], batch_size: int, report: Report,
                stop: threading.Event | None) -> None:
    lease_end = clock.now() + timedelta(seconds=lease_seconds(batch_size) - LEASE_MARGIN / 2)
    timeout = settings().webhook_timeout
    for index, row in enumerate(rows):
        if (stop is not None and stop.is_set()) \
                or clock.now() + timedelta(seconds=timeout) >= lease_end:
            _release(token, [r.id for r in rows[index:]])
            return
        error = send(row.event_id, row.payload)
        if error is None:
            _delivered(row)
            report.delivered += 1
        elif _failed(token, row, error):
            report.given_up += 1
        else:
            report.retrying += 1


def send(event_id: str, payload: str) -> str | None:
    """POST one event; None when the receiver answered 2xx, else a short, secret-free reason."""
    config = settings()
    timestamp = clock.timestamp()
    headers = {
        "content-type": "application/json",
        "user-agent": f"{config.app_name}-webhooks",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(signing_key(config.webhook_secret), event_id, timestamp,
                                  payload),
    }
    try:
        with requests.post(config.webhook_url, data=payload.encode("utf-8"), headers=headers,
                           timeout=config.webhook_timeout, allow_redirects=False,
                           stream=True) as response:
            status = response.status_code
    except requests.Timeout:
        return "timeout"
    except requests.ConnectionError:
        return "connection failed"
    except requests.RequestException as exc:
        return type(exc).__name__
    return None if 200 <= status < 300 else f"HTTP {status}"


def _delivered(row: _Claimed) -> None:
    """Mark the row delivered, once: a second marking (a repeat send) changes nothing."""
    now = clock.now()
    try:
        result = db.session.execute(
            update(WebhookOutbox)
            .where(WebhookOutbox.id == row.id, WebhookOutbox.delivered_at.is_(None))
            .values(delivered_at=now, next_attempt_at=None, attempts=WebhookOutbox.attempts + 1,
                    last_error=None)
            .execution_options(synchronize_session=False))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    if result.rowcount:  # type: ignore[attr-defined]
        log.info("webhook %s (%s) delivered", row.event_id, row.type)


def _failed(token: str, row: _Claimed, error: str) -> bool:
    """Count a failed attempt and schedule the next, or give up; True when given up."""
    now = clock.now()
    attempts = row.attempts + 1
    deadline = row.created_at + timedelta(seconds=settings().webhook_max_age)
    give_up = now >= deadline
    values: dict[str, object] = {"attempts": attempts, "last_error": error[:200]}
    if give_up:
        values.update(next_attempt_at=None, failed_at=now)
    else:
        values["next_attempt_at"] = min(now + timedelta(seconds=backoff(attempts)), deadline)
    try:
        result = db.session.execute(
            update(WebhookOutbox)
            .where(WebhookOutbox.id == row.id, WebhookOutbox.delivered_at.is_(None),
                   WebhookOutbox.claimed_by == token)
            .values(**values).execution_options(synchronize_session=False))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    if not result.rowcount:  # type: ignore[attr-defined]
        return False  # delivered meanwhile, or re-claimed after our lease ran out
    if give_up:
        log.warning("webhook %s (%s) given up after %d attempts: %s", row.event_id, row.type,
                    attempts, error)
    else:
        log.info("webhook %s (%s) attempt %d failed: %s; retrying", row.event_id, row.type,
                 attempts, error)
    return give_up


def _release(token: str, ids: list[int]) -> None:
    """Hand back claimed rows not sent (due again at once)."""
    if not ids:
        return
    try:
        db.session.execute(
            update(WebhookOutbox)
            .where(WebhookOutbox.id.in_(ids), WebhookOutbox.claimed_by == token,
                   WebhookOutbox.delivered_at.is_(None))
            .values(next_attempt_at=clock.now())
            .execution_options(synchronize_session=False))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def run(stop: threading.Event, interval: float = 1.0, batch_size: int = BATCH_SIZE) -> None:
    """Deliver until `stop` is set, looking for due events every `interval` seconds. A
    database or network outage is logged and waited out."""
    log.info("webhook worker started")
    while not stop.is_set():
        try:
            deliver_due(batch_size, stop)
        except Exception as exc:  # the worker outlives an outage
            log.warning("webhook delivery failed: %s", type(exc).__name__)
            db.session.remove()
        stop.wait(interval)
    log.info("webhook worker stopped")
