"""Sharing (issue #10): share buttons on the invite link and on stories, and the invite poster."""
from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image

from models import db
from models.referrals import invite_code
from models.stories import StoryInput, save_story
from tests.html import assert_no_inline_code

BODY = "提车三个月，冬天续航掉了两成，分享一下经验。"


def _poster(client):
    response = client.get("/me/invite-poster.png")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response, Image.open(io.BytesIO(response.data))


def test_the_invite_poster_is_a_phone_sized_png_whose_qr_opens_the_members_invite_link(login_as, factories):
    member = factories.user(nickname="小周爱开车")
    response, image = _poster(login_as(member))

    assert response.mimetype == "image/png"
    assert image.format == "PNG" and image.size == (750, 1334)
    codes = zxingcpp.read_barcodes(image)
    assert [c.text for c in codes] == [f"http://localhost/i/{invite_code(member)}"]
    # The member's nickname is on it: no shared cache may keep it, nor the browser's disk.
    assert "private" in response.headers["Cache-Control"] and "no-store" in response.headers["Cache-Control"]


def test_each_member_gets_their_own_poster_and_a_new_nickname_draws_a_new_one(login_as, factories):
    first, second = factories.user(nickname="电车车主"), factories.user(nickname="电车车主")
    a1 = _poster(login_as(first))[0].data
    assert _poster(login_as(first))[0].data == a1  # the same member, unchanged: the same poster
    b = _poster(login_as(second))[1]
    assert zxingcpp.read_barcodes(b)[0].text.endswith(f"/i/{invite_code(second)}")

    first.nickname = "改名后的车主"
    db.session.commit()
    a2, image = _poster(login_as(first))
    assert a2.data != a1
    assert zxingcpp.read_barcodes(image)[0].text.endswith(f"/i/{invite_code(first)}")


def test_a_very_long_nickname_still_leaves_a_readable_qr(login_as, factories):
    member = factories.user(nickname="长" * 40)
    image = _poster(login_as(member))[1]
    assert image.size == (750, 1334)
    assert zxingcpp.read_barcodes(image)[0].text.endswith(f"/i/{invite_code(member)}")


def test_visitors_are_sent_to_log_in_for_the_poster(client):
    response = client.get("/me/invite-poster.png")
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


def test_a_machine_without_a_chinese_font_gets_a_clear_answer_not_a_poster_of_boxes(login_as, factories, monkeypatch):
    """The font lookup is the outside world (the machine's fonts): pretend none is installed."""
    from services import poster

    monkeypatch.setattr(poster, "FONT_CANDIDATES", ("/nonexistent/font.ttc",))
    monkeypatch.setattr(poster.shutil, "which", lambda name: None)
    poster.font_path.cache_clear()
    poster._font.cache_clear()
    poster.invite_poster.cache_clear()
    try:
        with pytest.raises(poster.PosterFontMissing, match="fonts-wqy-microhei"):
            poster.font_path()
        response = login_as(factories.user()).get("/me/invite-poster.png")
        assert response.status_code == 503
        assert "海报暂时无法生成" in response.get_data(as_text=True)
    finally:
        monkeypatch.undo()
        poster.font_path.cache_clear()
        poster._font.cache_clear()


def _attrs(html: str, tag: str, attr: str) -> list[dict]:
    """The attributes of every TAG carrying ATTR, in document order (and no inline code anywhere)."""
    return [a for t, a in assert_no_inline_code(html).tags if t == tag and attr in a]


def test_the_points_page_shows_the_poster_its_download_and_a_share_button_for_the_invite_link(login_as, factories):
    member = factories.user(nickname="小周爱开车")
    html = login_as(member).get("/me/points").get_data(as_text=True)
    url = f"http://localhost/i/{invite_code(member)}"

    assert [a["src"] for a in _attrs(html, "img", "src") if "poster" in a["src"]] == ["/me/invite-poster.png"]
    assert [a for a in _attrs(html, "a", "download") if a["href"] == "/me/invite-poster.png"]
    assert "保存海报" in html and "长按海报保存" in html
    [share] = _attrs(html, "div", "data-share")
    assert share["data-url"] == url and "小周爱开车" in share["data-text"]
    assert [a["value"] for a in _attrs(html, "input", "data-share-field")] == [url]  # shown, read-only
    assert "hidden" not in _attrs(html, "input", "data-share-field")[0]
    assert len(_attrs(html, "button", "data-share-button")) == 1 and "分享邀请链接" in html
    assert [a for a in _attrs(html, "script", "src") if a["src"].startswith("/static/js/share.js")]


def test_the_profile_page_has_the_invite_share_button(login_as, factories):
    member = factories.user()
    html = login_as(member).get("/me").get_data(as_text=True)
    assert [a["data-url"] for a in _attrs(html, "div", "data-share")] == [f"http://localhost/i/{invite_code(member)}"]


def test_a_published_story_has_a_share_button_with_its_link_and_a_draft_has_none(client, login_as, factories,
                                                                                communities):
    author = factories.user(login="13900001111", verified=True)
    story = save_story(author, StoryInput(communities["ev"], "冬天续航实测", BODY, []), publish=True)
    draft = save_story(author, StoryInput(communities["ev"], "还没写完", BODY, []), publish=False)
    db.session.commit()

    html = client.get(f"/stories/{story.id}").get_data(as_text=True)
    [share] = _attrs(html, "div", "data-share")
    assert share["data-url"] == f"http://localhost/stories/{story.id}"
    assert share["data-title"] == "冬天续航实测" and "冬天续航实测" in share["data-text"]
    [button] = _attrs(html, "button", "data-share-button")
    assert button["type"] == "button"
    assert "hidden" in _attrs(html, "input", "data-share-field")[0]  # shown only when copying fails

    assert _attrs(login_as(author).get(f"/stories/{draft.id}").get_data(as_text=True), "div", "data-share") == []
