"""Writing a story with a photo, and scrolling a community feed, in a real phone browser."""
from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from sqlalchemy import func, select

from models import Story, StoryPhoto, db
from models.stories import FEED_SIZE
from tests.browser.test_shell import _fresh, log_in
from tests.test_stories import jpeg_with_gps, make_stories

pytestmark = pytest.mark.browser

TITLE = "冬天续航实测"
BODY = "提车三个月，电池健康度还是 98%，冬天续航掉了两成。"


def test_publish_a_story_with_a_photo_stripped_of_exif(page, factories, console_errors, tmp_path):
    ev_id = factories.communities()["ev"].id
    factories.user(login="13911112222", nickname="电车老王", verified=True)
    db.session.commit()
    photo = tmp_path / "road-trip.jpg"
    photo.write_bytes(jpeg_with_gps())

    log_in(page, "13911112222")
    page.goto("/stories/new?community=ev")
    assert page.locator("select[name=community]").input_value() == str(ev_id), "?community=ev preselects it"
    page.fill("input[name=title]", TITLE)
    page.fill("textarea[name=body]", BODY)
    page.set_input_files("input[name=photos]", str(photo))
    page.click("button[name=action][value=publish]")

    page.wait_for_url(re.compile(r"/stories/\d+$"))
    story_id = int(page.url.rsplit("/", 1)[1])
    assert TITLE in page.locator("main").inner_text()

    image = page.locator(".story-photos img").first
    image.scroll_into_view_if_needed()  # loading="lazy"
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert page.evaluate("img => img.naturalWidth", image.element_handle()) > 0

    served = page.request.get(image.get_attribute("src"))
    assert served.ok
    data = served.body()
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.format == "JPEG"
        assert not opened.getexif(), "no EXIF (GPS, maker) on the served photo"
    assert b"Exif\x00\x00" not in data

    _fresh()
    stories = db.session.scalars(select(Story)).all()
    assert [(s.id, s.status, s.title, s.community_id) for s in stories] == [(story_id, "published", TITLE, ev_id)]
    assert db.session.scalar(select(func.count()).select_from(StoryPhoto).where(StoryPhoto.story_id == story_id)) == 1
    assert not console_errors


def _card_count_at_least(page, n: int) -> None:
    page.wait_for_function("n => document.querySelectorAll('.story-card').length >= n", arg=n)


def test_feed_loads_more_stories_on_scroll_without_a_reload(page, factories, console_errors):
    communities = factories.communities()
    author = factories.user(login="13900001111", nickname="电车老王", verified=True)
    make_stories(author, communities["ev"], 25)

    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    page.goto("/c/ev")
    page.evaluate("window.__marker = 1")
    cards = page.locator(".story-card")
    assert cards.count() == FEED_SIZE

    page.locator(".load-more").scroll_into_view_if_needed()
    _card_count_at_least(page, 20)
    assert cards.count() == 2 * FEED_SIZE, "one page per reveal; the new sentinel sits below the fold"
    page.locator(".load-more").scroll_into_view_if_needed()
    _card_count_at_least(page, 25)
    page.wait_for_timeout(300)  # nothing further trickles in

    titles = cards.locator("h3").all_inner_texts()
    assert len(titles) == 25 and len(set(titles)) == 25, "no story skipped or repeated"
    assert titles[0] == "故事 24" and titles[-1] == "故事 00", "newest first"
    assert page.evaluate("window.__marker") == 1, "loaded with htmx, no full page load"
    assert page.locator(".load-more").count() == 0, "no sentinel after the last page"
    # make_stories gives each story a photo row without a stored file: those thumbnails (and
    # nothing else) 404, each logging a console error.
    assert missing and all("/photos/x/" in url for url in missing), missing
    assert [e for e in console_errors if "404" not in e] == []
    assert len(console_errors) == len(missing)
