"""/openapi.json: generated, valid OpenAPI 3.1, and true to the live answers of the main flows.

Every answer below is validated against the schema the document gives for its path, method
and status (problems against the Problem schema with that status's codes), so a field, type,
status or error code that drifts from the document fails here. Runs on SQLite and MySQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from authserver import accounts
from authserver.errors import CODES, ErrorCode, Problem
from authserver.flows import handoff
from tests.conftest import PASSWORD
from tests.flows.magic_helpers import last_mail
from tests.flows.sms_helpers import last_code
from tests.helpers import bearer

API_PREFIXES = ("/api/", "/.well-known/", "/healthz", "/readyz", "/openapi.json", "/metrics")


@pytest.fixture
def document(client: Any) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


@pytest.fixture
def check(document: dict[str, Any]) -> Any:
    """check(response, method, path): the answer matches what the document says of it."""

    def _check(response: Any, method: str, path: str) -> Any:
        operation = document["paths"][path][method]
        status = str(response.status_code)
        assert status in operation["responses"], f"{method} {path}: {status} not documented"
        documented = operation["responses"][status]
        if "content" not in documented:
            assert not response.data and "Content-Type" not in response.headers
            return response
        (media_type, content), = documented["content"].items()
        assert response.mimetype == media_type
        body = response.get_json()
        schema = {**content["schema"], "components": document["components"]}
        Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER
                             ).validate(body)
        if media_type == "application/json" and "$ref" in content["schema"]:
            # Members in the order the model declares them, and none it does not.
            name = content["schema"]["$ref"].rsplit("/", 1)[1]
            properties = document["components"]["schemas"][name].get("properties")
            if properties:
                assert list(body) == list(properties), name
        return response

    return _check


# -- the document itself -------------------------------------------------------------------
def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_is_documented_with_its_path_parameters(app, document):
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIXES):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
            operation = document["paths"][path][method.lower()]
            params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert params == set(rule.arguments), f"{method} {path}"
    assert routes == documented  # and nothing documented that does not exist


def test_problem_codes_are_the_error_code_enumeration(document):
    schemas = document["components"]["schemas"]
    assert schemas["Problem"]["properties"]["code"] == {"$ref": "#/components/schemas/ErrorCode"}
    assert schemas["ErrorCode"]["enum"] == [code.value for code in ErrorCode]
    assert set(schemas["ErrorCode"]["enum"]) == CODES
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = answer["content"]["application/problem+json"]["schema"]
                    codes = schema["allOf"][1]["properties"]["code"]["enum"]
                    assert set(codes) <= CODES, f"{method} {path} {status}"


def test_documented_security_is_what_the_server_enforces(client, document):
    for path, operations in document["paths"].items():
        url = path.replace("{user_id}", "someone").replace("{role}", "editor")
        for method, operation in operations.items():
            response = client.open(url, method=method.upper())
            if operation.get("security"):
                assert response.status_code == 401, f"{method} {path}"
                assert response.get_json()["code"] == "invalid_token"
                assert "401" in operation["responses"]
            else:
                assert response.status_code != 401, f"{method} {path}"


def test_problem_takes_an_error_code_or_its_string():
    assert Problem(401, "invalid_otp", "x").code is ErrorCode.INVALID_OTP
    assert Problem(401, ErrorCode.INVALID_OTP, "x").body() == {
        "type": "urn:authserver:problem:invalid_otp", "title": "Invalid code", "status": 401,
        "detail": "x", "code": "invalid_otp"}
    with pytest.raises(ValueError, match="unknown problem code"):
        Problem(400, "no_such_code", "x")


# -- live answers against the document ----------------------------------------------------
def test_password_and_session_flows_match_the_document(client, check):
    signup = check(client.post("/api/v1/signup", json={"email": "ada@example.com",
                                                       "password": PASSWORD, "name": "Ada"}),
                   "post", "/api/v1/signup")
    assert signup.status_code == 201
    tokens = signup.get_json()
    auth = bearer(tokens["access_token"])
    assert check(client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                     "password": PASSWORD}),
                 "post", "/api/v1/signin").status_code == 200
    assert check(client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                     "password": "wrong password"}),
                 "post", "/api/v1/signin").status_code == 401
    assert check(client.get("/api/v1/me", headers=auth), "get", "/api/v1/me").status_code == 200
    for headers in (auth, {"x-access-token": tokens["access_token"]}):
        assert check(client.get("/api/v1/isAuthenticated", headers=headers),
                     "get", "/api/v1/isAuthenticated").status_code == 200
    assert check(client.get("/api/v1/isAdmin", headers=auth),
                 "get", "/api/v1/isAdmin").status_code == 200
    refreshed = check(client.post("/api/v1/token/refresh",
                                  json={"refresh_token": tokens["refresh_token"]}),
                      "post", "/api/v1/token/refresh")
    assert refreshed.status_code == 200
    new_auth = bearer(refreshed.get_json()["access_token"])
    assert check(client.post("/api/v1/logout", headers=new_auth),
                 "post", "/api/v1/logout").status_code == 204
    assert check(client.get("/api/v1/me", headers=new_auth),
                 "get", "/api/v1/me").status_code == 401
    assert check(client.post("/api/v1/token/refresh", json={"refresh_token": "x" * 43}),
                 "post", "/api/v1/token/refresh").status_code == 401


def test_problems_match_the_document(client, check, signup):
    signup()
    for body, status in [
        ({"email": "ada@example.com", "password": PASSWORD}, 409),
        ({"email": "not-an-email", "password": PASSWORD}, 422),
        ({"email": "new@example.com", "password": "short"}, 422),
        ({"email": 5}, 400),
        ({"email": "a@example.com", "password": "x\x00" * 10}, 400),
    ]:
        response = check(client.post("/api/v1/signup", json=body), "post", "/api/v1/signup")
        assert response.status_code == status, body
    not_json = client.post("/api/v1/signin", data="email=a", content_type="text/plain")
    assert check(not_json, "post", "/api/v1/signin").status_code == 400
    assert check(client.get("/api/v1/isAuthenticated"),
                 "get", "/api/v1/isAuthenticated").status_code == 401


def test_validation_problems_list_the_fields(client):
    response = client.post("/api/v1/signup", json={"email": 5, "name": "x" * 5000})
    assert response.status_code == 400
    assert response.get_json() == {
        "type": "urn:authserver:problem:invalid_request", "title": "Invalid request",
        "status": 400, "detail": "Missing field: password.", "code": "invalid_request",
        "errors": [
            {"field": "email", "message": "This field must be a string."},
            {"field": "password", "message": "This field is required."},
            {"field": "name", "message": "This value is longer than 4096 characters."},
        ]}
    body_level = client.post("/api/v1/signup", data="[]", content_type="application/json")
    assert body_level.get_json()["detail"] == "The body must be a JSON object."
    assert "errors" not in body_level.get_json()


def test_sms_flow_matches_the_document(app, client, check):
    phone = "+16502530000"
    sent = check(client.post("/api/v1/otp/request", json={"phone": "(650) 253-0000"}),
                 "post", "/api/v1/otp/request")
    assert sent.status_code == 202
    assert check(client.post("/api/v1/otp/request", json={"phone": "12"}),
                 "post", "/api/v1/otp/request").status_code == 422
    code = last_code(app.config["OUTBOX_DIR"], phone)
    wrong = "000000" if code != "000000" else "111111"
    assert check(client.post("/api/v1/otp/verify", json={"phone": phone, "code": wrong}),
                 "post", "/api/v1/otp/verify").status_code == 401
    assert check(client.post("/api/v1/otp/verify", json={"phone": phone, "code": code}),
                 "post", "/api/v1/otp/verify").status_code == 200


def test_magic_link_and_exchange_match_the_document(app, client, check):
    email = "ada@example.com"
    assert check(client.post("/api/v1/magic-link/request", json={"email": email}),
                 "post", "/api/v1/magic-link/request").status_code == 202
    token, _code = last_mail(app.config["OUTBOX_DIR"], email)
    assert check(client.post("/api/v1/magic-link/request",
                             json={"email": email, "redirect_to": "https://evil.test/"}),
                 "post", "/api/v1/magic-link/request").status_code == 422
    assert check(client.post("/api/v1/magic-link/verify", json={"token": token}),
                 "post", "/api/v1/magic-link/verify").status_code == 200
    assert check(client.post("/api/v1/magic-link/verify", json={"token": token}),
                 "post", "/api/v1/magic-link/verify").status_code == 401
    assert check(client.post("/api/v1/magic-link/verify", json={"email": email}),
                 "post", "/api/v1/magic-link/verify").status_code == 400

    user = accounts.by_email(email)
    handoff_code = handoff.create_code(user, ["email"], "https://app.example.test/callback")
    assert check(client.post("/api/v1/token/exchange", json={"code": handoff_code}),
                 "post", "/api/v1/token/exchange").status_code == 200
    assert check(client.post("/api/v1/token/exchange", json={"code": handoff_code}),
                 "post", "/api/v1/token/exchange").status_code == 401


def test_admin_endpoints_match_the_document(client, check, signup, admin_token):
    user = signup()
    uid = user["user"]["id"]
    auth = bearer(admin_token)
    assert check(client.get("/api/v1/admin/users?email=ada@example.com", headers=auth),
                 "get", "/api/v1/admin/users").status_code == 200
    assert check(client.get("/api/v1/admin/users", headers=bearer(user["access_token"])),
                 "get", "/api/v1/admin/users").status_code == 403
    roles = "/api/v1/admin/users/{user_id}/roles"
    assert check(client.post(f"/api/v1/admin/users/{uid}/roles", headers=auth,
                             json={"role": "editor"}), "post", roles).status_code == 200
    assert check(client.post(f"/api/v1/admin/users/{uid}/roles", headers=auth,
                             json={"role": "a b"}), "post", roles).status_code == 422
    assert check(client.post("/api/v1/admin/users/nobody/roles", headers=auth,
                             json={"role": "editor"}), "post", roles).status_code == 404
    assert check(client.delete(f"/api/v1/admin/users/{uid}/roles/editor", headers=auth),
                 "delete", roles + "/{role}").status_code == 200
    assert check(client.post(f"/api/v1/admin/users/{uid}/disable", headers=auth),
                 "post", "/api/v1/admin/users/{user_id}/disable").status_code == 200


def test_meta_endpoints_match_the_document(client, check, signup):
    signup()  # makes the first signing key
    for path in ("/healthz", "/readyz", "/.well-known/jwks.json", "/openapi.json"):
        assert check(client.get(path), "get", path).status_code == 200


def test_shaping_keeps_what_the_flows_return_byte_for_byte(app):
    """The response models re-emit the token module's and the user row's output unchanged
    (same members, same order), so answers stay byte-for-byte what they were."""
    import json

    from authserver import tokens
    from authserver.schemas.responses import token_response, user_object

    user = accounts.create(email="bytes@example.com", name="Zoë")
    issued = tokens.issue(user, ["pwd"])
    assert json.dumps(token_response(issued).model_dump(mode="json")) == json.dumps(
        issued.response())
    assert json.dumps(user_object(user).model_dump(mode="json")) == json.dumps(user.to_dict())
