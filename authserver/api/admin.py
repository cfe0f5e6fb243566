"""Administration: find users, grant and take roles, disable and enable accounts. Role
`admin` only."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from authserver import accounts, audit, phones, tokens
from authserver.api import bp
from authserver.api.endpoint import BEARER, endpoint
from authserver.errors import ErrorCode as E
from authserver.errors import Problem
from authserver.flows import mfa_settings
from authserver.identifiers import normalize_email
from authserver.models import User as UserRow
from authserver.schemas.requests import AuditQuery, RoleGrant, UserSearch
from authserver.schemas.responses import AuditPage, User, UserList, user_object
from authserver.transactions import committed

ADMIN_ONLY = ("Needs a token whose user has the role `admin` (re-read on every request), from "
              "a sign-in with a second factor when MFA_REQUIRED_ROLES names `admin`.")
#: Not an admin, or one who did not sign in with a second factor (MFA_REQUIRED_ROLES).
ADMIN_REFUSALS = (E.FORBIDDEN, E.MFA_REQUIRED_FOR_ROLE)


PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


def _cursor(user: UserRow) -> str:
    """An opaque page cursor: the (created_at, id) key of the page's last user."""
    raw = json.dumps([user.created_at.isoformat(), user.id]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _after(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, user_id = json.loads(raw)
        if not isinstance(user_id, str) or not isinstance(created_at, str):
            raise ValueError
        after = datetime.fromisoformat(created_at)
        if after.tzinfo is None or len(user_id) > 36:
            raise ValueError
        return after.astimezone(UTC), user_id
    except (ValueError, TypeError, OverflowError):
        raise Problem(422, E.INVALID_REQUEST, "cursor is not one this server gave out.",
                      field="cursor") from None


def _page_size(raw: str | None) -> int:
    if raw is None:
        return PAGE_SIZE
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise Problem(422, E.INVALID_REQUEST, f"limit is a number from 1 to {MAX_PAGE_SIZE}.",
                      field="limit")
    return int(raw)


@bp.get("/admin/users")
@tokens.require_role("admin")
@endpoint(summary="Find users by e-mail or phone, a page at a time", tag="admin",
          query=UserSearch, response=UserList, security=(BEARER,),
          description=ADMIN_ONLY + " Oldest first; `next_cursor` fetches the next page.",
          errors={403: ADMIN_REFUSALS,
                  422: [E.INVALID_EMAIL, E.INVALID_PHONE, E.INVALID_REQUEST]})
def list_users(query: UserSearch) -> UserList:
    email = normalize_email(query.email) if query.email else None
    phone = phones.parse_phone(query.phone) if query.phone else None
    limit = _page_size(query.limit)
    after = _after(query.cursor) if query.cursor else None
    users = accounts.search(email, limit + 1, phone=phone, after=after)
    next_cursor = _cursor(users[limit - 1]) if len(users) > limit else None
    return UserList(users=[user_object(user) for user in users[:limit]],
                    next_cursor=next_cursor)


@bp.post("/admin/users/<user_id>/roles")
@tokens.require_role("admin")
@committed
@endpoint(summary="Grant a role", tag="admin", request=RoleGrant, response=User,
          security=(BEARER,), description=ADMIN_ONLY,
          errors={403: ADMIN_REFUSALS, 404: [E.NOT_FOUND], 422: [E.INVALID_REQUEST]})
def add_role(user_id: str, body: RoleGrant) -> User:
    user = accounts.get(user_id)
    return user_object(accounts.add_role(user, body.role, actor_id=tokens.current_user().id))


@bp.delete("/admin/users/<user_id>/roles/<role>")
@tokens.require_role("admin")
@committed
@endpoint(summary="Take a role away", tag="admin", response=User, security=(BEARER,),
          description=ADMIN_ONLY, errors={403: ADMIN_REFUSALS, 404: [E.NOT_FOUND]})
def remove_role(user_id: str, role: str) -> User:
    user = accounts.get(user_id)
    return user_object(accounts.remove_role(user, role, actor_id=tokens.current_user().id))


@bp.post("/admin/users/<user_id>/disable")
@tokens.require_role("admin")
@committed
@endpoint(summary="Disable a user and revoke all their sessions", tag="admin", response=User,
          security=(BEARER,), description=ADMIN_ONLY,
          errors={403: ADMIN_REFUSALS, 404: [E.NOT_FOUND], 409: [E.CANNOT_DISABLE_SELF]})
def disable(user_id: str) -> User:
    user = accounts.get(user_id)
    actor = tokens.current_user()
    if user.id == actor.id:
        # Locking oneself out could leave nobody to undo it.
        raise Problem(409, E.CANNOT_DISABLE_SELF, "You cannot disable your own account; "
                      "ask another administrator.")
    return user_object(accounts.disable(user, actor_id=actor.id))


@bp.post("/admin/users/<user_id>/enable")
@tokens.require_role("admin")
@committed
@endpoint(summary="Enable a disabled user again", tag="admin", response=User,
          security=(BEARER,),
          description=ADMIN_ONLY + " Sessions ended by the disabling stay ended.",
          errors={403: ADMIN_REFUSALS, 404: [E.NOT_FOUND]})
def enable(user_id: str) -> User:
    user = accounts.get(user_id)
    return user_object(accounts.enable(user, actor_id=tokens.current_user().id))


@bp.post("/admin/users/<user_id>/mfa/reset")
@tokens.require_role("admin")
@committed
@endpoint(summary="Remove a user's second factor", tag="admin", response=User,
          security=(BEARER,),
          description=ADMIN_ONLY + " The authenticator app and recovery codes go; the user "
                                   "signs in with one factor until they set up a new one.",
          errors={403: ADMIN_REFUSALS, 404: [E.NOT_FOUND]})
def reset_mfa(user_id: str) -> User:
    user = accounts.get(user_id)
    mfa_settings.reset(user.id, actor_id=tokens.current_user().id)
    return user_object(user)


def _whole(value: str | None, name: str, low: int, high: int) -> int | None:
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise Problem(422, E.INVALID_REQUEST, f"{name} is a whole number from {low} to "
                      f"{high}.", field=name)
    return int(value)


@bp.get("/admin/audit")
@tokens.require_role("admin")
@endpoint(summary="Read the audit trail", tag="admin", query=AuditQuery, response=AuditPage,
          security=(BEARER,),
          description=ADMIN_ONLY + " Newest first, keyset-paginated by id: pass the answer's "
                                   "`next` as `before` for the next page.",
          errors={403: ADMIN_REFUSALS, 422: [E.INVALID_REQUEST]})
def audit_trail(query: AuditQuery) -> AuditPage:
    before = _whole(query.before, "before", 1, 2 ** 63 - 1)
    limit = _whole(query.limit, "limit", 1, audit.MAX_LIMIT) or audit.DEFAULT_LIMIT
    rows, following = audit.page(user_id=query.user_id or None, type_=query.type or None,
                                 before=before, limit=limit)
    return AuditPage.model_validate({"events": [row.to_dict() for row in rows],
                                     "next": following})
