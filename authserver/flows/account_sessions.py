"""A signed-in person's own sessions: list them, end one, sign out here, elsewhere or
everywhere.

Like flows/account.py, these take the account's id and the caller's session id, so they run
the same behind a bearer token (api/me.py, api/session.py) and behind a web cookie
(web/account_changes.py).
"""

from __future__ import annotations

from typing import Any, Literal

from authserver import sessions
from authserver.errors import ErrorCode, Problem
from authserver.flows.account import signed_in_user
from authserver.user_agents import describe

Scope = Literal["local", "others", "global"]
SCOPES: tuple[Scope, ...] = ("local", "others", "global")


def list_sessions(user_id: str, current_session_id: str) -> list[dict[str, Any]]:
    """The account's open sessions, most recently used first."""
    sessions_ = sessions.active_for(signed_in_user(user_id))
    return [{"id": row.id, "created_at": _iso(row.created_at),
             "last_used_at": _iso(row.last_used_at), "user_agent": row.user_agent,
             "device": describe(row.user_agent), "ip": row.ip, "amr": row.amr_list,
             "client": row.client, "current": row.id == current_session_id}
            for row in sessions_]


def _iso(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def end_session(user_id: str, session_id: str) -> None:
    """End one of the account's sessions; 404 not_found for any session not open and theirs."""
    if not isinstance(session_id, str) or len(session_id) > 36 \
            or not sessions.revoke_own(user_id, session_id, reason="signed_out_remotely"):
        raise Problem(404, ErrorCode.NOT_FOUND, "No such session.")


def log_out(user_id: str, session_id: str, scope: Scope) -> int:
    """End this session (`local`), every other one (`others`) or all of them (`global`)."""
    if scope == "local":
        sessions.revoke(session_id, reason="logout")
        return 1
    if scope == "others":
        return sessions.revoke_others(user_id, session_id, reason="logout_others")
    return sessions.revoke_all(user_id, reason="logout_global")

