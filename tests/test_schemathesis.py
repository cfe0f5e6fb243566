"""A bounded property-based run of schemathesis against /openapi.json, in-process on SQLite and
MySQL.

Every operation the document lists gets a few hand-written valid requests, its documented
examples and 25 generated requests (valid and invalid ones alike; derandomized, no shrinking,
no stateful links, a 5 s deadline per request). Every answer must be no 5xx, an RFC 9457
problem (`application/problem+json`, a string `code`, its own `status`) whenever it is an
error, and in the documented content type and schema for its status.

Rate limits are off so the requests reach the views. Authenticated operations get a live
bearer token (admin ones an admin's; `logout` a fresh session each time, since it ends the
one it is given), except every fifth request, which keeps whatever credentials were generated
so refusals are exercised too; half the admin requests name a real user instead of a
generated id, so they get past 404.

schemathesis' own pytest wrapper (`schema.parametrize()`) does not run under this pytest
(it writes `Function._nodeid`, which pytest 9 no longer has), so each operation's
hypothesis test is built here from the public `as_strategy()` API.
"""

from __future__ import annotations

import contextvars
import itertools
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from authserver import accounts, passwords, tokens
from authserver.extensions import db
from tests.conftest import PASSWORD

MAX_EXAMPLES = 25
PHONE = "+16502530000"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"RATELIMIT_ENABLED": False}


class Run:
    """The run's users and tokens, and its deterministic turns."""

    def __init__(self, app: Any) -> None:
        self.app = app
        hashed = self.hashed = passwords.hash_password(PASSWORD)
        self.member = accounts.create(email="ada@example.com", password_hash=hashed)
        self.admin = accounts.create(email="root@example.com", password_hash=hashed,
                                     roles=["admin"])
        #: Admin operations on a real user act on this one, so disabling it or changing its
        #: roles leaves the run's own tokens working.
        self.target = accounts.create(email="target@example.com", password_hash=hashed)
        issued = self.issue(self.member.id)
        self.member_token, self.refresh_token = issued.access_token, issued.refresh_token
        # The admin API needs a second factor (MFA_REQUIRED_ROLES): a session that had one.
        self.admin_token = self.issue(self.admin.id, ["pwd", "otp"]).access_token
        self.keep_credentials = itertools.count()
        self.real_user = itertools.count()
        self.throwaways = itertools.count()

    def throwaway_token(self) -> str:
        """A new account's token, for operations that end sessions or the account itself
        (logout scopes, password change, deletion): the run's own tokens keep working."""
        with self.app.test_request_context():
            user = accounts.create(email=f"throwaway{next(self.throwaways)}@example.com",
                                   password_hash=self.hashed)
            db.session.commit()
            user_id = user.id
        return str(self.issue(user_id).access_token)

    def issue(self, user_id: str, amr: list[str] | None = None) -> Any:
        """The tokens of a new session."""
        with self.app.test_request_context():
            issued = tokens.issue(accounts.get(user_id), amr or ["pwd"])
            db.session.commit()
            return issued

    def authorize(self, case: Any) -> None:
        """Send a live token where the operation needs one."""
        if not case.operation.definition.raw.get("security"):
            return
        path = case.operation.path
        if path.startswith("/api/v1/admin/"):
            token = self.admin_token
            if "user_id" in (case.path_parameters or {}) and next(self.real_user) % 2:
                case.path_parameters["user_id"] = self.target.id
        elif path in ("/api/v1/logout", "/api/v1/me/password") or (
                path == "/api/v1/me" and case.operation.method.upper() == "DELETE"):
            token = self.throwaway_token()
        else:
            token = self.member_token
        if next(self.keep_credentials) % 5 == 0:
            return  # what schemathesis generated: no header, or a malformed one
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

    def valid_requests(self, operation: Any) -> list[Any]:
        """Requests that get past validation (generated strings rarely are an address)."""
        target = self.target.id
        requests: dict[str, list[dict[str, Any]]] = {
            "POST /api/v1/signup": [{"body": {"email": "grace@example.com", "password": PASSWORD,
                                              "name": "Grace"}}],
            "POST /api/v1/signin": [{"body": {"email": "ada@example.com", "password": PASSWORD}},
                                    {"body": {"email": "ada@example.com", "password": "wrong"}}],
            "POST /api/v1/otp/request": [{"body": {"phone": PHONE}}],
            "POST /api/v1/otp/verify": [{"body": {"phone": PHONE, "code": "000000"}}],
            "POST /api/v1/magic-link/request": [{"body": {"email": "ada@example.com"}}],
            "POST /api/v1/magic-link/verify": [{"body": {"email": "ada@example.com",
                                                         "code": "000000"}}],
            "POST /api/v1/token/refresh": [{"body": {"refresh_token": self.refresh_token}}],
            "POST /api/v1/logout": [{"body": {"scope": "others"}}],
            "POST /api/v1/me/phone": [{"body": {"phone": PHONE}}],
            "POST /api/v1/me/phone/verify": [{"body": {"phone": PHONE, "code": "000000"}}],
            "POST /api/v1/me/password": [{"body": {"password": "another fine passphrase",
                                                   "current_password": PASSWORD}}],
            "GET /api/v1/admin/users": [{"query": {"email": "ada@example.com"}}],
            "POST /api/v1/admin/users/{user_id}/roles": [
                {"path_parameters": {"user_id": target}, "body": {"role": "editor"}}],
            "DELETE /api/v1/admin/users/{user_id}/roles/{role}": [
                {"path_parameters": {"user_id": target, "role": "editor"}}],
            "POST /api/v1/admin/users/{user_id}/disable": [
                {"path_parameters": {"user_id": target}}],
        }
        return [operation.Case(**request) for request in requests.get(operation.label, [])]


@pytest.fixture
def run(app: Any) -> Run:
    return Run(app)


@pytest.fixture
def api_schema(app: Any) -> Any:
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


def problem_document(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error is application/problem+json with a string `code` and its own status."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == "application/problem+json", (
        f"{response.status_code} answered {content_type!r}")
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("code"), str) and body["code"], body
    assert body.get("status") == response.status_code, body
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, problem_document]


def _generated(api_schema: Any, operation: Any) -> Any:
    """The operation's documented examples, valid requests and invalid ones."""
    return st.one_of(*api_schema.get_strategies_from_examples(operation),
                     operation.as_strategy(GenerationMode.POSITIVE),
                     operation.as_strategy(GenerationMode.NEGATIVE))


def test_every_answer_matches_the_openapi_document(api_schema: Any, run: Run) -> None:
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None,
                  deadline=timedelta(seconds=5), suppress_health_check=list(HealthCheck),
                  phases=[Phase.explicit, Phase.generate])
        @given(case=_generated(api_schema, operation))
        def exercise(case: Any) -> None:
            run.authorize(case)
            # One app context per request, as in production (the fixture's stays open).
            contextvars.Context().run(case.call_and_validate, checks=CHECKS)

        for case in run.valid_requests(operation):
            exercise = example(case=case)(exercise)
        try:
            exercise()
        except Exception as exc:  # every operation's failures are reported, not just the first
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
