"""Issue 10: a provider's fault costs nobody a sign-in, through the API and a real SMTP fake.

- The mail server took the message whole, then never answered: the mail most likely
  arrived, so the answer is 202, its code works and the resend cooldown holds.
- The mail server never took it (a black hole that never greets): 503 with Retry-After
  within the timeout, nothing usable stays and the cooldown is given back.
- More sends at once than SEND_CONCURRENCY: the extra ones answer 503 at once.

Runs on SQLite and MySQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from authserver.extensions import db
from authserver.models import OneTimeCode
from tests.fakes.smtp_server import BlackHole, FakeSmtp
from tests.flows.magic_helpers import code_in, parts_of
from tests.helpers import problem

REQUEST = "/api/v1/magic-link/request"
VERIFY = "/api/v1/magic-link/verify"
EMAIL = "ada@example.com"
TIMEOUT = 1.0



def _smtp(host: str, port: int, **more: Any) -> dict[str, Any]:
    return {"EMAIL_BACKEND": "smtp", "SMTP_HOST": host, "SMTP_PORT": port,
            "SMTP_TIMEOUT": TIMEOUT, "MAGIC_LINK_LIMIT_PER_EMAIL_HOUR": "1/hour", **more}


def _usable(email: str = EMAIL) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(OneTimeCode).where(
        OneTimeCode.subject == email, OneTimeCode.consumed_at.is_(None),
        OneTimeCode.invalidated_at.is_(None))) or 0


class TestMailServerTookItThenHung:
    @pytest.fixture
    def config_overrides(self, fake_smtp: FakeSmtp) -> dict[str, Any]:
        return _smtp(fake_smtp.host, fake_smtp.port, SEND_CONCURRENCY=1)

    def test_mail_taken_then_no_answer_is_202_and_its_code_signs_in(
        self, client: Any, fake_smtp: FakeSmtp
    ) -> None:
        fake_smtp.hang_after_data = 30
        started = time.monotonic()
        response = client.post(REQUEST, json={"email": EMAIL})
        assert response.status_code == 202, response.get_json()
        assert response.get_json()["sent"] is True
        assert time.monotonic() - started < TIMEOUT + 3
        assert _usable() == 1

        again = client.post(REQUEST, json={"email": EMAIL})
        assert again.status_code == 429 and problem(again)["code"] == "rate_limited"
        [message] = fake_smtp.messages  # no second mail
        code = code_in(parts_of(message)[0])
        assert client.post(VERIFY, json={"email": EMAIL, "code": code}).status_code == 200

    def test_sends_beyond_the_cap_answer_503_at_once(
        self, app: Any, client: Any, fake_smtp: FakeSmtp
    ) -> None:
        fake_smtp.hang_after_data = 30
        answers: list[int] = []

        def hung_send() -> None:
            with app.test_client() as other:
                answers.append(other.post(REQUEST, json={"email": "bob@example.com"})
                               .status_code)

        first = threading.Thread(target=hung_send)
        first.start()
        try:
            deadline = time.monotonic() + 5
            while not fake_smtp.messages and time.monotonic() < deadline:
                time.sleep(0.02)  # the first send holds the one slot, waiting on the server
            assert fake_smtp.messages, "the first send never reached the server"
            started = time.monotonic()
            busy = client.post(REQUEST, json={"email": EMAIL})
            elapsed = time.monotonic() - started
        finally:
            first.join(timeout=10)
        assert answers == [202]
        assert busy.status_code == 503 and problem(busy)["code"] == "service_unavailable"
        assert int(busy.headers["Retry-After"]) > 0
        assert elapsed < 1.0, elapsed  # refused at once, not after the server's timeout
        assert _usable() == 0 and len(fake_smtp.messages) == 1
        # Nothing went out for it: no cooldown, no hourly count (1/hour), the slot is free.
        fake_smtp.hang_after_data = 0
        assert client.post(REQUEST, json={"email": EMAIL}).status_code == 202


class TestBlackHoleMailServer:
    @pytest.fixture
    def config_overrides(self) -> Iterator[dict[str, Any]]:
        with BlackHole() as hole:
            yield _smtp(hole.host, hole.port)

    def test_black_hole_mail_server_is_503_fast_and_costs_nothing(self, client: Any) -> None:
        for _ in range(2):  # the cooldown and the hourly count (1/hour) were given back
            started = time.monotonic()
            response = client.post(REQUEST, json={"email": EMAIL})
            assert time.monotonic() - started < TIMEOUT + 3
            assert response.status_code == 503, response.get_json()
            assert problem(response)["code"] == "service_unavailable"
            assert int(response.headers["Retry-After"]) > 0
            assert _usable() == 0
