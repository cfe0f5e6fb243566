"""The security issue's "done when" for mailed links, over real HTTP: gunicorn on MySQL, mail
through a real SMTP catcher, each party a `requests.Session` with its own cookie jar.

A "scanner" is what mail security gateways now do: open the mailed link in a browser of
their own and submit the page's form, CSRF token and all.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.fakes.smtp_server import FakeSmtp
from tests.flows.magic_helpers import code_in, link_in, parts_of

EMAIL = "lin@example.com"
PASSWORD = "correct horse battery staple"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
TOKEN_RE = re.compile(r'<input[^>]*name="token"[^>]*value="([^"]+)"')


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake


@pytest.fixture
def server(live_server: Any, smtp: FakeSmtp) -> Any:
    return live_server(EMAIL_BACKEND="smtp", SMTP_HOST=smtp.host, SMTP_PORT=smtp.port,
                       SMTP_TIMEOUT=5, REDIRECT_ALLOWLIST="myapp://auth",
                       MAGIC_LINK_RESEND_COOLDOWN=0, SESSION_COOKIE_SECURE="false")


def _mail(smtp: FakeSmtp, count: int) -> tuple[str, str]:
    """(link, code) of the count-th mail."""
    text, _html = parts_of(smtp.wait_for(count)[count - 1])
    return link_in(text), code_in(text)


def _ask_on_the_web(server: Any, browser: requests.Session) -> None:
    page = browser.get(server.url + "/login/email", timeout=10)
    sent = browser.post(server.url + "/login/email", timeout=10, data={
        "email": EMAIL, "csrf_token": CSRF_RE.search(page.text).group(1)})
    assert sent.status_code == 200, sent.text[:300]


def _press(client: requests.Session, server: Any, link: str, code: str | None = None
           ) -> requests.Response:
    """Open the link and submit whatever form the page shows (a scanner fills in a code)."""
    page = client.get(link, timeout=10, allow_redirects=False)
    data = {"csrf_token": CSRF_RE.search(page.text).group(1)}
    token = TOKEN_RE.search(page.text)
    if token:
        data["token"] = token.group(1)
    if 'name="code"' in page.text:
        data["code"] = code or "000000"
    return client.post(server.url + "/auth/magic", data=data, timeout=10,
                       allow_redirects=False)


def _signed_in(client: requests.Session, server: Any) -> bool:
    return client.get(server.url + "/account", timeout=10, allow_redirects=False) \
        .status_code == 200


def test_a_scanner_neither_signs_in_nor_burns_the_link_over_http(server, smtp):
    browser, scanner = requests.Session(), requests.Session()
    _ask_on_the_web(server, browser)
    link, _code = _mail(smtp, 1)

    assert _press(scanner, server, link).status_code == 401  # a guessed code, no button
    page = scanner.get(link, timeout=10)
    assert "another device or in another browser" in page.text
    pressed = scanner.post(server.url + "/auth/magic", timeout=10, allow_redirects=False,
                           data={"csrf_token": CSRF_RE.search(page.text).group(1),
                                 "token": TOKEN_RE.search(page.text).group(1)})
    assert pressed.status_code == 200 and not _signed_in(scanner, server)

    # Afterwards, the person's own browser signs in with the very same link.
    signed = _press(browser, server, link)
    assert signed.status_code == 303 and signed.headers["Location"].endswith("/account")
    assert _signed_in(browser, server)


def test_on_another_browser_the_mails_code_completes_it_over_http(server, smtp):
    browser, phone = requests.Session(), requests.Session()
    _ask_on_the_web(server, browser)
    link, code = _mail(smtp, 1)
    assert _press(phone, server, link, code).status_code == 303
    assert _signed_in(phone, server)
    assert _press(browser, server, link).status_code == 410  # one mail, one sign-in


def test_an_apps_link_pressed_by_a_scanner_still_lets_the_app_exchange_over_http(
        server, smtp):
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    asked = requests.post(server.url + "/api/v1/magic-link/request", timeout=10, json={
        "email": EMAIL, "redirect_to": "myapp://auth", "code_challenge": challenge,
        "code_challenge_method": "S256", "state": "s-1"})
    assert asked.status_code == 202
    link, _ = _mail(smtp, 1)

    caught = _press(requests.Session(), server, link)
    assert caught.status_code == 303
    stolen = parse_qs(urlsplit(caught.headers["Location"]).query)["code"][0]
    assert requests.post(server.url + "/api/v1/token/exchange", json={"code": stolen},
                         timeout=10).status_code == 401

    mine = _press(requests.Session(), server, link)
    query = parse_qs(urlsplit(mine.headers["Location"]).query)
    assert query["state"] == ["s-1"]
    exchanged = requests.post(server.url + "/api/v1/token/exchange", timeout=10, json={
        "code": query["code"][0], "code_verifier": verifier})
    assert exchanged.status_code == 200 and exchanged.json()["user"]["email"] == EMAIL


def test_a_pre_hijacked_account_loses_the_squatters_password_and_sessions_over_http(
        server, smtp):
    api = server.url + "/api/v1"
    squatter = requests.post(api + "/signup", json={"email": EMAIL, "password": PASSWORD},
                             timeout=10)
    assert squatter.status_code == 201
    tokens = squatter.json()

    owner = requests.Session()
    _ask_on_the_web(server, owner)
    link, _ = _mail(smtp, 2)  # after the squatter's sign-up's verification mail
    assert _press(owner, server, link).status_code == 303
    assert "were removed" in owner.get(server.url + "/account", timeout=10).text

    assert requests.post(api + "/signin", json={"email": EMAIL, "password": PASSWORD},
                         timeout=10).status_code == 401
    assert requests.post(api + "/token/refresh", json={
        "refresh_token": tokens["refresh_token"]}, timeout=10).status_code == 401
    assert requests.get(api + "/isAuthenticated", timeout=10, headers={
        "Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
