"""Administration: find users, grant and take roles, disable accounts. Role `admin` only."""

from __future__ import annotations

from authserver import accounts, audit, tokens
from authserver.api import bp
from authserver.api.endpoint import BEARER, endpoint
from authserver.errors import ErrorCode as E
from authserver.errors import Problem
from authserver.flows import mfa as mfa_flow
from authserver.identifiers import normalize_email
from authserver.schemas.requests import AuditQuery, RoleGrant, UserSearch
from authserver.schemas.responses import AuditPage, User, UserList, user_object
from authserver.transactions import committed

ADMIN_ONLY = ("Needs a token whose user has the role `admin` (re-read on every request), from "
              "a sign-in with a second factor when MFA_REQUIRED_ROLES names `admin`.")
#: Not an admin, or one who did not sign in with a second factor (MFA_REQUIRED_ROLES).
ADMIN_REFUSALS = (E.FORBIDDEN, E.MFA_REQUIRED_FOR_ROLE)


@bp.get("/admin/users")
@tokens.require_role("admin")
@endpoint(summary="Find users by e-mail", tag="admin", query=UserSearch, response=UserList,
          security=(BEARER,), description=ADMIN_ONLY,
          errors={403: ADMIN_REFUSALS, 422: [E.INVALID_EMAIL]})
def list_users(query: UserSearch) -> UserList:
    email = query.email
    if email:
        email = normalize_email(email)
    return UserList(users=[user_object(user) for user in accounts.search(email)])


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
          errors={403: ADMIN_REFUSALS, 404: [E.NOT_FOUND]})
def disable(user_id: str) -> User:
    user = accounts.get(user_id)
    return user_object(accounts.disable(user, actor_id=tokens.current_user().id))


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
    mfa_flow.reset(user.id, actor_id=tokens.current_user().id)
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
