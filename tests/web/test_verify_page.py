"""/auth/verify-email and /account/email: a person confirms their address (or a new one)
from the mail; a mail scanner (another client, its own cookie jar) that opens the link and
presses what it finds confirms nothing and burns nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from authserver import accounts
from authserver.extensions import db
from authserver.models import OneTimeCode
from tests.api.test_email_verification import NEW_EMAIL, link_mail, mails
from tests.conftest import PASSWORD
from tests.flows.magic_helpers import wrong_code
from tests.web.conftest import csrf_from

EMAIL = "ada@example.com"
HIDDEN_TOKEN_RE = re.compile(r'<input[^>]*name="token"[^>]*value="([^"]+)"')


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"SESSION_COOKIE_SECURE": False, "MAGIC_LINK_RESEND_COOLDOWN": 0}


@pytest.fixture
def scanner(app: Any) -> Any:
    return app.test_client()


def web_signup(browser: Any, email: str = EMAIL) -> Any:
    page = browser.get("/signup").get_data(as_text=True)
    return browser.post("/signup", data={"email": email, "password": PASSWORD,
                                         "csrf_token": csrf_from(page)})


def _row(purpose: str = "verify_email") -> OneTimeCode:
    db.session.commit()
    db.session.expire_all()
    row = db.session.scalars(select(OneTimeCode).where(OneTimeCode.purpose == purpose)
                             .order_by(OneTimeCode.created_at.desc())).first()
    assert row is not None
    return row


def _verified(email: str) -> bool:
    db.session.commit()
    db.session.expire_all()
    user = accounts.by_email(email)
    return user is not None and user.email_verified_at is not None


def test_the_asking_browser_confirms_with_a_button_and_the_get_uses_nothing(app, client):
    signed_up = web_signup(client)
    assert signed_up.status_code == 303 and signed_up.headers["Location"].endswith("/account")
    assert any(c.startswith("authserver_link_binding=")
               for c in signed_up.headers.getlist("Set-Cookie"))
    token, _ = link_mail(app, EMAIL)
    page = client.get("/auth/verify-email", query_string={"token": token})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'name="code"' not in html and EMAIL in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert _row().consumed_at is None and not _verified(EMAIL)  # the GET uses nothing
    done = client.post("/auth/verify-email", data={"token": token, "csrf_token": csrf_from(html)})
    assert done.status_code == 200 and "is confirmed" in done.get_data(True)
    assert _verified(EMAIL)
    account = client.get("/account").get_data(as_text=True)
    assert 'class="badge">verified' in account
    assert client.get("/auth/verify-email", query_string={"token": token}).status_code == 410


def test_a_scanner_pressing_the_page_confirms_nothing(app, client, scanner):
    web_signup(client)
    token, _ = link_mail(app, EMAIL)
    page = scanner.get("/auth/verify-email", query_string={"token": token})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'name="code"' in html
    hidden = HIDDEN_TOKEN_RE.search(html)
    assert hidden is not None
    csrf = csrf_from(html)
    plain = scanner.post("/auth/verify-email", data={"token": hidden.group(1),
                                                     "csrf_token": csrf})
    assert plain.status_code == 200 and 'name="code"' in plain.get_data(True)
    guessed = scanner.post("/auth/verify-email", data={"token": token, "csrf_token": csrf,
                                                       "code": "000000"})
    assert guessed.status_code in {401, 422}
    assert _row().consumed_at is None and not _verified(EMAIL)


def test_in_another_browser_the_code_from_the_mail_confirms(app, client, scanner):
    web_signup(client)
    token, code = link_mail(app, EMAIL)
    other = scanner  # the person's phone, say
    html = other.get("/auth/verify-email", query_string={"token": token}).get_data(True)
    data = {"token": token, "csrf_token": csrf_from(html)}
    wrong = other.post("/auth/verify-email", data={**data, "code": wrong_code(code)})
    assert wrong.status_code == 401 and "invalid, expired or already used" in wrong.get_data(True)
    done = other.post("/auth/verify-email", data={**data, "code": code})
    assert done.status_code == 200 and _verified(EMAIL)
    assert other.get("/account").status_code == 302  # confirming alone signs nobody in


def test_a_link_asked_for_on_the_web_needs_the_code_through_the_api(app, client):
    web_signup(client)
    token, code = link_mail(app, EMAIL)
    refused = client.post("/api/v1/email/verify", json={"token": token})
    assert refused.status_code == 401 and refused.get_json()["code"] == "invalid_link"
    assert _row().consumed_at is None
    assert client.post("/api/v1/email/verify", json={"email": EMAIL, "code": code}
                       ).status_code == 200


def test_a_bad_link_shows_the_expired_page(client):
    page = client.get("/auth/verify-email", query_string={"token": "forged"})
    assert page.status_code == 410 and "no longer works" in page.get_data(True)


def test_a_form_without_csrf_is_refused(app, client):
    web_signup(client)
    token, _ = link_mail(app, EMAIL)
    refused = client.post("/auth/verify-email", data={"token": token})
    assert refused.status_code == 400
    assert _row().consumed_at is None


class TestRequired:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"SESSION_COOKIE_SECURE": False, "MAGIC_LINK_RESEND_COOLDOWN": 0,
                "EMAIL_VERIFICATION_REQUIRED": True}

    def test_sign_up_says_check_your_inbox_and_the_link_signs_in(self, app, client,
                                                                  web_login):
        sent = web_signup(client)
        assert sent.status_code == 200 and "Check your inbox" in sent.get_data(True)
        assert client.get("/account").status_code == 302
        refused = web_login(EMAIL, PASSWORD)
        assert refused.status_code == 403 and "Confirm your e-mail address first" in \
            refused.get_data(True)
        token, _ = link_mail(app, EMAIL)
        html = client.get("/auth/verify-email", query_string={"token": token}).get_data(True)
        done = client.post("/auth/verify-email",
                           data={"token": token, "csrf_token": csrf_from(html)})
        assert done.status_code == 303 and done.headers["Location"].endswith("/account")
        assert EMAIL in client.get("/account").get_data(as_text=True)

    def test_a_registered_address_gets_the_same_page(self, app, client, signup):
        accounts.create(email=EMAIL, password_hash=None)
        db.session.commit()
        known = web_signup(client)
        new = web_signup(client, "new@example.com")
        assert known.status_code == new.status_code == 200
        assert known.get_data(True).replace(EMAIL, "X") == \
            new.get_data(True).replace("new@example.com", "X")
        assert "tried to sign up" in mails(app, EMAIL)[-1]["subject"]


# -- /account/email --------------------------------------------------------------------------
def test_change_email_page_with_csrf_mails_the_new_address_and_the_link_switches(
        app, client, signup, web_login):
    signup()
    web_login(EMAIL, PASSWORD)
    account = client.get("/account").get_data(as_text=True)
    assert 'href="/account/email"' in account
    page = client.get("/account/email")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and EMAIL in html and 'name="email"' in html
    forged = client.post("/account/email", data={"email": NEW_EMAIL})
    assert forged.status_code == 400 and mails(app, NEW_EMAIL) == []
    sent = client.post("/account/email", data={"email": NEW_EMAIL,
                                               "csrf_token": csrf_from(html)})
    assert sent.status_code == 200 and "Check your inbox" in sent.get_data(True)
    token, _ = link_mail(app, NEW_EMAIL)
    confirm = client.get("/auth/verify-email", query_string={"token": token}).get_data(True)
    assert "Confirm the new address" in confirm and 'name="code"' not in confirm
    assert _row("change_email").consumed_at is None
    done = client.post("/auth/verify-email",
                       data={"token": token, "csrf_token": csrf_from(confirm)})
    assert done.status_code == 200 and "was changed" in done.get_data(True)
    assert NEW_EMAIL in client.get("/account").get_data(as_text=True)
    assert "was changed" in mails(app, EMAIL)[-1]["subject"]


def test_change_email_page_shows_the_flows_refusals(app, client, signup, web_login):
    signup()
    web_login(EMAIL, PASSWORD)
    html = client.get("/account/email").get_data(as_text=True)
    bad = client.post("/account/email", data={"email": "not an address",
                                              "csrf_token": csrf_from(html)})
    assert bad.status_code == 422 and "not an address" in bad.get_data(True)


def test_change_email_page_needs_a_recent_sign_in(app, client, signup, web_login, clock):
    signup()
    web_login(EMAIL, PASSWORD)
    html = client.get("/account/email").get_data(as_text=True)
    clock.travel(601)
    stale = client.get("/account/email").get_data(as_text=True)
    assert "needs a recent sign-in" in stale and 'href="/login"' in stale
    assert 'name="email"' not in stale
    posted = client.post("/account/email", data={"email": NEW_EMAIL,
                                                 "csrf_token": csrf_from(html)})
    assert "needs a recent sign-in" in posted.get_data(True)
    assert mails(app, NEW_EMAIL) == []


def test_change_email_page_needs_a_sign_in(client):
    response = client.get("/account/email")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
