"""webhooks.py: events become outbox rows in the caller's transaction, filtered and shaped
as documented; the settings that turn it on are checked at start."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime

import pytest
from sqlalchemy import delete, func, select

from authserver import accounts, config, events
from authserver.events import Event, EventType, Method
from authserver.extensions import db
from authserver.models import User, WebhookOutbox

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
WEBHOOKS = {"WEBHOOK_URL": "http://127.0.0.1:9/hooks", "WEBHOOK_SECRET": SECRET}


@pytest.fixture
def config_overrides():
    return dict(WEBHOOKS)


def _rows() -> list[WebhookOutbox]:
    return list(db.session.scalars(select(WebhookOutbox).order_by(WebhookOutbox.id)))


def _clear() -> None:
    db.session.execute(delete(WebhookOutbox))
    db.session.commit()


def test_user_event_carries_the_user_object_as_me_shows_it(app, client, signup, clock):
    clock.travel(3600)  # the payload's timestamp is the server's clock
    tokens = signup("ada@example.com")
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    _clear()
    user_id = tokens["user"]["id"]
    with app.test_request_context("/"):
        events.emit(Event(EventType.SIGNIN_SUCCEEDED, user_id=user_id, method=Method.PASSWORD))
        db.session.commit()
    [row] = _rows()
    body = json.loads(row.payload)
    assert list(body) == ["type", "timestamp", "data"]
    assert body["type"] == row.type == "user.signed_in"
    assert body["data"] == me.get_json()
    assert body["timestamp"].endswith("Z")
    sent_at = datetime.fromisoformat(body["timestamp"])
    assert abs((clock.now() - sent_at).total_seconds()) < 5
    assert sent_at == row.created_at
    assert row.event_id.startswith("msg_") and len(row.event_id) == 36
    assert row.attempts == 0 and row.delivered_at is None and row.next_attempt_at is not None
    assert "password" not in row.payload


def test_the_row_commits_and_rolls_back_with_the_change(app):
    user = accounts.create(email="bob@example.com")
    db.session.commit()
    _clear()
    user.name = "Bob"
    events.emit(Event(EventType.USER_UPDATED, user_id=user.id))
    db.session.rollback()
    assert _rows() == []
    assert db.session.get(User, user.id).name is None

    user.name = "Bob"
    events.emit(Event(EventType.USER_UPDATED, user_id=user.id))
    db.session.commit()
    [row] = _rows()
    assert json.loads(row.payload)["data"]["name"] == "Bob"  # as the transaction has it


def test_every_user_change_is_user_updated_and_sign_ins_created_and_deleted(app):
    user = accounts.create(email="cy@example.com")
    db.session.commit()
    _clear()
    expected = {
        EventType.USER_CREATED: "user.created",
        EventType.SIGNIN_SUCCEEDED: "user.signed_in",
        EventType.EMAIL_CHANGED: "user.updated",
        EventType.EMAIL_VERIFIED: "user.updated",
        EventType.PHONE_CHANGED: "user.updated",
        EventType.PASSWORD_CHANGED: "user.updated",
        EventType.ROLE_ADDED: "user.updated",
        EventType.ROLE_REMOVED: "user.updated",
        EventType.USER_DISABLED: "user.updated",
        EventType.USER_ENABLED: "user.updated",
        EventType.MFA_ENROLLED: "user.updated",
        EventType.MFA_DISABLED: "user.updated",
        EventType.MFA_RESET: "user.updated",
        EventType.RECOVERY_CODES_REGENERATED: "user.updated",
        EventType.USER_DELETED: "user.deleted",
    }
    for kind in expected:
        events.emit(Event(kind, user_id=user.id))
    # Not sent: failures, codes, refreshes, keys, imports; nor an event about nobody.
    for kind in (EventType.SIGNIN_FAILED, EventType.CODE_SENT, EventType.REFRESHED,
                 EventType.KEY_ROTATED, EventType.USERS_IMPORTED, EventType.LINK_USED):
        events.emit(Event(kind, user_id=user.id))
    events.emit(Event(EventType.USER_CREATED))
    db.session.commit()
    rows = _rows()
    assert [row.type for row in rows] == list(expected.values())
    assert len({row.event_id for row in rows}) == len(rows)
    assert all(json.loads(row.payload)["data"]["id"] == user.id for row in rows)


def test_user_deleted_carries_the_account_as_it_was(app):
    user = accounts.create(email="del@example.com", name="Del")
    db.session.commit()
    _clear()
    events.emit(Event(EventType.USER_DELETED, user_id=user.id))
    db.session.delete(user)
    db.session.commit()
    [row] = _rows()
    data = json.loads(row.payload)["data"]
    assert (data["email"], data["name"], data["mfa"]) == (
        "del@example.com", "Del", {"totp": False, "recovery_codes_left": 0})
    # Emitted after the row went: the id alone.
    events.emit(Event(EventType.USER_DELETED, user_id=user.id))
    db.session.commit()
    assert json.loads(_rows()[-1].payload)["data"] == {"id": user.id}


def test_session_revoked_data(app):
    events.emit(Event(EventType.SESSION_REVOKED, user_id="u1",
                      detail={"scope": "others", "reason": "logout"}))
    events.emit(Event(EventType.SESSION_REVOKED, user_id="u1",
                      detail={"scope": "local", "reason": "logout", "session_id": "s1"}))
    events.emit(Event(EventType.SESSION_REVOKED, user_id="u1",
                      detail={"scope": "global", "reason": "disabled", "count": 2}))
    # The revocation a replayed refresh token causes is its own SESSION_REVOKED: not twice.
    events.emit(Event(EventType.REFRESH_REUSE_DETECTED, user_id="u1",
                      detail={"session_id": "s2"}))
    db.session.commit()
    assert [json.loads(row.payload)["data"] for row in _rows()] == [
        {"user_id": "u1", "session_id": None, "scope": "others", "reason": "logout"},
        {"user_id": "u1", "session_id": "s1", "scope": "local", "reason": "logout"},
        {"user_id": "u1", "session_id": None, "scope": "global", "reason": "disabled"},
    ]
    assert {row.type for row in _rows()} == {"session.revoked"}


@pytest.mark.parametrize("config_overrides",
                         [{**WEBHOOKS, "WEBHOOK_EVENTS": "user.deleted, session.revoked"}])
def test_webhook_events_chooses_the_types(app):
    user = accounts.create(email="f@example.com")
    db.session.commit()
    _clear()
    for kind in (EventType.USER_CREATED, EventType.SIGNIN_SUCCEEDED, EventType.USER_UPDATED,
                 EventType.USER_DELETED, EventType.SESSION_REVOKED):
        events.emit(Event(kind, user_id=user.id))
    db.session.commit()
    assert [row.type for row in _rows()] == ["user.deleted", "session.revoked"]


@pytest.mark.parametrize("config_overrides", [{}])
def test_without_webhook_url_nothing_is_written(app):
    user = accounts.create(email="n@example.com")
    events.emit(Event(EventType.USER_CREATED, user_id=user.id))
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(WebhookOutbox)) == 0


@pytest.mark.parametrize(("overrides", "message"), [
    ({"WEBHOOK_URL": "https://hooks.example.test/in"}, "WEBHOOK_SECRET: required"),
    ({"WEBHOOK_URL": "ftp://hooks.example.test/", "WEBHOOK_SECRET": SECRET},
     "WEBHOOK_URL: expected an absolute http(s) URL"),
    ({"WEBHOOK_SECRET": "whsec_not base64!"}, "WEBHOOK_SECRET: whsec_ must be followed"),
    ({"WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"short").decode()},
     "WEBHOOK_SECRET: expected whsec_ and the base64 of 24 to 64 bytes"),
    ({"WEBHOOK_SECRET": "too-short-raw-secret"}, "WEBHOOK_SECRET: use at least 32"),
    ({"WEBHOOK_EVENTS": "user.created,user.exploded"},
     "WEBHOOK_EVENTS: unknown event type 'user.exploded'"),
    ({"WEBHOOK_TIMEOUT": "0"}, "WEBHOOK_TIMEOUT: expected seconds between 0 and 60"),
    ({"WEBHOOK_MAX_AGE": "10"}, "WEBHOOK_MAX_AGE: expected seconds between 60"),
])
def test_bad_webhook_settings_stop_the_start(tmp_path, overrides, message):
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.load({"SECRET_KEY": "k" * 40, **overrides}, str(tmp_path), environ={})


def test_good_webhook_settings(tmp_path):
    loaded = config.load({"SECRET_KEY": "k" * 40, "WEBHOOK_URL": "https://h.example.test/x",
                          "WEBHOOK_SECRET": "r" * 32}, str(tmp_path),
                         environ={"WEBHOOK_EVENTS": "user.created"})
    assert loaded.webhook_events == ["user.created"]
    default = config.load({"SECRET_KEY": "k" * 40}, str(tmp_path), environ={})
    assert default.webhook_url == "" and default.webhook_events == list(
        config.WEBHOOK_EVENT_TYPES)
