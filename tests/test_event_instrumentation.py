"""The flows tell events.py what happened: a recording sink hears real sign-ins over the API.

Runs on SQLite and MySQL. The sink keeps every Event the app emits; each test drives a flow
through the test client and checks the types, users, methods and outcomes heard.
"""

from __future__ import annotations

from typing import Any

import pytest

from authserver import events
from authserver.events import Event, EventType, Method, Outcome
from tests.conftest import PASSWORD
from tests.flows.magic_helpers import last_mail
from tests.flows.sms_helpers import last_code, wrong_code
from tests.helpers import bearer

PHONE = "+16502530000"


@pytest.fixture
def heard(app: Any) -> list[Event]:
    recorded: list[Event] = []
    events.listen(app, recorded.append)
    return recorded


def _of(heard: list[Event], kind: EventType) -> list[Event]:
    return [event for event in heard if event.type is kind]


def test_password_sign_up_and_sign_in(client, heard):
    response = client.post("/api/v1/signup", json={"email": "ada@example.com",
                                                   "password": PASSWORD})
    assert response.status_code == 201
    user_id = response.get_json()["user"]["id"]
    [created] = _of(heard, EventType.USER_CREATED)
    assert (created.user_id, created.method, created.detail) == \
        (user_id, Method.PASSWORD, {"via": "signup"})
    [first] = _of(heard, EventType.SIGNIN_SUCCEEDED)
    assert (first.user_id, first.method, first.outcome) == \
        (user_id, Method.PASSWORD, Outcome.SUCCESS)

    response = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                   "password": PASSWORD})
    assert response.status_code == 200
    assert [e.user_id for e in _of(heard, EventType.SIGNIN_SUCCEEDED)] == [user_id, user_id]


def test_wrong_password_names_the_account_and_an_unknown_address_nobody(client, signup,
                                                                        heard):
    user_id = signup()["user"]["id"]
    heard.clear()
    assert client.post("/api/v1/signin", json={"email": "ada@example.com",
                                               "password": "wrong password 123"}
                       ).status_code == 401
    assert client.post("/api/v1/signin", json={"email": "nobody@example.com",
                                               "password": "wrong password 123"}
                       ).status_code == 401
    failed = _of(heard, EventType.SIGNIN_FAILED)
    assert [(e.user_id, e.method, e.outcome) for e in failed] == [
        (user_id, Method.PASSWORD, Outcome.WRONG_SECRET),
        (None, Method.PASSWORD, Outcome.WRONG_SECRET)]
    assert "nobody@example.com" not in repr(failed)


def test_sms_sign_in_creates_the_user_and_signs_in(app, client, heard):
    assert client.post("/api/v1/otp/request", json={"phone": PHONE}).status_code == 202
    [sent] = _of(heard, EventType.CODE_SENT)
    assert sent.outcome is Outcome.SENT
    assert sent.detail == {"purpose": "sign_in_sms", "channel": "sms"}
    code = last_code(app.config["OUTBOX_DIR"], PHONE)
    assert client.post("/api/v1/otp/verify", json={"phone": PHONE, "code": wrong_code(code)}
                       ).status_code == 401
    [failed] = _of(heard, EventType.SIGNIN_FAILED)
    assert (failed.user_id, failed.method, failed.outcome) == \
        (None, Method.SMS, Outcome.WRONG_SECRET)
    response = client.post("/api/v1/otp/verify", json={"phone": PHONE, "code": code})
    assert response.status_code == 200, response.get_json()
    user_id = response.get_json()["user"]["id"]
    [created] = _of(heard, EventType.USER_CREATED)
    assert (created.user_id, created.method) == (user_id, Method.SMS)
    [signed_in] = _of(heard, EventType.SIGNIN_SUCCEEDED)
    assert (signed_in.user_id, signed_in.method) == (user_id, Method.SMS)
    assert code not in repr(heard)


def test_email_link_and_email_code_sign_ins(app, client, heard):
    email = "grace@example.com"
    assert client.post("/api/v1/magic-link/request", json={"email": email}).status_code == 202
    token, code = last_mail(app.config["OUTBOX_DIR"], email)
    response = client.post("/api/v1/magic-link/verify", json={"token": token})
    assert response.status_code == 200, response.get_json()
    user_id = response.get_json()["user"]["id"]
    assert [(e.user_id, e.method) for e in _of(heard, EventType.SIGNIN_SUCCEEDED)] == \
        [(user_id, Method.EMAIL_LINK)]
    [used] = _of(heard, EventType.LINK_USED)
    assert (used.user_id, used.detail) == (user_id, {"purpose": "sign_in_email"})

    other = "hopper@example.com"
    assert client.post("/api/v1/magic-link/request", json={"email": other}).status_code == 202
    token, code = last_mail(app.config["OUTBOX_DIR"], other)
    response = client.post("/api/v1/magic-link/verify", json={"email": other, "code": code})
    assert response.status_code == 200, response.get_json()
    other_id = response.get_json()["user"]["id"]
    assert [(e.user_id, e.method) for e in _of(heard, EventType.SIGNIN_SUCCEEDED)] == \
        [(user_id, Method.EMAIL_LINK), (other_id, Method.EMAIL_CODE)]
    assert token not in repr(heard) and code not in repr(heard)


def test_refresh_reuse_and_logout(client, signup, heard, clock):
    tokens = signup()
    user_id = tokens["user"]["id"]
    refreshed = client.post("/api/v1/token/refresh",
                            json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    [event] = _of(heard, EventType.REFRESHED)
    assert (event.user_id, event.method, event.outcome) == \
        (user_id, Method.REFRESH, Outcome.SUCCESS)
    clock.travel(120)
    replay = client.post("/api/v1/token/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replay.status_code == 401
    [reuse] = _of(heard, EventType.REFRESH_REUSE_DETECTED)
    assert (reuse.user_id, reuse.outcome) == (user_id, Outcome.REUSE_DETECTED)
    [revoked] = _of(heard, EventType.SESSION_REVOKED)
    assert revoked.user_id == user_id
    assert revoked.detail["reason"] == "refresh_reuse" and revoked.detail["scope"] == "local"

    again = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                "password": PASSWORD}).get_json()
    heard.clear()
    assert client.post("/api/v1/logout", json={"scope": "global"},
                       headers=bearer(again["access_token"])).status_code in (200, 204)
    [revoked] = _of(heard, EventType.SESSION_REVOKED)
    assert (revoked.user_id, revoked.detail["scope"], revoked.detail["reason"]) == \
        (user_id, "global", "logout_global")
