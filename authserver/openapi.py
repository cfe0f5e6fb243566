"""The OpenAPI 3.1 document served at /openapi.json (tests check it names every API route)."""

from __future__ import annotations

from typing import Any

from authserver.errors import CODES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problems(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": "Problem details (RFC 9457)",
            "content": {"application/problem+json": {"schema": _ref("Problem")}},
        }
        for status in statuses
    }


def _body(required: list[str], props: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "required": required, "properties": props}}},
    }


def _op(summary: str, ok: tuple[str, dict[str, Any]], failures: tuple[int, ...] = (),
        body: dict[str, Any] | None = None, auth: bool = False,
        params: list[dict[str, Any]] | None = None, tag: str = "auth") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag],
                          "responses": {ok[0]: ok[1], **_problems(*failures)}}
    if body:
        op["requestBody"] = body
    if auth:
        op["security"] = [{"bearer": []}]
    if params:
        op["parameters"] = params
    return op


STR = {"type": "string"}
TOKEN_OK = ("200", _json(_ref("TokenResponse"), "Signed in"))
USER_OK = ("200", _json(_ref("User")))
USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": STR}


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/v1/signup": {"post": _op(
            "Create an account with e-mail and password", ("201", TOKEN_OK[1]),
            (400, 409, 422, 429), _body(["email", "password"],
                                        {"email": STR, "password": STR, "name": STR}))},
        "/api/v1/signin": {"post": _op(
            "Sign in with e-mail and password", TOKEN_OK, (400, 401, 403, 429),
            _body(["email", "password"], {"email": STR, "password": STR}))},
        "/api/v1/otp/request": {"post": _op(
            "Text a 6-digit sign-in code to a phone",
            ("202", _json({"type": "object", "properties": {
                "sent": {"type": "boolean"}, "expires_in": {"type": "integer"},
                "resend_after": {"type": "integer"}}}, "Sent")),
            (400, 422, 429, 503), _body(["phone"], {"phone": STR}), tag="sms")},
        "/api/v1/otp/verify": {"post": _op(
            "Sign in with the texted code", TOKEN_OK, (400, 401, 403, 422, 429, 503),
            _body(["phone", "code"], {"phone": STR, "code": STR}), tag="sms")},
        "/api/v1/magic-link/request": {"post": _op(
            "E-mail a sign-in link and code",
            ("202", _json({"type": "object", "properties": {
                "sent": {"type": "boolean"}, "expires_in": {"type": "integer"}}}, "Sent")),
            (400, 422, 429, 503),
            _body(["email"], {"email": STR, "redirect_to": STR, "code_challenge": STR,
                              "code_challenge_method": {"enum": ["S256"]}}), tag="email")},
        "/api/v1/magic-link/verify": {"post": _op(
            "Sign in with the link's token, or the e-mailed code", TOKEN_OK,
            (400, 401, 403, 429),
            _body([], {"token": STR, "email": STR, "code": STR}), tag="email")},
        "/api/v1/token/refresh": {"post": _op(
            "Rotate a refresh token", TOKEN_OK, (400, 401, 429),
            _body(["refresh_token"], {"refresh_token": STR}), tag="tokens")},
        "/api/v1/token/exchange": {"post": _op(
            "Exchange the one-time hand-off code from redirect_to", TOKEN_OK, (400, 401, 429),
            _body(["code"], {"code": STR, "code_verifier": STR}), tag="tokens")},
        "/api/v1/logout": {"post": _op(
            "End the session of this token", ("204", {"description": "Signed out"}), (401,),
            auth=True, tag="tokens")},
        "/api/v1/me": {"get": _op("The signed-in user", USER_OK, (401,), auth=True,
                                  tag="tokens")},
        "/api/v1/isAuthenticated": {"get": _op(
            "Check a token, including revocation (also accepts x-access-token)",
            ("200", _json({"type": "object", "properties": {
                "user_id": STR, "session_id": STR,
                "roles": {"type": "array", "items": STR}}})), (401,), auth=True,
            tag="tokens")},
        "/api/v1/isAdmin": {"get": _op(
            "Whether the token's user has the admin role",
            ("200", _json({"type": "object", "properties": {"is_admin": {"type": "boolean"}}})),
            (401,), auth=True, tag="tokens")},
        "/api/v1/admin/users": {"get": _op(
            "Find users by e-mail",
            ("200", _json({"type": "object", "properties": {
                "users": {"type": "array", "items": _ref("User")}}})), (401, 403), auth=True,
            params=[{"name": "email", "in": "query", "schema": STR}], tag="admin")},
        "/api/v1/admin/users/{user_id}/roles": {"post": _op(
            "Grant a role", USER_OK, (400, 401, 403, 404), _body(["role"], {"role": STR}),
            auth=True, params=[USER_ID], tag="admin")},
        "/api/v1/admin/users/{user_id}/roles/{role}": {"delete": _op(
            "Take a role away", USER_OK, (401, 403, 404), auth=True,
            params=[USER_ID, {"name": "role", "in": "path", "required": True, "schema": STR}],
            tag="admin")},
        "/api/v1/admin/users/{user_id}/disable": {"post": _op(
            "Disable a user and revoke all their sessions", USER_OK, (401, 403, 404),
            auth=True, params=[USER_ID], tag="admin")},
        "/.well-known/jwks.json": {"get": _op(
            "Public keys that verify access tokens",
            ("200", _json({"type": "object", "properties": {
                "keys": {"type": "array", "items": {"type": "object"}}}})), tag="meta")},
        "/healthz": {"get": _op("Liveness", ("200", _json({"type": "object"})), tag="meta")},
        "/readyz": {"get": _op("Readiness: the database answers",
                               ("200", _json({"type": "object"})), (503,), tag="meta")},
        "/openapi.json": {"get": _op("This document", ("200", _json({"type": "object"})),
                                     tag="meta")},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "authserver", "version": "1",
                 "description": "Sign in with a password, an SMS code or an e-mailed link; "
                                "every method ends in the same token response."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
            "schemas": {
                "User": {"type": "object", "properties": {
                    "id": STR, "email": {"type": ["string", "null"]},
                    "phone": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]},
                    "email_verified": {"type": "boolean"},
                    "phone_verified": {"type": "boolean"},
                    "disabled": {"type": "boolean"},
                    "roles": {"type": "array", "items": STR},
                    "created_at": {"type": "string", "format": "date-time"}}},
                "TokenResponse": {"type": "object", "required": [
                    "access_token", "token_type", "expires_in", "refresh_token", "user"],
                    "properties": {
                        "access_token": STR, "token_type": {"const": "Bearer"},
                        "expires_in": {"type": "integer"}, "refresh_token": STR,
                        "user": _ref("User")}},
                "Problem": {"type": "object", "required": ["type", "title", "status", "code"],
                            "properties": {
                                "type": STR, "title": STR, "status": {"type": "integer"},
                                "detail": STR, "code": {"enum": sorted(CODES)}}},
            },
        },
    }
