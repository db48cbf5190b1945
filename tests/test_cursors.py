"""One cursor codec for the events listing, the story feeds and search: opaque, and an altered
cursor or one from another listing reads as the first page."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from models import cursors


def test_values_come_back_exactly(app):
    at = datetime(2026, 12, 5, 2, 30, 0, 123457, tzinfo=timezone.utc)
    with app.test_request_context():
        cursor = cursors.encode("stories-hot", at, 0.1 + 0.2, 42)
        assert cursors.decode("stories-hot", cursor, datetime, float, int) == (at, 0.1 + 0.2, 42)


def test_altered_foreign_or_garbled_cursors_read_as_none(app):
    with app.test_request_context():
        good = cursors.encode("events", datetime(2026, 1, 1, tzinfo=timezone.utc), 7)
        body, sig = good.split(".")
        forged = cursors.encode("events", datetime(2030, 1, 1, tzinfo=timezone.utc), 7).split(".")[0] + "." + sig
        for bad in (forged, body + "." + sig[::-1], "garbage", "1-2", "h_1_nan_3", ".", "a.b.c", good + "x" * 400,
                    None, ""):
            assert cursors.decode("events", bad, datetime, int) is None, bad
        assert cursors.decode("search", good, datetime, int) is None, "a cursor belongs to its listing"
        assert cursors.decode("events", cursors.encode("events", 1.5, 7), datetime, int) is None, "wrong types"
        assert cursors.decode("events", cursors.encode("events", True, 7), datetime, int) is None
        assert cursors.decode("events", good, datetime, int, int) is None, "wrong length"
        huge = cursors.encode("events", 10**30, 1)
        assert cursors.decode("events", huge, datetime, int) is None


def test_an_altered_events_cursor_shows_the_first_page(factories, client):
    from models.types import utcnow
    from tests.test_events_pages import _card_ids

    organizer = factories.user(role="organizer", community=factories.communities()["ev"])
    start = utcnow() + timedelta(days=3)
    events = [factories.event(organizer=organizer, title=f"聚会 {i:02d}", starts_at=start + timedelta(hours=i))
              for i in range(22)]
    first = client.get("/events").get_data(as_text=True)
    assert _card_ids(first) == [e.id for e in events[:20]]
    with client.application.test_request_context():
        real = cursors.encode("events", events[19].starts_at, events[19].id)
        other = cursors.encode("events", events[20].starts_at, events[20].id)
        forged = other.split(".")[0] + "." + real.split(".")[1]  # another position, this one's signature
    assert _card_ids(client.get(f"/events?cursor={forged}").get_data(as_text=True)) == [e.id for e in events[:20]]
