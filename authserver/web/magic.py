"""/auth/magic: the page a mailed link opens, and the button that signs in with it.

The GET only shows a "Sign in" button and changes nothing, so a mail scanner that fetches
every link (Outlook Safe Links, corporate gateways) can't burn it. The CSRF-protected POST
consumes the link once, opens the web session and goes on to `redirect_to` (with a one-time
hand-off code) or /account.
"""

from __future__ import annotations

from flask import make_response, render_template, request
from werkzeug.wrappers import Response

from authserver import ratelimits, tokens
from authserver.errors import Problem
from authserver.flows import magic_link
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.forms import ConfirmForm, EmailLinkForm

# The link no longer works (expired, used, revoked) or never did (forged, mangled).
INVALID_STATUS = 410



def _page(html: str, status: int = 200) -> Response:
    response = make_response(html, status)
    # The token is in this page's URL: never hand it to another site in a Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _invalid() -> Response:
    return _page(render_template("magic_invalid.html", form=EmailLinkForm(formdata=None)),
                 INVALID_STATUS)


@bp.get("/auth/magic")
def magic_confirm() -> Response:
    token = request.args.get("token", "")
    preview = magic_link.peek_link(token)
    if preview is None:
        return _invalid()
    form = ConfirmForm(formdata=None, token=token)
    return _page(render_template("magic.html", form=form, email=preview.email,
                                 expires_at=preview.expires_at))


@bp.post("/auth/magic")
@ratelimits.route(ratelimits.LINK_VERIFY_IP)
@committed
def magic_sign_in() -> Response:
    # CSRFProtect has already refused a post without a valid token from our own page.
    form = ConfirmForm()
    try:
        signed_in = magic_link.consume_link(form.token.data or "")
    except Problem as problem:
        if problem.code != "invalid_link":
            raise
        return _invalid()
    issued = tokens.issue(signed_in.user, signed_in.amr, client="web")
    return web_session.after_sign_in(issued, redirect_to=signed_in.redirect_to,
                                     code_challenge=signed_in.code_challenge)
