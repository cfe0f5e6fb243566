"""/login/email: e-mail me a sign-in link (and code)."""

from __future__ import annotations

from flask import render_template, request, session
from werkzeug.wrappers import Response

from authserver.errors import Problem
from authserver.flows import magic_link
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.forms import EmailLinkForm, required
from authserver.web.pages import Page, form_problem, render_form


@bp.route("/login/email", methods=["GET", "POST"])
@committed
def email_request() -> Response | Page | str:
    form = EmailLinkForm()
    if request.method == "GET":
        return render_form("email_request.html", form)
    if not form.validate_on_submit():
        return render_form("email_request.html", form, form_problem(form))
    pending = session.get(web_session.HANDOFF_KEY) or {}
    try:
        sent = magic_link.request_link(required(form.email),
                                       redirect_to=pending.get("redirect_to"),
                                       code_challenge=pending.get("code_challenge"))
    except Problem as problem:
        return render_form("email_request.html", form, problem)
    return render_template("email_sent.html", email=required(form.email).strip(),
                           expires_minutes=max(1, sent["expires_in"] // 60))
