"""The audit trail (audit.py): rows written in the action's transaction, never a secret, read
through GET /api/v1/admin/audit (keyset by id) and GET /api/v1/me/activity, shown on /account,
pruned after AUDIT_RETENTION_DAYS. Runs on SQLite and MySQL, over the test client."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from authserver import accounts, events, housekeeping
from authserver.config import settings
from authserver.events import Event, EventType
from authserver.extensions import db
from authserver.models import AuditEvent, Session, User
from tests.conftest import PASSWORD
from tests.flows.magic_helpers import last_mail
from tests.flows.sms_helpers import last_code, wrong_code
from tests.helpers import bearer, enrol_totp, problem, totp_code

AUDIT = "/api/v1/admin/audit"
ACTIVITY = "/api/v1/me/activity"
PHONE = "+16502530000"
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AuditTest/1.0"


def _rows(**where: Any) -> list[AuditEvent]:
    db.session.rollback()  # see what the requests committed
    query = select(AuditEvent).order_by(AuditEvent.id)
    for column, value in where.items():
        query = query.where(getattr(AuditEvent, column) == value)
    return list(db.session.scalars(query))


def _types(rows: list[AuditEvent]) -> list[str]:
    return [row.type for row in rows]


# -- what is recorded ------------------------------------------------------------------------
def test_sign_up_and_sign_in_rows_carry_user_method_outcome_ip_and_agent(client):
    response = client.post("/api/v1/signup", json={"email": "ada@example.com",
                                                   "password": PASSWORD},
                           headers={"User-Agent": AGENT})
    user_id = response.get_json()["user"]["id"]
    created, signed_in, sent = _rows(user_id=user_id)
    assert (created.type, created.method, created.outcome) == \
        ("user.created", "password", "success")
    assert (signed_in.type, signed_in.method, signed_in.outcome) == \
        ("signin.succeeded", "password", "success")
    assert signed_in.ip == "127.0.0.1" and signed_in.user_agent == AGENT
    assert signed_in.detail["client"] == "api" and signed_in.actor_id is None
    # The verification mail, sent after the sign-up committed.
    assert (sent.type, sent.outcome, sent.detail) == \
        ("code.sent", "sent", {"purpose": "verify_email", "channel": "email"})


def test_a_long_user_agent_is_cut(client):
    client.post("/api/v1/signup", json={"email": "ada@example.com", "password": PASSWORD},
                headers={"User-Agent": "x" * 1000})
    assert {len(row.user_agent or "") for row in _rows()} == {255}


def test_failed_password_sign_ins_name_the_account_only_when_there_is_one(client, signup):
    user_id = signup()["user"]["id"]
    client.post("/api/v1/signin", json={"email": "ada@example.com", "password": "nope nope 1"})
    client.post("/api/v1/signin", json={"email": "ghost@example.com", "password": "nope nope 1"})
    failed = _rows(type="signin.failed")
    assert [(row.user_id, row.method, row.outcome) for row in failed] == [
        (user_id, "password", "wrong_secret"), (None, "password", "wrong_secret")]
    assert "ghost" not in json.dumps([row.to_dict() for row in failed])


def test_a_disabled_accounts_refused_sign_in_is_recorded(app, client, signup):
    user_id = signup()["user"]["id"]
    accounts.disable(db.session.get(User, user_id))
    db.session.commit()
    assert client.post("/api/v1/signin", json={"email": "ada@example.com",
                                               "password": PASSWORD}).status_code == 403
    [refused] = _rows(type="signin.failed")
    assert (refused.user_id, refused.outcome) == (user_id, "disabled")


def test_sms_sign_in_code_sent_wrong_code_and_success(app, client):
    assert client.post("/api/v1/otp/request", json={"phone": PHONE}).status_code == 202
    code = last_code(app.config["OUTBOX_DIR"], PHONE)
    client.post("/api/v1/otp/verify", json={"phone": PHONE, "code": wrong_code(code)})
    user_id = client.post("/api/v1/otp/verify", json={"phone": PHONE, "code": code}
                          ).get_json()["user"]["id"]
    rows = _rows()
    assert [(r.type, r.user_id, r.method, r.outcome) for r in rows] == [
        ("code.sent", None, None, "sent"),
        ("signin.failed", None, "sms", "wrong_secret"),
        ("user.created", user_id, "sms", "success"),
        ("signin.succeeded", user_id, "sms", "success")]
    assert rows[0].detail == {"purpose": "sign_in_sms", "channel": "sms"}


def test_sms_code_used_up_is_code_locked(app, client):
    client.post("/api/v1/otp/request", json={"phone": PHONE})
    code = last_code(app.config["OUTBOX_DIR"], PHONE)
    statuses = [client.post("/api/v1/otp/verify", json={"phone": PHONE,
                                                        "code": wrong_code(code)}).status_code
                for _ in range(settings().otp_max_attempts)]
    assert statuses[-1] == 401
    [locked] = _rows(type="code.locked")
    assert locked.detail == {"purpose": "sign_in_sms", "channel": "sms"}
    assert locked.outcome == "locked"


def test_email_link_used_and_signed_in(app, client):
    client.post("/api/v1/magic-link/request", json={"email": "grace@example.com"})
    token, _code = last_mail(app.config["OUTBOX_DIR"], "grace@example.com")
    user_id = client.post("/api/v1/magic-link/verify", json={"token": token}
                          ).get_json()["user"]["id"]
    assert _types(_rows(user_id=user_id)) == ["user.created", "link.used", "signin.succeeded"]
    assert _rows(type="signin.succeeded")[0].method == "email_link"


def test_mfa_step_up_and_second_factor(client, signup):
    user_id = signup()["user"]["id"]
    secret = enrol_totp(user_id)
    first = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                "password": PASSWORD}).get_json()
    client.post("/api/v1/mfa/verify", json={"mfa_token": first["mfa_token"], "code": "000000"
                                            if totp_code(secret) != "000000" else "111111"})
    client.post("/api/v1/mfa/verify", json={"mfa_token": first["mfa_token"],
                                            "code": totp_code(secret)})
    rows = [(r.type, r.method, r.outcome) for r in _rows(user_id=user_id)][3:]
    assert rows == [("signin.mfa_required", "password", None),
                    ("signin.failed", "totp", "wrong_secret"),
                    ("signin.succeeded", "totp", "success")]


def test_refresh_reuse_and_logout_scopes(client, signup, clock):
    tokens = signup()
    user_id = tokens["user"]["id"]
    client.post("/api/v1/token/refresh", json={"refresh_token": tokens["refresh_token"]})
    clock.travel(60)
    client.post("/api/v1/token/refresh", json={"refresh_token": tokens["refresh_token"]})
    again = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                "password": PASSWORD}).get_json()
    client.post("/api/v1/logout", headers=bearer(again["access_token"]))
    rows = [(r.type, r.outcome, r.detail.get("scope"), r.detail.get("reason"))
            for r in _rows(user_id=user_id)][3:]
    assert rows == [("token.refreshed", "success", None, None),
                    ("token.reuse_detected", "reuse_detected", None, None),
                    ("session.revoked", None, "local", "refresh_reuse"),
                    ("signin.succeeded", "success", None, None),
                    ("session.revoked", None, "local", "logout")]


def test_admin_actions_name_the_actor(client, admin_token, signup):
    user_id = signup()["user"]["id"]
    admin_id = _rows(type="signin.succeeded")[0].user_id
    client.post(f"/api/v1/admin/users/{user_id}/roles", json={"role": "editor"},
                headers=bearer(admin_token))
    client.delete(f"/api/v1/admin/users/{user_id}/roles/editor", headers=bearer(admin_token))
    client.post(f"/api/v1/admin/users/{user_id}/disable", headers=bearer(admin_token))
    rows = [(r.type, r.actor_id, r.detail) for r in _rows(user_id=user_id)
            if r.actor_id is not None]
    assert rows == [("role.added", admin_id, {"role": "editor"}),
                    ("role.removed", admin_id, {"role": "editor"}),
                    ("user.disabled", admin_id, {})]
    assert ("session.revoked", "user_disabled") in [
        (r.type, r.detail.get("reason")) for r in _rows(user_id=user_id)]


def test_a_deleted_users_history_stays(client, signup):
    tokens = signup()
    user_id = tokens["user"]["id"]
    assert client.delete("/api/v1/me", headers=bearer(tokens["access_token"])
                         ).status_code == 204
    assert db.session.get(User, user_id) is None
    assert "user.deleted" in _types(_rows(user_id=user_id))
    assert "user.created" in _types(_rows(user_id=user_id))


def test_key_rotation_from_the_command_line(runner):
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    [rotated] = _rows(type="key.rotated")
    assert rotated.ip is None and rotated.user_agent is None
    assert set(rotated.detail) == {"kid", "algorithm"}


# -- the same transaction --------------------------------------------------------------------
def test_an_action_that_rolls_back_leaves_no_row(app, client, signup):
    """A sink after the audit's fails the sign-in (a 500, rolled back): neither its session
    nor its audit row stays."""
    signup()

    def fail(event: Event) -> None:
        if event.type is EventType.SIGNIN_SUCCEEDED:
            raise RuntimeError("a later step of the sign-in failed")

    events.listen(app, fail)
    response = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                   "password": PASSWORD})
    assert response.status_code == 500
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Session)) == 1  # the sign-up's
    assert _types(_rows(type="signin.succeeded")) == ["signin.succeeded"]  # the sign-up's


def test_a_refusal_commits_its_row_with_the_refusal(client, signup):
    """A Problem commits (transactions.py): the failed sign-in's row stands, with the
    counted failure."""
    signup()
    client.post("/api/v1/signin", json={"email": "ada@example.com", "password": "nope nope 1"})
    assert _types(_rows(type="signin.failed")) == ["signin.failed"]


# -- never a secret --------------------------------------------------------------------------
def test_no_row_holds_a_password_code_or_token(app, client, clock):
    secrets_seen: list[str] = [PASSWORD]
    tokens = client.post("/api/v1/signup", json={"email": "ada@example.com",
                                                 "password": PASSWORD}).get_json()
    secrets_seen += [tokens["access_token"], tokens["refresh_token"]]
    refreshed = client.post("/api/v1/token/refresh",
                            json={"refresh_token": tokens["refresh_token"]}).get_json()
    secrets_seen += [refreshed["access_token"], refreshed["refresh_token"]]
    client.post("/api/v1/otp/request", json={"phone": PHONE})
    code = last_code(app.config["OUTBOX_DIR"], PHONE)
    client.post("/api/v1/otp/verify", json={"phone": PHONE, "code": code})
    client.post("/api/v1/magic-link/request", json={"email": "grace@example.com"})
    token, mail_code = last_mail(app.config["OUTBOX_DIR"], "grace@example.com")
    client.post("/api/v1/magic-link/verify", json={"token": token})
    client.post("/api/v1/signin", json={"email": "ada@example.com", "password": "wrong pw 12"})
    secrets_seen += [code, token, mail_code, "wrong pw 12"]
    rows = json.dumps([row.to_dict() for row in _rows()])
    assert len(_rows()) >= 8
    for secret in secrets_seen:
        assert secret not in rows


# -- GET /api/v1/admin/audit -----------------------------------------------------------------
def _add(count: int, **values: Any) -> None:
    from authserver import clock as clock_module

    db.session.add_all([AuditEvent(created_at=clock_module.now(), type=values.get("type",
                                   "signin.failed"), user_id=values.get("user_id"),
                                   detail={}) for _ in range(count)])
    db.session.commit()


def test_admin_audit_pages_newest_first_by_id(client, admin_token):
    _add(7)
    seen: list[int] = []
    before: int | None = None
    while True:
        query = "?type=signin.failed&limit=3" + (f"&before={before}" if before else "")
        body = client.get(AUDIT + query, headers=bearer(admin_token)).get_json()
        ids = [event["id"] for event in body["events"]]
        assert ids == sorted(ids, reverse=True) and len(ids) <= 3
        seen += ids
        before = body["next"]
        if before is None:
            break
        assert before == ids[-1]
    assert len(seen) == 7 and len(set(seen)) == 7
    assert seen == sorted(seen, reverse=True)


def test_admin_audit_filters_by_user_and_type(client, admin_token, signup):
    user_id = signup()["user"]["id"]
    body = client.get(f"{AUDIT}?user_id={user_id}", headers=bearer(admin_token)).get_json()
    assert {event["user_id"] for event in body["events"]} == {user_id}
    assert [event["type"] for event in body["events"]] == \
        ["code.sent", "signin.succeeded", "user.created"]
    body = client.get(f"{AUDIT}?type=user.created", headers=bearer(admin_token)).get_json()
    assert {event["type"] for event in body["events"]} == {"user.created"}
    first = body["events"][0]
    assert set(first) == {"id", "created_at", "type", "user_id", "actor_id", "ip",
                          "user_agent", "method", "outcome", "detail"}
    assert first["created_at"].endswith("Z") and body["next"] is None


def test_admin_audit_default_and_largest_page(client, admin_token):
    _add(205)
    default = client.get(AUDIT, headers=bearer(admin_token)).get_json()
    assert len(default["events"]) == 50 and default["next"] is not None
    largest = client.get(AUDIT + "?limit=200", headers=bearer(admin_token)).get_json()
    assert len(largest["events"]) == 200


@pytest.mark.parametrize("query", ["?limit=0", "?limit=201", "?limit=ten", "?before=-1",
                                   "?before=1e3", "?limit=%EF%BC%91"])
def test_admin_audit_refuses_bad_numbers(client, admin_token, query):
    response = client.get(AUDIT + query, headers=bearer(admin_token))
    assert response.status_code == 422
    assert problem(response)["code"] == "invalid_request"


def test_admin_audit_is_for_admins_only(client, signup):
    tokens = signup()
    assert client.get(AUDIT, headers=bearer(tokens["access_token"])).status_code == 403
    assert client.get(AUDIT).status_code == 401


# -- GET /api/v1/me/activity -----------------------------------------------------------------
def test_me_activity_shows_own_events_only_newest_first(client, signup):
    ada = signup()
    signup("bob@example.com")
    client.post("/api/v1/signin", json={"email": "ada@example.com", "password": "nope nope 1"})
    body = client.get(ACTIVITY, headers=bearer(ada["access_token"])).get_json()
    types = [event["type"] for event in body["events"]]
    assert types == ["signin.failed", "code.sent", "signin.succeeded", "user.created"]
    assert body["events"][0]["label"] == "Sign-in refused (password)"
    assert "actor_id" not in body["events"][0] and "detail" not in body["events"][0]
    assert client.get(ACTIVITY).status_code == 401


def test_me_activity_is_the_last_twenty(client, signup):
    tokens = signup()
    _add(30, user_id=tokens["user"]["id"])
    body = client.get(ACTIVITY, headers=bearer(tokens["access_token"])).get_json()
    assert len(body["events"]) == 20


# -- retention -------------------------------------------------------------------------------
def test_prune_deletes_rows_older_than_the_retention(app, client, signup, clock, runner):
    signup()
    clock.travel(91 * 24 * 3600)
    client.post("/api/v1/signin", json={"email": "ada@example.com", "password": PASSWORD})
    result = runner.invoke(args=["prune"])
    assert result.exit_code == 0 and "audit_events: 3" in result.output
    assert _types(_rows()) == ["signin.succeeded"]


@pytest.mark.parametrize("config_overrides", [{"AUDIT_RETENTION_DAYS": 0}])
def test_a_retention_of_zero_keeps_everything(app, signup, clock):
    signup()
    clock.travel(3650 * 24 * 3600)
    counts = housekeeping.prune()
    assert "audit_events" not in counts and len(_rows()) == 3


@pytest.mark.parametrize("config_overrides", [{"AUDIT_RETENTION_DAYS": 7}])
def test_the_retention_is_a_setting(app, signup, clock):
    signup()
    clock.travel(6 * 24 * 3600)
    assert housekeeping.prune()["audit_events"] == 0
    clock.travel(timedelta(days=2).total_seconds())
    assert housekeeping.prune()["audit_events"] == 3
