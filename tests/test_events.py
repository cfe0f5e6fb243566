"""events.py: every sink hears every event, in order, in the caller's app."""

from __future__ import annotations

from authserver import events
from authserver.events import Event, EventType, Method, Outcome


def test_every_sink_hears_each_event_in_registration_order(app):
    heard: list[tuple[str, Event]] = []
    events.listen(app, lambda event: heard.append(("first", event)))
    events.listen(app, lambda event: heard.append(("second", event)))
    event = Event(EventType.SIGNIN_FAILED, method=Method.PASSWORD, outcome=Outcome.WRONG_SECRET)
    with app.app_context():
        events.emit(event)
    assert [name for name, _ in heard][-2:] == ["first", "second"]
    assert all(got is event for _, got in heard[-2:])


def test_outside_an_app_nobody_hears():
    events.emit(Event(EventType.KEY_ROTATED))  # no app context: nothing to call, no error
