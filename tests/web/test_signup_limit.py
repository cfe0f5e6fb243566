"""The web sign-up's 429 says how long to wait; so does the error page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from authserver.errors import Problem, page_detail, problem_response, rate_limited
from tests.conftest import PASSWORD
from tests.web.conftest import csrf_from


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"SESSION_COOKIE_SECURE": False, "SIGNUP_LIMIT_PER_IP": "1/hour"}


def web_sign_up(client: Any, email: str, password: str = PASSWORD) -> Any:
    html = client.get("/signup").get_data(as_text=True)
    return client.post("/signup", data={"email": email, "password": password,
                                        "csrf_token": csrf_from(html)})


def test_the_sign_up_page_says_how_long_to_wait(client: Any) -> None:
    # A refused sign-up first: it does not count.
    assert web_sign_up(client, "weak@example.com", "password").status_code == 422
    first = web_sign_up(client, "ada@example.com")
    assert first.status_code in (200, 302, 303), first.get_data(as_text=True)[:500]
    client.post("/logout", data={})  # whatever the page did, ask again as a stranger
    refused = web_sign_up(client, "bob@example.com")
    assert refused.status_code == 429
    retry = int(refused.headers["Retry-After"])
    page = refused.get_data(as_text=True)
    match = re.search(r"Try again in (\d+) minutes\.", page)
    assert match, page
    assert int(match.group(1)) == -(-retry // 60)
    assert "Try again later" not in page


@pytest.mark.parametrize(("seconds", "words"), [
    (1, "1 second"), (45, "45 seconds"), (60, "1 minute"), (61, "2 minutes"),
    (3600, "60 minutes"), (7200, "2 hours"), (86399, "24 hours")])
def test_waits_in_words_round_up(seconds: int, words: str) -> None:
    assert page_detail(rate_limited(seconds)) == f"Too many requests. Try again in {words}."


def test_details_that_name_their_wait_or_are_not_429_stay() -> None:
    assert page_detail(rate_limited(30, "Wait 30 seconds before asking again.")) == \
        "Wait 30 seconds before asking again."
    assert page_detail(rate_limited(120, "Too many wrong codes. Wait, or sign in another "
                                         "way.")) == ("Too many wrong codes. Wait, or sign in "
                                                      "another way. Try again in 2 minutes.")
    assert page_detail(Problem(400, "invalid_request", "Try again later.")) == \
        "Try again later."


def test_the_error_page_says_how_long_to_wait(app: Any) -> None:
    with app.test_request_context("/login"):
        response = problem_response(rate_limited(600))
    assert response.status_code == 429 and response.mimetype == "text/html"
    assert "Try again in 10 minutes." in response.get_data(as_text=True)
    with app.test_request_context("/api/v1/signup"):
        api = problem_response(rate_limited(600))
    assert api.get_json()["detail"] == "Too many requests. Try again later."
