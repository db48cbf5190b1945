"""Photos under /media follow what they belong to: a published story's photos (and a published
event's cover) are public and cached for a year; a draft's, a story's in review or hidden go only
to those who may see the story, never cached; a deleted story's files are gone; hiding a story
moves its photos to new names, and the old ones answer 404."""
from __future__ import annotations

import io
import secrets
from contextlib import contextmanager

import pytest
from PIL import Image
from sqlalchemy import select

from models import Story, StoryPhoto, db
from models.stories import delete_story
from models.types import utcnow
from services.storage import get_storage

PUBLIC = "public, max-age=31536000, immutable"
PRIVATE = "private, no-store"
BODY = "提车三个月，电池健康度还是 98%，冬天续航掉了两成。"


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (30, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def stored(app, folder: str, count: int = 2) -> list[str]:
    """COUNT files written under new random keys in FOLDER."""
    keys = [f"photos/{folder}/{secrets.token_urlsafe(16)}.jpg" for _ in range(count)]
    for key in keys:
        get_storage(app).write(key, jpeg())
    return keys


def on_disk(app, key: str) -> bool:
    return get_storage(app).exists(key)


@pytest.fixture
def author(factories, communities):
    return factories.user(login="13900001111", nickname="电车老王", verified=True)


@pytest.fixture
def people(app, factories, communities, author):
    """A client for each kind of viewer of a story in the ev community."""
    return {
        "visitor": app.test_client(),
        "member": app.test_client(user=factories.user(login="13900002222", verified=True)),
        "author": app.test_client(user=author),
        "moderator": app.test_client(user=factories.user(role="moderator", community=communities["ev"])),
        "other_moderator": app.test_client(user=factories.user(role="moderator", community=communities["women"])),
        "admin": app.test_client(user=factories.user(role="admin")),
    }


@pytest.fixture
def make_story(app, author, communities):
    def make(status: str, photos: int = 2) -> Story:
        now = utcnow()
        story = Story(author_id=author.id, community_id=communities["ev"].id, title="冬天的续航", body=BODY,
                      body_html=f"<p>{BODY}</p>", tags=[], status=status, created_at=now, updated_at=now,
                      published_at=None if status == "draft" else now)
        for i in range(photos):
            full, thumb = stored(app, str(author.id))
            story.photos.append(StoryPhoto(position=i, full_key=full, thumb_key=thumb, width=8, height=8))
        db.session.add(story)
        db.session.commit()
        return story

    return make


@contextmanager
def statements():
    """The SQL statements run inside the block."""
    from sqlalchemy import event

    seen: list[str] = []

    def before(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def keys_of(story) -> list[str]:
    db.session.expire_all()
    photos = db.session.scalars(select(StoryPhoto).where(StoryPhoto.story_id == story.id).order_by(StoryPhoto.position))
    return [key for p in photos for key in (p.full_key, p.thumb_key)]


def assert_served(client, key, cache_control, who=""):
    response = client.get(f"/media/{key}")
    assert response.status_code == 200, f"{who} should get {key}"
    assert response.mimetype == "image/jpeg" and response.get_data() == jpeg()
    assert response.headers["Cache-Control"] == cache_control, who


def assert_not_served(client, key, who=""):
    response = client.get(f"/media/{key}")
    assert response.status_code == 404, f"{who} should not get {key}"
    assert "immutable" not in response.headers.get("Cache-Control", "")


# Who sees a story's photos, by the story's status (the same rule as the story page).
SEEN_BY = {
    "draft": {"author"},
    "review": {"author", "moderator", "admin"},
    "hidden": {"author", "moderator", "admin"},
}


@pytest.mark.parametrize("status", sorted(SEEN_BY))
def test_only_a_published_storys_photos_are_public(people, make_story, status):
    story = make_story(status)
    for who, client in people.items():
        for key in keys_of(story):
            if who in SEEN_BY[status]:
                assert_served(client, key, PRIVATE, who)
            else:
                assert_not_served(client, key, who)
        page = client.get(f"/stories/{story.id}")
        assert page.status_code == (200 if who in SEEN_BY[status] else 404), f"{who}: same rule as the story page"

    story.status, story.published_at = "published", story.published_at or utcnow()
    db.session.commit()
    for who, client in people.items():
        for key in keys_of(story):
            assert_served(client, key, PUBLIC, who)
    key = keys_of(story)[0]
    with statements() as seen:
        assert people["visitor"].get(f"/media/{key}").status_code == 200
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1 and "story_photos" in selects[0], "one indexed query finds what a photo belongs to"


def test_deleting_a_story_deletes_its_files_after_the_commit(app, people, make_story):
    story = make_story("published")
    keys = keys_of(story)

    delete_story(story)
    db.session.rollback()  # a delete that does not commit loses no file
    assert all(on_disk(app, key) for key in keys)
    assert_served(people["visitor"], keys[0], PUBLIC)

    assert people["author"].post(f"/stories/{story.id}/delete").status_code == 302
    assert not any(on_disk(app, key) for key in keys), "the files are gone from the disk"
    for who, client in people.items():
        for key in keys:
            assert_not_served(client, key, who)
    assert db.session.get(Story, story.id).status == "deleted"


def test_deleting_a_draft_removes_it_and_its_files(app, people, make_story):
    story = make_story("draft")
    story_id, keys = story.id, keys_of(story)
    response = people["author"].post(f"/stories/{story_id}/delete")
    assert response.status_code == 302 and response.headers["Location"] == "/c/ev"
    db.session.expunge_all()
    assert db.session.get(Story, story_id) is None
    assert not any(on_disk(app, key) for key in keys)
    assert_not_served(people["author"], keys[0])


@pytest.mark.parametrize("how", ["hide", "confirm_report"])
def test_hiding_moves_the_photos_to_new_names(app, people, make_story, how):
    story = make_story("published")
    old = keys_of(story)
    for key in old:
        assert_served(people["visitor"], key, PUBLIC)  # cached by browsers and proxies for a year

    if how == "hide":
        response = people["moderator"].post(f"/moderation/stories/{story.id}/hide", data={"note": "广告"})
    else:
        people["member"].post("/moderation/report", data={"story_id": story.id, "reason": "spam"})
        from models import Report

        report = db.session.scalar(select(Report).where(Report.story_id == story.id))
        response = people["moderator"].post(f"/moderation/reports/{report.id}/confirm", data={"note": "广告"})
    assert response.status_code == 302
    assert db.session.get(Story, story.id).status == "hidden"

    new = keys_of(story)
    assert len(new) == len(old) and not set(new) & set(old), "every photo has a new name"
    assert not any(on_disk(app, key) for key in old) and all(on_disk(app, key) for key in new)
    for who, client in people.items():
        for key in old:
            assert_not_served(client, key, who)
        for key in new:
            if who in SEEN_BY["hidden"]:
                assert_served(client, key, PRIVATE, who)
            else:
                assert_not_served(client, key, who)
    page = people["author"].get(f"/stories/{story.id}").get_data(as_text=True)
    assert f"/media/{new[0]}" in page and f"/media/{old[0]}" not in page

    # Restored, the photos are public again under their new names; the old ones stay gone.
    assert people["moderator"].post(f"/moderation/stories/{story.id}/restore").status_code == 302
    for key in keys_of(story):
        assert_served(people["visitor"], key, PUBLIC)
    for key in old:
        assert_not_served(people["visitor"], key)


def test_a_file_that_belongs_to_nothing_is_not_served(app, people):
    [key] = stored(app, "13", count=1)
    assert on_disk(app, key)
    for who, client in people.items():
        assert_not_served(client, key, who)


def test_event_covers_are_public_once_published_and_a_drafts_only_for_its_organizers(app, factories, communities,
                                                                                       people):
    organizer = factories.user(role="organizer", community=communities["ev"])
    published_cover = stored(app, "events")
    event = factories.event(community=communities["ev"], organizer=organizer,
                            cover_key=published_cover[0], cover_thumb_key=published_cover[1])
    draft_cover = stored(app, "events")
    draft = factories.event(community=communities["ev"], organizer=organizer, publish=False,
                            cover_key=draft_cover[0], cover_thumb_key=draft_cover[1])
    assert (event.status, draft.status) == ("published", "draft")
    viewers = {**people, "organizer": app.test_client(user=organizer)}
    for who, client in viewers.items():
        for key in published_cover:
            assert_served(client, key, PUBLIC, who)
        for key in draft_cover:
            if who in ("organizer", "admin"):
                assert_served(client, key, PRIVATE, who)
            else:
                assert_not_served(client, key, who)
