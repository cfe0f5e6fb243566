"""Changing the e-mail address in a real browser, at a phone's and a laptop's width: the
account page's link, the new address's mail opened in the same browser, the notice to the
old address."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from tests.browser.conftest import (
    LAPTOP_SCREEN,
    PHONE_SCREEN,
    Outbox,
    no_sideways_scroll,
    password_sign_in,
    shoot,
)

PASSWORD = "correct horse battery staple"
OLD = "ada@example.com"
NEW = "ada.lovelace@example.org"


@pytest.fixture
def server(live_server, tmp_path: Path):
    return live_server(OUTBOX_DIR=str(tmp_path / "outbox"))


@pytest.mark.parametrize("screen", [PHONE_SCREEN, LAPTOP_SCREEN], ids=["360", "1280"])
def test_change_e_mail_from_the_account_page(server, page, screen):
    outbox = Outbox(Path(server.env["OUTBOX_DIR"]))
    page.set_viewport_size(screen)
    signed_up = requests.post(server.url + "/api/v1/signup", timeout=10,
                              json={"email": OLD, "password": PASSWORD})
    assert signed_up.status_code == 201, signed_up.text
    password_sign_in(page, server.url, OLD, PASSWORD)
    page.wait_for_url("**/account")

    page.get_by_role("link", name="Change e-mail").click()
    page.wait_for_url("**/account/email")
    no_sideways_scroll(page)
    page.get_by_label("E-mail").fill(NEW)
    page.get_by_role("button", name="Send the confirmation").click()
    page.wait_for_selector("#change-email-sent")
    shoot(page, f"change-email-sent-{screen['width']}")

    text = outbox.wait_for("email", NEW)["text"]
    link = re.search(r"https?://\S+/auth/verify-email\?token=\S+", text).group(0)
    page.goto(link)  # the browser that asked: a button, nothing used by opening it
    assert page.locator("#verify-email").inner_text() == NEW
    no_sideways_scroll(page)
    page.get_by_role("button", name="Confirm the new address").click()

    page.goto(server.url + "/account")
    assert page.locator("#account-email").inner_text().startswith(NEW)
    notice = outbox.wait_for("email", OLD, count=2)  # the sign-up's mail, then the notice
    assert notice["subject"].endswith("e-mail address was changed")
    # The new address signs in with the same password; the old one no longer does.
    assert requests.post(server.url + "/api/v1/signin", timeout=10, json={
        "email": NEW, "password": PASSWORD}).status_code == 200
    assert requests.post(server.url + "/api/v1/signin", timeout=10, json={
        "email": OLD, "password": PASSWORD}).status_code == 401
