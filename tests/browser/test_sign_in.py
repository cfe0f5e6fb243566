"""Signing in the three ways in a real browser, signing out, and the hand-off to an app."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.browser.conftest import Outbox, StubApp, shoot

PASSWORD = "correct horse battery staple"
PHONE_TYPED = "(650) 253-0000"
PHONE = "+16502530000"


@pytest.fixture
def server(live_server, tmp_path: Path):
    return live_server(OUTBOX_DIR=str(tmp_path / "outbox"))


@pytest.fixture
def outbox(server) -> Outbox:
    return Outbox(Path(server.env["OUTBOX_DIR"]))


def _signup_api(server, email: str = "ada@example.com") -> None:
    response = requests.post(server.url + "/api/v1/signup",
                             json={"email": email, "password": PASSWORD}, timeout=10)
    assert response.status_code == 201, response.text


def _sign_out(page) -> None:
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url("**/login?signed_out=1")
    assert page.get_by_text("You are signed out.").is_visible()


def test_password_sign_in_and_out(server, page):
    _signup_api(server)
    page.goto(server.url + "/login")
    shoot(page, "login")

    # A wrong password is shown in place, with the API's wording.
    page.locator("#password").fill("not my password")
    page.locator("form[action='/login'] #email").fill("ada@example.com")
    page.get_by_role("button", name="Sign in with password").click()
    assert page.get_by_text("The e-mail address or password is incorrect.").is_visible()
    shoot(page, "login-wrong-password")

    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_url("**/account")
    assert page.locator("#account-email").inner_text().startswith("ada@example.com")
    assert "password" in page.locator("#account-amr").inner_text()
    shoot(page, "account")
    _sign_out(page)
    page.goto(server.url + "/account")
    page.wait_for_url("**/login")


def test_sms_code_sign_in(server, outbox, page):
    page.goto(server.url + "/login")
    page.locator("#phone").fill(PHONE_TYPED)
    page.get_by_role("button", name="Text me a code").click()
    page.wait_for_url("**/login/sms/code")
    code_input = page.locator("#code")
    assert code_input.get_attribute("autocomplete") == "one-time-code"
    assert code_input.get_attribute("inputmode") == "numeric"
    shoot(page, "sms-code")

    code = outbox.sms_code(PHONE)
    wrong = "000000" if code != "000000" else "111111"
    code_input.fill(wrong)
    page.get_by_role("button", name="Sign in").click()
    assert page.locator(".error").is_visible()
    shoot(page, "sms-code-wrong")

    page.locator("#code").fill(code)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/account")
    assert "+1 650-253-0000" in page.locator("#account-phone").inner_text()  # for people
    assert "phone" in page.locator("#account-amr").inner_text()
    _sign_out(page)


def test_magic_link_sign_in(server, outbox, page):
    page.goto(server.url + "/login")
    page.locator("#link-email").fill("lin@example.com")
    page.get_by_role("button", name="E-mail me a link").click()
    assert page.get_by_role("heading", name="Check your inbox").is_visible()
    shoot(page, "email-sent")

    link = outbox.magic_link("lin@example.com")
    assert link.startswith(server.url + "/auth/magic?token=")
    page.goto(link)
    shoot(page, "magic-confirm")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/account")
    assert page.locator("#account-email").inner_text().startswith("lin@example.com")
    assert "e-mail" in page.locator("#account-amr").inner_text()

    # The same link a second time: a friendly page that offers a new one.
    page.goto(link)
    button = page.get_by_role("button", name="Sign in")
    if button.count():
        button.click()
    assert page.get_by_text("new link", exact=False).first.is_visible()
    shoot(page, "magic-used")


def test_handoff_to_a_client_app_with_pkce(live_server, tmp_path, page):
    with StubApp() as app:
        server = live_server(OUTBOX_DIR=str(tmp_path / "outbox"),
                             REDIRECT_ALLOWLIST=app.callback)
        app.auth_url = server.url
        _signup_api(server)
        page.goto(f"{server.url}/login?redirect_to={app.callback}"
                  f"&code_challenge={app.challenge}&code_challenge_method=S256")
        # This app sign-in's pages carry its attempt: the form posts to /login?handoff=….
        page.locator("form[action^='/login?handoff='] #email").fill("ada@example.com")
        page.locator("#password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in with password").click()
        page.wait_for_url(app.callback + "?code=*")
        assert page.locator("#who").inner_text() == "Hello ada@example.com"
        assert "eyJ" not in page.url  # no JWT ever in a URL
        shoot(page, "handoff-stub-app")


def test_pages_screenshots(server, page):
    for path, name in [("/signup", "signup"), ("/login/sms", "sms-request"),
                       ("/login/email", "email-request"), ("/nowhere", "not-found")]:
        page.goto(server.url + path)
        shoot(page, name)
