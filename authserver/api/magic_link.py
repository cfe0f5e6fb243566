"""POST /magic-link/request, POST /magic-link/verify."""

from __future__ import annotations

from typing import Any

from authserver import ratelimits
from authserver.api import bp
from authserver.api.endpoint import endpoint
from authserver.errors import ErrorCode as E
from authserver.errors import Problem
from authserver.flows import magic_link
from authserver.schemas.requests import LinkRequest, LinkVerify
from authserver.schemas.responses import LinkSent, TokenResponse, token_response
from authserver.transactions import committed


@bp.post("/magic-link/request")
@committed
@endpoint(summary="E-mail a sign-in link and code", tag="email",
          request=LinkRequest, response=LinkSent, status=202,
          errors={422: [E.INVALID_EMAIL, E.INVALID_REDIRECT, E.INVALID_REQUEST],
                  429: [E.RATE_LIMITED], 503: [E.SERVICE_UNAVAILABLE]})
def request_link(body: LinkRequest) -> dict[str, Any]:
    return magic_link.request_link(body.email, body.redirect_to, body.code_challenge,
                                   body.code_challenge_method, state=body.state)


@bp.post("/magic-link/verify")
@ratelimits.route(ratelimits.LINK_VERIFY_IP)
@committed
@endpoint(summary="Sign in with the link's token, or the e-mailed code", tag="email",
          request=LinkVerify, response=TokenResponse,
          errors={401: [E.INVALID_LINK, E.MFA_REQUIRED], 403: [E.ACCOUNT_DISABLED],
                  429: [E.OTP_ATTEMPTS_EXCEEDED, E.RATE_LIMITED]})
def verify(body: LinkVerify) -> TokenResponse:
    if body.token:
        return token_response(magic_link.verify_link(body.token, body.code_verifier))
    if body.email and body.code:
        return token_response(magic_link.verify_code(body.email, body.code))
    raise Problem(400, E.INVALID_REQUEST, "Send either {token} or {email, code}.")
