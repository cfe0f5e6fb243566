"""Where a mailed link may sign in (MAGIC_LINK_BINDING on, the default).

Mail security gateways open links in a browser of their own and press the buttons they find.
Each test has the person's browser and, where it matters, a "scanner": another client with its
own cookie jar that GETs the mailed link and submits whatever form the page shows, CSRF token
and all.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from authserver import accounts, passwords
from authserver import clock as server_clock
from authserver.extensions import db
from authserver.models import OneTimeCode
from tests.flows.magic_helpers import code_in, email_messages, last_mail, wrong_code
from tests.web.conftest import csrf_from

EMAIL = "ada@example.com"
HIDDEN_TOKEN_RE = re.compile(r'<input[^>]*name="token"[^>]*value="([^"]+)"')
PASSWORD = "correct horse battery staple"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"SESSION_COOKIE_SECURE": False, "MAGIC_LINK_RESEND_COOLDOWN": 0}


@pytest.fixture
def browser(client: Any) -> Any:
    return client


@pytest.fixture
def scanner(app: Any) -> Any:
    return app.test_client()  # its own cookie jar (the web conftest's isolated client class)


def ask_on_the_web(app: Any, browser: Any, email: str = EMAIL) -> tuple[str, str]:
    """Ask for a link on /login/email in `browser`; the (token, code) of the mail."""
    page = browser.get("/login/email")
    sent = browser.post("/login/email", data={"email": email,
                                              "csrf_token": csrf_from(page.get_data(True))})
    assert sent.status_code == 200, sent.get_data(True)[:300]
    return last_mail(app.config["OUTBOX_DIR"], email)


def press(client: Any, token: str) -> Any:
    """Open the link and submit the page's form as it is, as a button-pressing scanner does."""
    page = client.get("/auth/magic", query_string={"token": token})
    html = page.get_data(as_text=True)
    data = {"csrf_token": csrf_from(html)}
    hidden = HIDDEN_TOKEN_RE.search(html)
    if hidden:
        data["token"] = hidden.group(1)
    if 'name="code"' in html:
        data["code"] = "000000"  # a scanner fills in whatever it must
    return client.post("/auth/magic", data=data)


def _row() -> OneTimeCode:
    db.session.commit()  # a fresh snapshot (MySQL's REPEATABLE READ)
    db.session.expire_all()
    row = db.session.scalar(select(OneTimeCode))
    assert row is not None
    return row


def test_the_binding_cookie_is_httponly_lax_and_lives_as_long_as_the_link(app, browser):
    page = browser.get("/login/email")
    sent = browser.post("/login/email", data={"email": EMAIL,
                                              "csrf_token": csrf_from(page.get_data(True))})
    cookie = next(c for c in sent.headers.getlist("Set-Cookie")
                  if c.startswith("authserver_link_binding="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=900" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert _row().binding_hash == hashlib.sha256(value.encode()).hexdigest()  # only a hash


def test_a_scanner_neither_signs_in_nor_burns_the_link_then_the_person_signs_in(
        app, browser, scanner):
    token, _code = ask_on_the_web(app, browser)

    page = scanner.get("/auth/magic", query_string={"token": token})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and ">Sign in</button>" not in html.split("code")[0]
    assert "another device or in another browser" in html and 'name="code"' in html
    # Press without the code, then with a guessed one: nothing is used, nobody is signed in.
    csrf = csrf_from(html)
    assert scanner.post("/auth/magic", data={"token": token, "csrf_token": csrf}).status_code \
        == 200
    assert press(scanner, token).status_code == 401
    assert scanner.get("/account").status_code == 302
    assert _row().consumed_at is None

    # The person's own browser, which asked for the link, signs in with one press.
    signed_in = press(browser, token)
    assert signed_in.status_code == 303 and signed_in.headers["Location"].endswith("/account")
    assert browser.get("/account").status_code == 200
    assert _row().consumed_at is not None


def test_on_another_browser_the_code_from_the_mail_signs_in(app, browser, scanner):
    token, code = ask_on_the_web(app, browser)
    other = scanner  # the person's phone, say
    page = other.get("/auth/magic", query_string={"token": token})
    html = page.get_data(as_text=True)
    wrong = other.post("/auth/magic", data={"token": token, "code": wrong_code(code),
                                            "csrf_token": csrf_from(html)})
    assert wrong.status_code == 401
    assert "invalid, expired or already used" in wrong.get_data(as_text=True)
    right = other.post("/auth/magic", data={"token": token, "code": code,
                                            "csrf_token": csrf_from(html)})
    assert right.status_code == 303
    assert other.get("/account").status_code == 200
    # Used up: the asking browser's button no longer works either.
    assert press(browser, token).status_code == 410


def test_a_guessed_code_on_another_browser_never_burns_the_link(app, browser, scanner):
    token, _code = ask_on_the_web(app, browser)
    statuses = [press(scanner, token).status_code for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    assert press(browser, token).status_code == 303  # the link itself still works here


def test_twenty_presses_without_the_cookie_use_nothing(app, browser, scanner):
    token, _ = ask_on_the_web(app, browser)
    page = scanner.get("/auth/magic", query_string={"token": token})
    csrf = csrf_from(page.get_data(as_text=True))
    for _ in range(20):
        scanner.post("/auth/magic", data={"token": token, "csrf_token": csrf})
    assert _row().consumed_at is None and _row().attempts == 0


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_an_apps_link_pressed_by_a_scanner_still_lets_the_app_exchange_its_own_code(
        app, browser, scanner):
    verifier, challenge = _pkce()
    asked = browser.post("/api/v1/magic-link/request", json={
        "email": EMAIL, "redirect_to": "myapp://auth", "code_challenge": challenge,
        "code_challenge_method": "S256", "state": "app-state-1"})
    assert asked.status_code == 202
    token, _ = last_mail(app.config["OUTBOX_DIR"], EMAIL)

    caught = press(scanner, token)
    assert caught.status_code == 303 and caught.headers["Location"].startswith("myapp://auth?")
    assert _row().consumed_at is None  # the press used nothing
    scanner_code = parse_qs(urlsplit(caught.headers["Location"]).query)["code"][0]
    assert scanner.post("/api/v1/token/exchange", json={"code": scanner_code}).status_code \
        == 401

    mine = press(browser, token)
    query = parse_qs(urlsplit(mine.headers["Location"]).query)
    assert query["state"] == ["app-state-1"]
    exchanged = browser.post("/api/v1/token/exchange",
                             json={"code": query["code"][0], "code_verifier": verifier})
    assert exchanged.status_code == 200 and exchanged.get_json()["user"]["email"] == EMAIL
    assert _row().consumed_at is not None
    # One link, one sign-in: a code minted by another press is dead now.
    again = press(browser, token)
    assert again.status_code == 410


def test_an_app_link_needs_its_verifier_through_the_api(app, client):
    verifier, challenge = _pkce()
    client.post("/api/v1/magic-link/request", json={
        "email": EMAIL, "code_challenge": challenge, "code_challenge_method": "S256"})
    token, _ = last_mail(app.config["OUTBOX_DIR"], EMAIL)
    assert client.post("/api/v1/magic-link/verify", json={"token": token}).status_code == 401
    assert client.post("/api/v1/magic-link/verify", json={
        "token": token, "code_verifier": secrets.token_urlsafe(48)}).status_code == 401
    assert client.post("/api/v1/magic-link/verify", json={
        "token": token, "code_verifier": verifier}).status_code == 200


def test_an_api_link_without_pkce_asks_a_browser_for_the_code(app, browser):
    browser.post("/api/v1/magic-link/request", json={"email": EMAIL})
    token, _code = last_mail(app.config["OUTBOX_DIR"], EMAIL)
    page = browser.get("/auth/magic", query_string={"token": token})
    assert 'name="code"' in page.get_data(as_text=True)
    # An app that caught the link may still use its token through the API.
    assert browser.post("/api/v1/magic-link/verify", json={"token": token}).status_code == 200


def test_a_link_asked_for_in_a_browser_is_not_usable_through_the_api(app, browser, scanner):
    token, _ = ask_on_the_web(app, browser)
    assert scanner.post("/api/v1/magic-link/verify", json={"token": token}).status_code == 401
    assert _row().consumed_at is None


def test_binding_off_restores_the_button_everywhere(app, browser, scanner):
    from authserver.services import configure

    configure(app, MAGIC_LINK_BINDING=False)
    token, _ = ask_on_the_web(app, browser)
    assert press(scanner, token).status_code == 303  # the weaker, documented behaviour


# -- pre-hijacked accounts ----------------------------------------------------------------
def test_the_first_proof_of_an_address_evicts_a_squatters_password_and_sessions(
        app, browser, client):
    squatter = client.post("/api/v1/signup", json={"email": EMAIL, "password": PASSWORD})
    assert squatter.status_code == 201
    squatter_tokens = squatter.get_json()

    token, _ = ask_on_the_web(app, browser)
    assert press(browser, token).status_code == 303
    account = browser.get("/account").get_data(as_text=True)
    assert "password and any sign-ins set up on the account before now were removed" in account

    assert client.post("/api/v1/signin", json={"email": EMAIL, "password": PASSWORD}) \
        .status_code == 401
    assert client.post("/api/v1/token/refresh", json={
        "refresh_token": squatter_tokens["refresh_token"]}).status_code == 401
    assert client.get("/api/v1/isAuthenticated", headers={
        "Authorization": f"Bearer {squatter_tokens['access_token']}"}).status_code == 401


def test_a_verified_address_keeps_its_password_and_sessions(app, browser, client):
    user = accounts.create(email=EMAIL, password_hash=passwords.hash_password(PASSWORD))
    user.email_verified_at = server_clock.now()  # proven once already
    db.session.commit()
    session = client.post("/api/v1/signin", json={"email": EMAIL, "password": PASSWORD})
    token, _ = ask_on_the_web(app, browser)
    assert press(browser, token).status_code == 303
    assert client.post("/api/v1/signin", json={"email": EMAIL, "password": PASSWORD}) \
        .status_code == 200
    assert client.get("/api/v1/isAuthenticated", headers={
        "Authorization": f"Bearer {session.get_json()['access_token']}"}).status_code == 200


def test_the_first_proof_of_a_phone_evicts_a_password_set_before_it(app, client):
    from tests.flows.sms_helpers import last_code

    phone = "+16502530000"
    accounts.create(email="squatter@example.com", phone=phone,
                    password_hash=passwords.hash_password(PASSWORD))
    db.session.commit()
    squatter = client.post("/api/v1/signin", json={"email": "squatter@example.com",
                                                   "password": PASSWORD}).get_json()
    client.post("/api/v1/otp/request", json={"phone": phone})
    code = last_code(app.config["OUTBOX_DIR"], phone)
    assert client.post("/api/v1/otp/verify", json={"phone": phone, "code": code}) \
        .status_code == 200
    assert client.post("/api/v1/signin", json={"email": "squatter@example.com",
                                               "password": PASSWORD}).status_code == 401
    assert client.get("/api/v1/isAuthenticated", headers={
        "Authorization": f"Bearer {squatter['access_token']}"}).status_code == 401


# -- enumeration with e-mail sign-up off -----------------------------------------------------
def test_with_signup_off_unknown_addresses_answer_like_accounts_in_every_state(app, client):
    from authserver.senders.base import RecipientRejected, SenderUnavailable
    from authserver.services import configure, replace, services

    configure(app, EMAIL_SIGNUP_ENABLED=False)
    accounts.create(email="known@example.com")
    db.session.commit()

    def sixth_wrong(address: str) -> int:
        assert client.post("/api/v1/magic-link/request", json={"email": address}) \
            .status_code == 202
        [mail] = email_messages(app.config["OUTBOX_DIR"], address)[-1:]
        guess = wrong_code(code_in(mail["text"])) if address.startswith("known") else "123456"
        answers = [client.post("/api/v1/magic-link/verify", json={
            "email": address, "code": guess}).status_code for _ in range(6)]
        return answers[-1]

    assert sixth_wrong("known@example.com") == sixth_wrong("nobody@example.com") == 429

    real = services(app).email

    class Failing:
        def __init__(self, error: Exception) -> None:
            self.error = error

        def send(self, *args: Any) -> None:
            raise self.error

    accounts.create(email="known2@example.com")
    db.session.commit()
    for error, status in ((SenderUnavailable("down"), 503), (RecipientRejected("no"), 422)):
        replace(app, email=Failing(error))
        answers = [client.post("/api/v1/magic-link/request", json={"email": address})
                   for address in ("known2@example.com", "nobody2@example.com")]
        assert [r.status_code for r in answers] == [status, status]
        assert answers[0].get_json()["code"] == answers[1].get_json()["code"]
    replace(app, email=real)
