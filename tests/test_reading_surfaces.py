"""Reading surfaces (#10): relative times, plain-text excerpts, the comments' "…" menu, icons
instead of emoji, and copy (free events, signup notices, specific messages, full-width punctuation)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from flask_babel import force_locale
from sqlalchemy import select

from blueprints.times import ago, relative_time
from models import Comment, Notification, Story, db
from models.events import SignupInput, cancel_event, cancel_registration, signup
from models.nonces import new_nonce
from models.loyalty import award
from models.stories import StoryInput, save_story
from models.types import SHANGHAI
from tests.html import Tags

ROOT = Path(__file__).resolve().parent.parent
HX = {"HX-Request": "true"}
BODY = "提车三个月，电池健康度还是 98%，冬天续航掉了两成。"


def sh(*args) -> datetime:
    """A Shanghai wall-clock moment, as the aware datetime the database gives back."""
    return datetime(*args, tzinfo=SHANGHAI).astimezone(timezone.utc)


def english(client):
    client.post("/lang", data={"lang": "en"})
    return client


# -- relative times -------------------------------------------------------------------------

NOW = sh(2026, 3, 10, 14, 0)

CASES = [  # (moment, now, Chinese, English)
    (NOW - timedelta(seconds=59), NOW, "刚刚", "just now"),
    (NOW - timedelta(seconds=60), NOW, "1 分钟前", "1 min ago"),
    (NOW - timedelta(minutes=59, seconds=59), NOW, "59 分钟前", "59 min ago"),
    (NOW - timedelta(hours=1), NOW, "1 小时前", "1 h ago"),
    (sh(2026, 3, 10, 0, 0, 30), NOW, "13 小时前", "13 h ago"),  # just after midnight: still today
    (sh(2026, 3, 9, 23, 59), NOW, "昨天 23:59", "yesterday 23:59"),  # just before midnight: yesterday
    (sh(2026, 3, 9, 23, 50), sh(2026, 3, 10, 0, 10), "20 分钟前", "20 min ago"),  # minutes win over the date
    (sh(2026, 3, 9, 22, 50), sh(2026, 3, 10, 0, 10), "昨天 22:50", "yesterday 22:50"),
    (sh(2026, 3, 8, 9, 5), NOW, "3月8日", "Mar 8"),
    (sh(2025, 12, 31, 20, 0), sh(2026, 1, 1, 8, 0), "昨天 20:00", "yesterday 20:00"),  # across the new year
    (sh(2025, 12, 30, 20, 0), sh(2026, 1, 1, 8, 0), "2025年12月30日", "Dec 30, 2025"),  # another year
    (sh(2026, 1, 1, 0, 0), sh(2026, 12, 31, 23, 0), "1月1日", "Jan 1"),
]


@pytest.mark.parametrize("moment,now,zh,en", CASES)
def test_relative_time_boundaries_in_shanghai(app, moment, now, zh, en):
    with app.test_request_context("/"):
        with force_locale("zh_CN"):
            assert relative_time(moment, now) == zh
        with force_locale("en"):
            assert relative_time(moment, now) == en


def test_midnight_is_shanghais_not_utcs(app):
    """01:00 Shanghai is 17:00 UTC the day before: 'yesterday' follows Shanghai's calendar."""
    with app.test_request_context("/"), force_locale("zh_CN"):
        assert relative_time(sh(2026, 3, 10, 1, 0), sh(2026, 3, 10, 9, 0)) == "8 小时前"
        assert relative_time(sh(2026, 3, 9, 7, 0), sh(2026, 3, 10, 9, 0)) == "昨天 07:00"


def test_future_moments_keep_their_absolute_format(app):
    with app.test_request_context("/"), force_locale("zh_CN"):
        assert relative_time(NOW + timedelta(hours=3), NOW) == "2026年3月10日 17:00"
        assert relative_time(NOW + timedelta(seconds=20), NOW) == "刚刚", "a clock a little ahead is not the future"


def test_ago_renders_a_time_element_with_whole_seconds_and_the_absolute_title(app):
    moment = sh(2026, 3, 8, 9, 5, 7) + timedelta(microseconds=123456)
    with app.test_request_context("/"), force_locale("zh_CN"):
        html = str(ago(moment, NOW))
    assert html == '<time datetime="2026-03-08T09:05:07+08:00" title="2026年3月8日 09:05">3月8日</time>'


def test_inbox_story_and_comment_show_relative_times(login_as, factories, communities):
    author = factories.user(login="13900001111", nickname="电车老王", verified=True)
    story = save_story(author, StoryInput(communities["ev"], "冬天的续航", BODY, []), publish=True)
    db.session.commit()
    reader = factories.user(login="13900000001", verified=True)
    client = login_as(reader)
    client.post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "学到了"})
    page = client.get(f"/stories/{story.id}").get_data(as_text=True)
    times = re.findall(r'<time datetime="([^"]+)" title="[^"]+">([^<]+)</time>', page)
    assert [text for _iso, text in times] == ["刚刚", "刚刚"], "the story and the comment"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", iso) for iso, _text in times)
    inbox = login_as(author).get("/me/notifications").get_data(as_text=True)
    assert re.search(r'<time datetime="[^"."]+" title="[^"]+">刚刚</time>', inbox)
    assert "." not in re.search(r'<time datetime="([^"]+)"', inbox).group(1), "no fractional seconds"


# -- excerpts -------------------------------------------------------------------------------

MARKDOWN = """# 冬季续航

**电池**保养的三个要点：

> 引用一句老司机的话

- 别充满
- 别放空

详见[官方说明](https://example.com/guide)。![仪表盘](https://example.com/a.png)"""


def test_excerpt_is_plain_text_without_markdown_marks(factories, communities, client):
    author = factories.user(login="13900000002", verified=True)
    story = save_story(author, StoryInput(communities["ev"], "续航心得", MARKDOWN, []), publish=True)
    db.session.commit()
    assert story.excerpt == "冬季续航 电池保养的三个要点： 引用一句老司机的话 别充满 别放空 详见官方说明。"
    feed = client.get("/c/ev").get_data(as_text=True)
    card = feed.split(f'id="story-card-{story.id}"')[1].split("</article>")[0]
    assert "电池保养的三个要点" in card
    for mark in ("**", "# ", "&gt; ", "- 别", "](", "![", "https://example.com"):
        assert mark not in card, mark


def test_a_long_storys_excerpt_reads_only_its_opening_and_says_the_same(factories, communities):
    """A card reads the first 720 characters of a long story's HTML, not all of it; the excerpt
    is the full text's opening all the same, even when the cut falls inside a tag or an entity."""
    from models.markup import _text_of, plain_text

    author = factories.user(login="13900000003", verified=True)
    long_body = "\n\n".join(f"第{i}段：**电池**和[充电](https://example.com/{i})的事 &amp; 更多。" + "细节" * 20
                              for i in range(60))
    story = save_story(author, StoryInput(communities["ev"], "很长的故事", long_body, []), publish=True)
    html = story.body_html
    assert len(html) > 5_000
    full = plain_text(html)
    assert story.excerpt == full[:90] + "…"
    for cut in range(1, 1500):  # the opening's end lands inside every kind of markup
        opening = _text_of(html[:cut], complete=False)
        assert full.startswith(opening.rstrip()), (cut, html[cut - 20:cut])
    short = plain_text("<p>短</p>", at_least=90)
    assert short == "短"


def test_search_snippet_is_plain_text_with_escaped_highlights(factories, communities, client):
    author = factories.user(login="13900000003", verified=True)
    body = "**电池** <b>不是</b> 标签，[看这里](https://example.com) 了解电池。"
    save_story(author, StoryInput(communities["ev"], "电池心得", body, []), publish=True)
    db.session.commit()
    page = client.get("/stories/search", query_string={"q": "电池"}).get_data(as_text=True)
    snippet = page.split('class="search-excerpt">')[1].split("</p>")[0]
    assert snippet == "<mark>电池</mark> &lt;b&gt;不是&lt;/b&gt; 标签，看这里 了解<mark>电池</mark>。"


# -- the comments' "…" menu -----------------------------------------------------------------

@pytest.fixture
def thread(factories, communities):
    author = factories.user(login="13900001111", nickname="电车老王", verified=True)
    story = save_story(author, StoryInput(communities["ev"], "冬天的续航", BODY, []), publish=True)
    db.session.commit()
    commenter = factories.user(login="13900002222", nickname="路人甲", verified=True)
    return story, author, commenter


def _comments_section(html: str) -> str:
    return html.split('id="comments"')[1].split("</section>")[0]


def test_comment_actions_sit_in_a_menu_without_disclosure_triangles(login_as, thread):
    story, author, commenter = thread
    login_as(commenter).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "学到了"})
    comment = db.session.scalar(select(Comment))
    html = _comments_section(login_as(author).get(f"/stories/{story.id}").get_data(as_text=True))
    assert "<details" not in html and "<summary" not in html
    tags = Tags(html).tags
    (button,) = [a for t, a in tags if "menu-button" in a.get("class", "")]
    # Another member's comment: a button naming the page's one shared menu and its actions.
    assert button["aria-expanded"] == "false" and button["aria-controls"] == "comment-menu"
    assert button["data-comment"] == str(comment.id) and button["data-actions"] == "reply report"
    assert button["aria-label"] == "更多操作" and f"menu={comment.id}" in button["href"], "its no-JS link"
    assert f'id="comment-menu-{comment.id}"' not in html, "no copy of the menu per comment"
    shared = html.split('id="comment-menu"')[1].split("</div>")[0]
    assert shared.startswith(" data-shared hidden>") and "回复" in shared and "举报" in shared and "删除" not in shared
    assert 'data-action="reply" data-opens="reply-panel"' in shared
    assert 'data-action="report" data-opens="report-comment"' in shared
    assert html.count('id="comment-menu"') == 1, "one menu"
    assert html.count('<div class="comment-panel" id="reply-panel" data-shared hidden>') == 1, "one reply form"
    assert html.count('<div class="comment-panel" id="report-comment" data-shared hidden>') == 1, "one report form"
    assert f'id="reply-{comment.id}"' not in html and f'id="report-c{comment.id}"' not in html

    mine = _comments_section(login_as(commenter).get(f"/stories/{story.id}").get_data(as_text=True))
    own_popover = mine.split(f'id="comment-menu-{comment.id}"')[1].split("</div>")[0]
    assert "删除" in own_popover and "举报" not in own_popover, "one's own comment: delete, never report"


def test_without_js_the_menu_reply_and_report_open_through_the_url(login_as, thread):
    story, author, commenter = thread
    login_as(commenter).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "学到了"})
    comment = db.session.scalar(select(Comment))
    client = login_as(author)
    menu = client.get(f"/stories/{story.id}?menu={comment.id}").get_data(as_text=True)
    assert 'aria-expanded="true"' in menu and f'id="comment-menu-{comment.id}">' in menu
    reply = client.get(f"/stories/{story.id}?reply_to={comment.id}").get_data(as_text=True)
    assert f'<div class="comment-panel" id="reply-{comment.id}">' in reply
    report = client.get(f"/stories/{story.id}?report={comment.id}").get_data(as_text=True)
    assert f'<div class="comment-panel" id="report-c{comment.id}">' in report
    assert f'name="comment_id" value="{comment.id}"' in report


# -- icons ----------------------------------------------------------------------------------

EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u26FF\u2B50\u2B55\u23E9-\u23FA\u231A\u231B\uFE0F\u2194-\u21AA\u2764\u2705]")


def test_templates_use_svg_icons_not_emoji():
    found = [f"{path.relative_to(ROOT)}: {m.group()!r}" for path in sorted((ROOT / "templates").rglob("*.html"))
             for m in EMOJI.finditer(path.read_text(encoding="utf-8"))]
    assert found == []


def test_event_page_icons_are_decorative_svgs(client, factories):
    event = factories.event()
    html = client.get(f"/events/{event.id}").get_data(as_text=True)
    icons = [a for t, a in Tags(html).tags if t == "svg" and "icon-inline" in a.get("class", "")]
    assert len(icons) >= 6 and all(a.get("aria-hidden") == "true" for a in icons)
    assert not EMOJI.search(html)


# -- copy: free events never mention refunds ------------------------------------------------

REFUND_WORDS = ("退", "refund")


def test_a_free_events_page_and_signup_never_mention_refunds(login_as, factories):
    event = factories.event(points_price=0)
    member = factories.user()
    client = login_as(member)
    page = client.get(f"/events/{event.id}").get_data(as_text=True)
    assert not any(word in page for word in REFUND_WORDS)
    panel = client.post(f"/events/{event.id}/signup", headers=HX).get_data(as_text=True)
    assert not any(word in panel for word in REFUND_WORDS)
    assert "points back" not in panel and "积分" not in panel.split('id="signup"')[1]


def test_a_late_cancellation_of_a_free_event_does_not_talk_about_points(login_as, factories):
    now = datetime.now(timezone.utc)
    event = factories.event(points_price=0, starts_at=now + timedelta(hours=6), cancel_deadline=now - timedelta(hours=1),
                            signup_closes_at=now + timedelta(hours=5))
    member = factories.user()
    client = english(login_as(member))
    client.post(f"/events/{event.id}/signup", headers=HX)
    panel = client.post(f"/events/{event.id}/cancel", headers=HX).get_data(as_text=True)
    assert "Your signup is cancelled." in panel and "points" not in panel.lower().split("your signup is cancelled")[1][:80]


def test_a_paid_event_still_explains_its_refund(login_as, factories):
    event = factories.event(points_price=30)
    page = english(login_as(factories.user())).get(f"/events/{event.id}").get_data(as_text=True)
    assert "to get your points back" in page


def test_cancelling_a_free_event_tells_members_without_a_refund(app, factories):
    free, paid = factories.event(points_price=0), factories.event(points_price=20)
    member = factories.user()
    award(member, "referral", key="seed", points=100)
    db.session.commit()
    for event in (free, paid):
        signup(db.session.merge(event), member, SignupInput())
        db.session.commit()
        cancel_event(db.session.merge(event), event.organizer, "暴雨预警，活动取消。")
        db.session.commit()
    notes = {n.link: n for n in db.session.scalars(select(Notification).where(
        Notification.user_id == member.id, Notification.kind.like("event_cancelled%")))}
    free_note, paid_note = notes[f"/events/{free.id}"], notes[f"/events/{paid.id}"]
    with app.test_request_context("/"):
        free_text, paid_text = free_note.text, paid_note.text
    assert free_text == "“周末充电站聚会”已取消：暴雨预警，活动取消。"
    assert "20 积分已退回" in paid_text


def test_a_cancelled_free_events_banner_does_not_mention_refunds(client, factories):
    event = factories.event(points_price=0)
    cancel_event(db.session.merge(event), event.organizer, "场地临时关闭，改期再约。")
    db.session.commit()
    page = client.get(f"/events/{event.id}").get_data(as_text=True)
    assert "已通知所有报名车友。" in page and not any(word in page for word in REFUND_WORDS)


# -- copy: signing up leaves an inbox notice with the ticket link ---------------------------

def test_signing_up_leaves_a_notice_with_the_ticket_link(app, login_as, factories):
    event = factories.event(capacity=1, companions_allowed=0)
    first, second = factories.user(), factories.user()
    login_as(first).post(f"/events/{event.id}/signup", headers=HX)
    login_as(second).post(f"/events/{event.id}/signup", headers=HX)
    (confirmed,) = db.session.scalars(select(Notification).where(Notification.user_id == first.id)).all()
    (waiting,) = db.session.scalars(select(Notification).where(Notification.user_id == second.id)).all()
    assert confirmed.kind == "event_signed_up" and confirmed.link.startswith("/me/tickets#ticket-")
    assert waiting.kind == "event_waitlisted" and waiting.params["position"] == 1
    with app.test_request_context("/"):
        assert confirmed.text == "你已报名“周末充电站聚会”，门票在“我的门票”里。"
        assert "候补名单第 1 位" in waiting.text
    inbox = login_as(first).get("/me/notifications").get_data(as_text=True)
    assert f'href="{confirmed.link}"' in inbox
    ticket_id = confirmed.link.split("#")[1]
    assert f'id="{ticket_id}"' in login_as(first).get("/me/tickets").get_data(as_text=True)


def test_the_signup_notice_is_once_per_signup(factories):
    event, member = factories.event(), factories.user()
    signup(db.session.merge(event), member, SignupInput())
    db.session.commit()
    cancel_registration(db.session.merge(event), member)
    signup(db.session.merge(event), member, SignupInput())
    db.session.commit()
    keys = db.session.scalars(select(Notification.dedupe_key).where(Notification.user_id == member.id)).all()
    assert len(keys) == 2 and len(set(keys)) == 2, "a new signup after a cancellation is a new notice"


# -- copy: specific messages, full-width punctuation ----------------------------------------

@pytest.mark.parametrize("action,said", [("hide", "已隐藏"), ("feature", "已设为精选")])
def test_moderation_says_what_was_done(login_as, factories, communities, action, said):
    author = factories.user(login="13900000004", verified=True)
    story = save_story(author, StoryInput(communities["ev"], "冬天的续航", BODY, []), publish=True)
    db.session.commit()
    moderator = login_as(factories.user(role="moderator", community=communities["ev"]))
    response = moderator.post(f"/moderation/stories/{story.id}/{action}", data={"note": "广告"}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert said in page and "操作成功" not in page
    if action == "hide":
        restored = moderator.post(f"/moderation/stories/{story.id}/restore", follow_redirects=True).get_data(as_text=True)
        assert "已恢复" in restored and db.session.get(Story, story.id).status == "published"


CJK = "\u3400-\u9fff\u3000-\u303f\uff00-\uffef“”‘’"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]")
HALF_WIDTH = re.compile(rf"[{CJK}]\s*[,:!?;()]|[,:!?;()]\s*[{CJK}]")


def half_width_punctuation(text: str) -> list[str]:
    """ASCII , : ! ? ; ( ) next to Chinese (placeholders count as neither)."""
    return HALF_WIDTH.findall(PLACEHOLDER.sub("X", text))


def test_the_checker_catches_half_width_punctuation():
    assert half_width_punctuation("已取消,请重试!") and half_width_punctuation("积分(%(n)s)")
    assert half_width_punctuation("时间:%(time)s") and not half_width_punctuation("已取消，请于 14:20 前（含）重试！")


def test_chinese_strings_use_full_width_punctuation():
    from babel.messages.pofile import read_po

    with (ROOT / "translations/zh_Hans_CN/LC_MESSAGES/messages.po").open("rb") as po:
        catalog = read_po(po)
    bad = []
    for message in catalog:
        for text in (message.string if isinstance(message.string, (list, tuple)) else [message.string]):
            if text and half_width_punctuation(text):
                bad.append(text)
    assert bad == []
