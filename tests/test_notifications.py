"""The inbox: notify(), unread counts, mark as read in place, the reader's language."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models import Notification, db, notify


def test_notify_writes_an_inbox_row_and_dedupes(factories):
    member = factories.user()
    first = notify(member, "welcome", {"nickname": "小王"}, link="/communities", dedupe_key="welcome")
    again = notify(member, "welcome", {"nickname": "小王"}, dedupe_key="welcome")
    db.session.commit()
    assert again.id == first.id
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1
    notify(member, "welcome", {"nickname": "小王"})  # no key: always written
    db.session.commit()
    assert Notification.unread_count(member) == 2


def test_notify_flushes_but_does_not_commit(factories):
    member = factories.user()
    notify(member, "welcome", {"nickname": "x"})
    db.session.rollback()
    assert Notification.unread_count(member) == 0


def test_unknown_kind_is_a_programming_error(factories):
    with pytest.raises(ValueError):
        notify(factories.user(), "no-such-kind")


def test_inbox_shows_messages_in_the_readers_language(app, factories, login_as):
    member = factories.user()
    notify(member, "role_granted", {"role": {"msgid": "Moderator"}, "scope": " · 她车社"})
    db.session.commit()
    client = login_as(member)
    assert "你已成为版主 · 她车社" in client.get("/me/notifications").get_data(as_text=True)
    client.set_cookie("lang", "en")
    member.locale = "en"
    db.session.commit()
    assert "You are now Moderator · 她车社" in client.get("/me/notifications").get_data(as_text=True)


def test_unread_count_in_tab_bar_and_mark_read_in_place(factories, login_as):
    member = factories.user()
    a = notify(member, "welcome", {"nickname": "小王"})
    notify(member, "password_changed")
    db.session.commit()
    client = login_as(member)
    page = client.get("/").get_data(as_text=True)
    assert 'data-unread>2<' in page
    response = client.post(f"/me/notifications/{a.id}/read", headers={"HX-Request": "true"})
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert fragment.lstrip().startswith(f'<li class="notification " id="notification-{a.id}"')
    assert response.headers["HX-Trigger"] == "notifications-changed"
    assert 'data-unread>1<' in client.get("/me/unread-badge").get_data(as_text=True)
    client.post("/me/notifications/read-all", headers={"HX-Request": "true"})
    assert client.get("/me/unread-badge").get_data(as_text=True).strip() == ""


def test_cannot_mark_someone_elses_notification(factories, login_as):
    owner, other = factories.user(), factories.user()
    item = notify(owner, "welcome", {"nickname": "x"})
    db.session.commit()
    assert login_as(other).post(f"/me/notifications/{item.id}/read").status_code == 404
    assert Notification.unread_count(owner) == 1


def test_inbox_pages_with_a_cursor(factories, login_as):
    member = factories.user()
    for i in range(25):
        notify(member, "welcome", {"nickname": f"n{i}"})
    db.session.commit()
    client = login_as(member)
    first = client.get("/me/notifications").get_data(as_text=True)
    assert first.count('class="notification unread"') == 20
    assert 'hx-trigger="revealed"' in first
    oldest_shown = min(n.id for n in Notification.page_for(member))
    more = client.get(f"/me/notifications?before={oldest_shown}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert more.count('class="notification unread"') == 5 and "<html" not in more
