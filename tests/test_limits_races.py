"""Racing the database-held limits on MySQL: the SMS bill stop and the password lock-out.

Both are one conditional UPDATE (`count = count + 1 WHERE count < cap`) taken *before* the
costly or guessable step, so twenty threads at once get no more than the cap through.
"""

from __future__ import annotations

from typing import Any

import pytest

from authserver import lockout, ratelimits
from authserver.errors import Problem
from authserver.extensions import db
from authserver.flows import password
from tests.conftest import PASSWORD
from tests.race import pool_per_racer, race

RACERS = 20


@pytest.fixture
def config_overrides(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    pool_per_racer(monkeypatch, RACERS)
    return {"OTP_LIMIT_GLOBAL_HOUR": "3/hour", "SIGNIN_MAX_CONSECUTIVE_FAILURES": 5,
            "SIGNIN_LIMIT_PER_ACCOUNT": "", "SIGNIN_LIMIT_PER_IP": ""}


@pytest.fixture
def mysql_only(app: Any) -> None:
    if db.engine.dialect.name != "mysql":
        pytest.skip("concurrency needs MySQL's parallel connections; SQLite serialises writers")


@pytest.mark.usefixtures("mysql_only")
def test_racing_sends_never_pass_the_global_sms_cap(app: Any) -> None:
    """Twenty senders take the bill stop's unit at once (as codes.send does, before sending):
    exactly the cap of them get one."""

    def work() -> Any:
        ratelimits.check(ratelimits.SMS_GLOBAL, "all")
        ratelimits.count(ratelimits.SMS_GLOBAL, "all")  # "sent"
        return "sent"

    outcomes = race(app, work, count=RACERS)
    refused = [o for o in outcomes if isinstance(o, Problem)]
    assert outcomes.count("sent") == 3 and len(refused) == RACERS - 3, outcomes
    assert {(p.status, p.code) for p in refused} == {(429, "rate_limited")}
    with app.test_request_context(), pytest.raises(Problem):
        ratelimits.check(ratelimits.SMS_GLOBAL, "all")


@pytest.mark.usefixtures("mysql_only")
def test_racing_guesses_get_no_more_than_the_cap_compared(app: Any, signup: Any) -> None:
    signup()

    def work() -> Any:
        return password.sign_in("ada@example.com", "not the password")

    outcomes = race(app, work, count=RACERS)
    answers = sorted((o.status, o.code) for o in outcomes if isinstance(o, Problem))
    assert len(answers) == RACERS, outcomes
    assert answers == [(401, "invalid_credentials")] * 5 + [
        (403, "password_signin_locked")] * (RACERS - 5)
    with app.test_request_context():
        assert lockout.failures("ada@example.com") == 5


@pytest.mark.usefixtures("mysql_only")
def test_racing_right_passwords_all_sign_in(app: Any, signup: Any) -> None:
    """Each sign-in adds to the address's run and then ends it (lockout.attempt, then
    lockout.succeeded): on MySQL the INSERTs and DELETEs of that one counters row can
    deadlock, and the loser must count again, not answer 503."""
    from authserver.services import configure

    configure(app, SIGNIN_MAX_CONSECUTIVE_FAILURES=100)  # room for every racer's attempt
    signup()

    def work() -> Any:
        return password.sign_in("ada@example.com", PASSWORD).user.email

    for _ in range(3):
        outcomes = race(app, work, count=RACERS)
        assert outcomes == ["ada@example.com"] * RACERS, outcomes
