"""GET /metrics over the test client: the Prometheus text format, METRICS_TOKEN, what moves
each metric, and no personal data in any label. (Several workers: tests/e2e/.)"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from authserver import events, metrics
from authserver.events import Event, EventType, Method, Outcome
from authserver.senders.gate import SendGate
from tests.conftest import PASSWORD
from tests.helpers import problem

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: Any, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.data[:300]
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_parse_and_hold_every_family(client, signup):
    signup()
    client.get("/healthz")
    samples = scrape(client)
    names = {name for name, _ in samples}
    assert "authserver_http_request_duration_seconds_bucket" in names
    assert "authserver_http_request_duration_seconds_count" in names
    assert value(samples, "authserver_active_sessions") == 1
    # Declared even before they first move: the families are in the exposition.
    body = client.get("/metrics").get_data(as_text=True)
    for family in ("authserver_signins_total", "authserver_codes_sent_total",
                   "authserver_refresh_total", "authserver_sender_duration_seconds"):
        assert f"# TYPE {family.removesuffix('_total')}" in body


@pytest.mark.parametrize("config_overrides", [{"METRICS_TOKEN": "scrape-token-0123456789"}])
def test_metrics_token_is_required_when_set(client):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"},
                    {"Authorization": "scrape-token-0123456789"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert problem(response)["code"] == "invalid_token"
        assert b"authserver_" not in response.data
    scrape(client, Authorization="Bearer scrape-token-0123456789")


def test_request_durations_are_labelled_by_route_template_not_raw_path(client, signup):
    token = signup()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    session_id = "0f0e0d0c-0b0a-0908-0706-050403020100"
    client.delete(f"/api/v1/me/sessions/{session_id}", headers=auth)
    client.get("/no/such/page/ada@example.com")
    samples = scrape(client)
    routes = {dict(labels).get("route") for name, labels in samples
              if name == "authserver_http_request_duration_seconds_count"}
    assert "/api/v1/me/sessions/<session_id>" in routes
    assert "/api/v1/signup" in routes and "unmatched" in routes
    assert not any(session_id in (route or "") or "@" in (route or "") for route in routes)
    count = value(samples, "authserver_http_request_duration_seconds_count",
                  route="/api/v1/signup", method="POST", status="2xx")
    assert count == pytest.approx(count) and count >= 1


def test_events_move_the_counters(app, client):
    before = scrape(client)
    with app.test_request_context("/"):
        for event in (
            Event(EventType.SIGNIN_SUCCEEDED, user_id="u1", method=Method.SMS),
            Event(EventType.SIGNIN_FAILED, method=Method.PASSWORD, outcome=Outcome.WRONG_SECRET),
            Event(EventType.SIGNIN_FAILED, method=Method.PASSWORD, outcome=Outcome.LOCKED),
            Event(EventType.MFA_REQUIRED, user_id="u1", method=Method.PASSWORD),
            Event(EventType.CODE_SENT, outcome=Outcome.SENT,
                  detail={"purpose": "sms_signin", "channel": "sms"}),
            Event(EventType.CODE_SENT, outcome=Outcome.FAILED,
                  detail={"purpose": "magic_link", "channel": "email"}),
            Event(EventType.REFRESHED, user_id="u1"),
            Event(EventType.REFRESH_REUSE_DETECTED, user_id="u1"),
        ):
            events.emit(event)
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("authserver_signins_total", method="sms", outcome="success") == 1
    assert moved("authserver_signins_total", method="password", outcome="wrong_secret") == 1
    assert moved("authserver_signins_total", method="password", outcome="locked") == 1
    assert moved("authserver_signins_total", method="password", outcome="mfa_required") == 1
    assert moved("authserver_codes_sent_total", channel="sms", outcome="sent") == 1
    assert moved("authserver_codes_sent_total", channel="email", outcome="failed") == 1
    assert moved("authserver_refresh_total", outcome="success") == 1
    assert moved("authserver_refresh_total", outcome="reuse_detected") == 1


def test_a_label_never_takes_free_text_from_an_event(app, client):
    with app.test_request_context("/"):
        events.emit(Event(EventType.CODE_SENT, outcome=Outcome.SENT,
                          detail={"channel": "+16505550000"}))
    body = client.get("/metrics").get_data(as_text=True)
    assert "+16505550000" not in body and "16505550000" not in body
    assert 'authserver_codes_sent_total{channel="other",outcome="sent"}' in body


def test_an_unknown_refresh_token_counts_as_invalid(client):
    before = scrape(client)
    response = client.post("/api/v1/token/refresh", json={"refresh_token": "x" * 40})
    assert response.status_code == 401
    after = scrape(client)
    assert (value(after, "authserver_refresh_total", outcome="invalid")
            - value(before, "authserver_refresh_total", outcome="invalid")) == 1


def test_a_real_refresh_counts_success_not_invalid(client, signup):
    refresh_token = signup()["refresh_token"]
    before = scrape(client)
    assert client.post("/api/v1/token/refresh",
                       json={"refresh_token": refresh_token}).status_code == 200
    after = scrape(client)
    assert (value(after, "authserver_refresh_total", outcome="invalid")
            == value(before, "authserver_refresh_total", outcome="invalid"))
    assert (value(after, "authserver_http_request_duration_seconds_count",
                  route="/api/v1/token/refresh", method="POST", status="2xx")
            - value(before, "authserver_http_request_duration_seconds_count",
                    route="/api/v1/token/refresh", method="POST", status="2xx")) == 1


def test_every_send_is_timed_by_channel(client):
    before = scrape(client)
    response = client.post("/api/v1/magic-link/request", json={"email": "ada@example.com"})
    assert response.status_code in (200, 202), response.get_json()
    after = scrape(client)
    assert (value(after, "authserver_sender_duration_seconds_count", channel="email")
            - value(before, "authserver_sender_duration_seconds_count", channel="email")) == 1


def test_the_gate_times_a_call_that_fails_too():
    timed: list[str] = []
    gate = SendGate("sms", 1, timer=lambda channel: lambda: timed.append(channel))
    with pytest.raises(RuntimeError), gate.slot():
        raise RuntimeError("provider down")
    assert timed == ["sms"]


def test_active_sessions_are_counted_cheaply_and_follow_sign_out(app, client, signup,
                                                                 monkeypatch):
    token = signup()["access_token"]
    signup("bo@example.com")
    assert value(scrape(client), "authserver_active_sessions") == 2
    client.post("/api/v1/logout", headers={"Authorization": f"Bearer {token}"})
    # Cached for a few seconds: the next scrape may still say 2, without a query.
    assert value(scrape(client), "authserver_active_sessions") == 2
    monkeypatch.setattr(metrics, "ACTIVE_SESSIONS_TTL", 0.0)
    app.extensions.pop("authserver.metrics.active_sessions", None)
    assert value(scrape(client), "authserver_active_sessions") == 1


def test_no_label_holds_an_address_a_phone_or_a_user_id(client, signup):
    user = signup()
    client.post("/api/v1/signin", json={"email": "ada@example.com", "password": "wrong" * 4})
    client.post("/api/v1/signin", json={"email": "ada@example.com", "password": PASSWORD})
    client.post("/api/v1/otp/request", json={"phone": "+16505550123"})
    client.get(f"/api/v1/admin/users/{user['access_token'][:10]}/roles")
    body = client.get("/metrics").get_data(as_text=True)
    labels = "\n".join(line for line in body.splitlines() if not line.startswith("#"))
    for secret in ("ada@example.com", "@", "6505550123", user["access_token"][:10],
                   user["refresh_token"][:10]):
        assert secret not in labels, secret


def test_metrics_is_documented_like_healthz(client):
    document = client.get("/openapi.json").get_json()
    operation = document["paths"]["/metrics"]["get"]
    assert operation["tags"] == ["meta"]
    assert "401" in operation["responses"]


# -- real sign-ins (the flows' events, branch audit) ------------------------------------------
def test_real_sign_ins_of_each_kind_move_signins_total(app, client, clock):
    from tests.flows.magic_helpers import last_mail
    from tests.flows.sms_helpers import last_code

    outbox = app.config["OUTBOX_DIR"]
    email, phone = "ada@example.com", "+16502530000"
    before = scrape(client)
    assert client.post("/api/v1/signup", json={"email": email, "password": PASSWORD}
                       ).status_code == 201
    assert client.post("/api/v1/signin", json={"email": email, "password": "Wrong-horse-9" * 2}
                       ).status_code == 401
    assert client.post("/api/v1/signin", json={"email": email, "password": PASSWORD}
                       ).status_code == 200
    assert client.post("/api/v1/otp/request", json={"phone": phone}).status_code == 202
    assert client.post("/api/v1/otp/verify", json={"phone": phone,
                                                   "code": last_code(outbox, phone)}
                       ).status_code == 200
    assert client.post("/api/v1/magic-link/request", json={"email": email}).status_code == 202
    token, _ = last_mail(outbox, email)
    assert client.post("/api/v1/magic-link/verify", json={"token": token}).status_code == 200
    clock.travel(60)  # past the resend cooldown
    assert client.post("/api/v1/magic-link/request", json={"email": email}).status_code == 202
    _, code = last_mail(outbox, email)
    assert client.post("/api/v1/magic-link/verify", json={"email": email, "code": code}
                       ).status_code == 200
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # The sign-up signs in too (its tokens are a password sign-in's).
    assert moved("authserver_signins_total", method="password", outcome="success") == 2
    assert moved("authserver_signins_total", method="password", outcome="wrong_secret") == 1
    assert moved("authserver_signins_total", method="sms", outcome="success") == 1
    assert moved("authserver_signins_total", method="email_link", outcome="success") == 1
    assert moved("authserver_signins_total", method="email_code", outcome="success") == 1
    assert moved("authserver_codes_sent_total", channel="sms", outcome="sent") == 1
    assert moved("authserver_codes_sent_total", channel="email", outcome="sent") >= 2
    assert moved("authserver_sender_duration_seconds_count", channel="sms") == 1


def test_a_replayed_refresh_token_counts_reuse_not_invalid(client, signup, clock):
    first = signup()["refresh_token"]
    assert client.post("/api/v1/token/refresh", json={"refresh_token": first}
                       ).status_code == 200
    clock.travel(60)  # past REFRESH_REUSE_GRACE
    before = scrape(client)
    replay = client.post("/api/v1/token/refresh", json={"refresh_token": first})
    assert replay.status_code == 401
    after = scrape(client)
    assert (value(after, "authserver_refresh_total", outcome="reuse_detected")
            - value(before, "authserver_refresh_total", outcome="reuse_detected")) == 1
    assert (value(after, "authserver_refresh_total", outcome="invalid")
            == value(before, "authserver_refresh_total", outcome="invalid"))
