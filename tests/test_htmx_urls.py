"""Every URL an htmx attribute requests is also a page: a reload, an opened link or a
crawler sends it without `HX-Request`, and must get the full page, never a 500."""
from __future__ import annotations

from collections import deque
from datetime import timedelta
from urllib.parse import urlsplit

from models import db, notify
from models.nonces import new_nonce
from models.loyalty import award
from models.stories import StoryInput, save_story
from models.types import utcnow
from tests.html import Tags

# Enough of everything that each list has a "more" link: feeds show 10 stories, search and
# the events list 20, the points ledger and the inbox 20 rows.
STORIES, EVENTS, POSTINGS, NOTIFICATIONS = 22, 21, 25, 25


def hx_gets(html: str) -> list[str]:
    return [attrs["hx-get"] for _tag, attrs in Tags(html).tags if attrs.get("hx-get")]


def test_every_hx_get_url_answers_a_full_page_without_htmx(factories, communities, login_as):
    ev = communities["ev"]
    member = factories.user(login="13900004444", nickname="滚动老王", verified=True)
    start = utcnow() - timedelta(days=20)
    for i in range(STORIES):
        story = save_story(member, StoryInput(ev, f"电池日记 {i}", "冬天电池续航掉了两成，记录一下充电习惯。", []),
                           publish=True, nonce=new_nonce())
        story.published_at = start + timedelta(hours=i)
    for i in range(POSTINGS):
        award(member, "comment", key=f"walk-comment-{i}", now=start + timedelta(days=i % 15, minutes=i))
    for i in range(NOTIFICATIONS):
        notify(member, "welcome", {"nickname": f"n{i}"})
    db.session.commit()
    organizer = factories.user(role="organizer", community=ev)
    for i in range(EVENTS):
        factories.event(community=ev, organizer=organizer, starts_at=utcnow() + timedelta(days=7, hours=i))

    client = login_as(member)
    pages = ["/", "/?sort=hot", f"/c/{ev.slug}", f"/c/{ev.slug}?sort=hot", f"/stories/by/{member.id}",
             "/stories/search?q=电池", "/events", "/me/points", "/me/notifications"]
    queue, seen, requested = deque(pages), set(pages), set()
    while queue:
        url = queue.popleft()
        response = client.get(url)  # no HX-Request: what a reload or an opened link sends
        body = response.get_data(as_text=True)
        assert response.status_code == 200, f"GET {url} answered {response.status_code}"
        assert "<html" in body, f"GET {url} without HX-Request answered a fragment, not a page"
        for target in hx_gets(body):
            requested.add(urlsplit(target).path)
            if target not in seen and len(seen) < 60:  # follow "more" links of "more" pages too
                seen.add(target)
                queue.append(target)

    # The walk reached every kind of infinite scroll and filter, so none goes unchecked.
    assert requested >= {"/", f"/c/{ev.slug}", f"/stories/by/{member.id}", "/stories/search", "/events",
                         "/me/points", "/me/notifications"}, requested
    assert any(u.startswith("/me/points?before=") for u in seen)
