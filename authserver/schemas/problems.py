"""The problem details (RFC 9457) every error answers with."""

from __future__ import annotations

from pydantic import BaseModel, Field

from authserver.errors import ErrorCode


class FieldError(BaseModel):
    field: str = Field(description="The request body member at fault.")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, `Content-Type: application/problem+json`."""

    type: str = Field(description="`urn:authserver:problem:<code>`")
    title: str
    status: int
    detail: str = Field(description="Human text; may change, unlike `code`.")
    code: ErrorCode
    errors: list[FieldError] = Field(
        default_factory=list,
        description="Only on a body that failed validation: what is wrong with which field.")
    mfa_token: str | None = Field(
        None, description="Only with `mfa_required`: pass it to `POST /api/v1/mfa/verify` "
                          "with the second factor (single use, MFA_TOKEN_TTL seconds).")
    methods: list[str] | None = Field(
        None, description="Only with `mfa_required`: the second factors the account can use "
                          "(`totp`, `recovery_code`).")
