"""Likes and comments on stories: toggles and counts, races through a real server, rewards
once per (story, liker), one level of replies, verification, prohibited words, notifications,
deleting one's own comment, and a story page whose query count does not grow with comments."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models import EarningRule, Notification, ProhibitedWord, Story, db
from models.engagement import COMMENT_MAX, Comment, StoryLike, add_comment, delete_comment
from models.moderation import approve, hide, restore
from models.nonces import new_nonce
from models.loyalty import PointsPosting
from models.stories import StoryInput, card_stats, delete_story, save_story
from tests.html import assert_no_inline_code
from tests.live import LiveServer, fire_at_once, session_cookie_for

HX = {"HX-Request": "true"}


@pytest.fixture
def author(factories, communities):
    return factories.user(login="13900001111", nickname="电车老王", verified=True)


@pytest.fixture
def story(author, communities):
    story = save_story(author, StoryInput(communities["ev"], "冬天续航实测", "提车三个月，冬天续航掉了两成，分享一下经验。", []),
                       publish=True)
    db.session.commit()
    return story


def member(factories, n: int, verified: bool = True, nickname: str | None = None):
    return factories.user(login=f"1380000{n:04d}", nickname=nickname or f"车友{n}", verified=verified)


def likes_of(story) -> int:
    """The likes' rows, after checking the count the story keeps says the same."""
    db.session.rollback()  # see what other connections committed
    rows = db.session.scalar(select(func.count()).select_from(StoryLike).where(StoryLike.story_id == story.id))
    assert db.session.get(Story, story.id).like_count == rows, "the kept count follows the rows"
    return rows


def like_postings(user) -> int:
    return db.session.scalar(select(func.count()).select_from(PointsPosting)
                             .where(PointsPosting.user_id == user.id, PointsPosting.rule == "like_received"))


def comments() -> list[Comment]:
    db.session.rollback()
    return list(db.session.scalars(select(Comment).order_by(Comment.id)))


# -- likes ------------------------------------------------------------------------------------

def test_like_and_unlike_swap_the_widget_in_place(login_as, factories, story):
    client = login_as(member(factories, 1))
    response = client.post(f"/stories/{story.id}/like", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith(f'<div class="like" id="like-{story.id}">')
    assert 'aria-pressed="true"' in html and 'data-like-count>1<' in html and f"/stories/{story.id}/unlike" in html
    assert "<html" not in html
    assert client.post(f"/stories/{story.id}/like", headers=HX).status_code == 200
    assert likes_of(story) == 1, "liking twice keeps one row"
    html = client.post(f"/stories/{story.id}/unlike", headers=HX).get_data(as_text=True)
    assert 'aria-pressed="false"' in html and 'data-like-count>0<' in html
    assert likes_of(story) == 0


def test_without_js_a_like_redirects_back_to_the_story(login_as, factories, story):
    client = login_as(member(factories, 1))
    response = client.post(f"/stories/{story.id}/like")
    assert response.status_code == 302 and response.headers["Location"] == f"/stories/{story.id}"
    page = client.get(f"/stories/{story.id}").get_data(as_text=True)
    assert f'id="like-{story.id}"' in page and 'data-like-count>1<' in page


def test_visitors_are_sent_to_log_in(client, story):
    response = client.post(f"/stories/{story.id}/like", headers=HX)
    assert response.status_code == 401 and "/auth/login" in response.headers["HX-Redirect"]
    response = client.post(f"/stories/{story.id}/like")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    assert likes_of(story) == 0


@pytest.mark.parametrize("status", ["hidden", "deleted", "draft"])
def test_a_like_on_a_story_the_viewer_cannot_see_is_404(login_as, factories, story, status):
    story.status = status
    db.session.commit()
    assert login_as(member(factories, 1)).post(f"/stories/{story.id}/like", headers=HX).status_code == 404
    assert likes_of(story) == 0


def test_the_author_is_paid_once_per_liker_and_not_for_liking_themselves(login_as, factories, author, story):
    rule = EarningRule.get("like_received")
    before = like_postings(author)
    client = login_as(member(factories, 1))
    for _ in range(3):
        client.post(f"/stories/{story.id}/like", headers=HX)
        client.post(f"/stories/{story.id}/unlike", headers=HX)
    client.post(f"/stories/{story.id}/like", headers=HX)
    assert like_postings(author) == before + 1
    login_as(author).post(f"/stories/{story.id}/like", headers=HX)
    assert likes_of(story) == 2
    assert like_postings(author) == before + 1, "liking your own story pays nothing"
    posting = db.session.scalar(select(PointsPosting).where(PointsPosting.rule == "like_received"))
    assert posting.points >= rule.points and posting.ref_type == "stories" and posting.ref_id == str(story.id)


def _like_call(url, cookie, story_id):
    def call(http):
        page = http.get(f"{url}/stories/{story_id}", cookies={"session": cookie})
        assert page.status_code == 200
        return http.post(f"{url}/stories/{story_id}/like", cookies={"session": cookie}, headers=HX)
    return call


def test_twenty_members_liking_at_once_count_twenty_and_pay_within_the_cap(app, factories, author, story):
    likers = [member(factories, i) for i in range(20)]
    db.session.commit()
    cookies = [session_cookie_for(app, m) for m in likers]
    with LiveServer(app) as server:
        responses = fire_at_once([_like_call(server.url, c, story.id) for c in cookies])
    assert [r.status_code for r in responses] == [200] * 20
    assert likes_of(story) == 20
    cap = EarningRule.get("like_received").daily_limit
    assert like_postings(author) == (20 if cap is None else min(20, cap))


def test_one_member_firing_ten_likes_at_once_leaves_one_row(app, factories, author, story):
    liker = member(factories, 1)
    db.session.commit()
    cookie = session_cookie_for(app, liker)
    with LiveServer(app) as server:
        responses = fire_at_once([_like_call(server.url, cookie, story.id) for _ in range(10)])
    assert all(r.status_code == 200 for r in responses)
    assert likes_of(story) == 1
    assert like_postings(author) == 1


# -- comments ---------------------------------------------------------------------------------

def test_comment_and_replies_flatten_to_one_level(login_as, factories, author, story):
    alice, bob = member(factories, 1, nickname="阿丽"), member(factories, 2, nickname="小波")
    response = login_as(alice).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "冬天开空调掉多少？"}, headers=HX)
    html = response.get_data(as_text=True)
    top = comments()[0]
    assert response.status_code == 200 and html.lstrip().startswith(f'<li class="comment" id="comment-{top.id}">')
    assert "冬天开空调掉多少？" in html and 'id="comments"' not in html, "the comment alone, not the section"
    assert response.headers["HX-Retarget"] == "#comment-list" and response.headers["HX-Reswap"] == "afterbegin"
    assert top.status == "published" and top.parent_id is None
    login_as(bob).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "大概三成", "parent_id": top.id}, headers=HX)
    reply = comments()[-1]
    assert reply.parent_id == top.id
    login_as(alice).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "谢谢", "parent_id": reply.id}, headers=HX)
    assert comments()[-1].parent_id == top.id, "a reply to a reply attaches to the top-level comment"
    page = login_as(author).get(f"/stories/{story.id}").get_data(as_text=True)
    assert page.index("冬天开空调掉多少？") < page.index("大概三成") < page.index("谢谢")
    assert db.session.scalar(select(func.count()).select_from(PointsPosting).where(
        PointsPosting.user_id == alice.id, PointsPosting.rule == "comment")) == 2


def test_without_js_a_comment_redirects_to_it(login_as, factories, story):
    response = login_as(member(factories, 1)).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "好文"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/stories/{story.id}#comment-{comments()[0].id}"


def test_the_author_and_the_parent_author_are_notified(login_as, factories, author, story):
    alice, bob = member(factories, 1), member(factories, 2)
    login_as(alice).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "第一"}, headers=HX)
    top = comments()[0]
    kinds = lambda user: sorted(db.session.scalars(select(Notification.kind).where(  # noqa: E731
        Notification.user_id == user.id, Notification.kind.in_(("comment_received", "reply_received")))))
    assert kinds(author) == ["comment_received"]
    login_as(bob).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "回复", "parent_id": top.id}, headers=HX)
    assert kinds(alice) == ["reply_received"]
    login_as(alice).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "自己回", "parent_id": top.id}, headers=HX)
    assert kinds(alice) == ["reply_received"], "no notification for replying to yourself"
    login_as(author).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "作者自评"}, headers=HX)
    assert kinds(author) == ["comment_received"], "no notification for commenting on your own story"
    note = db.session.scalar(select(Notification).where(Notification.user_id == alice.id,
                                                         Notification.kind == "reply_received"))
    assert note.link.startswith(f"/stories/{story.id}#comment-") and note.params["title"] == "冬天续航实测"


def test_unverified_members_are_pointed_to_verification(login_as, factories, story):
    client = login_as(member(factories, 1, verified=False))
    page = client.get(f"/stories/{story.id}").get_data(as_text=True)
    assert "/auth/phone" in page and 'name="body"' not in page
    response = client.post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "想评论"})
    assert response.status_code == 403 and "/auth/phone" in response.get_data(as_text=True)
    assert comments() == []


@pytest.mark.parametrize("body", ["", "   ", "长" * (COMMENT_MAX + 1)])
def test_empty_or_oversized_comments_are_refused_and_the_text_kept(login_as, factories, story, body):
    response = login_as(member(factories, 1)).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": body}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and 'role="alert"' in html and str(COMMENT_MAX) in html
    if body.strip():
        assert body in html, "what was typed is kept"
    assert comments() == []


def test_a_failed_reply_reopens_its_form_with_the_text(login_as, factories, story):
    client = login_as(member(factories, 1))
    client.post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "第一"}, headers=HX)
    top = comments()[0]
    html = client.post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "长" * (COMMENT_MAX + 1), "parent_id": top.id},
                       headers=HX).get_data(as_text=True)
    assert html.lstrip().startswith(f'<form class="comment-form" id="reply-form-{top.id}"'), "the form alone, in place"
    assert f'id="comment-body-{top.id}-error"' in html and "长" * (COMMENT_MAX + 1) in html
    shared = client.post(f"/stories/{story.id}/comments", headers=HX, data={
        "nonce": new_nonce(), "body": "", "parent_id": top.id, "form": "shared"}).get_data(as_text=True)
    assert shared.lstrip().startswith('<form class="comment-form" id="reply-form"'), "the page's one reply form"
    assert f'name="parent_id" value="{top.id}"' in shared and 'id="comment-body-reply-error"' in shared
    assert len(comments()) == 1


def test_prohibited_words_block_or_hold_for_review(login_as, factories, story):
    db.session.add_all([ProhibitedWord(word="代开发票", action="block"), ProhibitedWord(word="加微信", action="review")])
    db.session.commit()
    writer, other = member(factories, 1), member(factories, 2)
    response = login_as(writer).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "专业代开发票"}, headers=HX)
    assert response.status_code == 422 and "代开发票" in response.get_data(as_text=True)
    assert comments() == []
    response = login_as(writer).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "详情加微信聊"}, headers=HX)
    assert response.status_code == 200 and "详情加微信聊" in response.get_data(as_text=True)
    assert [c.status for c in comments()] == ["review"]
    assert "详情加微信聊" not in login_as(other).get(f"/stories/{story.id}").get_data(as_text=True)
    assert "详情加微信聊" in login_as(writer).get(f"/stories/{story.id}").get_data(as_text=True)


@pytest.mark.parametrize("status", ["deleted", "hidden", "draft"])
def test_comments_on_a_story_that_is_not_published_are_404(login_as, factories, story, status):
    story.status = status
    db.session.commit()
    response = login_as(member(factories, 1)).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "还在吗"})
    assert response.status_code == 404 and comments() == []


def test_authors_delete_their_own_comments_only(login_as, factories, story):
    alice, bob = member(factories, 1), member(factories, 2)
    login_as(alice).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "有回复的评论"}, headers=HX)
    login_as(alice).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "没回复的评论"}, headers=HX)
    first, second = comments()
    login_as(bob).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "一条回复", "parent_id": first.id}, headers=HX)
    assert login_as(bob).post(f"/stories/comments/{first.id}/delete",
                              headers=HX).status_code == 403
    for target in (first, second):
        response = login_as(alice).post(f"/stories/comments/{target.id}/delete", headers=HX)
        assert response.status_code == 200
    assert [c.status for c in comments()[:2]] == ["deleted", "deleted"]
    page = login_as(bob).get(f"/stories/{story.id}").get_data(as_text=True)
    assert "有回复的评论" not in page and "没回复的评论" not in page
    assert f'id="comment-{first.id}"' in page, "a placeholder keeps the thread of its replies"
    assert f'id="comment-{second.id}"' not in page and "一条回复" in page
    response = login_as(alice).post(f"/stories/comments/{second.id}/delete")
    assert response.status_code == 404
    response = login_as(bob).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "还能回吗", "parent_id": first.id},
                                  headers=HX)
    assert response.status_code == 422 and len(comments()) == 3, "no replies to a deleted comment"


def test_the_story_page_costs_the_same_with_2_or_20_comments(login_as, factories, author, story, count_queries):
    writers = [member(factories, i) for i in range(4)]
    viewer = login_as(writers[0])

    def add(n):
        for i in range(n):
            top = add_comment(story, writers[i % 4], f"评论 {i}")
            add_comment(story, writers[(i + 1) % 4], f"回复 {i}", parent_id=top.id)
        db.session.commit()

    add(1)
    viewer.get(f"/stories/{story.id}")
    with count_queries() as small:
        assert viewer.get(f"/stories/{story.id}").status_code == 200
    add(9)
    with count_queries() as large:
        page = viewer.get(f"/stories/{story.id}").get_data(as_text=True)
    assert page.count('class="comment') >= 20
    assert large["n"] == small["n"]


def test_deleting_a_story_keeps_its_comments_out_of_reach(login_as, factories, story):
    client = login_as(member(factories, 1))
    client.post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "在吗"}, headers=HX)
    delete_story(db.session.get(Story, story.id))
    db.session.commit()
    assert client.get(f"/stories/{story.id}").status_code == 404


def test_without_js_a_refused_comment_shows_the_page_with_the_error_and_the_text(login_as, factories, story):
    response = login_as(member(factories, 1)).post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "长" * (COMMENT_MAX + 1)})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" in html and "冬天续航实测" in html
    assert 'id="comment-body-new-error"' in html and "长" * (COMMENT_MAX + 1) in html
    assert response.headers["Vary"] and "HX-Request" in response.headers["Vary"]


def test_the_story_page_with_likes_and_comments_passes_the_csp(login_as, factories, author, story):
    writer = member(factories, 1)
    top = add_comment(story, writer, "评论<script>alert(1)</script>")
    add_comment(story, author, "回复", parent_id=top.id)
    db.session.commit()
    client = login_as(writer)
    client.post(f"/stories/{story.id}/like")
    html = client.get(f"/stories/{story.id}").get_data(as_text=True)
    tags = assert_no_inline_code(html)
    assert "&lt;script&gt;" in html, "comment text is escaped"
    buttons = [attrs for tag, attrs in tags.tags if tag == "button" and "like-button" in attrs.get("class", "")]
    assert buttons and buttons[0]["aria-pressed"] == "true"


def test_a_storys_kept_counts_follow_likes_comments_and_moderation(login_as, factories, author, story, runner):
    """What a card shows without counting rows: likes (unlike and a repeat included) and published
    comments (a reply counts; one under review, deleted or hidden does not, a restored one again);
    `flask stories verify` finds a count that drifted from its rows."""
    fans = [member(factories, i) for i in range(3)]
    moderator = factories.user(role="moderator", community=story.community)
    for fan in fans:
        login_as(fan).post(f"/stories/{story.id}/like", headers=HX)
    login_as(fans[0]).post(f"/stories/{story.id}/like", headers=HX)  # a repeat: still one like
    login_as(fans[1]).post(f"/stories/{story.id}/unlike", headers=HX)
    top = add_comment(story, fans[0], "冬天开空调掉多少？")
    add_comment(story, fans[1], "大概一成。", parent_id=top.id)
    db.session.add(ProhibitedWord(word="加微信", action="review"))
    held = add_comment(story, fans[2], "加微信细聊")
    db.session.commit()

    def counts():
        db.session.expire_all()
        kept = db.session.get(Story, story.id)
        return kept.like_count, kept.comment_count

    assert counts() == (2, 2)
    approve(held, moderator)
    assert counts() == (2, 3)
    hide(top, moderator, "广告")
    assert counts() == (2, 2)
    restore(top, moderator)
    assert counts() == (2, 3)
    delete_comment(held)
    db.session.commit()
    assert counts() == (2, 2)
    shown = card_stats([db.session.get(Story, story.id)], fans[0])[story.id]
    assert (shown.likes, shown.comments, shown.liked) == (2, 2, True)
    result = runner.invoke(args=["stories", "verify"])
    assert result.exit_code == 0 and "0 mismatches" in result.output

    db.session.execute(StoryLike.__table__.delete().where(StoryLike.user_id == fans[0].id))
    db.session.commit()
    result = runner.invoke(args=["stories", "verify"])
    assert result.exit_code == 1
    assert f"story {story.id}: likes kept 2, rows 1; comments kept 2, rows 2" in result.output
