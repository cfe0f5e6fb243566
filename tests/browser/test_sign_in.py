"""Signing in as a new user would, in a real browser at phone (360x640) and laptop (1280x800)
sizes: identifier first, then the password, a texted code, a mailed link or the mail's code;
a forgotten password reset from the mail; signing out; the hand-off to an app."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.browser.conftest import (
    LAPTOP_SCREEN,
    PHONE_SCREEN,
    Outbox,
    StubApp,
    focused_and_visible,
    no_sideways_scroll,
    shoot,
)

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "purple elephants juggle quietly at dawn"
PHONE_TYPED = "(650) 253-0000"
PHONE = "+16502530000"
SCREENS = {"360": PHONE_SCREEN, "1280": LAPTOP_SCREEN}


@pytest.fixture
def server(live_server, tmp_path: Path):
    return live_server(OUTBOX_DIR=str(tmp_path / "outbox"))


@pytest.fixture
def outbox(server) -> Outbox:
    return Outbox(Path(server.env["OUTBOX_DIR"]))


@pytest.fixture(params=sorted(SCREENS))
def screen(request, page):
    """Run the test at phone and at laptop size."""
    page.set_viewport_size(SCREENS[request.param])
    return request.param


def _signup_api(server, email: str = "ada@example.com") -> None:
    response = requests.post(server.url + "/api/v1/signup",
                             json={"email": email, "password": PASSWORD}, timeout=10)
    assert response.status_code == 201, response.text


def _identify(page, server, identifier: str, query: str = "") -> None:
    """/login's first step: one box for an e-mail address or a phone number."""
    page.goto(server.url + "/login" + query)
    no_sideways_scroll(page)
    box = page.get_by_label("E-mail or phone number")
    # autofocus lands once the page has loaded; a loaded machine can take a moment.
    page.wait_for_function("document.activeElement && document.activeElement.id === "
                           "'identifier'", timeout=3000)
    box.fill(identifier)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_selector("#identity")
    assert page.locator("#identity").inner_text() == identifier
    no_sideways_scroll(page)


def _sign_out(page) -> None:
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url("**/login?signed_out=1")
    assert page.get_by_text("You are signed out.").is_visible()


def test_password_sign_in_and_out(server, page, screen):
    _signup_api(server)
    page.goto(server.url + "/login")
    shoot(page, "login")
    _identify(page, server, "ada@example.com")
    shoot(page, "login-email-step")
    assert page.evaluate("document.activeElement.id") == "password"

    # A wrong password: the message takes the focus, is announced, and is on screen.
    page.get_by_label("Password", exact=True).fill("not my password at all")
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_selector("#password-error")
    error = page.locator("#password-error")
    assert error.inner_text() == "The e-mail address or password is incorrect."
    assert error.get_attribute("role") == "alert"
    assert error.get_attribute("aria-live") == "assertive"
    focused_and_visible(page, "#password-error")
    no_sideways_scroll(page)
    shoot(page, "login-wrong-password")

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_url("**/account")
    assert page.locator("#account-email").inner_text().startswith("ada@example.com")
    assert "password" in page.locator("#account-amr").inner_text()
    no_sideways_scroll(page)
    shoot(page, "account")
    _sign_out(page)
    page.goto(server.url + "/account")
    page.wait_for_url("**/login")


def test_an_unknown_address_gets_the_same_step_and_the_same_error(server, page):
    _identify(page, server, "nobody@example.com")
    assert page.get_by_label("Password", exact=True).is_visible()
    assert page.get_by_role("button", name="E-mail me a sign-in link and code").is_visible()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_selector("#password-error")
    assert page.locator("#password-error").inner_text() == \
        "The e-mail address or password is incorrect."


def test_sms_code_sign_in(server, outbox, page):
    page.set_viewport_size(PHONE_SCREEN)
    _identify(page, server, PHONE_TYPED)
    page.get_by_role("button", name="Text me a code").click()
    page.wait_for_url("**/login/sms/code")
    code_input = page.locator("#code")
    assert code_input.get_attribute("autocomplete") == "one-time-code"
    assert code_input.get_attribute("inputmode") == "numeric"
    assert page.locator("#code-tries").inner_text() == "5 tries left for this code."
    # The resend button waits out the cooldown, counting down (static/sign_in.js).
    resend = page.get_by_role("button", name="Send a new code")
    assert resend.is_disabled()
    first = int(page.locator("[data-countdown-for=resend]").inner_text())
    assert 0 < first <= 30
    page.wait_for_function(
        "n => Number(document.querySelector('[data-countdown-for=resend]').textContent) < n",
        arg=first)
    no_sideways_scroll(page)
    shoot(page, "sms-code")

    code = outbox.sms_code(PHONE)
    wrong = "000000" if code != "000000" else "111111"
    code_input.fill(wrong)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#form-status")
    assert "4 tries left" in page.locator("#form-status").inner_text()
    focused_and_visible(page, "#form-status")
    shoot(page, "sms-code-wrong")

    page.locator("#code").fill(code)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/account")
    assert "+1 650-253-0000" in page.locator("#account-phone").inner_text()  # for people
    assert "phone" in page.locator("#account-amr").inner_text()
    _sign_out(page)


def test_magic_link_sign_in(server, outbox, page):
    _identify(page, server, "lin@example.com")
    page.get_by_role("button", name="E-mail me a sign-in link and code").click()
    assert page.get_by_role("heading", name="Check your inbox").is_visible()

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


def test_the_mails_code_typed_on_check_your_inbox_signs_in(server, outbox, page, screen):
    """A laptop sign-in with the mail open on a phone: the code, typed where it was asked."""
    _identify(page, server, "lin@example.com")
    page.get_by_role("button", name="E-mail me a sign-in link and code").click()
    page.wait_for_selector("h1:text('Check your inbox')")
    code_input = page.get_by_label("6-digit code from the e-mail")
    assert code_input.get_attribute("inputmode") == "numeric"
    assert code_input.get_attribute("autocomplete") == "one-time-code"
    assert page.evaluate("document.activeElement.id") == "code"
    no_sideways_scroll(page)
    shoot(page, "email-sent")

    code = outbox.email_code("lin@example.com")
    wrong = "000000" if code != "000000" else "111111"
    code_input.fill(wrong)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#form-status")
    assert "4 tries left" in page.locator("#form-status").inner_text()
    focused_and_visible(page, "#form-status")
    no_sideways_scroll(page)
    shoot(page, "email-code-wrong")

    page.get_by_label("6-digit code from the e-mail").fill(code)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/account")
    assert page.locator("#account-email").inner_text().startswith("lin@example.com")
    assert "e-mail" in page.locator("#account-amr").inner_text()


def test_forgot_password_then_mail_then_reset_then_signed_in(server, outbox, page, screen):
    _signup_api(server)
    _identify(page, server, "ada@example.com")
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url("**/login/forgot")
    no_sideways_scroll(page)
    page.get_by_label("E-mail", exact=True).fill("ada@example.com")
    page.get_by_role("button", name="E-mail me a reset link").click()
    assert page.locator("#reset-sent").is_visible()
    no_sideways_scroll(page)

    link = outbox.reset_link("ada@example.com")
    assert link.startswith(server.url + "/auth/reset?token=")
    page.goto(link)  # the browser that asked: the new password is enough
    assert page.locator("#reset-email").inner_text() == "ada@example.com"
    no_sideways_scroll(page)
    shoot(page, "reset")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password and sign in").click()
    page.wait_for_url("**/account")
    assert page.locator("#account-email").inner_text().startswith("ada@example.com")
    _sign_out(page)

    # The new password works, the old one no longer does.
    _identify(page, server, "ada@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_selector("#password-error")
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_url("**/account")


def test_handoff_to_a_client_app_with_pkce(live_server, tmp_path, page):
    with StubApp() as app:
        server = live_server(OUTBOX_DIR=str(tmp_path / "outbox"),
                             REDIRECT_ALLOWLIST=app.callback)
        app.auth_url = server.url
        _signup_api(server)
        query = (f"?redirect_to={app.callback}&code_challenge={app.challenge}"
                 "&code_challenge_method=S256")
        _identify(page, server, "ada@example.com", query)
        # This app sign-in's pages carry its attempt: the form posts to /login?handoff=….
        assert page.locator("form[action^='/login?handoff='] #password").count() == 1
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in with password").click()
        page.wait_for_url(app.callback + "?code=*")
        assert page.locator("#who").inner_text() == "Hello ada@example.com"
        assert "eyJ" not in page.url  # no JWT ever in a URL
        shoot(page, "handoff-stub-app")


def test_someone_signed_in_goes_straight_on_to_the_app(live_server, tmp_path, page):
    with StubApp() as app:
        server = live_server(OUTBOX_DIR=str(tmp_path / "outbox"),
                             REDIRECT_ALLOWLIST=app.callback)
        app.auth_url = server.url
        _signup_api(server)
        _identify(page, server, "ada@example.com")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in with password").click()
        page.wait_for_url("**/account")

        # The app hands over to us; this browser is signed in: no page, a fresh code.
        for _ in range(2):
            page.goto(f"{server.url}/login?redirect_to={app.callback}"
                      f"&code_challenge={app.challenge}&code_challenge_method=S256&state=s1")
            page.wait_for_url(app.callback + "?code=*")
            assert "state=s1" in page.url
            assert page.locator("#who").inner_text() == "Hello ada@example.com"
        # Still signed in here.
        page.goto(server.url + "/account")
        assert page.locator("#account-email").inner_text().startswith("ada@example.com")


def test_pages_fit_a_phone_screen(server, page):
    page.set_viewport_size(PHONE_SCREEN)
    for path, name in [("/login", "login-phone"), ("/signup", "signup"),
                       ("/login/sms", "sms-request"), ("/login/email", "email-request"),
                       ("/login/forgot", "forgot"), ("/nowhere", "not-found")]:
        page.goto(server.url + path)
        no_sideways_scroll(page)
        shoot(page, name)


def test_the_steps_work_without_scripts(server, outbox, browser):
    """Progressive enhancement only: with JavaScript off, every step is a plain form, and the
    resend button is usable and says when it will work."""
    _signup_api(server)
    context = browser.new_context(viewport=PHONE_SCREEN, java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        _identify(page, server, PHONE_TYPED)
        page.get_by_role("button", name="Text me a code").click()
        page.wait_for_url("**/login/sms/code")
        resend = page.get_by_role("button", name="Send a new code")
        assert resend.is_enabled()
        assert page.locator("#resend-when").inner_text().startswith("Available in")
        page.locator("#code").fill(outbox.sms_code(PHONE))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/account")
        _sign_out(page)

        _identify(page, server, "ada@example.com")
        page.get_by_label("Password", exact=True).fill("not my password at all")
        page.get_by_role("button", name="Sign in with password").click()
        focused_and_visible(page, "#password-error")  # autofocus: no script needed
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in with password").click()
        page.wait_for_url("**/account")
    finally:
        context.close()
