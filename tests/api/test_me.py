"""The account changing itself through the API: phone, password, deletion, sessions, logout
scopes (SQLite and MySQL; SMS and mail through the file backends' outbox)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from authserver import accounts, lockout, passwords
from authserver.extensions import db
from authserver.flows import account, phone_change
from authserver.models import Counter, OneTimeCode, RefreshToken, SendCooldown, Session, User
from tests.conftest import PASSWORD
from tests.flows.magic_helpers import code_in, email_messages, parts_of
from tests.flows.sms_helpers import last_code, sms_messages, wrong_code
from tests.helpers import bearer, problem, stable_headers
from tests.race import pool_per_racer, race

EMAIL = "ada@example.com"
PHONE = "+16502530000"
NEW_PASSWORD = "a brand new passphrase for ada"
RACERS = 20
TEST_NUMBER, TEST_CODE = "+15550001111", "123456"


def sms_code(app: Any, phone: str = PHONE) -> str:
    return last_code(app.config["OUTBOX_DIR"], phone)


def add_phone(client: Any, token: str, phone: str = PHONE) -> Any:
    return client.post("/api/v1/me/phone", json={"phone": phone}, headers=bearer(token))


def verify_phone(client: Any, token: str, code: str, phone: str = PHONE) -> Any:
    return client.post("/api/v1/me/phone/verify", json={"phone": phone, "code": code},
                       headers=bearer(token))


def sms_sign_in(client: Any, app: Any, phone: str = PHONE) -> dict[str, Any]:
    assert client.post("/api/v1/otp/request", json={"phone": phone}).status_code == 202
    response = client.post("/api/v1/otp/verify",
                           json={"phone": phone, "code": sms_code(app, phone)})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def sign_in(client: Any, password: str = PASSWORD, email: str = EMAIL) -> Any:
    return client.post("/api/v1/signin", json={"email": email, "password": password})


def refresh(client: Any, refresh_token: str) -> Any:
    return client.post("/api/v1/token/refresh", json={"refresh_token": refresh_token})


def me(client: Any, token: str) -> Any:
    return client.get("/api/v1/me", headers=bearer(token))


# -- phone ---------------------------------------------------------------------------------
def test_an_email_account_adds_a_phone_and_then_signs_in_with_it(app, client, signup, clock):
    tokens = signup()
    sent = add_phone(client, tokens["access_token"], "(650) 253-0000")
    assert (sent.status_code, sent.get_json()) == (
        202, {"sent": True, "expires_in": 300, "resend_after": 30})
    assert "add this phone" in sms_messages(app.config["OUTBOX_DIR"], PHONE)[-1]["text"]

    verified = verify_phone(client, tokens["access_token"], sms_code(app), "650 253 0000")
    assert verified.status_code == 200, verified.get_json()
    user = verified.get_json()
    assert (user["phone"], user["phone_verified"], user["email"]) == (PHONE, True, EMAIL)

    # Either way in reaches the same account, and the SMS sign-in evicts nothing.
    clock.travel(31)  # the phone's one resend cooldown
    signed_in = sms_sign_in(client, app)
    assert signed_in["user"]["id"] == tokens["user"]["id"]
    assert me(client, tokens["access_token"]).status_code == 200
    assert sign_in(client).get_json()["user"]["id"] == tokens["user"]["id"]


def test_a_phone_held_by_another_account_is_texted_alike_and_then_refused(
        app, client, signup, clock):
    holder = sms_sign_in(client, app)  # a phone account holds the number
    clock.travel(31)
    tokens = signup()
    free = add_phone(client, tokens["access_token"], "+16502530001")
    taken = add_phone(client, tokens["access_token"])
    assert (taken.status_code, taken.get_json()) == (free.status_code, free.get_json())
    assert stable_headers(taken) == stable_headers(free)

    refused = verify_phone(client, tokens["access_token"], sms_code(app))
    assert refused.status_code == 409
    assert problem(refused)["code"] == "phone_taken"
    db.session.expire_all()
    assert accounts.by_phone(PHONE).id == holder["user"]["id"]  # type: ignore[union-attr]
    assert accounts.by_email(EMAIL).phone is None  # type: ignore[union-attr]


def test_a_phone_added_before_the_address_was_proven_goes_at_its_first_proof(
        app, client, signup, clock):
    squatter = signup()  # signed up with someone else's address, never proven
    add_phone(client, squatter["access_token"])
    verify_phone(client, squatter["access_token"], sms_code(app))
    assert client.post("/api/v1/magic-link/request", json={"email": EMAIL}).status_code == 202
    code = code_in(email_messages(app.config["OUTBOX_DIR"], EMAIL)[-1]["text"])
    owner = client.post("/api/v1/magic-link/verify", json={"email": EMAIL, "code": code})
    assert owner.status_code == 200
    user = owner.get_json()["user"]
    assert (user["id"], user["phone"], user["phone_verified"]) == (
        squatter["user"]["id"], None, False)
    # The squatter's phone no longer reaches the owner's account.
    clock.travel(31)
    assert sms_sign_in(client, app)["user"]["id"] != user["id"]
    # Once the address is proven, a phone added later stays through later proofs.
    add_phone(client, owner.get_json()["access_token"], "+16502530001")
    verify_phone(client, owner.get_json()["access_token"],
                 sms_code(app, "+16502530001"), "+16502530001")
    clock.travel(31)
    client.post("/api/v1/magic-link/request", json={"email": EMAIL})
    code = code_in(email_messages(app.config["OUTBOX_DIR"], EMAIL)[-1]["text"])
    again = client.post("/api/v1/magic-link/verify", json={"email": EMAIL, "code": code})
    assert again.get_json()["user"]["phone"] == "+16502530001"


def test_wrong_codes_kill_the_code_then_429(app, client, signup):
    tokens = signup()
    add_phone(client, tokens["access_token"])
    right = sms_code(app)
    for _ in range(5):
        response = verify_phone(client, tokens["access_token"], wrong_code(right))
        assert problem(response)["code"] == "invalid_otp"
    exhausted = verify_phone(client, tokens["access_token"], right)
    assert exhausted.status_code == 429
    assert problem(exhausted)["code"] == "otp_attempts_exceeded"
    assert int(exhausted.headers["Retry-After"]) >= 1
    assert accounts.by_email(EMAIL).phone is None  # type: ignore[union-attr]


def test_a_code_asked_for_by_one_account_does_not_serve_another(app, client, signup,
                                                                 clock):
    ada = signup()
    bob = signup("bob@example.com")
    add_phone(client, ada["access_token"])
    response = verify_phone(client, bob["access_token"], sms_code(app))
    assert problem(response)["code"] == "invalid_otp"
    db.session.expire_all()
    assert accounts.by_email("bob@example.com").phone is None  # type: ignore[union-attr]


def test_phone_requests_share_the_sign_in_cooldown_and_country_rules(app, client, signup):
    tokens = signup()
    assert client.post("/api/v1/otp/request", json={"phone": PHONE}).status_code == 202
    cooling = add_phone(client, tokens["access_token"])
    assert cooling.status_code == 429 and problem(cooling)["code"] == "rate_limited"
    satellite = add_phone(client, tokens["access_token"], "+8816212345678")
    assert problem(satellite)["code"] == "phone_country_not_allowed"
    fixed_line = add_phone(client, tokens["access_token"], "+442071838750")
    assert problem(fixed_line)["code"] == "invalid_phone"


def test_sensitive_changes_need_a_recent_sign_in(app, client, signup, clock):
    tokens = signup()
    clock.travel(601)
    token = tokens["access_token"]
    refreshed = refresh(client, tokens["refresh_token"]).get_json()["access_token"]
    for access in (token, refreshed):  # refreshing keeps the sign-in's auth_time
        for response in (
            add_phone(client, access),
            verify_phone(client, access, "123456"),
            client.post("/api/v1/me/password", json={"current_password": PASSWORD,
                                                     "password": NEW_PASSWORD},
                        headers=bearer(access)),
            client.delete("/api/v1/me", headers=bearer(access)),
        ):
            assert response.status_code == 401
            assert problem(response)["code"] == "reauthentication_required"
    assert sms_messages(app.config["OUTBOX_DIR"]) == []
    # Listing sessions is not sensitive.
    assert client.get("/api/v1/me/sessions", headers=bearer(refreshed)).status_code == 200


# -- password ------------------------------------------------------------------------------
def change_password(client: Any, token: str, password: str = NEW_PASSWORD,
                    current: str | None = PASSWORD) -> Any:
    body = {"password": password}
    if current is not None:
        body["current_password"] = current
    return client.post("/api/v1/me/password", json=body, headers=bearer(token))


def test_password_change_revokes_the_other_sessions_and_mails_a_notice(app, client, signup):
    mine = signup()
    other = sign_in(client).get_json()
    response = change_password(client, mine["access_token"])
    assert response.status_code == 204 and response.data == b""

    assert me(client, mine["access_token"]).status_code == 200
    assert refresh(client, mine["refresh_token"]).status_code == 200
    assert me(client, other["access_token"]).status_code == 401
    assert problem(refresh(client, other["refresh_token"]))["code"] == "invalid_token"
    assert sign_in(client).status_code == 401
    assert sign_in(client, NEW_PASSWORD).status_code == 200
    notice = email_messages(app.config["OUTBOX_DIR"], EMAIL)[-1]
    assert "password was changed" in notice["subject"]


def test_password_change_needs_the_right_current_password(app, client, signup):
    tokens = signup()
    missing = change_password(client, tokens["access_token"], current=None)
    assert missing.status_code == 400 and problem(missing)["code"] == "invalid_request"
    wrong = change_password(client, tokens["access_token"], current="not my password at all")
    assert wrong.status_code == 401 and problem(wrong)["code"] == "invalid_credentials"
    weak = change_password(client, tokens["access_token"], password="password")
    assert weak.status_code == 422 and problem(weak)["code"] == "weak_password"
    assert sign_in(client).status_code == 200  # unchanged
    subjects = [m["subject"] for m in email_messages(app.config["OUTBOX_DIR"], EMAIL)]
    assert not [s for s in subjects if "password was changed" in s]  # only the sign-up's mail
    # The wrong one counts in the address's run of wrong passwords, like a sign-in's.
    change_password(client, tokens["access_token"], current="wrong again, and again")
    assert lockout.failures(EMAIL) == 1


@pytest.mark.parametrize("config_overrides", [{"SIGNIN_MAX_CONSECUTIVE_FAILURES": 2}])
def test_wrong_current_passwords_run_into_the_password_lock(app, client, signup):
    tokens = signup()
    for _ in range(2):
        assert change_password(client, tokens["access_token"], current="wrong").status_code \
            == 401
    locked = change_password(client, tokens["access_token"])
    assert locked.status_code == 403 and problem(locked)["code"] == "password_signin_locked"
    assert problem(sign_in(client))["code"] == "password_signin_locked"


def test_wrong_current_passwords_meet_the_sign_in_limit(app, client, signup):
    tokens = signup()
    answers = [change_password(client, tokens["access_token"], current=f"wrong guess {i}")
               .status_code for i in range(11)]
    assert answers[:10] == [401] * 10 and answers[10] == 429


def test_a_passwordless_account_sets_its_first_password_without_a_current_one(app, client):
    tokens = sms_sign_in(client, app)
    response = change_password(client, tokens["access_token"], current=None)
    assert response.status_code == 204
    db.session.expire_all()
    assert accounts.by_phone(PHONE).password_hash is not None  # type: ignore[union-attr]


# -- deletion ------------------------------------------------------------------------------
def test_delete_removes_the_account_its_data_and_its_tokens(app, client, signup, clock):
    tokens = signup()
    user_id = tokens["user"]["id"]
    add_phone(client, tokens["access_token"])
    verify_phone(client, tokens["access_token"], sms_code(app))
    other = sign_in(client).get_json()
    client.post("/api/v1/password/forgot", json={"email": EMAIL})  # a code sent to it
    sign_in(client, "a wrong password here")  # a run of wrong passwords
    assert db.session.scalar(select(func.count()).select_from(Counter)) >= 1

    response = client.delete("/api/v1/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 204 and response.data == b""

    db.session.expire_all()
    assert db.session.get(User, user_id) is None
    assert db.session.scalar(select(func.count()).select_from(Session)) == 0
    assert db.session.scalar(select(func.count()).select_from(RefreshToken)) == 0
    assert db.session.scalar(select(func.count()).select_from(OneTimeCode).where(
        OneTimeCode.subject.in_([EMAIL, PHONE]))) == 0
    assert db.session.scalar(select(func.count()).select_from(SendCooldown).where(
        SendCooldown.key.in_([f"email:{EMAIL}", f"sms:{PHONE}"]))) == 0
    assert lockout.failures(EMAIL) == 0
    for token in (tokens, other):
        assert me(client, token["access_token"]).status_code == 401
        assert refresh(client, token["refresh_token"]).status_code == 401

    again = client.post("/api/v1/signup", json={"email": EMAIL, "password": PASSWORD})
    assert again.status_code == 201 and again.get_json()["user"]["id"] != user_id
    # The number is free again too: an SMS sign-in makes a new account.
    clock.travel(31)
    assert sms_sign_in(client, app)["user"]["id"] not in (user_id, again.get_json()["user"]["id"])


def test_deleting_one_account_leaves_the_others(app, client, signup):
    ada = signup()
    bob = signup("bob@example.com")
    assert client.delete("/api/v1/me", headers=bearer(ada["access_token"])).status_code == 204
    assert me(client, bob["access_token"]).status_code == 200


# -- sessions and logout -------------------------------------------------------------------
def test_sessions_list_marks_the_current_one_and_reads_well(client, signup):
    first = signup()
    chrome = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0.0.0 Safari/537.36")
    second = client.post("/api/v1/signin", json={"email": EMAIL, "password": PASSWORD},
                         headers={"User-Agent": chrome},
                         environ_base={"REMOTE_ADDR": "198.51.100.7"}).get_json()
    listed = client.get("/api/v1/me/sessions", headers=bearer(second["access_token"]))
    assert listed.status_code == 200
    rows = listed.get_json()["sessions"]
    assert len(rows) == 2
    mine = next(row for row in rows if row["current"])
    assert set(mine) == {"id", "created_at", "last_used_at", "user_agent", "device", "ip",
                         "amr", "client", "current"}
    assert (mine["device"], mine["ip"], mine["amr"], mine["client"]) == (
        "Chrome on Linux", "198.51.100.7", ["pwd"], "api")
    assert mine["created_at"].endswith("Z")
    assert [row["current"] for row in rows].count(True) == 1
    other = next(row for row in rows if not row["current"])
    assert other["amr"] == ["pwd"]
    assert first["access_token"]  # the first session is the other one


def test_ending_one_session_kills_its_refresh_token_only(client, signup):
    first = signup()
    second = sign_in(client).get_json()
    rows = client.get("/api/v1/me/sessions", headers=bearer(second["access_token"])
                      ).get_json()["sessions"]
    target = next(row["id"] for row in rows if not row["current"])
    ended = client.delete(f"/api/v1/me/sessions/{target}",
                          headers=bearer(second["access_token"]))
    assert ended.status_code == 204
    assert refresh(client, first["refresh_token"]).status_code == 401
    assert me(client, second["access_token"]).status_code == 200
    again = client.delete(f"/api/v1/me/sessions/{target}", headers=bearer(second["access_token"]))
    assert problem(again)["code"] == "not_found"


def test_another_accounts_session_is_not_found(client, signup):
    ada = signup()
    bob = signup("bob@example.com")
    bob_sid = client.get("/api/v1/me/sessions", headers=bearer(bob["access_token"])
                         ).get_json()["sessions"][0]["id"]
    for sid in (bob_sid, "no-such-session", "x" * 200):
        response = client.delete(f"/api/v1/me/sessions/{sid}",
                                 headers=bearer(ada["access_token"]))
        assert response.status_code == 404 and problem(response)["code"] == "not_found"
    assert refresh(client, bob["refresh_token"]).status_code == 200


@pytest.mark.parametrize("scope, ends", [
    (None, {"mine"}), ("local", {"mine"}), ("others", {"other", "third"}),
    ("global", {"mine", "other", "third"}),
])
def test_logout_scopes(client, signup, scope, ends):
    tokens = {"mine": signup(), "other": sign_in(client).get_json(),
              "third": sign_in(client).get_json()}
    bystander = signup("bob@example.com")
    kwargs: dict[str, Any] = {} if scope is None else {"json": {"scope": scope}}
    response = client.post("/api/v1/logout", headers=bearer(tokens["mine"]["access_token"]),
                           **kwargs)
    assert response.status_code == 204
    for name, issued in tokens.items():
        expected = 401 if name in ends else 200
        assert me(client, issued["access_token"]).status_code == expected, name
    assert me(client, bystander["access_token"]).status_code == 200


def test_logout_refuses_an_unknown_scope_and_a_bad_body(client, signup):
    tokens = signup()
    unknown = client.post("/api/v1/logout", json={"scope": "everything"},
                          headers=bearer(tokens["access_token"]))
    assert unknown.status_code == 422 and problem(unknown)["code"] == "invalid_request"
    bad = client.post("/api/v1/logout", data="[1]", content_type="application/json",
                      headers=bearer(tokens["access_token"]))
    assert bad.status_code == 400
    assert me(client, tokens["access_token"]).status_code == 200
    empty = client.post("/api/v1/logout", data="", content_type="application/json",
                        headers=bearer(tokens["access_token"]))
    assert empty.status_code == 204
    assert me(client, tokens["access_token"]).status_code == 401


# -- races (MySQL: real row locks) ---------------------------------------------------------
class TestRacesOnMySQL:
    @pytest.fixture(autouse=True)
    def _mysql_only(self, database_url):
        if not database_url.startswith("mysql"):
            pytest.skip("row-level concurrency is checked on MySQL")

    @pytest.fixture
    def config_overrides(self, monkeypatch):
        pool_per_racer(monkeypatch, RACERS)
        return {"SMS_TEST_NUMBERS": {TEST_NUMBER: TEST_CODE}}

    def test_twenty_accounts_racing_for_one_number_one_gets_it(self, app, client):
        # A test number's fixed code lets every account hold a right code at once: the
        # unique index on users.phone alone decides.
        ids = [accounts.create(email=f"racer{i}@example.com").id for i in range(RACERS)]
        db.session.commit()
        box = list(ids)

        def work() -> str:
            user = accounts.get(box.pop())
            return phone_change.verify_code(user, TEST_NUMBER, TEST_CODE).id

        outcomes = race(app, work, RACERS, remote_addr="192.0.2.32")
        won = [o for o in outcomes if isinstance(o, str) and o in ids]
        assert len(won) == 1, outcomes
        assert all(getattr(o, "code", None) == "phone_taken"
                   for o in outcomes if o not in won), outcomes
        db.session.commit()  # a fresh snapshot (MySQL's REPEATABLE READ)
        holder = accounts.by_phone(TEST_NUMBER)
        assert holder is not None and holder.id == won[0] and holder.phone_verified_at

    def test_concurrent_deletions_delete_once(self, app, client, signup):
        user_id = signup()["user"]["id"]
        outcomes = race(app, lambda: account.delete_account(user_id), RACERS,
                        remote_addr="192.0.2.30")
        assert outcomes.count(None) == 1, outcomes
        assert all(getattr(o, "status", None) in (401, 404)
                   for o in outcomes if o is not None), outcomes
        db.session.commit()  # a fresh snapshot (MySQL's REPEATABLE READ)
        assert db.session.get(User, user_id) is None
        assert db.session.scalar(select(func.count()).select_from(Session)) == 0

    def test_concurrent_password_changes_change_once(self, app, client, signup):
        tokens = signup()
        user_id = tokens["user"]["id"]
        sid = client.get("/api/v1/me/sessions", headers=bearer(tokens["access_token"])
                         ).get_json()["sessions"][0]["id"]
        candidates = [f"racing new passphrase number {i}" for i in range(RACERS)]
        box = list(candidates)

        def work() -> int:
            return account.change_password(user_id, sid, PASSWORD, box.pop())

        outcomes = race(app, work, RACERS, remote_addr="192.0.2.31")
        assert len([o for o in outcomes if isinstance(o, int)]) == 1, outcomes
        assert all(getattr(o, "code", None) == "invalid_credentials"
                   for o in outcomes if not isinstance(o, int)), outcomes
        db.session.commit()  # a fresh snapshot (MySQL's REPEATABLE READ)
        stored = accounts.by_email(EMAIL).password_hash  # type: ignore[union-attr]
        assert sum(passwords.verify_password(stored, p) for p in candidates) == 1
        assert me(client, tokens["access_token"]).status_code == 200


# -- the notice over real SMTP ---------------------------------------------------------------

class TestOverSmtp:
    @pytest.fixture
    def config_overrides(self, fake_smtp):
        return fake_smtp.app_settings()

    def test_the_change_notice_is_delivered(self, client, fake_smtp, signup):
        tokens = signup()
        assert change_password(client, tokens["access_token"]).status_code == 204
        verification, notice = fake_smtp.wait_for(2)  # the sign-up's mail, then the notice
        assert "Confirm your e-mail address" in verification["Subject"]
        assert notice["Subject"] == "Your Example Auth password was changed"
        assert notice["To"] == EMAIL
        text, html = parts_of(notice)
        assert NEW_PASSWORD not in text + html and PASSWORD not in text + html
        assert "https://auth.example.test/login/forgot" in text
        assert "account page" in text and "reset link" not in text
        assert 'href="https://auth.example.test/login/forgot"' in html

    def test_a_notice_that_fails_to_send_does_not_undo_the_change(self, client, fake_smtp,
                                                                  signup):
        tokens = signup()
        fake_smtp.stop()
        assert change_password(client, tokens["access_token"]).status_code == 204
        assert sign_in(client, NEW_PASSWORD).status_code == 200
