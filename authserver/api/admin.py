"""Administration: find users, grant and take roles, disable accounts. Role `admin` only."""

from __future__ import annotations

from authserver import accounts, tokens
from authserver.api import bp
from authserver.api.endpoint import BEARER, endpoint
from authserver.errors import ErrorCode as E
from authserver.identifiers import normalize_email
from authserver.schemas.requests import RoleGrant, UserSearch
from authserver.schemas.responses import User, UserList, user_object
from authserver.transactions import committed

ADMIN_ONLY = "Needs a token whose user has the role `admin` (re-read on every request)."


@bp.get("/admin/users")
@tokens.require_role("admin")
@endpoint(summary="Find users by e-mail", tag="admin", query=UserSearch, response=UserList,
          security=(BEARER,), description=ADMIN_ONLY,
          errors={403: [E.FORBIDDEN], 422: [E.INVALID_EMAIL]})
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
          errors={403: [E.FORBIDDEN], 404: [E.NOT_FOUND], 422: [E.INVALID_REQUEST]})
def add_role(user_id: str, body: RoleGrant) -> User:
    user = accounts.get(user_id)
    return user_object(accounts.add_role(user, body.role))


@bp.delete("/admin/users/<user_id>/roles/<role>")
@tokens.require_role("admin")
@committed
@endpoint(summary="Take a role away", tag="admin", response=User, security=(BEARER,),
          description=ADMIN_ONLY, errors={403: [E.FORBIDDEN], 404: [E.NOT_FOUND]})
def remove_role(user_id: str, role: str) -> User:
    user = accounts.get(user_id)
    return user_object(accounts.remove_role(user, role))


@bp.post("/admin/users/<user_id>/disable")
@tokens.require_role("admin")
@committed
@endpoint(summary="Disable a user and revoke all their sessions", tag="admin", response=User,
          security=(BEARER,), description=ADMIN_ONLY,
          errors={403: [E.FORBIDDEN], 404: [E.NOT_FOUND]})
def disable(user_id: str) -> User:
    user = accounts.get(user_id)
    return user_object(accounts.disable(user))
