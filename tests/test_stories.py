"""Stories, first step: writing with photos, drafts, preview, Markdown safety, prohibited
words, editing and deleting, and the newest-first feeds with cursors."""
from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from models import EarningRule, ProhibitedWord, Story, StoryPhoto, db
from models.markup import render_markdown
from models.nonces import new_nonce
from models.loyalty import balance_of
from models.referrals import invite_code, record_invitation
from models.stories import FEED_SIZE, NewPhoto, StoryInput, save_story
from models.types import utcnow
from services.storage import get_storage

BODY = "提车三个月，电池健康度还是 98%，冬天续航掉了两成。"


@pytest.fixture
def author(factories, communities):
    return factories.user(login="13900001111", nickname="电车老王", verified=True)


def post(client, **overrides):
    data = {"community": overrides.pop("community_id", None), "title": "我的第一辆二手电车", "body": BODY,
            "tags": ["purchase"], "action": "publish", "nonce": new_nonce()}
    data.update(overrides)
    if data["community"] is None:
        data.pop("community")
    return client.post("/stories/new", data=data, content_type="multipart/form-data")


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (640, 480), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "Phone Maker"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (31.0, 14.0, 0.0), "E", (121.0, 28.0, 0.0)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_markdown_is_rendered_then_sanitized():
    html = render_markdown("# 标题\n**粗体** [链接](https://example.cn) [坏](javascript:alert(1))\n\n<script>alert(1)</script>"
                           "<img src=x onerror=alert(1)>")
    assert "<h3>标题</h3>" in html and "<strong>粗体</strong>" in html
    assert '<a href="https://example.cn" rel="nofollow ugc noopener">链接</a>' in html
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html


def test_publishing_shows_the_story_pays_the_reward_and_lists_it(login_as, author, communities):
    client = login_as(author)
    response = post(client, community_id=communities["ev"].id)
    assert response.status_code == 302
    story = db.session.scalar(select(Story))
    assert response.headers["Location"] == f"/stories/{story.id}"
    assert story.status == "published" and story.tags == ["purchase"]
    page = client.get(f"/stories/{story.id}").get_data(as_text=True)
    assert "我的第一辆二手电车" in page and "电池健康度" in page and "购车" in page
    assert balance_of(author) == EarningRule.get("story_posted").points
    assert "我的第一辆二手电车" in client.get("/c/ev").get_data(as_text=True)
    assert communities["ev"].has_member(author), "posting joins the community"


def test_a_first_story_pays_the_referral(login_as, factories, communities):
    inviter = factories.user(signup_device="a" * 32)
    invitee = factories.user(login="13900002222", verified=True, signup_device="b" * 32)
    record_invitation(invitee, invite_code(inviter))
    db.session.commit()
    post(login_as(invitee), community_id=communities["ev"].id)
    assert balance_of(inviter) == EarningRule.get("referral").points


def test_unverified_members_are_told_to_verify_first(login_as, factories, communities):
    client = login_as(factories.user())
    page = client.get("/stories/new")
    assert page.status_code == 403 and "/auth/phone" in page.get_data(as_text=True)
    assert post(client, community_id=communities["ev"].id).status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Story)) == 0


@pytest.mark.parametrize("overrides, message", [
    ({"title": ""}, "标题"),
    ({"body": "短"}, "10"),
    ({"body": "长" * 10_001}, "10000"),
    ({"tags": ["nonsense"]}, ""),
])
def test_bad_text_is_refused_and_what_was_typed_is_kept(login_as, author, communities, overrides, message):
    response = post(login_as(author), community_id=communities["ev"].id, **overrides)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert message in body
    if "title" not in overrides:
        assert 'value="我的第一辆二手电车"' in body
    assert db.session.scalar(select(func.count()).select_from(Story)) == 0


def test_a_blocked_word_is_refused_and_a_review_word_holds_the_story(login_as, author, communities):
    db.session.add_all([ProhibitedWord(word="代开发票", action="block"), ProhibitedWord(word="私下交易", action="review")])
    db.session.commit()
    client = login_as(author)
    refused = post(client, community_id=communities["ev"].id, body=BODY + "可代开发票")
    assert refused.status_code == 422 and "代开发票" in refused.get_data(as_text=True)
    held = post(client, community_id=communities["ev"].id, body=BODY + "可以私下交易")
    assert held.status_code == 302
    story = db.session.scalar(select(Story))
    assert story.status == "review"
    assert "我的第一辆二手电车" not in client.get("/c/ev").get_data(as_text=True)
    assert balance_of(author) == 0, "no reward until a moderator lets it through"


def test_preview_saves_nothing_and_drafts_stay_private(app, login_as, author, factories, communities):
    client = login_as(author)
    preview = post(client, community_id=communities["ev"].id, body=BODY + "\n\n**加粗**", action="preview")
    assert preview.status_code == 200 and "<strong>加粗</strong>" in preview.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Story)) == 0
    draft = post(client, community_id=communities["ev"].id, action="draft")
    story = db.session.scalar(select(Story))
    assert draft.headers["Location"] == f"/stories/{story.id}/edit" and story.status == "draft"
    assert client.get(f"/stories/{story.id}").status_code == 200
    assert login_as(factories.user()).get(f"/stories/{story.id}").status_code == 404
    assert app.test_client().get(f"/stories/{story.id}").status_code == 404
    assert "我的第一辆二手电车" not in client.get("/c/ev").get_data(as_text=True)


def test_only_the_author_edits_or_deletes(login_as, author, factories, communities):
    client = login_as(author)
    post(client, community_id=communities["ev"].id)
    story = db.session.scalar(select(Story))
    other = login_as(factories.user(login="13900003333", verified=True))
    assert other.get(f"/stories/{story.id}/edit").status_code == 403
    assert other.post(f"/stories/{story.id}/delete").status_code == 403
    edited = client.post(f"/stories/{story.id}/edit", data={"community": communities["ev"].id, "title": "改过的标题",
                                                            "body": BODY, "action": "publish"})
    assert edited.status_code == 302
    assert db.session.get(Story, story.id).title == "改过的标题"
    assert client.post(f"/stories/{story.id}/delete").status_code == 302
    assert client.get(f"/stories/{story.id}").status_code == 404
    assert "改过的标题" not in client.get("/c/ev").get_data(as_text=True)


def test_a_photo_with_gps_comes_back_with_no_exif_at_all(app, login_as, author, communities):
    client = login_as(author)
    response = post(client, community_id=communities["ev"].id, photos=[(io.BytesIO(jpeg_with_gps()), "IMG_0001.jpg")])
    assert response.status_code == 302
    photo = db.session.scalar(select(StoryPhoto))
    served = client.get(f"/media/{photo.full_key}")
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert "immutable" in served.headers["Cache-Control"]
    image = Image.open(io.BytesIO(served.get_data()))
    assert not image.getexif() and "exif" not in image.info
    assert b"Exif\x00\x00" not in served.get_data()


def test_a_file_that_is_not_an_image_leaves_no_story_and_no_file(app, login_as, author, communities):
    root = Path(get_storage(app).root)
    before = set(root.rglob("*")) if root.exists() else set()
    client = login_as(author)
    response = post(client, community_id=communities["ev"].id,
                    photos=[(io.BytesIO(jpeg_with_gps()), "ok.jpg"), (io.BytesIO(b"not a photo at all"), "fake.jpg")])
    assert response.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Story)) == 0
    after = set(root.rglob("*")) if root.exists() else set()
    assert {p for p in after - before if p.is_file()} == set(), "the good photo written first is removed again"


def test_too_many_photos_are_refused(login_as, author, communities):
    photos = [(io.BytesIO(jpeg_with_gps()), f"{i}.jpg") for i in range(10)]
    response = post(login_as(author), community_id=communities["ev"].id, photos=photos)
    assert response.status_code == 422 and "9" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Story)) == 0


def make_stories(author, community, count: int) -> list[Story]:
    stories = []
    for i in range(count):
        story = save_story(author, StoryInput(community, f"故事 {i:02d}", BODY, []), publish=True)
        story.published_at = utcnow() - timedelta(minutes=count - i)
        story.photos = [StoryPhoto(full_key=f"photos/x/{i}.jpg", thumb_key=f"photos/x/{i}_t.jpg", width=1, height=1)]
        stories.append(story)
    db.session.commit()
    return stories


def test_feed_pages_with_a_cursor_neither_skip_nor_repeat(client, author, communities):
    make_stories(author, communities["ev"], 25)
    seen, url = [], "/c/ev"
    first = client.get(url).get_data(as_text=True)
    assert first.count('class="story-card"') == FEED_SIZE and 'hx-trigger="revealed"' in first
    page = first
    while True:
        seen += [line for line in page.split("\n") if "<h3>" in line]
        marker = 'hx-get="'
        if marker not in page:
            break
        url = page.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&")
        page = client.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
        assert "<html" not in page
    titles = [line.strip() for line in seen]
    assert len(titles) == 25 and len(set(titles)) == 25
    assert "故事 24" in titles[0] and "故事 00" in titles[-1]


def test_a_feed_page_costs_the_same_queries_whatever_its_size(login_as, author, communities, count_queries):
    client = login_as(author)
    make_stories(author, communities["ev"], 2)

    def queries(path):
        with count_queries() as counter:
            assert client.get(path).status_code == 200
        return counter["n"]

    few = {p: queries(p) for p in ("/", "/c/ev")}
    make_stories(author, communities["ev"], 12)
    assert {p: queries(p) for p in ("/", "/c/ev")} == few


def test_save_story_refuses_a_hidden_story(author, communities):
    from models import DomainError

    story = save_story(author, StoryInput(communities["ev"], "标题标题", BODY, []), publish=True)
    story.status = "hidden"
    db.session.commit()
    with pytest.raises(DomainError):
        save_story(author, StoryInput(communities["ev"], "改", BODY, []), publish=True, story=story,
                   new_photos=[NewPhoto("a", "b", 1, 1)])


def test_a_members_stories_have_their_own_feed(client, author, factories, communities):
    other = factories.user(login="13900004444", verified=True)
    make_stories(author, communities["ev"], 12)
    save_story(other, StoryInput(communities["women"], "别人的故事", BODY, []), publish=True)
    db.session.commit()
    page = client.get(f"/stories/by/{author.id}").get_data(as_text=True)
    assert "电车老王" in page and page.count('class="story-card"') == FEED_SIZE and "别人的故事" not in page
    assert 'hx-trigger="revealed"' in page
    assert client.get("/stories/by/999999").status_code == 404


def test_a_nickname_with_a_prohibited_word_is_refused(client, communities):
    db.session.add(ProhibitedWord(word="官方客服", action="review"))
    db.session.commit()
    response = client.post("/auth/signup", data={"login": "x@example.com", "nickname": "官方客服小王",
                                                 "password": "Abcdef123", "consent": "y"})
    assert response.status_code == 422
    assert "官方客服" in response.get_data(as_text=True) and 'value="x@example.com"' in response.get_data(as_text=True)
    from models import User

    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_posting_is_rate_limited_with_a_clear_message(login_as, author, communities, limiter_on):
    client = login_as(author)
    statuses = [post(client, community_id=communities["ev"].id, title=f"第 {i} 篇故事").status_code for i in range(21)]
    assert statuses[:20] == [302] * 20 and statuses[20] == 429
    assert "操作太频繁" in post(client, community_id=communities["ev"].id).get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Story)) == 20
