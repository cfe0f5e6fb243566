"""POST /api/v1/password/forgot and /password/reset (SQLite and MySQL)."""

from __future__ import annotations

import re
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from authserver import accounts
from authserver.extensions import db
from authserver.flows import password_reset
from authserver.models import OneTimeCode
from authserver.services import configure, replace, services
from tests.conftest import PASSWORD
from tests.fakes.pwned_server import FakePwned
from tests.flows.magic_helpers import (
    code_in,
    email_messages,
    last_mail,
    parts_of,
    token_of,
    wrong_code,
)
from tests.helpers import problem, stable_headers
from tests.race import pool_per_racer, race

FORGOT = "/api/v1/password/forgot"
RESET = "/api/v1/password/reset"
EMAIL = "ada@example.com"
NEW_PASSWORD = "a brand new passphrase for ada"
RESET_LINK_RE = re.compile(r"(https?://\S+/auth/reset\?token=[A-Za-z0-9_.\-%]+)")
RACERS = 20


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"MAGIC_LINK_RESEND_COOLDOWN": 0}


def reset_mail(app: Any, email: str = EMAIL) -> tuple[str, str]:
    """(token, code) of the newest reset mail to `email`."""
    text = email_messages(app.config["OUTBOX_DIR"], email)[-1]["text"]
    match = RESET_LINK_RE.search(text)
    assert match, text
    return token_of(match.group(1)), code_in(text)


def forgot(client: Any, app: Any, email: str = EMAIL) -> tuple[str, str]:
    response = client.post(FORGOT, json={"email": email})
    assert (response.status_code, response.get_json()) == (202, {"sent": True})
    return reset_mail(app, email)


def sign_in(client: Any, password: str) -> Any:
    return client.post("/api/v1/signin", json={"email": EMAIL, "password": password})


def test_forgot_answers_the_same_for_every_kind_of_address(app, client, signup):
    signup()
    accounts.create(email="disabled@example.com", password_hash=None)
    accounts.disable(accounts.by_email("disabled@example.com"))  # type: ignore[arg-type]
    accounts.create(email="nopassword@example.com", password_hash=None)
    db.session.commit()
    answers = {email: client.post(FORGOT, json={"email": email})
               for email in (EMAIL, "nobody@example.com", "disabled@example.com",
                             "nopassword@example.com")}
    for response in answers.values():
        assert (response.status_code, response.get_json()) == (202, {"sent": True})
        assert stable_headers(response) == stable_headers(answers[EMAIL])
    outbox = app.config["OUTBOX_DIR"]
    # Real accounts (a passwordless one may set its first password) get the reset mail; the
    # others a mail that says nothing can be reset, with no link and no code.
    for email in (EMAIL, "nopassword@example.com"):
        reset_mail(app, email)
    for email in ("nobody@example.com", "disabled@example.com"):
        text = email_messages(outbox, email)[-1]["text"]
        assert "no password can be reset" in text
        assert "/auth/reset" not in text and not re.search(r"\d{6}", text)


def test_the_link_resets_signs_in_revokes_every_other_session_and_sends_a_notice(
        app, client, signup):
    old = signup()  # a password sign-up: its address was never proven
    other = sign_in(client, PASSWORD).get_json()
    token, _code = forgot(client, app)

    response = client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["email"] and body["user"]["email_verified"] is True
    for session in (old, other):
        refused = client.post("/api/v1/token/refresh",
                              json={"refresh_token": session["refresh_token"]})
        assert refused.status_code == 401
    assert client.post("/api/v1/token/refresh",
                       json={"refresh_token": body["refresh_token"]}).status_code == 200
    # The new password survives the address's first proof (which drops the old one).
    assert sign_in(client, PASSWORD).status_code == 401
    assert sign_in(client, NEW_PASSWORD).status_code == 200
    notice = email_messages(app.config["OUTBOX_DIR"], EMAIL)[-1]
    assert "password was changed" in notice["subject"]
    assert "/auth/reset" not in notice["text"]


def test_the_code_resets(app, client, signup):
    signup()
    _token, code = forgot(client, app)
    response = client.post(RESET, json={"email": " Ada@Example.com ", "code": code,
                                        "password": NEW_PASSWORD})
    assert response.status_code == 200, response.get_json()
    assert sign_in(client, NEW_PASSWORD).status_code == 200


def test_a_weak_password_is_refused_before_the_link_is_used(app, client, signup):
    signup()
    token, code = forgot(client, app)
    for body in ({"token": token}, {"email": EMAIL, "code": code}):
        weak = client.post(RESET, json={**body, "password": "short"})
        assert weak.status_code == 422 and problem(weak)["code"] == "weak_password"
    db.session.commit()
    row = db.session.scalar(select(OneTimeCode))
    assert row is not None and row.consumed_at is None and row.attempts == 0
    assert client.post(RESET, json={"token": token, "password": NEW_PASSWORD}).status_code \
        == 200


def test_a_14_character_password_is_refused_with_advice(app, client, signup):
    signup()
    token, code = forgot(client, app)
    for body in ({"token": token}, {"email": EMAIL, "code": code}):
        weak = client.post(RESET, json={**body, "password": "fourteen chars"})
        assert weak.status_code == 422
        assert problem(weak)["code"] == "weak_password"
        assert problem(weak)["detail"] == ("Use at least 15 characters \N{EM DASH} a few "
                                           "words work well.")
    assert client.post(RESET, json={"token": token, "password": "fifteen chars!!"}
                       ).status_code == 200
    assert sign_in(client, "fifteen chars!!").status_code == 200


def test_a_variant_or_the_address_is_refused_at_min_8(app, client, signup):
    signup()
    configure(app, PASSWORD_MIN_LENGTH=8)
    token, _ = forgot(client, app)
    for password in ("P@ssw0rd!", "Summer2024!", "Ada2024!!"):
        weak = client.post(RESET, json={"token": token, "password": password})
        assert weak.status_code == 422 and problem(weak)["code"] == "weak_password", password
    assert sign_in(client, PASSWORD).status_code == 200


def test_a_breached_password_is_refused_before_the_link_is_used(app, client, signup):
    signup()
    token, _ = forgot(client, app)
    breached = "a password everyone leaked"
    with FakePwned() as fake:
        fake.breach(breached, 1234)
        configure(app, PWNED_PASSWORDS_URL=fake.url, PWNED_PASSWORDS_TIMEOUT=1.0)
        refused = client.post(RESET, json={"token": token, "password": breached})
        assert refused.status_code == 422 and problem(refused)["code"] == "breached_password"
        assert client.post(RESET, json={"token": token, "password": NEW_PASSWORD}
                           ).status_code == 200


@pytest.mark.parametrize("second", ["token", "code"])
def test_a_reset_mail_works_once(app, client, signup, second):
    signup()
    token, code = forgot(client, app)
    assert client.post(RESET, json={"token": token, "password": NEW_PASSWORD}).status_code \
        == 200
    again = {"token": token} if second == "token" else {"email": EMAIL, "code": code}
    used = client.post(RESET, json={**again, "password": "yet another fine passphrase"})
    assert used.status_code == 401 and problem(used)["code"] == "invalid_link"
    assert sign_in(client, NEW_PASSWORD).status_code == 200


def test_wrong_forged_and_unknown_answers_are_invalid_link(app, client, signup):
    signup()
    token, code = forgot(client, app)
    for body in ({"token": token[:-2] + "xx"}, {"token": "nonsense"},
                 {"email": EMAIL, "code": wrong_code(code)},
                 {"email": "nobody@example.com", "code": code}):
        response = client.post(RESET, json={**body, "password": NEW_PASSWORD})
        assert response.status_code == 401 and problem(response)["code"] == "invalid_link"
    incomplete = client.post(RESET, json={"email": EMAIL, "password": NEW_PASSWORD})
    assert incomplete.status_code == 400 and problem(incomplete)["code"] == "invalid_request"


def test_a_magic_sign_in_link_does_not_reset_a_password(app, client, signup):
    signup()
    client.post("/api/v1/magic-link/request", json={"email": EMAIL})
    magic_token, _ = last_mail(app.config["OUTBOX_DIR"], EMAIL)
    response = client.post(RESET, json={"token": magic_token, "password": NEW_PASSWORD})
    assert response.status_code == 401


def test_the_sixth_wrong_code_is_429_and_the_link_still_works(app, client, signup):
    signup()
    token, code = forgot(client, app)
    for _ in range(5):
        wrong = client.post(RESET, json={"email": EMAIL, "code": wrong_code(code),
                                         "password": NEW_PASSWORD})
        assert wrong.status_code == 401
    sixth = client.post(RESET, json={"email": EMAIL, "code": code, "password": NEW_PASSWORD})
    assert sixth.status_code == 429 and problem(sixth)["code"] == "otp_attempts_exceeded"
    assert sign_in(client, PASSWORD).status_code == 200  # nothing changed
    assert client.post(RESET, json={"token": token, "password": NEW_PASSWORD}).status_code \
        == 200


def test_an_expired_link_is_invalid(app, client, signup, clock):
    signup()
    token, _ = forgot(client, app)
    clock.travel(1801)
    response = client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 401 and problem(response)["code"] == "invalid_link"


def test_a_notice_that_fails_to_send_does_not_undo_the_reset(app, client, signup, caplog):
    signup()
    token, _ = forgot(client, app)
    real = services(app).email

    class Broken:
        def send(self, *args: Any, **kwargs: Any) -> None:
            raise OSError("mail server gone")

    replace(app, email=Broken())
    try:
        response = client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
    finally:
        replace(app, email=real)
    assert response.status_code == 200
    assert "notice not sent" in caplog.text
    assert sign_in(client, NEW_PASSWORD).status_code == 200


def test_the_purpose_is_the_engines(app):
    assert password_reset.PURPOSE.link_path == "/auth/reset"
    assert password_reset.PURPOSE.setting("ttl") == 1800


class TestRaceOnMySQL:
    @pytest.fixture(autouse=True)
    def _mysql_only(self, database_url):
        if not database_url.startswith("mysql"):
            pytest.skip("row-level concurrency is checked on MySQL")

    @pytest.fixture
    def config_overrides(self, monkeypatch):
        pool_per_racer(monkeypatch, RACERS)
        return {"MAGIC_LINK_RESEND_COOLDOWN": 0}

    def test_twenty_resets_with_one_token_exactly_one_wins(self, app, client, signup):
        signup()
        token, _ = forgot(client, app)

        def work() -> str:
            password_reset.reset_with_link(token, NEW_PASSWORD)
            return "won"

        outcomes = race(app, work, RACERS, remote_addr="192.0.2.20")
        codes_ = [o.code if hasattr(o, "code") else o for o in outcomes]
        assert codes_.count("won") == 1, codes_
        assert codes_.count("invalid_link") == RACERS - 1, codes_
        db.session.commit()
        from authserver.models import Session
        open_sessions = db.session.scalars(select(Session).where(
            Session.revoked_at.is_(None))).all()
        assert len(open_sessions) == 1  # the winner's; the sign-up's was revoked


# -- real SMTP ------------------------------------------------------------------------------------

class TestOverSmtp:
    @pytest.fixture
    def config_overrides(self, fake_smtp):
        return fake_smtp.app_settings(MAGIC_LINK_RESEND_COOLDOWN=0)

    def test_reset_mail_then_the_code_resets_and_a_notice_is_delivered(
            self, client, fake_smtp, signup):
        signup()
        response = client.post(FORGOT, json={"email": "Ada@Example.com"},
                               headers={"Host": "evil.test"})
        assert response.status_code == 202
        _verification, message = fake_smtp.wait_for(2)  # the sign-up mailed first
        assert message["Subject"] == "Reset your Example Auth password"
        text, html = parts_of(message)
        link = RESET_LINK_RE.search(text)
        assert link is not None and link.group(1).startswith(
            "https://auth.example.test/auth/reset?token=")
        code = code_in(text)
        assert f'href="{link.group(1)}"' in html and code in html
        assert "30 minutes" in text and "evil.test" not in text + html

        reset = client.post(RESET, json={"email": EMAIL, "code": code,
                                         "password": NEW_PASSWORD})
        assert reset.status_code == 200
        *_, notice = fake_smtp.wait_for(3)
        assert notice["Subject"] == "Your Example Auth password was changed"
        notice_text, _ = parts_of(notice)
        assert code not in notice_text and "/auth/reset" not in notice_text

    @pytest.mark.parametrize("failure", ["refuse", "defer", "down"])
    def test_a_mail_server_failure_answers_the_same_for_known_and_unknown(
            self, client, fake_smtp, signup, failure):
        signup()
        if failure == "down":
            fake_smtp.stop()
        answers = []
        for email in (EMAIL, "nobody@example.com"):
            if failure != "down":
                getattr(fake_smtp, failure).add(email)
            response = client.post(FORGOT, json={"email": email})
            answers.append((response.status_code, problem(response)["code"]))
        assert answers[0] == answers[1]
        assert answers[0][0] in {422, 503}
