"""SIGNUP_LIMIT_PER_IP counts sign-ups that stand; refused ones cost only an attempt."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import PASSWORD
from tests.helpers import problem

SIGNUP = "/api/v1/signup"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"SIGNUP_LIMIT_PER_IP": "2/hour", "SIGNIN_LIMIT_PER_IP": "30/minute"}


def sign_up(client: Any, email: str, password: str = PASSWORD, ip: str = "198.51.100.7") -> Any:
    return client.post(SIGNUP, json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def assert_limited(response: Any) -> int:
    assert response.status_code == 429, response.get_json()
    assert problem(response)["code"] == "rate_limited"
    retry = int(response.headers["Retry-After"])
    assert 0 < retry <= 3600
    return retry


def test_failed_sign_ups_do_not_use_up_the_limit(client: Any) -> None:
    assert sign_up(client, "first@example.com").status_code == 201
    for _ in range(3):
        assert sign_up(client, "not an address").status_code == 422
        assert sign_up(client, "weak@example.com", "password").status_code == 422
        assert sign_up(client, "first@example.com").status_code == 409  # taken
    assert sign_up(client, "second@example.com").status_code == 201
    assert_limited(sign_up(client, "third@example.com"))
    # Once reached, every try is refused before any work, failed ones too.
    assert_limited(sign_up(client, "not an address"))
    # Another address has its own budget.
    assert sign_up(client, "third@example.com", ip="198.51.100.8").status_code == 201


@pytest.mark.parametrize("config_overrides", [{"SIGNUP_LIMIT_PER_IP": "100/hour",
                                               "SIGNIN_LIMIT_PER_IP": "4/minute"}])
def test_failed_sign_ups_are_still_limited_as_attempts(client: Any) -> None:
    for _ in range(4):
        assert sign_up(client, "weak@example.com", "password").status_code == 422
    assert_limited(sign_up(client, "weak@example.com", "password"))
    assert_limited(sign_up(client, "fine@example.com"))


@pytest.mark.parametrize("config_overrides", [{"SIGNUP_LIMIT_PER_IP": "2/hour",
                                               "EMAIL_VERIFICATION_REQUIRED": True}])
def test_a_registered_address_costs_what_a_new_one_does(client: Any) -> None:
    """Under EMAIL_VERIFICATION_REQUIRED both answer 202: the budget must not tell them apart."""
    assert sign_up(client, "ada@example.com").status_code == 202
    assert sign_up(client, "ada@example.com").status_code == 202
    assert_limited(sign_up(client, "bob@example.com"))
