"""One model per response body.

Field order is the order of the members on the wire. Models are strict: a flow that starts
returning a number as a string fails loudly in the tests instead of changing the contract.
`token_response()` and `user_object()` are the only ways flow results become responses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, WithJsonSchema

if TYPE_CHECKING:
    from authserver.models import User as UserRow
    from authserver.session_checks import OpenUser
    from authserver.tokens import IssuedTokens


class ResponseBody(BaseModel):
    # Members a flow returns beyond the schema (e.g. the E.164 phone of an OTP request) are
    # dropped: only what is documented goes out.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class User(ResponseBody):
    """The user object: never a password hash or any other secret."""

    id: str
    email: str | None
    phone: str | None = Field(description="E.164")
    name: str | None
    email_verified: bool
    phone_verified: bool
    disabled: bool
    roles: list[str]
    # Kept as the string the model renders (ISO 8601, UTC, "Z"): re-rendering a datetime here
    # could change its bytes.
    created_at: Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class MfaStatus(ResponseBody):
    totp: bool = Field(description="Whether an authenticator app is set up (confirmed).")
    recovery_codes_left: int = Field(description="Unused recovery codes.")


class Me(User):
    """The user object of `/me`, with the state of the second factor (never a secret)."""

    mfa: MfaStatus


class TotpEnrolment(ResponseBody):
    """Shown once: copy the secret into the authenticator app, or scan the QR code."""

    secret: str = Field(description="Base32, 160 bits.")
    otpauth_uri: str = Field(description="`otpauth://totp/<APP_NAME>:<e-mail or phone>?...`")
    qr_svg: str = Field(description="The otpauth URI as a QR code, an SVG document.")


class RecoveryCodes(ResponseBody):
    """Shown once; each works once instead of the app's code."""

    recovery_codes: list[str]


class TokenResponse(ResponseBody):
    """Every successful sign-in, whatever the method."""

    access_token: str = Field(description="A JWT; verify it with /.well-known/jwks.json.")
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds the access token lives.")
    refresh_token: str = Field(description="Opaque; rotates on every use.")
    user: User


class OtpSent(ResponseBody):
    sent: bool
    expires_in: int = Field(description="Seconds the code lives.")
    resend_after: int = Field(description="Seconds before another code may be asked for.")


class ResetSent(ResponseBody):
    """The same answer for every address: with an account, without one, disabled."""

    sent: bool


class LinkSent(ResponseBody):
    """The same answer whether or not the address has an account."""

    sent: bool
    expires_in: int = Field(description="Seconds the link and code live.")


class MailSent(ResponseBody):
    """A mail went out (e-mail verification, e-mail change)."""

    sent: bool


class EmailVerified(RootModel[TokenResponse | User]):
    """The account with its proven address; a token response instead when the proof was a
    new sign-up's verification under EMAIL_VERIFICATION_REQUIRED (it signs in)."""


class IsAuthenticated(ResponseBody):
    user_id: str
    session_id: str
    roles: list[str]


class IsAdmin(ResponseBody):
    is_admin: bool


class UserList(ResponseBody):
    users: list[User]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last one.")


class SessionInfo(ResponseBody):
    """One open session of the account (GET /me/sessions)."""

    id: str
    created_at: Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
    last_used_at: Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
    user_agent: str | None
    device: str = Field(description='The user agent for people: "Chrome on Linux".')
    ip: str | None
    amr: list[str] = Field(description="How it signed in: pwd, sms, email.")
    client: str = Field(description="`api` or `web`.")
    current: bool = Field(description="The session of the token that asked.")


class SessionList(ResponseBody):
    sessions: list[SessionInfo]


_JWK_MEMBERS = ("kty", "kid", "alg", "use")


def _jwk_members(jwk: dict[str, str]) -> dict[str, str]:
    missing = [name for name in _JWK_MEMBERS if name not in jwk]
    if missing:
        raise ValueError(f"a JWK needs {', '.join(missing)}")
    return jwk


# A plain mapping, not a model, so each key's members keep their order (which depends on the
# key type: EC has crv/x/y, OKP crv/x, RSA n/e).
Jwk = Annotated[
    dict[str, str],
    AfterValidator(_jwk_members),
    WithJsonSchema({"type": "object", "required": list(_JWK_MEMBERS),
                    "additionalProperties": {"type": "string"},
                    "description": "A public key (RFC 7517); never private members."}),
]


class Jwks(ResponseBody):
    keys: list[Jwk]


class Health(ResponseBody):
    status: Literal["ok"]


class Ready(ResponseBody):
    #: "degraded": serving, with a dependency down that sign-in does not need (see `degraded`).
    status: Literal["ready", "degraded"]
    degraded: list[Literal["rate_limit_store"]] = Field(
        default_factory=list,
        description="dependencies that are down while the server still serves: "
                    "`rate_limit_store` (Redis; limits are counted per process meanwhile)")


_DATE_TIME = WithJsonSchema({"type": "string", "format": "date-time"})


class AuditEvent(ResponseBody):
    """One row of the audit trail (GET /admin/audit): never a secret, code, token or
    password."""

    id: int
    created_at: Annotated[str, _DATE_TIME]
    type: str = Field(description="See \"Audit trail\" in the contract for the types.")
    user_id: str | None = Field(description="Whom it is about; null for an unknown address "
                                            "or phone (never named).")
    actor_id: str | None = Field(description="The administrator who did it, if not the user.")
    ip: str | None
    user_agent: str | None
    method: str | None = Field(description="How a sign-in was proved: password, sms, "
                                           "email_link, email_code, totp, recovery_code, "
                                           "password_reset, handoff, refresh.")
    outcome: str | None
    detail: dict[str, Any]


class AuditPage(ResponseBody):
    events: list[AuditEvent] = Field(description="Newest first.")
    next: int | None = Field(description="`before` for the next page; null on the last.")


class ActivityItem(ResponseBody):
    """One of the account's own recent events (GET /me/activity)."""

    id: int
    created_at: Annotated[str, _DATE_TIME]
    type: str
    method: str | None
    outcome: str | None
    ip: str | None
    user_agent: str | None
    label: str = Field(description='For people: "Signed in (text message)".')


class ActivityList(ResponseBody):
    events: list[ActivityItem] = Field(description="The last 20, newest first.")


class OpenApiDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""


def token_response(issued: IssuedTokens) -> TokenResponse:
    """THE way a sign-in's result becomes the token response (flows, refresh, exchange)."""
    return TokenResponse.model_validate(issued.response())


def user_object(user: UserRow | OpenUser) -> User:
    """THE way a user row becomes the contract's user object."""
    return User.model_validate(user.to_dict())


def me_object(user: UserRow | OpenUser, mfa_status: dict[str, Any]) -> Me:
    """`GET /me`'s body (also the `data` of the user webhooks): the user object and `mfa`."""
    return Me.model_validate({**user_object(user).model_dump(), "mfa": mfa_status})
