"""Two-factor authentication in a real browser: set up an authenticator app on
/account/security by reading the key off the page (pyotp stands in for the phone), save the
recovery codes, then sign in through the code step, and once with a recovery code."""

from __future__ import annotations

import time

import pyotp
import requests

from tests.browser.conftest import password_sign_in, shoot

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"


def _password_sign_in(page, server) -> None:
    password_sign_in(page, server.url, EMAIL, PASSWORD)


def _sign_out(page, server) -> None:
    page.goto(server.url + "/account")
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url("**/login?signed_out=1")


def test_enrol_from_the_page_then_sign_in_through_the_code_step(live_server, page):
    server = live_server()
    signed_up = requests.post(server.url + "/api/v1/signup",
                              json={"email": EMAIL, "password": PASSWORD}, timeout=10)
    assert signed_up.status_code == 201, signed_up.text
    _password_sign_in(page, server)
    page.wait_for_url("**/account")

    page.get_by_role("link", name="Two-factor authentication").click()
    page.wait_for_url("**/account/security")
    assert "is off" in page.locator("#mfa-status").inner_text()
    page.get_by_role("button", name="Set up an authenticator app").click()
    page.wait_for_url("**/account/security")
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    assert qr.is_visible() and qr.get_attribute("src").startswith("data:image/svg+xml")
    secret = page.locator("#totp-secret").inner_text().strip()
    assert len(secret) == 32
    shoot(page, "mfa-setup")
    page.get_by_label("6-digit code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()

    # The recovery codes, once, with a download.
    page.wait_for_selector("#recovery-codes")
    codes = [item.strip() for item in page.locator("#recovery-codes code").all_inner_texts()]
    assert len(codes) == 10
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    saved = download.value.path()
    with open(saved, encoding="utf-8") as file:
        assert file.read().split() == codes
    shoot(page, "mfa-recovery-codes")
    page.get_by_role("link", name="I saved them").click()
    page.wait_for_url("**/account/security")
    assert "is on" in page.locator("#mfa-status").inner_text()
    assert secret not in page.content()

    # Signing in now takes the app's code too (the next step's: the confirming one is used).
    _sign_out(page, server)
    _password_sign_in(page, server)
    page.wait_for_url("**/login/mfa")
    assert page.get_by_text("Enter the code from your authenticator app").is_visible()
    code_box = page.get_by_label("6-digit code")
    assert code_box.get_attribute("autocomplete") == "one-time-code"
    assert code_box.get_attribute("inputmode") == "numeric"
    shoot(page, "mfa-code-step")
    code_box.fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/account")
    assert "one-time code" in page.locator("#account-amr").inner_text()

    # And once with a recovery code instead.
    _sign_out(page, server)
    _password_sign_in(page, server)
    page.wait_for_url("**/login/mfa")
    page.get_by_role("link", name="Use a recovery code instead").click()
    page.wait_for_url("**/login/mfa/recovery")
    page.get_by_label("Recovery code").fill(codes[0])
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/account")
    assert "2 factors" in page.locator("#account-amr").inner_text()
