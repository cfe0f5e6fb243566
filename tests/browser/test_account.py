"""/account and its change pages in a real browser: fonts, ids, phone, password, sessions,
deletion."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.browser.conftest import Outbox, password_sign_in, shoot

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase for ada"
PHONE = "+16502530000"


@pytest.fixture
def server(live_server, tmp_path: Path):
    return live_server(OUTBOX_DIR=str(tmp_path / "outbox"))


@pytest.fixture
def outbox(server) -> Outbox:
    return Outbox(Path(server.env["OUTBOX_DIR"]))


def _sign_in(server, page) -> None:
    response = requests.post(server.url + "/api/v1/signup",
                             json={"email": "ada@example.com", "password": PASSWORD},
                             headers={"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 "
                                      "like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                                      "Version/17.5 Mobile/15E148 Safari/604.1"}, timeout=10)
    assert response.status_code == 201, response.text
    password_sign_in(page, server.url, "ada@example.com", PASSWORD)
    page.wait_for_url("**/account")


def test_account_page_font_ids_and_devices(server, page):
    _sign_in(server, page)
    body_font = page.evaluate("getComputedStyle(document.body).fontFamily")
    fonts = page.evaluate("[...document.querySelectorAll('button')]"
                          ".map(b => getComputedStyle(b).fontFamily)")
    assert fonts and set(fonts) == {body_font}
    ids = page.evaluate("[...document.querySelectorAll('[id]')].map(e => e.id)")
    assert len(ids) == len(set(ids)), ids
    sessions = page.locator("#account-sessions").inner_text()
    assert "Safari on iPhone" in sessions and "Chrome on Linux" in sessions
    shoot(page, "account-sessions")


def test_phone_password_sign_out_and_delete(server, outbox, page):
    _sign_in(server, page)
    page.get_by_role("link", name="Add phone").click()
    page.locator("#phone").fill("(650) 253-0000")
    page.get_by_role("button", name="Text me a code").click()
    page.wait_for_url("**/account/phone/code")
    shoot(page, "account-phone-code")
    page.locator("#code").fill(outbox.sms_code(PHONE))
    page.get_by_role("button", name="Save this number").click()
    page.wait_for_url("**/account")
    assert "+1 650-253-0000" in page.locator("#account-phone").inner_text()

    page.get_by_role("link", name="Change password").click()
    page.locator("#current_password").fill(PASSWORD)
    page.locator("#password").fill(NEW_PASSWORD)
    shoot(page, "account-password")
    page.get_by_role("button", name="Change password").click()
    page.wait_for_url("**/account")
    assert "password was changed" in page.locator("#account-notice").inner_text()
    # The sign-up's API session was signed out with the change: only this browser is left.
    assert page.get_by_role("button", name="Sign out this session").count() == 0

    page.get_by_role("link", name="Delete account").click()
    shoot(page, "account-delete")
    page.get_by_role("button", name="Delete my account").click()
    assert page.get_by_role("heading", name="Your account was deleted").is_visible()
    page.goto(server.url + "/account")
    page.wait_for_url("**/login")
