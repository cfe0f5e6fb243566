"""CORS_ALLOWED_ORIGINS: the token endpoints answer a listed origin's browser app, and only
those endpoints, only that origin, never with credentials."""

from __future__ import annotations

from typing import Any

import pytest

from authserver import create_app
from authserver.config import ConfigError
from tests.conftest import base_config
from tests.helpers import bearer

APP = "https://spa.example.test"
OTHER = "https://evil.example.test"
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods",
                "Access-Control-Allow-Headers", "Access-Control-Max-Age",
                "Access-Control-Allow-Credentials")
ENDPOINTS = [("/api/v1/token/exchange", "POST"), ("/api/v1/token/refresh", "POST"),
             ("/api/v1/logout", "POST"), ("/api/v1/me", "GET")]


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"CORS_ALLOWED_ORIGINS": f"{APP},http://localhost:3000"}


def preflight(client: Any, path: str, method: str, origin: str = APP) -> Any:
    return client.options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type"})


def no_cors(response: Any) -> None:
    present = [name for name in CORS_HEADERS if name in response.headers]
    assert present == [], present


@pytest.mark.parametrize(("path", "method"), ENDPOINTS)
def test_a_listed_origin_gets_its_preflight_answered(client: Any, path: str,
                                                     method: str) -> None:
    response = preflight(client, path, method)
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert response.headers["Access-Control-Allow-Methods"] == method
    assert response.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize(("path", "method"), ENDPOINTS)
def test_an_unlisted_origin_gets_no_cors_headers(client: Any, path: str, method: str) -> None:
    response = preflight(client, path, method, origin=OTHER)
    no_cors(response)
    assert "Origin" in response.headers["Vary"]
    no_cors(preflight(client, path, method, origin="null"))
    # A listed origin differing only in case, port or a trailing slash is another origin.
    no_cors(preflight(client, path, method, origin=APP + "/"))
    no_cors(preflight(client, path, method, origin=APP + ":8443"))


def test_another_method_is_not_allowed(client: Any) -> None:
    no_cors(preflight(client, "/api/v1/me", "DELETE"))
    no_cors(preflight(client, "/api/v1/logout", "GET"))


def test_the_actual_responses_carry_the_origin(client: Any, signup: Any) -> None:
    tokens = signup()
    me = client.get("/api/v1/me", headers={**bearer(tokens["access_token"]), "Origin": APP})
    assert me.status_code == 200
    assert me.headers["Access-Control-Allow-Origin"] == APP
    assert "Access-Control-Allow-Credentials" not in me.headers
    refreshed = client.post("/api/v1/token/refresh", headers={"Origin": APP},
                            json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert refreshed.headers["Access-Control-Allow-Origin"] == APP
    # Errors too, so the app can read why.
    refused = client.post("/api/v1/token/exchange", headers={"Origin": APP},
                          json={"code": "x" * 43})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == APP
    logout = client.post("/api/v1/logout", headers={**bearer(refreshed.get_json()[
        "access_token"]), "Origin": APP})
    assert logout.status_code == 204
    assert logout.headers["Access-Control-Allow-Origin"] == APP
    # An unlisted origin's actual request gets nothing it could read across origins.
    no_cors(client.get("/api/v1/me", headers={**bearer(tokens["access_token"]),
                                              "Origin": OTHER}))


@pytest.mark.parametrize("path", ["/api/v1/signin", "/api/v1/signup", "/api/v1/otp/request",
                                  "/api/v1/magic-link/verify", "/api/v1/me/password",
                                  "/api/v1/admin/users", "/.well-known/jwks.json", "/login"])
def test_other_endpoints_never_get_cors_headers(client: Any, path: str) -> None:
    no_cors(preflight(client, path, "POST"))
    no_cors(client.post(path, headers={"Origin": APP}, json={}))
    no_cors(client.get(path, headers={"Origin": APP}))


def test_default_is_no_origin(tmp_path: Any, database_url: str) -> None:
    app = create_app(base_config(tmp_path, database_url))
    assert app.config["CORS_ALLOWED_ORIGINS"] == []
    response = preflight(app.test_client(), "/api/v1/token/refresh", "POST")
    no_cors(response)
    assert "Vary" not in response.headers or "Origin" not in response.headers["Vary"]


@pytest.mark.parametrize("value", ["*", "https://app.example.test/", "app.example.test",
                                   "https://app.example.test/path", "ftp://x.test"])
def test_only_exact_origins_are_accepted(tmp_path: Any, database_url: str,
                                         value: str) -> None:
    with pytest.raises(ConfigError, match="CORS_ALLOWED_ORIGINS"):
        create_app({**base_config(tmp_path, database_url), "CORS_ALLOWED_ORIGINS": value})
