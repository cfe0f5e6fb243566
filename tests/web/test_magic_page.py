"""GET/POST /auth/magic: a confirmation page that consumes nothing, a button that signs in once."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import g
from sqlalchemy import select

from authserver.extensions import db
from authserver.models import OneTimeCode
from tests.flows.magic_helpers import last_mail
from tests.web.conftest import csrf_from

EMAIL = "ada@example.com"
HIDDEN_TOKEN_RE = re.compile(r'<input[^>]*name="token"[^>]*value="([^"]+)"')


@pytest.fixture
def config_overrides():
    # Links asked for through the API and opened here, as with MAGIC_LINK_BINDING off: the
    # page of today's weaker mode. tests/web/test_link_binding.py covers the default.
    return {"SESSION_COOKIE_SECURE": False, "MAGIC_LINK_BINDING": False}


@pytest.fixture
def mail(app, client):
    def _mail(email: str = EMAIL, **fields) -> str:
        response = client.post("/api/v1/magic-link/request", json={"email": email, **fields})
        assert response.status_code == 202, response.get_json()
        return last_mail(app.config["OUTBOX_DIR"], email)[0]

    return _mail


def _row() -> OneTimeCode:
    db.session.expire_all()
    row = db.session.scalar(select(OneTimeCode))
    assert row is not None
    return row


def _confirm(client, token: str):
    """Open the link, then press the page's button as a browser would."""
    page = client.get("/auth/magic", query_string={"token": token})
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    html = page.get_data(as_text=True)
    hidden = HIDDEN_TOKEN_RE.search(html)
    assert hidden, "the page carries the token in a hidden field"
    return client.post("/auth/magic", data={"token": hidden.group(1),
                                            "csrf_token": csrf_from(html)})


def test_get_shows_a_sign_in_button_and_consumes_nothing(client, mail):
    token = mail()
    for _ in range(3):  # a mail scanner, a preview pane, then the person
        page = client.get("/auth/magic", query_string={"token": token})
        assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert ">Sign in</button>" in html and EMAIL in html
    assert 'method="post"' in html and 'action="/auth/magic"' in html
    assert 'name="csrf_token"' in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "Set-Cookie" not in page.headers or "sid" not in page.headers["Set-Cookie"]
    row = _row()
    assert row.consumed_at is None and row.attempts == 0
    # The link still works after all those GETs.
    assert client.post("/api/v1/magic-link/verify", json={"token": token}).status_code == 200


def test_post_signs_in_once_and_goes_to_account(client, mail):
    token = mail()
    response = _confirm(client, token)
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == "/account"
    assert "HttpOnly" in response.headers["Set-Cookie"]
    account = client.get("/account")
    assert account.status_code == 200
    html = account.get_data(as_text=True)
    assert EMAIL in html and "e-mail" in html
    assert _row().consumed_at is not None

    # The same link again: a friendly page offering a new link, with a 4xx status.
    again = client.get("/auth/magic", query_string={"token": token})
    assert 400 <= again.status_code < 500
    assert "new link" in again.get_data(as_text=True)
    assert again.headers["Referrer-Policy"] == "no-referrer"


def test_a_second_post_of_the_same_token_is_refused(client, mail):
    token = mail()
    page = client.get("/auth/magic", query_string={"token": token})
    csrf = csrf_from(page.get_data(as_text=True))
    first = client.post("/auth/magic", data={"token": token, "csrf_token": csrf})
    assert first.status_code == 303
    # The sign-in started a fresh cookie session, so the page needs a fresh CSRF token. The
    # test client shares the fixture's app context (and `g`, where Flask-WTF caches the
    # token) across requests, where a server would not: forget the cached one.
    g.pop("csrf_token", None)
    page = client.get("/account")
    assert page.status_code == 200
    csrf = csrf_from(page.get_data(as_text=True))
    second = client.post("/auth/magic", data={"token": token, "csrf_token": csrf})
    assert 400 <= second.status_code < 500
    assert "new link" in second.get_data(as_text=True)


def test_post_without_csrf_token_consumes_nothing(client, mail):
    token = mail()
    response = client.post("/auth/magic", data={"token": token})
    assert response.status_code == 400
    assert _row().consumed_at is None
    assert client.get("/account").status_code == 302


def test_post_goes_to_the_stored_redirect_with_a_one_time_code(client, mail):
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    token = mail(redirect_to="https://app.example.test/callback?app=xyz",
                 code_challenge=challenge, code_challenge_method="S256")
    response = _confirm(client, token)
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https", "app.example.test", "/callback")
    query = parse_qs(location.query)
    assert query["app"] == ["xyz"]  # its own query is kept
    assert "eyJ" not in response.headers["Location"]  # never a JWT in a URL
    [code] = query["code"]

    exchanged = client.post("/api/v1/token/exchange",
                            json={"code": code, "code_verifier": verifier})
    assert exchanged.status_code == 200
    assert exchanged.get_json()["user"]["email"] == EMAIL


def test_the_stored_challenge_binds_the_hand_off_code(client, mail):
    challenge = base64.urlsafe_b64encode(hashlib.sha256(b"x" * 43).digest()).rstrip(b"=")
    token = mail(redirect_to="https://app.example.test/callback",
                 code_challenge=challenge.decode())
    [code] = parse_qs(urlsplit(_confirm(client, token).headers["Location"]).query)["code"]
    # Someone who caught the redirect but did not start the sign-in has no verifier.
    assert client.post("/api/v1/token/exchange", json={"code": code}).status_code == 401


def test_the_hand_off_code_exchanges_for_the_user(client, mail):
    token = mail(redirect_to="myapp://auth")
    response = _confirm(client, token)
    location = response.headers["Location"]
    assert location.startswith("myapp://auth?code=")
    [code] = parse_qs(urlsplit(location).query)["code"]
    exchanged = client.post("/api/v1/token/exchange", json={"code": code})
    assert exchanged.status_code == 200
    assert exchanged.get_json()["user"]["email"] == EMAIL


@pytest.mark.parametrize("token", ["", "forged", "eyJhIjoxfQ.ZZZZZZ.abcdefabcdef"])
def test_a_forged_token_gets_a_friendly_page(client, token):
    response = client.get("/auth/magic", query_string={"token": token} if token else None)
    assert 400 <= response.status_code < 500
    html = response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    assert "new link" in html and 'action="/login/email"' in html
    assert 'name="csrf_token"' in html


def test_an_expired_link_gets_a_friendly_page(client, mail, clock):
    token = mail()
    clock.travel(901)
    response = client.get("/auth/magic", query_string={"token": token})
    assert 400 <= response.status_code < 500
    assert "new link" in response.get_data(as_text=True)


def test_an_expired_link_posted_from_an_open_page_gets_the_friendly_page(client, mail, clock):
    token = mail()
    page = client.get("/auth/magic", query_string={"token": token})
    clock.travel(901)  # the person left the tab open
    csrf = csrf_from(page.get_data(as_text=True))
    response = client.post("/auth/magic", data={"token": token, "csrf_token": csrf})
    assert 400 <= response.status_code < 500
    assert "new link" in response.get_data(as_text=True)
    assert client.get("/account").status_code == 302


def test_the_page_does_not_render_markup_from_the_query(client, mail):
    response = client.get("/auth/magic", query_string={"token": '"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in response.get_data(as_text=True)
