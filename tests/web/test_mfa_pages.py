"""The second factor on the pages: the code step of every web sign-in (/login/mfa) and
/account/security (set up with the QR code or the key as text, recovery codes once, off)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import jwt
import pyotp
import pytest
from sqlalchemy import func, select

from authserver import accounts
from authserver.extensions import db
from authserver.models import TotpFactor
from tests.conftest import PASSWORD
from tests.helpers import enrol_totp, totp_code
from tests.web.conftest import csrf_from

EMAIL = "ada@example.com"
CALLBACK = "https://app.example.test/callback"
TEST_PHONE = "+16502530000"
TEST_PHONE_CODE = "424242"
SECRET_RE = re.compile(r'<code id="totp-secret">([A-Z2-7]+)</code>')
CODES_RE = re.compile(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>")


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"SESSION_COOKIE_SECURE": False, "SMS_TEST_NUMBERS": {TEST_PHONE: TEST_PHONE_CODE}}


@pytest.fixture
def ada(signup: Any, clock: Any) -> str:
    """Ada, with an authenticator app; her secret."""
    user_id = signup(EMAIL)["user"]["id"]
    return enrol_totp(user_id)


def post_form(client: Any, path: str, **data: str) -> Any:
    html = client.get(path).get_data(as_text=True)
    return client.post(path, data={**data, "csrf_token": csrf_from(html)})


def test_password_sign_in_goes_through_the_code_step(client, web_login, ada):
    response = web_login(EMAIL, PASSWORD)
    assert response.status_code == 303 and response.headers["Location"].endswith("/login/mfa")
    # The password was right: this browser got its device token as with any password sign-in.
    assert client.get_cookie("authserver_device") is not None
    assert client.get("/account").status_code == 302  # not signed in by the password alone
    page = client.get("/login/mfa")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Enter the code from your authenticator app" in html
    assert 'autocomplete="one-time-code"' in html and 'inputmode="numeric"' in html
    assert "Use a recovery code instead" in html
    done = post_form(client, "/login/mfa", code=totp_code(ada))
    assert done.status_code == 303 and done.headers["Location"].endswith("/account")
    account = client.get("/account").get_data(as_text=True)
    assert EMAIL in account and "one-time code" in account
    # The step is over: the page sends a new visitor to /login.
    assert client.get("/login/mfa").status_code == 302


def test_a_wrong_code_is_shown_and_five_end_the_sign_in(client, web_login, ada):
    web_login(EMAIL, PASSWORD)
    wrong = f"{(int(totp_code(ada)) + 1) % 1_000_000:06d}"
    for _ in range(4):
        response = post_form(client, "/login/mfa", code=wrong)
        assert response.status_code == 401
        assert "The code is wrong or was already used." in response.get_data(as_text=True)
    fifth = post_form(client, "/login/mfa", code=wrong)
    assert fifth.status_code == 429
    assert "Sign in again" in fifth.get_data(as_text=True)
    assert client.get("/login/mfa").status_code == 302
    assert client.get("/account").status_code == 302


def test_a_recovery_code_signs_in_on_the_pages(client, web_login, ada, app):
    from authserver import mfa

    user_id = accounts.by_email(EMAIL).id
    codes = mfa.new_recovery_codes(user_id)
    db.session.commit()
    web_login(EMAIL, PASSWORD)
    page = client.get("/login/mfa/recovery").get_data(as_text=True)
    assert "Use a recovery code" in page
    done = post_form(client, "/login/mfa/recovery", code=codes[0])
    assert done.status_code == 303 and done.headers["Location"].endswith("/account")


def test_the_sms_pages_go_through_the_code_step_too(client, app):
    from authserver import accounts

    user = accounts.create(phone=TEST_PHONE)
    secret = enrol_totp(user.id)
    html = client.get("/login/sms").get_data(as_text=True)
    client.post("/login/sms", data={"phone": TEST_PHONE, "csrf_token": csrf_from(html)})
    response = post_form(client, "/login/sms/code", code=TEST_PHONE_CODE)
    assert response.status_code == 303 and response.headers["Location"].endswith("/login/mfa")
    done = post_form(client, "/login/mfa", code=totp_code(secret))
    assert done.status_code == 303 and done.headers["Location"].endswith("/account")


def test_an_apps_sign_in_reaches_the_app_after_the_code_step(client, ada):
    query = urlencode({"redirect_to": CALLBACK, "state": "st-1"})
    html = client.get(f"/login?{query}").get_data(as_text=True)
    action = unescape(re.search(r'<form method="post" action="(/login\?[^"]*)"', html).group(1))
    response = client.post(action, data={"email": EMAIL, "password": PASSWORD,
                                         "csrf_token": csrf_from(html)})
    assert response.status_code == 303 and response.headers["Location"].endswith("/login/mfa")
    done = post_form(client, "/login/mfa", code=totp_code(ada))
    assert done.status_code == 303
    location = urlsplit(done.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    params = parse_qs(location.query)
    assert params["state"] == ["st-1"]
    exchanged = client.post("/api/v1/token/exchange", json={"code": params["code"][0]})
    assert exchanged.status_code == 200, exchanged.get_json()
    claims = jwt.decode(exchanged.get_json()["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp"] and claims["aal"] == "aal2"


def test_account_security_sets_the_app_up_and_turns_it_off(client, signup, web_login, clock):
    signup(EMAIL)
    web_login(EMAIL, PASSWORD)
    assert 'href="/account/security"' in client.get("/account").get_data(as_text=True)
    page = client.get("/account/security").get_data(as_text=True)
    assert "Two-factor authentication is <strong>off</strong>" in page
    html = client.get("/account/security").get_data(as_text=True)
    started = client.post("/account/security/enroll", data={"csrf_token": csrf_from(html)})
    assert started.status_code == 303
    page = client.get("/account/security").get_data(as_text=True)
    secret = SECRET_RE.search(page).group(1)
    assert 'src="data:image/svg+xml' in page and 'autocomplete="one-time-code"' in page
    wrong = client.post("/account/security/confirm", data={
        "code": "000000" if totp_code(secret) != "000000" else "111111",
        "csrf_token": csrf_from(page)})
    assert wrong.status_code == 401 and secret in wrong.get_data(as_text=True)
    confirmed = client.post("/account/security/confirm", data={
        "code": pyotp.TOTP(secret).at(clock.timestamp()), "csrf_token": csrf_from(page)})
    assert confirmed.status_code == 200
    html = confirmed.get_data(as_text=True)
    codes = CODES_RE.findall(html)
    assert len(codes) == 10 and "I saved them" in html
    download = re.search(r'href="data:text/plain;charset=utf-8,([^"]+)"', html).group(1)
    assert unquote(unescape(download)).split() == codes
    # On now: the secret is never shown again.
    page = client.get("/account/security").get_data(as_text=True)
    assert "is <strong>on</strong>" in page and secret not in page
    assert '<strong id="recovery-left">10</strong>' in page
    clock.travel(30)
    off = client.post("/account/security/disable", data={
        "code": totp_code(secret), "csrf_token": csrf_from(page)})
    assert off.status_code == 200 and "Two-factor authentication is off." in off.get_data(
        as_text=True)
    assert db.session.scalar(select(func.count()).select_from(TotpFactor)) == 0


def test_account_security_turns_off_with_a_recovery_code(client, signup, web_login, clock):
    from authserver import mfa

    user_id = signup(EMAIL)["user"]["id"]
    enrol_totp(user_id)
    codes = mfa.new_recovery_codes(user_id)
    db.session.commit()
    web_login(EMAIL, PASSWORD)
    # Signed in through the code step with a recovery code, then off with another one.
    post_form(client, "/login/mfa/recovery", code=codes[0])
    page = client.get("/account/security").get_data(as_text=True)
    off = client.post("/account/security/disable", data={"code": codes[1],
                                                         "csrf_token": csrf_from(page)})
    assert off.status_code == 200
    assert db.session.scalar(select(func.count()).select_from(TotpFactor)) == 0


def test_account_security_needs_a_recent_sign_in_to_change(client, signup, web_login, clock):
    signup(EMAIL)
    web_login(EMAIL, PASSWORD)
    clock.travel(601)
    page = client.get("/account/security").get_data(as_text=True)
    assert "needs a recent sign-in" in page and "/account/security/enroll" not in page
    account = client.get("/account").get_data(as_text=True)  # a form with a CSRF token
    started = client.post("/account/security/enroll", data={"csrf_token": csrf_from(account)})
    assert started.status_code == 303
    assert db.session.scalar(select(func.count()).select_from(TotpFactor)) == 0


def test_account_security_needs_a_sign_in(client):
    response = client.get("/account/security")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


@pytest.mark.parametrize("config_overrides", [{"SESSION_COOKIE_SECURE": False,
                                                "MAGIC_LINK_BINDING": False}])
def test_the_mailed_link_page_goes_through_the_code_step_too(client, app, clock):
    from tests.flows.magic_helpers import last_mail

    user = accounts.create(email=EMAIL)
    secret = enrol_totp(user.id)
    assert client.post("/api/v1/magic-link/request", json={"email": EMAIL}).status_code == 202
    token = last_mail(app.config["OUTBOX_DIR"], EMAIL)[0]
    html = client.get("/auth/magic", query_string={"token": token}).get_data(as_text=True)
    hidden = re.search(r'<input[^>]*name="token"[^>]*value="([^"]+)"', html).group(1)
    pressed = client.post("/auth/magic", data={"token": hidden, "csrf_token": csrf_from(html)})
    assert pressed.status_code == 303, pressed.get_data(as_text=True)[:300]
    assert pressed.headers["Location"].endswith("/login/mfa")
    done = post_form(client, "/login/mfa", code=totp_code(secret))
    assert done.status_code == 303 and done.headers["Location"].endswith("/account")
    assert "one-time code" in client.get("/account").get_data(as_text=True)


def test_an_apps_sign_in_mailed_from_the_login_page_reaches_the_app_after_the_code_step(
        client, app, ada):
    from tests.flows.magic_helpers import last_mail
    from tests.web.test_handoff_attempts import form_action, next_step

    first = client.get("/login", query_string={"redirect_to": CALLBACK, "state": "st-2"}
                       ).get_data(as_text=True)
    html = next_step(client, first, EMAIL)  # the identifier step, then "e-mail me a link"
    client.post(form_action(html, "/login/email"),
                data={"email": EMAIL, "csrf_token": csrf_from(html)})
    token = last_mail(app.config["OUTBOX_DIR"], EMAIL)[0]
    confirm = client.get("/auth/magic", query_string={"token": token}).get_data(as_text=True)
    hidden = re.search(r'name="token"[^>]*value="([^"]+)"', confirm).group(1)
    pressed = client.post("/auth/magic", data={"token": hidden,
                                               "csrf_token": csrf_from(confirm)})
    assert pressed.status_code == 303 and pressed.headers["Location"].endswith("/login/mfa")
    done = post_form(client, "/login/mfa", code=totp_code(ada))
    location = urlsplit(done.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    params = parse_qs(location.query)
    assert params["state"] == ["st-2"]
    exchanged = client.post("/api/v1/token/exchange", json={"code": params["code"][0]})
    claims = jwt.decode(exchanged.get_json()["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["email", "otp"]
