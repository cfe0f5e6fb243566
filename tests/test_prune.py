"""`flask prune` deletes refresh tokens rotated longer ago than REFRESH_TOKEN_HISTORY, in
batches that each commit, and keeps what sign-ins and reuse detection still need."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import event, func, insert, select

from authserver.extensions import db
from authserver.models import RefreshToken, Session

PASSWORD = "a long enough passphrase"
OLD_ROTATED = 4500


def _refresh(client: Any, token: str) -> Any:
    return client.post("/api/v1/token/refresh", json={"refresh_token": token})


def _refreshed(client: Any, token: str) -> str:
    response = _refresh(client, token)
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["refresh_token"])


def test_prune_drops_old_rotated_tokens_in_batches(app, runner, client, clock):
    """A session that refreshed for weeks: 4,502 rotated rows older than the history window
    go in DELETEs of at most 1,000 rows, each committed on its own; then the session's
    current token still refreshes, a never-refreshed session's token too, a token rotated
    inside the window is still caught as reuse (the session is revoked), and a pruned one is
    only unknown (401, the session lives: the documented trade-off)."""
    signup = client.post("/api/v1/signup", json={"email": "ada@example.com",
                                                 "password": PASSWORD}).get_json()
    first = signup["refresh_token"]
    second = _refreshed(client, first)
    third = _refreshed(client, second)
    other = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                "password": PASSWORD}).get_json()
    session_id = db.session.scalar(select(RefreshToken.session_id).where(
        RefreshToken.token_hash == hashlib.sha256(third.encode()).hexdigest()))
    now = clock.now()
    # What weeks of refreshing leave behind: rotated rows of the live session.
    db.session.execute(insert(RefreshToken), [
        {"session_id": session_id, "token_hash": secrets.token_hex(32),
         "created_at": now - timedelta(days=20), "expires_at": now + timedelta(days=10),
         "rotated_at": now - timedelta(days=20, seconds=-i)}
        for i in range(OLD_ROTATED)])
    db.session.commit()

    clock.travel(8 * 24 * 3600)  # past REFRESH_TOKEN_HISTORY (7 days) for all of the above
    fourth = _refreshed(client, third)  # `third` is rotated now: inside the window

    deletes: list[int] = []
    commits: list[int] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM REFRESH_TOKENS"):
            deletes.append(cursor.rowcount)

    def on_commit(conn: Any) -> None:
        commits.append(len(deletes))

    event.listen(db.engine, "after_cursor_execute", on_execute)
    event.listen(db.engine, "commit", on_commit)
    try:
        result = runner.invoke(args=["prune", "--batch-size", "1000"])
    finally:
        event.remove(db.engine, "after_cursor_execute", on_execute)
        event.remove(db.engine, "commit", on_commit)
    assert result.exit_code == 0, result.output
    assert f"refresh_tokens: {OLD_ROTATED + 2}" in result.output
    # Batches: five DELETEs (4 of 1,000, then 502), none larger, each followed by its commit.
    assert deletes == [1000, 1000, 1000, 1000, 502]
    for done in range(1, len(deletes) + 1):
        assert done in commits, f"no commit right after DELETE batch {done}: {commits}"

    remaining = db.session.scalar(select(func.count()).select_from(RefreshToken))
    # Session A: `third` (rotated inside the window) and `fourth` (current); session B: its own.
    assert remaining == 3
    assert db.session.scalar(select(RefreshToken.parent_id).where(
        RefreshToken.token_hash == hashlib.sha256(third.encode()).hexdigest())) is None

    # A pruned rotated token is only unknown now: 401, and the session is not revoked.
    stale = _refresh(client, first)
    assert stale.status_code == 401
    assert stale.get_json()["detail"] == "The refresh token is invalid."
    # The never-refreshed session's token (issued 8 days ago, never rotated) still works.
    _refreshed(client, other["refresh_token"])
    # The live session's current token still works…
    fifth = _refreshed(client, fourth)
    # …and a replay of a token rotated inside the window is still reuse: session revoked.
    clock.travel(60)
    replay = _refresh(client, third)
    assert replay.status_code == 401
    assert "session is revoked" in replay.get_json()["detail"]
    db.session.expire_all()
    assert db.session.get(Session, session_id).revoked_reason == "refresh_reuse"
    assert _refresh(client, fifth).status_code == 401


def test_history_is_a_setting_and_never_shorter_than_the_grace(app, runner, client, clock):
    """REFRESH_TOKEN_HISTORY decides the window; a rotated token younger than it stays."""
    from authserver import services

    services.configure(app, REFRESH_TOKEN_HISTORY=3600)
    tokens = client.post("/api/v1/signup", json={"email": "bo@example.com",
                                                 "password": PASSWORD}).get_json()
    rotated = tokens["refresh_token"]
    current = _refreshed(client, rotated)
    clock.travel(1800)
    assert "refresh_tokens: 0" in runner.invoke(args=["prune"]).output
    clock.travel(1801)
    assert "refresh_tokens: 1" in runner.invoke(args=["prune"]).output
    _refreshed(client, current)
