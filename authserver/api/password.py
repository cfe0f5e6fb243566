"""POST /signup, POST /signin."""

from __future__ import annotations

from authserver.api import bp
from authserver.api.endpoint import endpoint
from authserver.errors import ErrorCode as E
from authserver.flows import password
from authserver.schemas.requests import SignIn, SignUp
from authserver.schemas.responses import TokenResponse, token_response
from authserver.transactions import committed


@bp.post("/signup")
@committed
@endpoint(summary="Create an account with e-mail and password", tag="auth",
          request=SignUp, response=TokenResponse, status=201,
          errors={403: [E.FORBIDDEN], 409: [E.EMAIL_TAKEN],
                  422: [E.INVALID_EMAIL, E.WEAK_PASSWORD, E.BREACHED_PASSWORD],
                  429: [E.RATE_LIMITED], 503: [E.SERVICE_UNAVAILABLE]})
def signup(body: SignUp) -> TokenResponse:
    return token_response(password.sign_up(body.email, body.password, body.name))


@bp.post("/signin")
@committed
@endpoint(summary="Sign in with e-mail and password", tag="auth",
          request=SignIn, response=TokenResponse,
          errors={401: [E.INVALID_CREDENTIALS, E.MFA_REQUIRED],
                  403: [E.ACCOUNT_DISABLED, E.PASSWORD_SIGNIN_LOCKED],
                  429: [E.RATE_LIMITED]})
def signin(body: SignIn) -> TokenResponse:
    return token_response(password.sign_in(body.email, body.password))
