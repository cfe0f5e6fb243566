"""Token and session endpoints: refresh, logout, me, isAuthenticated, isAdmin."""

from __future__ import annotations

from flask import g

from authserver import ratelimits, tokens
from authserver.api import bp
from authserver.api.endpoint import ACCESS_TOKEN_HEADER, BEARER, endpoint
from authserver.errors import ErrorCode as E
from authserver.errors import Problem
from authserver.flows import account_sessions, handoff
from authserver.schemas.requests import Exchange, Logout, Refresh
from authserver.schemas.responses import (
    IsAdmin,
    IsAuthenticated,
    Me,
    TokenResponse,
    me_object,
    token_response,
)
from authserver.transactions import committed


@bp.post("/token/refresh")
@ratelimits.route(ratelimits.TOKEN_IP)
@committed
@endpoint(summary="Rotate a refresh token", tag="tokens",
          request=Refresh, response=TokenResponse,
          errors={401: [E.INVALID_TOKEN], 429: [E.RATE_LIMITED]})
def refresh(body: Refresh) -> TokenResponse:
    return token_response(tokens.refresh(body.refresh_token))


@bp.post("/logout")
@tokens.require_auth
@committed
@endpoint(summary="End the session of this token (or others, or all)", tag="tokens",
          request=Logout, body_optional=True, status=204, security=(BEARER,),
          errors={422: [E.INVALID_REQUEST]},
          description="The body is optional: no body (today's logout) is `local`.")
def logout(body: Logout | None) -> None:
    scope = body.scope if body is not None else None
    if scope not in (None, *account_sessions.SCOPES):
        raise Problem(422, E.INVALID_REQUEST, "scope is one of local, others, global.",
                      field="scope")
    account_sessions.log_out(g.claims.user_id, g.claims.session_id, scope or "local")


@bp.get("/me")
@tokens.require_auth(load_user=True)
@endpoint(summary="The signed-in user", tag="tokens", response=Me, security=(BEARER,),
          description="The user object, and `mfa`: whether an authenticator app is set up "
                      "and how many recovery codes are left.")
def me() -> Me:
    user = g.open_user
    return me_object(user, user.mfa)


@bp.get("/isAuthenticated")
@tokens.require_auth(allow_legacy_header=True)
@endpoint(summary="Check a token, including revocation", tag="tokens",
          response=IsAuthenticated, security=(BEARER, ACCESS_TOKEN_HEADER),
          description="For services that must see a logout at once: one primary-key lookup. "
                      "The token may also come in `x-access-token`, as the older Node "
                      "AuthService took it.")
def is_authenticated() -> IsAuthenticated:
    claims = g.claims
    return IsAuthenticated(user_id=claims.user_id, session_id=claims.session_id,
                           roles=claims.roles)


@bp.get("/isAdmin")
@tokens.require_auth
@endpoint(summary="Whether the token's user has the admin role", tag="tokens",
          response=IsAdmin, security=(BEARER,))
def is_admin() -> IsAdmin:
    return IsAdmin(is_admin="admin" in tokens.current_user().role_names)


@bp.post("/token/exchange")
@ratelimits.route(ratelimits.TOKEN_IP)
@committed
@endpoint(summary="Exchange the one-time hand-off code from redirect_to", tag="tokens",
          request=Exchange, response=TokenResponse,
          errors={401: [E.INVALID_GRANT, E.MFA_REQUIRED], 429: [E.RATE_LIMITED]})
def exchange(body: Exchange) -> TokenResponse:
    return token_response(handoff.exchange(body.code, body.code_verifier))
