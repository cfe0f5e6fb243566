"""Webhooks from real requests: the flows' events (events.py) reach a receiver on 127.0.0.1
signed, in the documented shapes, once each."""

from __future__ import annotations

import pytest

from authserver import webhook_delivery
from tests.conftest import PASSWORD
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.test_webhook_delivery import SECRET


@pytest.fixture
def receiver():
    with WebhookReceiver(SECRET) as running:
        yield running


@pytest.fixture
def config_overrides(receiver):
    return {"WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": SECRET}


def _bearer(tokens):
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _delivered(receiver):
    report = webhook_delivery.deliver_due()
    assert report.retrying == report.given_up == 0
    assert receiver.rejected == []
    return [(event.body["type"], event.body["data"]) for event in receiver.events]


def test_sign_up_sign_in_revocation_and_deletion_arrive_signed(app, client, receiver, clock):
    tokens = client.post("/api/v1/signup",
                         json={"email": "ada@example.com", "password": PASSWORD}).get_json()
    me = client.get("/api/v1/me", headers=_bearer(tokens)).get_json()
    user_id = me["id"]
    assert _delivered(receiver) == [("user.created", me), ("user.signed_in", me)]

    # A wrong password, a refresh: nothing sent.
    assert client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                "password": "wrong " + PASSWORD}
                       ).status_code == 401
    refreshed = client.post("/api/v1/token/refresh",
                            json={"refresh_token": tokens["refresh_token"]}).get_json()
    second = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                  "password": PASSWORD}).get_json()
    assert _delivered(receiver)[2:] == [("user.signed_in", me)]

    # A replayed refresh token (after REFRESH_REUSE_GRACE) ends its session: one
    # session.revoked, not two.
    clock.travel(11)
    assert client.post("/api/v1/token/refresh",
                       json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    [(kind, data)] = _delivered(receiver)[3:]
    assert kind == "session.revoked"
    assert data["user_id"] == user_id and data["scope"] == "local"
    assert data["reason"] == "refresh_reuse" and data["session_id"]
    assert client.get("/api/v1/me", headers=_bearer(refreshed)).status_code == 401

    # The account deleted: user.deleted with the account as it was.
    assert client.delete("/api/v1/me", headers=_bearer(second)).status_code == 204
    after = _delivered(receiver)[4:]
    assert ("user.deleted", me) in after
    assert [kind for kind, _ in after] == ["user.deleted", "session.revoked"]
    assert after[1][1]["scope"] == "global"

    ids = receiver.ids()
    assert len(ids) == len(set(ids)) == 6  # each event once
    assert webhook_delivery.deliver_due().delivered == 0


def test_a_change_arrives_as_user_updated_with_the_new_state(app, client, receiver):
    tokens = client.post("/api/v1/signup",
                         json={"email": "bo@example.com", "password": PASSWORD}).get_json()
    response = client.post("/api/v1/me/password", headers=_bearer(tokens),
                           json={"current_password": PASSWORD,
                                 "password": "another long passphrase here"})
    assert response.status_code == 204, response.get_json()
    kinds = [kind for kind, _ in _delivered(receiver)]
    assert kinds[:2] == ["user.created", "user.signed_in"]
    assert "user.updated" in kinds[2:]
