"""A disabled user is out everywhere, at once: no session of theirs is live and no token of
theirs is accepted, whatever raced the disable.

Reproductions of the red-team findings: a session opened by a sign-in that raced a disable
stayed live, and `isAuthenticated` and the admin API never looked at the disabled flag (a
disabled admin kept `GET /admin/users` answering 200 until the access token expired).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from authserver import accounts, passwords, session_checks, tokens
from authserver.errors import Problem
from authserver.extensions import db
from authserver.flows import password as password_flow
from authserver.models import Session, User
from authserver.transactions import committed
from tests.conftest import PASSWORD
from tests.helpers import bearer, problem
from tests.race import pool_per_racer, race

RACERS = 20


def _disable_behind_the_apps_back(user_id: str) -> None:
    """The state a sign-in that raced a disable leaves: the flag set, a session still open.

    Written on a connection of its own, as another worker's transaction would be.
    """
    with db.engine.begin() as conn:
        conn.execute(update(User).where(User.id == user_id).values(disabled=True))
    db.session.commit()  # the test's own session: a fresh snapshot, as a new request has


def _live_sessions(user_id: str) -> int:
    db.session.commit()  # a fresh snapshot (MySQL's REPEATABLE READ)
    return int(db.session.scalar(
        select(func.count()).select_from(Session)
        .where(Session.user_id == user_id, Session.revoked_at.is_(None))) or 0)


def test_is_authenticated_refuses_a_disabled_users_open_session(client, signup):
    issued = signup()
    _disable_behind_the_apps_back(issued["user"]["id"])
    for headers in (bearer(issued["access_token"]), {"x-access-token": issued["access_token"]}):
        response = client.get("/api/v1/isAuthenticated", headers=headers)
        assert response.status_code == 401
        assert problem(response)["code"] == "invalid_token"


def test_a_disabled_admin_is_refused_by_the_admin_api_at_once(client, admin_token):
    auth = bearer(admin_token)
    assert client.get("/api/v1/admin/users", headers=auth).status_code == 200
    _disable_behind_the_apps_back(accounts.by_email("root@example.com").id)
    for method, path in [("get", "/api/v1/admin/users"),
                         ("post", "/api/v1/admin/users/nobody/disable")]:
        response = client.open(path, method=method.upper(), headers=auth)
        assert response.status_code == 401, path
        assert problem(response)["code"] == "invalid_token"


def test_verify_refuses_a_disabled_user_in_the_one_session_lookup(app):
    user = accounts.create(email="ada@example.com")
    issued = tokens.issue(user, ["pwd"])
    db.session.commit()
    assert tokens.verify(issued.access_token).user_id == user.id
    _disable_behind_the_apps_back(user.id)
    db.session.commit()
    with pytest.raises(Problem) as info:
        tokens.verify(issued.access_token)
    assert info.value.code == "invalid_token"
    assert not session_checks.is_open(issued.session_id, user.id)


def test_issue_rechecks_the_flag_a_stale_user_object_missed(app):
    """The sign-in read the user (enabled), then a disable committed: no session may open."""
    user = accounts.create(email="ada@example.com")
    db.session.commit()
    assert user.disabled is False  # loaded: what a flow holds while it checks a password
    _disable_behind_the_apps_back(user.id)
    with pytest.raises(Problem) as info:
        tokens.issue(user, ["pwd"])
    assert info.value.status == 403 and info.value.code == "account_disabled"
    db.session.commit()  # what @committed does with a Problem: nothing may stand
    assert _live_sessions(user.id) == 0
    assert db.session.scalar(select(func.count()).select_from(Session)) == 0


def test_a_role_taken_away_in_the_database_stops_the_admin_api(client, admin_token):
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM user_roles"))
    response = client.get("/api/v1/admin/users", headers=bearer(admin_token))
    assert response.status_code == 403 and problem(response)["code"] == "forbidden"


class TestSignInsRacingADisableOnMySQL:
    """20 password sign-ins racing a disable: whatever order they land in, none stays live."""

    @pytest.fixture(autouse=True)
    def _mysql_only(self, database_url):
        if not database_url.startswith("mysql"):
            pytest.skip("row-level concurrency is checked on MySQL")

    @pytest.fixture
    def config_overrides(self, monkeypatch):
        pool_per_racer(monkeypatch, RACERS + 1)
        # About order, not speed: on a loaded machine 21 racers may queue on the user row
        # for longer than the production lock-wait bound (a fast 503 is right there).
        return {"RATELIMIT_ENABLED": False, "DATABASE_LOCK_WAIT_TIMEOUT": 30,
                "DATABASE_READ_TIMEOUT": 60}

    def test_no_session_survives_twenty_sign_ins_racing_a_disable(self, app):
        user = accounts.create(email="ada@example.com",
                               password_hash=passwords.hash_password(PASSWORD))
        db.session.commit()
        user_id = user.id
        turn = iter(range(RACERS + 1))
        lock = threading.Lock()

        @committed
        def sign_in() -> Any:
            # The flow reads the user, spends ~20 ms on argon2, then opens the session: the
            # disable lands inside that window for most of the racers.
            return password_flow.sign_in("ada@example.com", PASSWORD)

        @committed
        def disable() -> str:
            time.sleep(0.01)  # into the sign-ins' password checks
            accounts.disable(accounts.get(user_id))
            return "disabled"

        def work() -> Any:
            with lock:
                mine = next(turn)
            return disable() if mine == 0 else sign_in()

        outcomes = race(app, work, RACERS + 1)

        assert outcomes.count("disabled") == 1, outcomes
        issued = [o for o in outcomes if isinstance(o, tokens.IssuedTokens)]
        refused = [o for o in outcomes if isinstance(o, Problem)]
        # InnoDB may break a lock cycle between the disable and a sign-in queued behind it by
        # failing the sign-in (1213: answered 503, the client retries); never anything else.
        deadlocked = [o for o in outcomes if o == "OperationalError 1213"]
        assert len(issued) + len(refused) + len(deadlocked) == RACERS, outcomes
        assert len(deadlocked) <= RACERS // 4, outcomes
        assert {p.code for p in refused} <= {"account_disabled"}, outcomes
        assert _live_sessions(user_id) == 0, f"{len(issued)} sign-ins got tokens"
        for won in issued:  # whatever a racer was handed is dead now
            with pytest.raises(Problem):
                tokens.verify(won.access_token)
            with pytest.raises(Problem):
                tokens.refresh(won.refresh_token)
