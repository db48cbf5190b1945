"""Liking and commenting on a story in a real phone browser, in place, without a reload."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from models import db
from models.engagement import Comment, StoryLike
from models.stories import StoryInput, save_story
from tests.browser.test_shell import _fresh, log_in

pytestmark = pytest.mark.browser


def test_like_and_comment_in_place(page, factories, console_errors):
    communities = factories.communities()
    writer = factories.user(login="13900001111", nickname="电车老王", verified=True)
    story = save_story(writer, StoryInput(communities["ev"], "冬天续航实测", "提车三个月，冬天续航掉了两成，分享一下经验。", []),
                       publish=True)
    member = factories.user(login="13912345678", nickname="车友小李", verified=True)
    db.session.commit()
    story_id, member_id = story.id, member.id

    log_in(page, "13912345678")
    page.goto(f"/stories/{story_id}")
    page.evaluate("window.__marker = 1")

    like = page.locator(f"#like-{story_id}")
    assert like.locator("button[aria-pressed=false]").count() == 1
    like.locator("button[type=submit]").click()
    page.locator(f"#like-{story_id} button[aria-pressed=true]").wait_for()
    assert page.locator(f"#like-{story_id} [data-like-count]").inner_text() == "1"
    assert page.evaluate("window.__marker") == 1, "liked with htmx, no full page load"

    page.fill("#comment-body-new", "冬天开空调大概掉多少？")
    page.locator("#comment-form-new button[type=submit]").click()
    page.locator("#comments .comment-body", has_text="冬天开空调大概掉多少？").wait_for()
    assert page.evaluate("window.__marker") == 1, "commented with htmx, no full page load"
    assert page.locator("#comment-body-new").input_value() == "", "a fresh form after posting"

    page.locator("#comments .comment .menu-button").first.click()
    page.locator("#comments .menu-popover").first.get_by_text("回复").click()
    reply_box = page.locator("#comments .comment-panel[id^=reply-]").first
    reply_box.locator("textarea[name=body]").fill("自己补充一句：开座椅加热更省电")
    reply_box.locator("button[type=submit]").click()
    page.locator("#comments .replies .comment-body", has_text="开座椅加热更省电").wait_for()
    assert page.evaluate("window.__marker") == 1, "replied with htmx, no full page load"

    _fresh()
    assert db.session.scalars(select(StoryLike.user_id).where(StoryLike.story_id == story_id)).all() == [member_id]
    comment, reply = db.session.scalars(select(Comment).where(Comment.story_id == story_id).order_by(Comment.id))
    assert reply.parent_id == comment.id
    assert comment.author_id == member_id and comment.body == "冬天开空调大概掉多少？" and comment.status == "published"
    assert not console_errors


def test_older_comments_load_in_place_and_the_one_reply_form_serves_each(page, factories, console_errors):
    from models.engagement import COMMENTS_PAGE, add_comment

    communities = factories.communities()
    writer = factories.user(login="13900001111", nickname="电车老王", verified=True)
    story = save_story(writer, StoryInput(communities["ev"], "冬天续航实测", "提车三个月，冬天续航掉了两成，分享一下经验。", []),
                       publish=True)
    made = [add_comment(story, writer, f"第 {n} 条评论") for n in range(COMMENTS_PAGE + 5)]
    factories.user(login="13912345678", nickname="车友小李", verified=True)
    db.session.commit()
    story_id, oldest, newest = story.id, made[0].id, made[-1].id

    log_in(page, "13912345678")
    page.goto(f"/stories/{story_id}")
    page.evaluate("window.__marker = 1")
    assert page.locator("#comment-list > .comment").count() == COMMENTS_PAGE
    page.locator("#comment-list > .load-more").scroll_into_view_if_needed()
    page.locator(f"#comment-{oldest}").wait_for()
    assert page.locator("#comment-list > .comment").count() == COMMENTS_PAGE + 5
    assert page.locator("#comment-list > .load-more").count() == 0, "the end of the list"

    for target, text in ((oldest, "老帖也有人看"), (newest, "新帖再补一句")):
        page.locator(f"#comment-{target} .menu-button").click()
        page.locator("#comment-menu").get_by_text("回复").click()
        panel = page.locator(f"#comment-{target} > #reply-panel")
        assert panel.is_visible(), "the one reply form, under the chosen comment"
        panel.locator("textarea").fill(text)
        panel.locator("button[type=submit]").click()
        page.locator(f"#replies-{target} .comment-body", has_text=text).wait_for()
        page.locator("#reply-panel").wait_for(state="hidden")
    assert page.evaluate("window.__marker") == 1, "loaded and replied in place, no full page load"

    _fresh()
    replies = db.session.scalars(select(Comment).where(Comment.parent_id.is_not(None)).order_by(Comment.id)).all()
    assert [(r.parent_id, r.body) for r in replies] == [(oldest, "老帖也有人看"), (newest, "新帖再补一句")]
    assert not console_errors
