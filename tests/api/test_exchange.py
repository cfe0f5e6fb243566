"""POST /api/v1/token/exchange: the one-time hand-off code, with and without PKCE."""

from __future__ import annotations

import base64
import hashlib
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from authserver import accounts, pkce
from authserver.flows import handoff
from tests.helpers import problem

REDIRECT = "https://app.example.test/callback"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


@pytest.fixture
def user(app):
    return accounts.create(email="app-user@example.com")


def test_exchange_without_pkce(client, user):
    code = handoff.create_code(user, ["email"], REDIRECT)
    response = client.post("/api/v1/token/exchange", json={"code": code})
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"]["id"] == user.id and body["refresh_token"]
    me = client.get("/api/v1/me", headers={"Authorization": "Bearer " + body["access_token"]})
    assert me.status_code == 200


def test_code_is_single_use(client, user):
    code = handoff.create_code(user, ["pwd"], REDIRECT)
    assert client.post("/api/v1/token/exchange", json={"code": code}).status_code == 200
    again = client.post("/api/v1/token/exchange", json={"code": code})
    assert again.status_code == 401 and problem(again)["code"] == "invalid_grant"


def test_code_expires_after_60_seconds(client, user, clock):
    code = handoff.create_code(user, ["pwd"], REDIRECT)
    clock.travel(61)
    response = client.post("/api/v1/token/exchange", json={"code": code})
    assert response.status_code == 401 and problem(response)["code"] == "invalid_grant"


def test_pkce_right_verifier(client, user):
    verifier, challenge = pkce_pair()
    code = handoff.create_code(user, ["sms"], REDIRECT, challenge)
    response = client.post("/api/v1/token/exchange", json={"code": code,
                                                           "code_verifier": verifier})
    assert response.status_code == 200


@pytest.mark.parametrize("verifier", [None, "short", "w" * 64])
def test_pkce_wrong_or_missing_verifier_burns_the_code(client, user, verifier):
    right, challenge = pkce_pair()
    code = handoff.create_code(user, ["sms"], REDIRECT, challenge)
    body = {"code": code} if verifier is None else {"code": code, "code_verifier": verifier}
    response = client.post("/api/v1/token/exchange", json=body)
    assert response.status_code == 401 and problem(response)["code"] == "invalid_grant"
    # A guess burns the code: the right verifier no longer helps an attacker or the app.
    retry = client.post("/api/v1/token/exchange", json={"code": code, "code_verifier": right})
    assert retry.status_code == 401


def test_unknown_code_and_bad_body(client):
    assert client.post("/api/v1/token/exchange", json={"code": "nope"}).status_code == 401
    assert client.post("/api/v1/token/exchange", json={}).status_code == 400


def test_concurrent_exchanges_have_one_winner(app, client, user, database_url):
    if not database_url.startswith("mysql"):
        pytest.skip("row-level concurrency is a MySQL property; SQLite serialises writers")
    code = handoff.create_code(user, ["pwd"], REDIRECT)

    def exchange(_: int) -> int:
        with app.test_client() as c:
            return c.post("/api/v1/token/exchange", json={"code": code}).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(exchange, range(20)))
    assert results.count(200) == 1 and results.count(401) == 19


@pytest.mark.parametrize("verifier", ["v" * 50, "", "short"])
def test_verifier_for_a_code_minted_without_challenge_is_refused(client, user, verifier):
    """PKCE downgrade: a code from a sign-in without a challenge can't pass for a PKCE one."""
    code = handoff.create_code(user, ["pwd"], REDIRECT)  # no code_challenge at sign-in start
    response = client.post("/api/v1/token/exchange",
                           json={"code": code, "code_verifier": verifier})
    assert response.status_code == 401 and problem(response)["code"] == "invalid_grant"
    # Burnt as any refused exchange: not even the plain exchange works afterwards.
    again = client.post("/api/v1/token/exchange", json={"code": code})
    assert again.status_code == 401 and problem(again)["code"] == "invalid_grant"


def test_challenge_code_without_verifier_is_refused_and_burnt(client, user):
    right, challenge = pkce_pair()
    code = handoff.create_code(user, ["pwd"], REDIRECT, challenge)
    for body in ({"code": code, "code_verifier": None}, {"code": code, "code_verifier": right}):
        response = client.post("/api/v1/token/exchange", json=body)
        assert response.status_code == 401 and problem(response)["code"] == "invalid_grant"


@pytest.mark.parametrize("state", ["xyz", "a" * 512, " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"])
def test_state_is_accepted_and_put_on_the_redirect_verbatim(state):
    from urllib.parse import parse_qs, urlsplit

    assert pkce.check_state(state) == state
    url = handoff.redirect_url("https://app.example.test/callback?app=1&x=%2F", "C0DE", state)
    parts = urlsplit(url)
    assert parts.path == "/callback" and parts.query.startswith("app=1&x=%2F&code=C0DE&state=")
    assert parse_qs(parts.query)["state"] == [state]
    assert parse_qs(parts.query)["code"] == ["C0DE"]


def test_no_state_means_no_state_parameter():
    assert pkce.check_state(None) is None and pkce.check_state("") is None
    assert handoff.redirect_url("myapp://auth", "C0DE") == "myapp://auth?code=C0DE"


@pytest.mark.parametrize("state", ["a" * 513, "caf\u00e9", "line\nbreak", "tab\t", "nul\x00",
                                   "\u202eevil", "del\x7f"])
def test_bad_state_is_refused(state):
    from authserver.errors import Problem

    with pytest.raises(Problem) as caught:
        pkce.check_state(state)
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        422, "invalid_request", "state")
