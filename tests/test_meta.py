"""Health, readiness, JWKS, the OpenAPI document, and errors outside the API's routes."""

from __future__ import annotations

import pytest

from authserver import create_app
from tests.conftest import base_config
from tests.helpers import problem


def test_healthz_and_readyz(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").get_json() == {"status": "ready", "degraded": []}


@pytest.mark.parametrize("database_url", [
    "mysql+pymysql://root@127.0.0.1:1/nothing",  # nothing listens on port 1
])
def test_readyz_is_503_when_the_database_is_down(tmp_path, database_url):
    app = create_app(base_config(tmp_path, database_url))
    client = app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert problem(response)["code"] == "service_unavailable"
    assert response.headers["Retry-After"]
    # An endpoint that needs the database answers 503 too, never a 500 with a trace.
    signin = client.post("/api/v1/signin", json={"email": "a@example.com", "password": "x" * 9})
    assert signin.status_code == 503
    assert b"pymysql" not in signin.data and b"Traceback" not in signin.data


def test_jwks_has_public_keys_only(client, signup):
    signup()
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.get_json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["kty"] == "EC" and key["alg"] == "ES256" and key["use"] == "sig" and key["kid"]
    assert "d" not in key
    assert "max-age" in response.headers["Cache-Control"]


def test_openapi_documents_every_api_route(app, client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/", "/.well-known/", "/healthz", "/readyz")):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, f"{method} {path} not in openapi.json"


def test_unknown_path_and_wrong_method_are_problems(client):
    missing = client.get("/api/v1/nope")
    assert missing.status_code == 404 and problem(missing)["code"] == "not_found"
    wrong = client.get("/api/v1/signin")
    assert wrong.status_code == 405 and problem(wrong)["code"] == "invalid_request"


def test_security_headers(client):
    response = client.get("/healthz")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_unexpected_exception_is_a_500_problem_without_trace(app, client):
    @app.get("/boom-test")
    def boom():
        raise RuntimeError("secret internals")

    response = client.get("/boom-test", headers={"Accept": "application/json"})
    assert response.status_code == 500
    body = problem(response)
    assert body["code"] == "internal_error" and "secret internals" not in response.text


def test_the_contract_documents_every_setting():
    """docs/api.md is the contract: a setting added to config.py must be documented there."""
    from pathlib import Path

    from authserver.config import NAMES

    contract = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    missing = sorted(name for name in NAMES if f"`{name}`" not in contract)
    assert missing == [], f"settings missing from docs/api.md: {missing}"


def test_an_empty_mfa_required_roles_means_no_role_needs_a_second_factor():
    """docs/api.md: MFA_REQUIRED_ROLES empty means none (an empty variable is that choice,
    not "use the default")."""
    from authserver.config import load

    assert load(None, "/tmp", environ={}).mfa_required_roles == ["admin"]
    assert load(None, "/tmp", environ={"MFA_REQUIRED_ROLES": ""}).mfa_required_roles == []
