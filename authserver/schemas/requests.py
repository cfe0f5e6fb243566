"""One model per request body.

Field order matters: a body with several bad fields is answered about the first one in this
order (required fields first), as the API always has.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from authserver.schemas.fields import RequiredText, Text


class RequestBody(BaseModel):
    # Unknown members are ignored, so clients may send more than a version of us knows.
    model_config = ConfigDict(extra="ignore", frozen=True)


class SignUp(RequestBody):
    email: RequiredText
    password: RequiredText = Field(description="At least 10 characters, not a common one.")
    name: Text | None = None


class SignIn(RequestBody):
    email: RequiredText
    password: RequiredText


class OtpRequest(RequestBody):
    phone: RequiredText = Field(description="Any common notation; normalised to E.164.")


class OtpVerify(RequestBody):
    phone: RequiredText
    code: RequiredText = Field(description="The 6-digit code from the text message.")


class LinkRequest(RequestBody):
    email: RequiredText
    redirect_to: Text | None = Field(
        None, description="Where the browser goes after signing in; must be on the allow-list.")
    code_challenge: Text | None = Field(
        None, description="PKCE challenge for the app hand-off (base64url SHA-256).")
    code_challenge_method: Text | None = Field(None, description="Only `S256`.")
    state: Text | None = Field(
        None, description="The app's opaque value (1-512 printable ASCII characters), given "
                          "back on `redirect_to` as `&state=…` next to the code.")


class LinkVerify(RequestBody):
    """Either `token` (from the link) or `email` and `code` (from the same e-mail)."""

    token: Text | None = None
    code_verifier: Text | None = Field(
        None, description="With `token`: the PKCE verifier, required when the link was asked "
                          "for with a code_challenge (and refused when it was not).")
    email: Text | None = None
    code: Text | None = None


class PasswordForgot(RequestBody):
    email: RequiredText
    redirect_to: Text | None = Field(
        None, description="Where the browser goes after the reset page signs in; must be on "
                          "the allow-list.")


class PasswordReset(RequestBody):
    """The new `password`, with either `token` (from the link) or `email` and `code`."""

    password: RequiredText = Field(description="The new password; the sign-up policy applies.")
    token: Text | None = None
    email: Text | None = None
    code: Text | None = None


class EmailVerify(RequestBody):
    """Either `token` (from the link) or `email` and `code` (from the same e-mail)."""

    token: Text | None = None
    email: Text | None = Field(None, description="The address the mail was sent to.")
    code: Text | None = None


class EmailChange(RequestBody):
    email: RequiredText = Field(description="The new address; a link and code go to it.")


class Refresh(RequestBody):
    refresh_token: RequiredText


class Exchange(RequestBody):
    code: RequiredText = Field(description="The one-time code put on `redirect_to`.")
    code_verifier: Text | None = Field(
        None, description="The PKCE verifier: required when the sign-in gave a "
                          "`code_challenge`, refused when it gave none.")


class PhoneChange(RequestBody):
    phone: RequiredText = Field(description="Any common notation; normalised to E.164.")


class PhoneChangeVerify(RequestBody):
    phone: RequiredText
    code: RequiredText = Field(description="The 6-digit code from the text message.")


class PasswordChange(RequestBody):
    password: RequiredText = Field(description="The new password; the sign-up policy applies.")
    current_password: Text | None = Field(
        None, description="Required when the account has a password.")


class Logout(RequestBody):
    scope: Text | None = Field(
        None, description="`local` (default): this session; `others`: every other session "
                          "of the account; `global`: all of them.")


class MfaCode(RequestBody):
    code: RequiredText = Field(description="The 6-digit code the authenticator app shows now.")


class MfaProof(RequestBody):
    """Either `code` (the app's current code) or `recovery_code`."""

    code: Text | None = Field(None, description="The 6-digit code the authenticator app shows.")
    recovery_code: Text | None = Field(None, description="One of the recovery codes (each "
                                                         "works once).")


class MfaVerify(RequestBody):
    """The `mfa_token` of the `401 mfa_required` answer, and `code` or `recovery_code`."""

    mfa_token: RequiredText = Field(description="From the `mfa_required` problem; single use, "
                                                "MFA_TOKEN_TTL seconds.")
    code: Text | None = Field(None, description="The 6-digit code the authenticator app shows.")
    recovery_code: Text | None = Field(None, description="One of the recovery codes (each "
                                                         "works once).")


class RoleGrant(RequestBody):
    role: RequiredText


class UserSearch(RequestBody):
    """Query parameters of GET /admin/users (always strings; nothing here can fail)."""

    email: str | None = Field(None, description="Find the user with this e-mail address.")
    phone: str | None = Field(None, description="Find the user with this phone number (any "
                                                "common notation; normalised to E.164).")
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")
    limit: str | None = Field(None, description="Users per page, 1 to 100 (default 50).")


class AuditQuery(RequestBody):
    """Query parameters of GET /admin/audit (strings; the view checks the numbers: 422)."""

    user_id: str | None = Field(None, description="Only this user's events.")
    type: str | None = Field(None, description="Only events of this type, e.g. "
                                               "`signin.failed`.")
    before: str | None = Field(None, description="Only events with a smaller id: the `next` "
                                                 "of the previous page.")
    limit: str | None = Field(None, description="Events per page, 1 to 200 (default 50).")
