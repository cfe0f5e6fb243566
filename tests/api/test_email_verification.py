"""E-mail verification (sign-up mail, POST /email/verify, /email/verify/resend), the
EMAIL_VERIFICATION_REQUIRED mode, and changing the address (POST /me/email), on SQLite and
MySQL; mails read from the file outbox, and over real SMTP where their delivery matters."""

from __future__ import annotations

import itertools
import re
import threading
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from authserver import accounts, clock, passwords
from authserver.extensions import db
from authserver.flows import email_change, email_confirmation, email_verification
from authserver.models import OneTimeCode, User
from authserver.services import replace, services
from tests.conftest import PASSWORD
from tests.flows.magic_helpers import (
    code_in,
    email_messages,
    last_mail,
    parts_of,
    token_of,
    wrong_code,
)
from tests.flows.sms_helpers import last_code
from tests.helpers import bearer, problem, stable_headers
from tests.race import pool_per_racer, race

SIGNUP = "/api/v1/signup"
VERIFY = "/api/v1/email/verify"
RESEND = "/api/v1/email/verify/resend"
CHANGE = "/api/v1/me/email"
EMAIL = "ada@example.com"
NEW_EMAIL = "ada.lovelace@example.org"
VERIFY_LINK_RE = re.compile(r"(https?://\S+/auth/verify-email\?token=[A-Za-z0-9_.\-%]+)")


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"MAGIC_LINK_RESEND_COOLDOWN": 0}


def mails(app: Any, to: str) -> list[dict[str, Any]]:
    return email_messages(app.config["OUTBOX_DIR"], to)


def link_mail(app: Any, to: str) -> tuple[str, str]:
    """(token, code) of the newest verification or change mail to `to`."""
    text = mails(app, to)[-1]["text"]
    match = VERIFY_LINK_RE.search(text)
    assert match, text
    return token_of(match.group(1)), code_in(text)


def verified(email: str) -> bool:
    db.session.commit()
    user = accounts.by_email(email)
    assert user is not None
    db.session.refresh(user)
    return user.email_verified_at is not None


# -- verification ----------------------------------------------------------------------------
def test_sign_up_mails_a_link_and_the_link_verifies(app, client, signup):
    tokens_ = signup()
    assert tokens_["user"]["email_verified"] is False
    [mail] = mails(app, EMAIL)
    assert mail["subject"] == "Confirm your e-mail address for authserver"
    assert "24 hours" in mail["text"]
    token, _ = link_mail(app, EMAIL)
    response = client.post(VERIFY, json={"token": token})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) >= {"id", "email", "email_verified"} and "access_token" not in body
    assert body["email_verified"] is True and body["email"] == EMAIL
    me = client.get("/api/v1/me", headers=bearer(tokens_["access_token"])).get_json()
    assert me["email_verified"] is True
    # Verifying keeps the sign-up's password (it is the sign-up it was sent for).
    assert client.post("/api/v1/signin", json={"email": EMAIL, "password": PASSWORD}
                       ).status_code == 200


def test_the_code_verifies(app, client, signup):
    signup()
    _, code = link_mail(app, EMAIL)
    response = client.post(VERIFY, json={"email": " Ada@Example.com ", "code": code})
    assert response.status_code == 200 and response.get_json()["email_verified"] is True
    assert verified(EMAIL)


@pytest.mark.parametrize("second", ["token", "code"])
def test_a_verification_mail_works_once(app, client, signup, second):
    signup()
    token, code = link_mail(app, EMAIL)
    assert client.post(VERIFY, json={"token": token}).status_code == 200
    again = {"token": token} if second == "token" else {"email": EMAIL, "code": code}
    used = client.post(VERIFY, json=again)
    assert used.status_code == 401 and problem(used)["code"] == "invalid_link"


def test_an_expired_link_is_invalid(app, client, signup, clock):
    signup()
    token, code = link_mail(app, EMAIL)
    clock.travel(86401)
    for body in ({"token": token}, {"email": EMAIL, "code": code}):
        response = client.post(VERIFY, json=body)
        assert response.status_code == 401 and problem(response)["code"] == "invalid_link"
    assert not verified(EMAIL)


def test_forged_wrong_and_incomplete_answers(app, client, signup):
    signup()
    token, code = link_mail(app, EMAIL)
    for body in ({"token": token[:-2] + "xx"}, {"token": "nonsense"},
                 {"email": EMAIL, "code": wrong_code(code)},
                 {"email": "nobody@example.com", "code": code},
                 {"email": "not an address", "code": code}):
        response = client.post(VERIFY, json=body)
        assert response.status_code == 401 and problem(response)["code"] == "invalid_link"
    incomplete = client.post(VERIFY, json={"email": EMAIL})
    assert incomplete.status_code == 400 and problem(incomplete)["code"] == "invalid_request"
    # A sign-in link is not a verification link.
    client.post("/api/v1/magic-link/request", json={"email": EMAIL})
    magic_token, _ = last_mail(app.config["OUTBOX_DIR"], EMAIL)
    assert client.post(VERIFY, json={"token": magic_token}).status_code == 401
    assert not verified(EMAIL)


def test_five_wrong_codes_then_429_and_the_link_still_works(app, client, signup):
    signup()
    token, code = link_mail(app, EMAIL)
    for _ in range(5):
        wrong = client.post(VERIFY, json={"email": EMAIL, "code": wrong_code(code)})
        assert wrong.status_code == 401 and problem(wrong)["code"] == "invalid_link"
    sixth = client.post(VERIFY, json={"email": EMAIL, "code": code})
    assert sixth.status_code == 429 and problem(sixth)["code"] == "otp_attempts_exceeded"
    assert int(sixth.headers["Retry-After"]) >= 1
    assert not verified(EMAIL)
    assert client.post(VERIFY, json={"token": token}).status_code == 200


def test_resend_needs_a_token_and_mails_a_new_link(app, client, signup):
    tokens_ = signup()
    refused = client.post(RESEND)
    assert refused.status_code == 401 and problem(refused)["code"] == "invalid_token"
    sent = client.post(RESEND, headers=bearer(tokens_["access_token"]))
    assert (sent.status_code, sent.get_json()) == (202, {"sent": True})
    assert len(mails(app, EMAIL)) == 2
    token, _ = link_mail(app, EMAIL)
    assert client.post(VERIFY, json={"token": token}).status_code == 200
    done = client.post(RESEND, headers=bearer(tokens_["access_token"]))
    assert done.status_code == 400 and problem(done)["code"] == "invalid_request"


def test_resend_has_a_cooldown(app, client, signup):
    from authserver.services import configure

    configure(app, MAGIC_LINK_RESEND_COOLDOWN=30)
    tokens_ = signup()  # its mail took the slot
    again = client.post(RESEND, headers=bearer(tokens_["access_token"]))
    assert again.status_code == 429 and problem(again)["code"] == "rate_limited"
    # The slot is the verification mails' own: a sign-in link is not held up.
    assert client.post("/api/v1/magic-link/request", json={"email": EMAIL}).status_code == 202


def test_a_sign_up_mail_that_fails_never_fails_the_sign_up(app, client, caplog):
    real = services(app).email

    class Broken:
        def send(self, *args: Any, **kwargs: Any) -> None:
            raise OSError("mail server gone")

    replace(app, email=Broken())
    try:
        response = client.post(SIGNUP, json={"email": EMAIL, "password": PASSWORD})
    finally:
        replace(app, email=real)
    assert response.status_code == 201
    assert "sign-up mail not sent" in caplog.text
    db.session.commit()
    assert accounts.by_email(EMAIL) is not None
    # The person asks again.
    sent = client.post(RESEND, headers=bearer(response.get_json()["access_token"]))
    assert sent.status_code == 202
    token, _ = link_mail(app, EMAIL)
    assert client.post(VERIFY, json={"token": token}).status_code == 200


def test_the_purposes_are_the_engines(app):
    assert email_verification.VERIFY.link_path == "/auth/verify-email"
    assert email_verification.VERIFY.setting("ttl") == 86400
    assert email_change.CHANGE.name == "change_email"


# -- EMAIL_VERIFICATION_REQUIRED -------------------------------------------------------------
class TestRequired:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"MAGIC_LINK_RESEND_COOLDOWN": 0, "EMAIL_VERIFICATION_REQUIRED": True}

    def test_sign_up_answers_the_same_for_new_and_registered_addresses(self, app, client):
        owner = accounts.create(email="known@example.com", password_hash=passwords.hash_password(
            "the owner's own passphrase"))
        owner.email_verified_at = clock.now()
        db.session.commit()
        answers = [client.post(SIGNUP, json={"email": email, "password": PASSWORD})
                   for email in ("known@example.com", EMAIL)]
        for response in answers:
            assert (response.status_code, response.get_json()) == (202, {"sent": True})
            assert stable_headers(response) == stable_headers(answers[0])
            assert response.data == answers[0].data
        # The registered owner is told; nothing about the account changed.
        [notice] = mails(app, "known@example.com")
        assert "tried to sign up" in notice["subject"]
        assert "/auth/verify-email" not in notice["text"]
        assert not re.search(r"\b\d{6}\b", notice["text"])
        assert client.post("/api/v1/signin", json={
            "email": "known@example.com", "password": "the owner's own passphrase"}
        ).status_code == 200
        # Both did the same work: a mail row each.
        db.session.commit()
        rows = db.session.scalars(select(OneTimeCode)).all()
        assert sorted(r.subject for r in rows) == [EMAIL, "known@example.com"]
        assert {r.user_id is None for r in rows} == {True, False}

    def test_an_unverified_address_cannot_sign_in_with_its_password(self, app, client):
        assert client.post(SIGNUP, json={"email": EMAIL, "password": PASSWORD}
                           ).status_code == 202
        refused = client.post("/api/v1/signin", json={"email": EMAIL, "password": PASSWORD})
        assert refused.status_code == 403 and problem(refused)["code"] == "email_not_verified"
        wrong = client.post("/api/v1/signin", json={"email": EMAIL, "password": "not it at all"})
        assert wrong.status_code == 401 and problem(wrong)["code"] == "invalid_credentials"

    @pytest.mark.parametrize("by", ["token", "code"])
    def test_verifying_signs_in(self, app, client, by):
        client.post(SIGNUP, json={"email": EMAIL, "password": PASSWORD})
        token, code = link_mail(app, EMAIL)
        body = {"token": token} if by == "token" else {"email": EMAIL, "code": code}
        response = client.post(VERIFY, json=body)
        assert response.status_code == 200, response.get_json()
        tokens_ = response.get_json()
        assert tokens_["token_type"] == "Bearer" and tokens_["refresh_token"]
        assert tokens_["user"]["email"] == EMAIL and tokens_["user"]["email_verified"] is True
        claims = jwt.decode(tokens_["access_token"], options={"verify_signature": False})
        assert claims["amr"] == ["email"]
        assert client.get("/api/v1/me", headers=bearer(tokens_["access_token"])
                          ).status_code == 200
        assert client.post("/api/v1/signin", json={"email": EMAIL, "password": PASSWORD}
                           ).status_code == 200

    def test_the_someone_tried_row_proves_nothing(self, app, client, signup):
        accounts.create(email="known@example.com", password_hash=None)
        db.session.commit()
        client.post(SIGNUP, json={"email": "known@example.com", "password": PASSWORD})
        db.session.commit()
        row = db.session.scalar(select(OneTimeCode))
        assert row is not None and row.user_id is None
        from authserver import codes

        forged_link = codes.link_token(email_verification.VERIFY, row.id)
        response = client.post(VERIFY, json={"token": forged_link})
        assert response.status_code == 401
        assert not verified("known@example.com")


# -- changing the address --------------------------------------------------------------------
def change(client: Any, access_token: str, email: str = NEW_EMAIL) -> Any:
    return client.post(CHANGE, json={"email": email}, headers=bearer(access_token))


def test_change_mails_the_new_address_and_confirming_switches(app, client, signup):
    tokens_ = signup()
    sent = change(client, tokens_["access_token"])
    assert (sent.status_code, sent.get_json()) == (202, {"sent": True})
    mail = mails(app, NEW_EMAIL)[-1]
    assert mail["subject"] == "Confirm your new e-mail address for authserver"
    assert EMAIL in mail["text"]  # which account it is for
    token, _ = link_mail(app, NEW_EMAIL)
    db.session.commit()
    assert accounts.by_email(EMAIL) is not None  # nothing changed yet
    confirmed = client.post(VERIFY, json={"token": token})
    assert confirmed.status_code == 200, confirmed.get_json()
    user = confirmed.get_json()
    assert user["email"] == NEW_EMAIL and user["email_verified"] is True
    assert user["id"] == tokens_["user"]["id"]
    notice = mails(app, EMAIL)[-1]
    assert notice["subject"] == "Your authserver e-mail address was changed"
    assert NEW_EMAIL in notice["text"] and "/auth/verify-email" not in notice["text"]
    # The password now goes with the new address.
    assert client.post("/api/v1/signin", json={"email": NEW_EMAIL, "password": PASSWORD}
                       ).status_code == 200
    assert client.post("/api/v1/signin", json={"email": EMAIL, "password": PASSWORD}
                       ).status_code == 401


def test_change_confirmed_by_code(app, client, signup):
    tokens_ = signup()
    change(client, tokens_["access_token"])
    _, code = link_mail(app, NEW_EMAIL)
    confirmed = client.post(VERIFY, json={"email": NEW_EMAIL, "code": code})
    assert confirmed.status_code == 200 and confirmed.get_json()["email"] == NEW_EMAIL


def test_a_taken_address_answers_the_same_then_confirming_is_409(app, client, signup):
    ada = signup()
    signup(NEW_EMAIL)  # another account holds it
    free = change(client, ada["access_token"], "free@example.org")
    taken = change(client, ada["access_token"], NEW_EMAIL)
    for response in (free, taken):
        assert (response.status_code, response.get_json()) == (202, {"sent": True})
    assert stable_headers(free) == stable_headers(taken)
    token, _ = link_mail(app, NEW_EMAIL)
    refused = client.post(VERIFY, json={"token": token})
    assert refused.status_code == 409 and problem(refused)["code"] == "email_taken"
    db.session.commit()
    assert accounts.by_email(EMAIL) is not None
    assert "was changed" not in mails(app, EMAIL)[-1]["subject"]


def test_two_accounts_asking_for_one_address_the_second_confirmation_is_409(
        app, client, signup):
    ada, bob = signup(), signup("bob@example.com")
    change(client, ada["access_token"])
    ada_token, _ = link_mail(app, NEW_EMAIL)
    change(client, bob["access_token"])
    bob_token, _ = link_mail(app, NEW_EMAIL)
    assert client.post(VERIFY, json={"token": bob_token}).status_code == 200
    late = client.post(VERIFY, json={"token": ada_token})
    assert late.status_code == 409 and problem(late)["code"] == "email_taken"


def test_a_confirmed_change_kills_the_accounts_older_change_links(app, client, signup):
    tokens_ = signup()
    change(client, tokens_["access_token"], "first@example.org")
    first, _ = link_mail(app, "first@example.org")
    change(client, tokens_["access_token"])
    second, _ = link_mail(app, NEW_EMAIL)
    assert client.post(VERIFY, json={"token": second}).status_code == 200
    stale = client.post(VERIFY, json={"token": first})
    assert stale.status_code == 401 and problem(stale)["code"] == "invalid_link"
    db.session.commit()
    assert accounts.by_email(NEW_EMAIL) is not None


def test_change_needs_a_recent_sign_in(app, client, signup, clock):
    tokens_ = signup()
    clock.travel(601)
    # The access token lives 15 minutes; its sign-in is 10 minutes and 1 second old.
    stale = change(client, tokens_["access_token"])
    assert stale.status_code == 401 and problem(stale)["code"] == "reauthentication_required"
    assert mails(app, NEW_EMAIL) == []
    fresh = client.post("/api/v1/signin", json={"email": EMAIL, "password": PASSWORD})
    assert change(client, fresh.get_json()["access_token"]).status_code == 202


def test_change_refuses_bad_and_own_addresses(app, client, signup):
    tokens_ = signup()
    bad = change(client, tokens_["access_token"], "not an address")
    assert bad.status_code == 422 and problem(bad)["code"] == "invalid_email"
    own = change(client, tokens_["access_token"], "ADA@example.com")
    assert own.status_code == 400 and problem(own)["code"] == "invalid_request"
    assert client.post(CHANGE, json={"email": NEW_EMAIL}).status_code == 401


def test_change_mails_are_limited_per_new_address_and_per_ip(app, client, signup):
    tokens_ = signup()
    for _ in range(5):  # MAGIC_LINK_LIMIT_PER_EMAIL_HOUR: 5/hour
        assert change(client, tokens_["access_token"]).status_code == 202
    sixth = change(client, tokens_["access_token"])
    assert sixth.status_code == 429 and problem(sixth)["code"] == "rate_limited"
    assert int(sixth.headers["Retry-After"]) >= 1
    assert len(mails(app, NEW_EMAIL)) == 5
    # Other addresses still go, until the IP's budget (30/hour) is spent.
    answers = [change(client, tokens_["access_token"], f"n{i}@example.org").status_code
               for i in range(26)]
    assert answers == [202] * 25 + [429]


def test_resends_are_limited_per_address(app, client, signup):
    tokens_ = signup()  # the sign-up's mail is the first of five
    answers = [client.post(RESEND, headers=bearer(tokens_["access_token"])).status_code
               for _ in range(5)]
    assert answers == [202] * 4 + [429]


def test_a_phone_only_account_adds_an_address_and_e_mail_sign_in_reaches_it(app, client):
    phone = "+16502530000"
    assert client.post("/api/v1/otp/request", json={"phone": phone}).status_code == 202
    signed_in = client.post("/api/v1/otp/verify", json={
        "phone": phone, "code": last_code(app.config["OUTBOX_DIR"], phone)}).get_json()
    assert signed_in["user"]["email"] is None
    assert change(client, signed_in["access_token"], EMAIL).status_code == 202
    mail = mails(app, EMAIL)[-1]
    assert phone in mail["text"]
    token, _ = link_mail(app, EMAIL)
    added = client.post(VERIFY, json={"token": token}).get_json()
    assert added["email"] == EMAIL and added["email_verified"] and added["phone"] == phone
    # The e-mailed code and the magic link both reach the same account now.
    client.post("/api/v1/magic-link/request", json={"email": EMAIL})
    magic_token, code = last_mail(app.config["OUTBOX_DIR"], EMAIL)
    by_code = client.post("/api/v1/magic-link/verify", json={"email": EMAIL, "code": code})
    assert by_code.get_json()["user"]["id"] == signed_in["user"]["id"]
    client.post("/api/v1/magic-link/request", json={"email": EMAIL})
    magic_token, _ = last_mail(app.config["OUTBOX_DIR"], EMAIL)
    by_link = client.post("/api/v1/magic-link/verify", json={"token": magic_token})
    assert by_link.get_json()["user"]["id"] == signed_in["user"]["id"]
    db.session.commit()
    assert len(db.session.scalars(select(User)).all()) == 1


def test_an_old_address_notice_that_fails_does_not_undo_the_change(app, client, signup, caplog):
    tokens_ = signup()
    change(client, tokens_["access_token"])
    token, _ = link_mail(app, NEW_EMAIL)
    real = services(app).email

    class Broken:
        def send(self, *args: Any, **kwargs: Any) -> None:
            raise OSError("mail server gone")

    replace(app, email=Broken())
    try:
        response = client.post(VERIFY, json={"token": token})
    finally:
        replace(app, email=real)
    assert response.status_code == 200
    assert "changed notice not sent" in caplog.text
    db.session.commit()
    assert accounts.by_email(NEW_EMAIL) is not None and accounts.by_email(EMAIL) is None


# -- races on MySQL --------------------------------------------------------------------------
RACERS = 10


class TestRaceOnMySQL:
    @pytest.fixture(autouse=True)
    def _mysql_only(self, database_url):
        if not database_url.startswith("mysql"):
            pytest.skip("row-level concurrency is checked on MySQL")

    @pytest.fixture
    def config_overrides(self, monkeypatch):
        pool_per_racer(monkeypatch, RACERS)
        return {"MAGIC_LINK_RESEND_COOLDOWN": 0, "MAGIC_LINK_LIMIT_PER_IP_HOUR": "",
                "MAGIC_LINK_LIMIT_PER_EMAIL_HOUR": "", "SIGNUP_LIMIT_PER_IP": ""}

    def test_accounts_confirming_changes_to_one_address_at_once_exactly_one_wins(
            self, app, client, signup):
        links = []
        for i in range(RACERS):
            tokens_ = signup(f"racer{i}@example.com")
            assert change(client, tokens_["access_token"], NEW_EMAIL).status_code == 202
            links.append(link_mail(app, NEW_EMAIL)[0])
        handed = itertools.count()
        lock = threading.Lock()

        def work() -> str:
            with lock:
                token = links[next(handed)]
            email_confirmation.confirm_link(token)
            return "won"

        outcomes = race(app, work, RACERS, remote_addr="192.0.2.30")
        names = [o.code if hasattr(o, "code") else o for o in outcomes]
        assert names.count("won") == 1, [str(n) for n in names]
        assert names.count("email_taken") == RACERS - 1, [str(n) for n in names]
        db.session.commit()
        holders = db.session.scalars(select(User).where(User.email == NEW_EMAIL)).all()
        assert len(holders) == 1 and holders[0].email_verified_at is not None


# -- real SMTP -------------------------------------------------------------------------------

class TestOverSmtp:
    @pytest.fixture
    def config_overrides(self, fake_smtp):
        return fake_smtp.app_settings(MAGIC_LINK_RESEND_COOLDOWN=0)

    def test_sign_up_mail_verifies_then_a_change_mails_new_and_old(self, client, fake_smtp):
        response = client.post(SIGNUP, json={"email": EMAIL, "password": PASSWORD},
                               headers={"Host": "evil.test"})
        assert response.status_code == 201
        [message] = fake_smtp.wait_for(1)
        assert message["Subject"] == "Confirm your e-mail address for Example Auth"
        assert message["To"] == EMAIL
        text, html = parts_of(message)
        link = VERIFY_LINK_RE.search(text)
        assert link is not None and link.group(1).startswith(
            "https://auth.example.test/auth/verify-email?token=")
        code = code_in(text)
        assert f'href="{link.group(1)}"' in html and code in html
        assert "evil.test" not in text + html
        assert client.post(VERIFY, json={"email": EMAIL, "code": code}).status_code == 200

        sent = change(client, response.get_json()["access_token"])
        assert sent.status_code == 202
        _, to_new = fake_smtp.wait_for(2)
        assert to_new["To"] == NEW_EMAIL
        new_text, _ = parts_of(to_new)
        confirmed = client.post(VERIFY, json={"token": token_of(
            VERIFY_LINK_RE.search(new_text).group(1))})  # type: ignore[union-attr]
        assert confirmed.status_code == 200
        *_, notice = fake_smtp.wait_for(3)
        assert notice["To"] == EMAIL
        assert notice["Subject"] == "Your Example Auth e-mail address was changed"
        notice_text, notice_html = parts_of(notice)
        assert NEW_EMAIL in notice_text and NEW_EMAIL in notice_html

    def test_required_mode_tells_the_registered_owner(self, app, client, fake_smtp):
        from authserver.services import configure

        configure(app, EMAIL_VERIFICATION_REQUIRED=True)
        accounts.create(email=EMAIL, password_hash=None)
        db.session.commit()
        response = client.post(SIGNUP, json={"email": EMAIL, "password": PASSWORD})
        assert (response.status_code, response.get_json()) == (202, {"sent": True})
        [message] = fake_smtp.wait_for(1)
        assert message["Subject"] == "Someone tried to sign up to Example Auth with your address"
        text, html = parts_of(message)
        assert "https://auth.example.test/login/email" in text
        assert "/auth/verify-email" not in text + html
