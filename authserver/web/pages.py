"""What every page handler shares: rendering a form with a flow's Problem next to its field."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_wtf import FlaskForm

from authserver.errors import Problem, page_detail

#: What a page handler returns: body, status, headers.
Page = tuple[str, int, dict[str, str]]


def render_form(template: str, form: FlaskForm, problem: Problem | None = None,
                **context: Any) -> Page:
    """Render `template`; with a Problem, show its detail (the API's wording) in place.

    The Problem's headers (Retry-After on a 429) go on the page's response too.
    """
    status = 200
    headers = dict(problem.headers) if problem is not None else {}
    if problem is not None:
        status = problem.status
        field = getattr(form, problem.field, None) if problem.field else None
        detail = page_detail(problem)  # a 429 says how long to wait
        if field is not None and field.name != "csrf_token":
            field.errors = [*field.errors, detail]
        else:
            context["page_error"] = detail
    elif form.errors:
        status = 400
    return render_template(template, form=form, **context), status, headers


def form_problem(form: FlaskForm) -> Problem | None:
    """A Problem for a form that failed its own checks (missing field, expired CSRF token)."""
    if "csrf_token" in form.errors:
        return Problem(400, "invalid_request",
                       "The form expired. Reload the page and try again.")
    return None
