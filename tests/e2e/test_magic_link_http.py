"""Issue 4's "done when", over real HTTP: gunicorn + MySQL, mail through a real SMTP catcher."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from sqlalchemy import create_engine, text

from tests.fakes.smtp_server import FakeSmtp
from tests.flows.magic_helpers import code_in, link_in, parts_of, token_of

EMAIL = "lin@example.com"
CALLBACK = "https://app.example.test/callback"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
TOKEN_RE = re.compile(r'<input[^>]*name="token"[^>]*value="([^"]+)"')


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake


def _consumed(database_url: str, token: str) -> bool:
    """Whether the link's row is used, read straight from the server's database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT consumed_at FROM one_time_codes")).all()
    finally:
        engine.dispose()
    assert len(rows) == 1 and token
    return rows[0][0] is not None


def test_link_and_code_sign_in_over_http(live_server, smtp):
    server = live_server(EMAIL_BACKEND="smtp", SMTP_HOST=smtp.host, SMTP_PORT=smtp.port,
                         MAGIC_LINK_BINDING="false",
                         SMTP_TIMEOUT=5, MAIL_FROM="Auth <no-reply@auth.example.test>",
                         REDIRECT_ALLOWLIST=CALLBACK, MAGIC_LINK_RESEND_COOLDOWN=0)
    api = server.url + "/api/v1"
    browser = requests.Session()

    # 1. Ask for a link, with a forged Host header that must not reach the mail.
    asked = requests.post(api + "/magic-link/request",
                          json={"email": "Lin@Example.com", "redirect_to": CALLBACK},
                          headers={"Host": "evil.test"}, timeout=10)
    assert asked.status_code == 202, asked.text
    assert asked.json() == {"sent": True, "expires_in": 900}
    [first] = smtp.wait_for(1)
    assert first["To"] == EMAIL and smtp.envelopes[0].rcpt_tos == [EMAIL]
    text_part, html_part = parts_of(first)
    link = link_in(text_part)
    assert link.startswith(server.url + "/auth/magic?token=")
    assert link in html_part and code_in(text_part) in html_part
    assert "evil.test" not in text_part + html_part

    # 2. Open it (twice, as a mail scanner and then the person would): nothing is consumed.
    for _ in range(2):
        page = browser.get(link, timeout=10, allow_redirects=False)
        assert page.status_code == 200
        assert page.headers["Referrer-Policy"] == "no-referrer"
    assert not _consumed(server.env["DATABASE_URL"], token_of(link))

    # 3. Press the button: signed in, 303 to the allow-listed app with a one-time code.
    form = {"csrf_token": CSRF_RE.search(page.text).group(1),
            "token": TOKEN_RE.search(page.text).group(1)}
    pressed = browser.post(server.url + "/auth/magic", data=form, timeout=10,
                           allow_redirects=False)
    assert pressed.status_code == 303, pressed.text[:500]
    location = pressed.headers["Location"]
    assert location.startswith(CALLBACK + "?code=") and "eyJ" not in location
    assert _consumed(server.env["DATABASE_URL"], token_of(link))
    assert browser.get(server.url + "/account", timeout=10).status_code == 200

    [handoff_code] = parse_qs(urlsplit(location).query)["code"]
    exchanged = requests.post(api + "/token/exchange", json={"code": handoff_code}, timeout=10)
    assert exchanged.status_code == 200 and exchanged.json()["user"]["email"] == EMAIL

    # The same link again: used up, a friendly page offering a new link.
    again = browser.get(link, timeout=10, allow_redirects=False)
    assert 400 <= again.status_code < 500 and "new link" in again.text
    # And the old form replayed: the sign-in began a new cookie session, so its CSRF
    # token is stale and it is refused before the link is even looked at.
    replayed = browser.post(server.url + "/auth/magic", data=form, timeout=10,
                            allow_redirects=False)
    assert replayed.status_code == 400

    # 4. A second mail; sign in with its code on "another device" through the API.
    asked = requests.post(api + "/magic-link/request", json={"email": EMAIL}, timeout=10)
    assert asked.status_code == 202
    _, second = smtp.wait_for(2)
    code = code_in(parts_of(second)[0])
    signed_in = requests.post(api + "/magic-link/verify", json={"email": EMAIL, "code": code},
                              timeout=10)
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    assert tokens["user"]["email_verified"] is True

    jwks = jwt.PyJWKClient(server.url + "/.well-known/jwks.json")
    key = jwks.get_signing_key_from_jwt(tokens["access_token"])
    claims = jwt.decode(tokens["access_token"], key, algorithms=["ES256"],
                        audience="authserver", issuer=server.url)
    assert claims["amr"] == ["email"] and claims["sub"] == tokens["user"]["id"]

    # The code is single use, and the second mail's link died with it.
    reused = requests.post(api + "/magic-link/verify", json={"email": EMAIL, "code": code},
                           timeout=10)
    assert reused.status_code == 401 and reused.json()["code"] == "invalid_link"
    second_token = token_of(link_in(parts_of(second)[0]))
    dead = requests.post(api + "/magic-link/verify", json={"token": second_token}, timeout=10)
    assert dead.status_code == 401
    # Nothing the server logged holds a link or a code.
    log = server.log()
    assert "token=" not in log and token_of(link) not in log and code not in log


def test_smtp_down_over_http_is_503_and_leaves_no_link(live_server, smtp):
    port = smtp.port
    smtp.stop()
    server = live_server(EMAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=port,
                         SMTP_TIMEOUT=2)
    response = requests.post(server.url + "/api/v1/magic-link/request",
                             json={"email": EMAIL}, timeout=15)
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    engine = create_engine(server.env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM one_time_codes")).scalar() == 0
    finally:
        engine.dispose()
