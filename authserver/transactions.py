"""Where a unit of work commits: at the edge of a request or a CLI command.

Flows, accounts and the token module add and change rows and flush; the view or command
that called them commits once, visibly, with `@committed`. A `Problem` is an expected
outcome whose writes must stand (a wrong code counted, a replayed refresh token's session
revoked), so it commits too; any other exception rolls back.

The one-time-credential engine (codes.py) and the send cooldowns also commit inside a
request, on purpose: a code must be stored before it is sent, and an attempt must be counted
before the guess is compared, so that other connections see it at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from authserver.errors import Problem
from authserver.extensions import db

F = TypeVar("F", bound=Callable[..., Any])


def committed(view: F) -> F:
    """Decorator for views and commands: commit what the call did, or roll it back."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = view(*args, **kwargs)
        except Problem:
            db.session.commit()
            raise
        except BaseException:
            db.session.rollback()
            raise
        db.session.commit()
        return result

    return wrapper  # type: ignore[return-value]
