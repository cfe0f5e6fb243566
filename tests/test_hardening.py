"""HSTS, no-store on secrets, security.txt, and the bounds on what a request may send (in
process; tests/e2e/test_gunicorn_conf.py checks the same over real gunicorn)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from authserver import create_app
from authserver.config import ConfigError
from tests.conftest import PASSWORD, base_config
from tests.helpers import bearer, problem


# -- Strict-Transport-Security -------------------------------------------------------------
def test_hsts_on_every_answer_when_the_public_url_is_https(client):
    for response in (client.get("/healthz"), client.get("/login"), client.get("/api/v1/nope")):
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_no_hsts_over_plain_http(tmp_path, database_url):
    app = create_app({**base_config(tmp_path, database_url),
                      "PUBLIC_BASE_URL": "http://localhost:5000"})
    assert "Strict-Transport-Security" not in app.test_client().get("/healthz").headers


# -- no-store on every API answer that carries a secret ------------------------------------
def test_every_secret_bearing_api_answer_is_no_store(client, signup):
    tokens = signup()
    answers = [
        client.post("/api/v1/signin", json={"email": "ada@example.com", "password": PASSWORD}),
        client.post("/api/v1/token/refresh", json={"refresh_token": tokens["refresh_token"]}),
        client.get("/api/v1/me", headers=bearer(tokens["access_token"])),
        client.get("/api/v1/isAuthenticated", headers=bearer(tokens["access_token"])),
        client.post("/api/v1/signin", json={"email": "ada@example.com", "password": "wrong"}),
    ]
    for response in answers:
        assert response.headers["Cache-Control"] == "no-store", response.request.path
        assert response.headers["Pragma"] == "no-cache"


# -- security.txt --------------------------------------------------------------------------
@pytest.fixture
def config_overrides(request):
    return getattr(request, "param", {})


@pytest.mark.parametrize("config_overrides", [
    {"SECURITY_CONTACT": "mailto:security@example.com,https://example.com/report"}],
    indirect=True)
def test_security_txt_from_the_setting(client, clock):
    response = client.get("/.well-known/security.txt")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    lines = response.get_data(as_text=True).splitlines()
    assert lines[:2] == ["Contact: mailto:security@example.com",
                         "Contact: https://example.com/report"]
    assert "Preferred-Languages: en" in lines
    assert "Canonical: https://auth.example.test/.well-known/security.txt" in lines
    [expires] = [line.removeprefix("Expires: ") for line in lines if line.startswith("Expires:")]
    when = datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    ahead = when - clock.now()
    assert timedelta(days=364) < ahead <= timedelta(days=365)  # RFC 9116: under a year


def test_security_txt_is_404_without_a_contact(client):
    response = client.get("/.well-known/security.txt")
    assert response.status_code == 404 and problem(response)["code"] == "not_found"


def test_security_txt_is_in_the_openapi_document(client):
    operation = client.get("/openapi.json").get_json()["paths"][
        "/.well-known/security.txt"]["get"]
    assert "404" in operation["responses"]
    assert "text/plain" in operation["responses"]["200"]["headers"]["Content-Type"][
        "description"]


@pytest.mark.parametrize("contact", ["security@example.com", "mailto:a@example.com\nX: y",
                                     "http://example.com", "mailto:a b@example.com"])
def test_security_contact_must_be_a_plain_uri(tmp_path, database_url, contact):
    with pytest.raises(ConfigError, match="SECURITY_CONTACT"):
        create_app({**base_config(tmp_path, database_url), "SECURITY_CONTACT": contact})


# -- oversized input reaching the app ------------------------------------------------------
@pytest.mark.filterwarnings("ignore:The .* cookie is too large")
@pytest.mark.parametrize("environ", [
    {"HTTP_AUTHORIZATION": "Bearer " + "a" * 5000},
    "cookie",
    {f"HTTP_X_PART_{i}": "b" * 3000 for i in range(6)},
])
def test_oversized_headers_are_a_431_problem(client, environ):
    if environ == "cookie":  # the test client writes the Cookie header from its jar
        client.set_cookie("authserver_session", "a" * 5000)
        environ = {}
    for path in ("/api/v1/me", "/healthz"):
        response = client.get(path, environ_overrides=environ)
        assert response.status_code == 431, path
        assert problem(response)["code"] == "invalid_request"


@pytest.mark.filterwarnings("ignore:The .* cookie is too large")
def test_an_oversized_header_on_a_page_is_a_431_page(client):
    client.set_cookie("x", "a" * 5000)
    response = client.get("/login")
    assert response.status_code == 431 and response.mimetype == "text/html"


def _chunked(client, body: bytes):
    # What a server that dechunks (gunicorn, Werkzeug's) hands over: a terminated stream,
    # no Content-Length.
    return client.post("/api/v1/signin", input_stream=io.BytesIO(body),
                       environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": "",
                                          "HTTP_TRANSFER_ENCODING": "chunked",
                                          "CONTENT_TYPE": "application/json"})


def test_an_oversized_streamed_body_is_a_413_problem(client):
    response = _chunked(client, b'{"email": "' + b"a" * 70000 + b'"}')
    assert response.status_code == 413 and problem(response)["status"] == 413


def test_a_streamed_body_within_the_limit_is_read_whole(client, signup):
    signup()
    body = b'{"email": "ada@example.com", "password": "%s", "pad": "%s"}' % (
        PASSWORD.encode(), b"p" * 60000)
    assert len(body) < 65536
    assert _chunked(client, body).status_code == 200
