"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response) -> dict:  # type: ignore[no-untyped-def]
    """The problem body of an error response, after checking its media type."""
    assert response.mimetype == "application/problem+json", response.data[:200]
    body = response.get_json()
    assert body["status"] == response.status_code
    return body
