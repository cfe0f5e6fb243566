"""/login/forgot and /auth/reset: a person resets a forgotten password from the mail; a mail
scanner (another client, its own cookie jar) that opens the link and presses what it finds
resets nothing and burns nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from authserver.extensions import db
from authserver.models import OneTimeCode
from tests.api.test_password_reset import NEW_PASSWORD, reset_mail
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


def ask(app: Any, browser: Any) -> tuple[str, str]:
    login = browser.get("/login").get_data(as_text=True)
    assert 'href="/login/forgot"' in login and "Forgot your password?" in login
    page = browser.get("/login/forgot")
    sent = browser.post("/login/forgot", data={"email": EMAIL,
                                               "csrf_token": csrf_from(page.get_data(True))})
    assert sent.status_code == 200 and "Check your inbox" in sent.get_data(True)
    assert any(c.startswith("authserver_link_binding=")
               for c in sent.headers.getlist("Set-Cookie"))
    return reset_mail(app)


def _row() -> OneTimeCode:
    db.session.commit()
    db.session.expire_all()
    row = db.session.scalar(select(OneTimeCode).where(OneTimeCode.purpose == "password_reset"))
    assert row is not None
    return row


def _sign_in(client: Any, password: str) -> int:
    return client.post("/api/v1/signin", json={"email": EMAIL, "password": password}
                       ).status_code


def test_forgot_mail_then_the_asking_browser_sets_a_password_and_is_signed_in(
        app, client, signup):
    signup()
    token, _ = ask(app, client)
    page = client.get("/auth/reset", query_string={"token": token})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'name="code"' not in html and EMAIL in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert _row().consumed_at is None  # the GET uses nothing
    data = {"token": token, "password": NEW_PASSWORD, "csrf_token": csrf_from(html)}
    weak = client.post("/auth/reset", data={**data, "password": "short"})
    assert weak.status_code == 422 and _row().consumed_at is None
    done = client.post("/auth/reset", data=data)
    assert done.status_code == 303 and done.headers["Location"].endswith("/account")
    assert client.get("/account").status_code == 200
    assert _sign_in(client, NEW_PASSWORD) == 200 and _sign_in(client, PASSWORD) == 401
    again = client.get("/auth/reset", query_string={"token": token})
    assert again.status_code == 410


def test_a_scanner_pressing_the_page_resets_nothing(app, client, scanner, signup):
    signup()
    token, _ = ask(app, client)
    page = scanner.get("/auth/reset", query_string={"token": token})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'name="code"' in html
    csrf = csrf_from(html)
    hidden = HIDDEN_TOKEN_RE.search(html)
    assert hidden is not None
    # Pressed as it is (no code), with a password, and with a guessed code: nothing happens.
    plain = scanner.post("/auth/reset", data={"token": hidden.group(1), "csrf_token": csrf,
                                              "password": NEW_PASSWORD})
    assert plain.status_code == 200 and 'name="code"' in plain.get_data(True)
    guessed = scanner.post("/auth/reset", data={"token": token, "csrf_token": csrf,
                                                "code": "000000", "password": NEW_PASSWORD})
    assert guessed.status_code in {401, 422}
    assert scanner.get("/account").status_code == 302
    assert _row().consumed_at is None
    assert _sign_in(client, PASSWORD) == 200


def test_in_another_browser_the_code_from_the_mail_resets(app, client, scanner, signup):
    signup()
    token, code = ask(app, client)
    other = scanner  # the person's phone, say
    html = other.get("/auth/reset", query_string={"token": token}).get_data(as_text=True)
    data = {"token": token, "csrf_token": csrf_from(html), "password": NEW_PASSWORD}
    wrong = other.post("/auth/reset", data={**data, "code": wrong_code(code)})
    assert wrong.status_code == 401 and "invalid, expired or already used" in wrong.get_data(True)
    done = other.post("/auth/reset", data={**data, "code": code})
    assert done.status_code == 303
    assert other.get("/account").status_code == 200
    assert _sign_in(client, NEW_PASSWORD) == 200


def test_a_bad_link_shows_the_expired_page(client):
    page = client.get("/auth/reset", query_string={"token": "forged"})
    assert page.status_code == 410 and "/login/forgot" in page.get_data(True)


PASSWORD_INPUT_RE = re.compile(r'<input[^>]*name="password"[^>]*>')


def password_rule_on(html: str, minimum: int) -> None:
    """The page states the length rule next to the new-password input before anything is
    typed: visible text, tied to the input, and the input's own bounds."""
    rule = f"At least {minimum} characters \N{EM DASH} a few words work well."
    match = PASSWORD_INPUT_RE.search(html)
    assert match is not None, "no password input"
    tag = match.group(0)
    assert f'minlength="{minimum}"' in tag and 'maxlength="256"' in tag
    assert 'autocomplete="new-password"' in tag
    hint = re.search(r'<p class="hint" id="([^"]+)">([^<]*)</p>', html)
    assert hint is not None and hint.group(2) == rule
    assert f'aria-describedby="{hint.group(1)}' in tag
    assert html.index(tag) < html.index(rule) < html.index("</form>")


def test_both_reset_forms_show_the_password_rule_before_any_submit(app, client, scanner,
                                                                    signup):
    from authserver.services import configure

    signup()
    token, _ = ask(app, client)
    asking = client.get("/auth/reset", query_string={"token": token}).get_data(as_text=True)
    password_rule_on(asking, 15)
    elsewhere = scanner.get("/auth/reset", query_string={"token": token}).get_data(True)
    assert 'name="code"' in elsewhere
    password_rule_on(elsewhere, 15)
    configure(app, PASSWORD_MIN_LENGTH=20)
    password_rule_on(client.get("/auth/reset", query_string={"token": token}).get_data(True),
                     20)


def test_a_refused_password_keeps_the_rule_and_adds_the_reason(app, client, signup):
    signup()
    token, _ = ask(app, client)
    html = client.get("/auth/reset", query_string={"token": token}).get_data(as_text=True)
    weak = client.post("/auth/reset", data={"token": token, "csrf_token": csrf_from(html),
                                            "password": "fourteen chars"})
    page = weak.get_data(as_text=True)
    assert weak.status_code == 422
    assert "Use at least 15 characters \N{EM DASH} a few words work well." in page
    assert 'aria-describedby="password-hint password-error"' in page
    password_rule_on(page, 15)
