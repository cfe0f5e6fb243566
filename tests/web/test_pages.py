"""The HTML pages through the Flask test client: forms, cookies, CSRF, headers, hand-off."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from authserver import create_app
from tests.conftest import PASSWORD, base_config
from tests.web.conftest import csrf_from


@pytest.mark.parametrize("path", ["/login", "/signup", "/login/sms", "/login/email"])
def test_pages_render_with_security_headers(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert 'name="csrf_token"' in response.get_data(as_text=True)


def test_password_sign_in_opens_a_web_session(client, signup, web_login):
    signup()
    response = web_login("ada@example.com", PASSWORD)
    assert response.status_code == 303 and response.headers["Location"].endswith("/account")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "access_token" not in cookie and "eyJ" not in response.headers["Location"]
    account = client.get("/account")
    assert account.status_code == 200
    html = account.get_data(as_text=True)
    assert "ada@example.com" in html and "password" in html


def test_cookie_is_secure_when_served_over_https(tmp_path, sqlite_url):
    app = create_app(base_config(tmp_path, "sqlite:///" + str(tmp_path / "s.db")))
    assert app.config["SESSION_COOKIE_SECURE"] is True  # PUBLIC_BASE_URL is https


def test_wrong_password_is_shown_next_to_the_form(client, signup, web_login):
    signup()
    response = web_login("ada@example.com", "wrong password!")
    assert response.status_code == 401
    assert "The e-mail address or password is incorrect." in response.get_data(as_text=True)


def test_post_without_csrf_token_is_refused(client, signup):
    signup()
    response = client.post("/login", data={"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert client.get("/account").status_code == 302  # not signed in


def test_logout_revokes_the_session_server_side(client, signup, web_login):
    signup()
    web_login("ada@example.com", PASSWORD)
    stolen_cookie = client.get_cookie("authserver_session").value
    page = client.get("/account").get_data(as_text=True)
    response = client.post("/logout", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 303
    assert client.get("/account").status_code == 302
    # A copy of the old cookie is worth nothing: the session row is revoked.
    client.set_cookie("authserver_session", stolen_cookie)
    assert client.get("/account").status_code == 302


def test_disabling_the_user_ends_the_web_session_at_once(app, client, signup, web_login):
    from authserver import accounts

    signup()
    web_login("ada@example.com", PASSWORD)
    assert client.get("/account").status_code == 200
    accounts.disable(accounts.by_email("ada@example.com"))
    assert client.get("/account").status_code == 302


def test_sign_out_everywhere_ends_api_sessions_too(client, signup, web_login):
    api_tokens = signup()
    web_login("ada@example.com", PASSWORD)
    page = client.get("/account").get_data(as_text=True)
    assert page.count("<li") >= 2  # this browser and the API session
    client.post("/account/sign-out-everywhere", data={"csrf_token": csrf_from(page)})
    me = client.get("/api/v1/me", headers={"Authorization": "Bearer " + api_tokens["access_token"]})
    assert me.status_code == 401


def test_signup_form_shows_weak_password_in_place(client):
    page = client.get("/signup").get_data(as_text=True)
    response = client.post("/signup", data={"email": "new@example.com", "password": "password1",
                                            "csrf_token": csrf_from(page)})
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.get_data(as_text=True)


def test_signup_page_shows_the_password_rule_before_any_submit(app, client):
    from authserver.services import configure
    from tests.web.test_reset_page import password_rule_on

    password_rule_on(client.get("/signup").get_data(as_text=True), 15)
    configure(app, PASSWORD_MIN_LENGTH=8)
    password_rule_on(client.get("/signup").get_data(as_text=True), 8)


def test_the_password_rule_macro_states_the_configured_minimum(app):
    from flask import render_template_string

    from authserver.services import configure

    source = '{% from "_macros.html" import password_rule %}{{ password_rule("new-rule") }}'
    with app.test_request_context("/"):
        assert render_template_string(source) == (
            '<p class="hint" id="new-rule">At least 15 characters \N{EM DASH} a few words work '
            'well.</p>')
        configure(app, PASSWORD_MIN_LENGTH=12)
        assert "At least 12 characters" in render_template_string(source)


def test_signup_form_refuses_a_short_password_with_the_rule(client):
    page = client.get("/signup").get_data(as_text=True)
    response = client.post("/signup", data={"email": "new@example.com",
                                            "password": "fourteen chars",
                                            "csrf_token": csrf_from(page)})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="password-error"' in html and "Use at least 15 characters" in html


def test_signup_form_creates_account(client):
    page = client.get("/signup").get_data(as_text=True)
    response = client.post("/signup", data={"email": "new@example.com", "password": PASSWORD,
                                            "name": "New", "csrf_token": csrf_from(page)})
    assert response.status_code == 303
    assert "new@example.com" in client.get("/account").get_data(as_text=True)


def test_handoff_to_an_allow_listed_app_with_pkce(client, signup, web_login):
    signup()
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    challenge = challenge.rstrip(b"=").decode()
    query = ("?redirect_to=https://app.example.test/callback"
             f"&code_challenge={challenge}&code_challenge_method=S256")
    response = web_login("ada@example.com", PASSWORD, query)
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == \
        "https://app.example.test/callback"
    code = parse_qs(location.query)["code"][0]
    assert "eyJ" not in response.headers["Location"]  # never a JWT in a URL
    wrong = client.post("/api/v1/token/exchange", json={"code": code, "code_verifier": "x" * 50})
    assert wrong.status_code == 401


def test_handoff_code_exchanges_for_tokens(client, signup, web_login):
    signup()
    response = web_login("ada@example.com", PASSWORD,
                         "?redirect_to=https://app.example.test/callback/done")
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    exchanged = client.post("/api/v1/token/exchange", json={"code": code})
    assert exchanged.status_code == 200
    assert exchanged.get_json()["user"]["email"] == "ada@example.com"


@pytest.mark.parametrize("target", ["https://evil.test/", "https://app.example.test.evil.test/",
                                    "//evil.test", "javascript:alert(1)"])
def test_login_refuses_redirects_off_the_allow_list(client, target):
    response = client.get("/login", query_string={"redirect_to": target})
    assert response.status_code == 422
    assert "not allowed to receive sign-ins" in response.get_data(as_text=True)


def test_html_error_pages(client):
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    for path in ("/no-such-page", "/login/nope"):
        missing = client.get(path, headers={"Accept": browser})
        assert missing.status_code == 404 and missing.mimetype == "text/html"
        assert "Page not found" in missing.get_data(as_text=True)
    # Programs asking for anything get the problem document.
    assert client.get("/no-such-page", headers={"Accept": "*/*"}).mimetype == \
        "application/problem+json"


def test_login_page_ids_are_unique_and_labels_point_at_their_inputs(client):
    import re

    html = client.get("/login").get_data(as_text=True)
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for target in re.findall(r'<label for="([^"]+)"', html):
        assert f'id="{target}"' in html


def test_wrong_password_error_sits_under_the_password_field(client, signup, web_login):
    signup()
    html = web_login("ada@example.com", "wrong password!").get_data(as_text=True)
    assert 'id="password-error"' in html


def test_file_uploads_into_forms_are_refused(client):
    import io

    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", content_type="multipart/form-data", data={
        "csrf_token": csrf_from(page), "password": "x",
        "email": (io.BytesIO(b"hello"), "email.txt")})
    assert response.status_code == 400 and response.mimetype == "text/html"


def test_rate_limited_form_page_says_when_to_retry(client, signup):
    signup()
    statuses = []
    for _ in range(12):
        page = client.get("/login").get_data(as_text=True)
        response = client.post("/login", data={"email": "ada@example.com", "password": "nope",
                                               "csrf_token": csrf_from(page)})
        statuses.append(response.status_code)
    assert statuses[-1] == 429
    assert int(response.headers["Retry-After"]) >= 1
