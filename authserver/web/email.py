"""/login/email: e-mail me a sign-in link (and code); "Check your inbox" takes the code.

The asking browser gets a binding cookie (random, HttpOnly, SameSite=Lax, Secure on https,
as long as a link lives; only its hash is stored with the link): the link then signs in
only in this browser, and anywhere else asks for the mail's code (codes.LinkUse).
"""

from __future__ import annotations

from flask import make_response, render_template, request, session
from werkzeug.wrappers import Response

from authserver import clock, codes
from authserver.config import settings
from authserver.errors import Problem
from authserver.flows import magic_link
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.forms import EmailCodeForm, EmailLinkForm, required
from authserver.web.pages import Page, form_problem, render_form

BINDING_COOKIE = "authserver_link_binding"
#: The address of this browser's last sign-in mail, for "Check your inbox"'s code box; when
#: it was sent (for the resend countdown); the wrong codes typed since (for tries left).
EMAIL_KEY = "email_code_to"
EMAIL_SENT_KEY = "email_code_sent"
EMAIL_WRONG_KEY = "email_code_wrong"


def set_link_binding(response: Response, binding: str, max_age: int) -> None:
    """Give this browser its binding cookie (HttpOnly, SameSite=Lax, Secure on https)."""
    response.set_cookie(BINDING_COOKIE, binding, max_age=max_age, httponly=True,
                        samesite="Lax", path="/",
                        secure=settings().public_base_url.startswith("https://"))


def link_binding() -> str | None:
    """This browser's binding cookie, if it has one."""
    value = request.cookies.get(BINDING_COOKIE)
    return value if value and len(value) <= 64 else None


@bp.route("/login/email", methods=["GET", "POST"])
@committed
def email_request() -> Response | Page | str:
    form = EmailLinkForm()
    if request.method == "GET":
        return render_form("email_request.html", form)
    if not form.validate_on_submit():
        return render_form("email_request.html", form, form_problem(form))
    pending = session.get(web_session.HANDOFF_KEY) or {}
    binding = link_binding() or codes.new_binding()
    try:
        magic_link.request_link(required(form.email), redirect_to=pending.get("redirect_to"),
                                code_challenge=pending.get("code_challenge"),
                                state=pending.get("state"), binding=binding)
    except Problem as problem:
        return render_form("email_request.html", form, problem)
    session[EMAIL_KEY] = required(form.email).strip()
    session[EMAIL_SENT_KEY] = clock.timestamp()
    session[EMAIL_WRONG_KEY] = 0
    response = make_response(render_template(
        "email_sent.html", form=EmailCodeForm(formdata=None), **inbox_context()))
    set_link_binding(response, binding, settings().magic_link_ttl)
    return response


def inbox_context() -> dict[str, object]:
    """What "Check your inbox" shows besides its code box and an error: the address, the
    tries left for the code and the seconds until another mail may be asked for."""
    config = settings()
    sent_at = session.get(EMAIL_SENT_KEY)
    waited = clock.timestamp() - sent_at if isinstance(sent_at, int) else config.magic_link_ttl
    wrong = session.get(EMAIL_WRONG_KEY)
    return {"email": session.get(EMAIL_KEY),
            "resend_form": EmailLinkForm(formdata=None, email=session.get(EMAIL_KEY)),
            "tries_left": max(0, config.magic_link_max_attempts
                              - (wrong if isinstance(wrong, int) else 0)),
            "resend_in": max(0, config.magic_link_resend_cooldown - waited),
            "expires_minutes": max(1, config.magic_link_ttl // 60)}
