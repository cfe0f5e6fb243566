"""The HTML pages: CSRF-protected forms in front of the very same flows the API calls."""

from __future__ import annotations

from flask import Blueprint, request

from authserver import passwords
from authserver.errors import Problem

bp = Blueprint("web", __name__)

# Every page that asks for a new password shows the rule (`new_password_field` and
# `password_rule` in templates/_macros.html); a global, so imported macros see it too.
bp.add_app_template_global(passwords.rule, "password_policy")


@bp.before_request
def _refuse_uploads() -> None:
    # No form here takes a file; Flask-WTF would hand a FileStorage to the text fields.
    if request.method == "POST" and request.files:
        raise Problem(400, "invalid_request", "These forms take no files.")

# The page modules register their routes on `bp` when imported.
# (mfa: the code step of a sign-in and /account/security; its after_request hook sends a
# sign-in any page stopped for its second factor on to /login/mfa.)
from authserver.web import (  # noqa: E402, F401
    account,
    account_changes,
    email,
    login,
    magic,
    mfa,
    reset,
    sms,
    verify,
)
