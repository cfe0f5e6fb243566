"""POST /signup, POST /signin."""

from __future__ import annotations

from flask import Response

from authserver.api import bp
from authserver.api.endpoint import Operation, endpoint, render
from authserver.errors import ErrorCode as E
from authserver.flows import password
from authserver.schemas.requests import SignIn, SignUp
from authserver.schemas.responses import MailSent, TokenResponse, token_response
from authserver.transactions import committed

#: The answer of a sign-up under EMAIL_VERIFICATION_REQUIRED (documented on the operation).
SIGNUP_SENT = Operation(summary="Sign-up mailed", tag="auth", response=MailSent, status=202)


@bp.post("/signup")
@committed
@endpoint(summary="Create an account with e-mail and password", tag="auth",
          request=SignUp, response=TokenResponse, status=201,
          description="Mails the address a verification link and code after the account was "
                      "made. With EMAIL_VERIFICATION_REQUIRED it answers `202 {\"sent\": true}` "
                      "instead, with no tokens, for new and already registered addresses "
                      "alike (never 409); the mailed link then signs in.",
          errors={403: [E.FORBIDDEN], 409: [E.EMAIL_TAKEN],
                  422: [E.INVALID_EMAIL, E.WEAK_PASSWORD, E.BREACHED_PASSWORD],
                  429: [E.RATE_LIMITED], 503: [E.SERVICE_UNAVAILABLE]})
def signup(body: SignUp) -> TokenResponse | Response:
    issued = password.sign_up(body.email, body.password, body.name)
    if issued is None:
        return render(SIGNUP_SENT, {"sent": True})
    return token_response(issued)


@bp.post("/signin")
@committed
@endpoint(summary="Sign in with e-mail and password", tag="auth",
          request=SignIn, response=TokenResponse,
          errors={401: [E.INVALID_CREDENTIALS, E.MFA_REQUIRED],
                  403: [E.ACCOUNT_DISABLED, E.PASSWORD_SIGNIN_LOCKED, E.EMAIL_NOT_VERIFIED],
                  429: [E.RATE_LIMITED]})
def signin(body: SignIn) -> TokenResponse:
    return token_response(password.sign_in(body.email, body.password))
