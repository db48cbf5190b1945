"""One member's requests racing each other, and two members paying each other at once, through
real concurrent HTTP requests on SQLite and PostgreSQL: no 5xx (PostgreSQL used to deadlock
here), every award paid exactly once, and a double-submitted form creates one thing."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models import Comment, PointsPosting, Story, db
from models.nonces import new_nonce
from models.stories import StoryInput, save_story
from tests.live import LiveServer, fire_at_once, session_cookie_for

BODY = "提车三个月，电池健康度还是 98%，冬天续航掉了两成。"


@pytest.fixture
def writer(factories, communities):
    member = factories.user(login="13900002222", nickname="老司机", verified=True)
    communities["ev"].join(member)
    db.session.commit()
    return member


def postings(member, rule: str) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(PointsPosting).where(
        PointsPosting.user_id == member.id, PointsPosting.rule == rule))


def count(model, **where) -> int:
    db.session.rollback()
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return db.session.scalar(query)


def post_story(base, cookie, community_id, title, nonce):
    def call(http):
        return http.post(f"{base}/stories/new", cookies={"session": cookie}, timeout=60, allow_redirects=False, data={
            "community": community_id, "title": title, "body": BODY, "action": "publish", "nonce": nonce})
    return call


def post_comment(base, cookie, story_id, body, nonce):
    def call(http):
        return http.post(f"{base}/stories/{story_id}/comments", cookies={"session": cookie}, timeout=60,
                         headers={"HX-Request": "true"}, data={"body": body, "nonce": nonce})
    return call


def assert_no_server_errors(responses):
    errors = [(r.status_code, r.text[:200]) for r in responses if r.status_code >= 500]
    assert errors == []


def test_five_different_stories_at_once_publish_five_and_pay_the_daily_three(app, writer, communities):
    cookie = session_cookie_for(app, writer)
    ev = communities["ev"].id
    with LiveServer(app) as server:
        responses = fire_at_once([post_story(server.url, cookie, ev, f"我的电车日记 {i}", new_nonce()) for i in range(5)])
    assert_no_server_errors(responses)
    assert [r.status_code for r in responses] == [302] * 5
    assert count(Story, author_id=writer.id, status="published") == 5
    assert postings(writer, "story_posted") == 3  # the rule's daily cap, paid once per story


def test_one_story_form_submitted_five_times_publishes_one_story_and_pays_once(app, writer, communities):
    cookie = session_cookie_for(app, writer)
    nonce = new_nonce()
    with LiveServer(app) as server:
        responses = fire_at_once([post_story(server.url, cookie, communities["ev"].id, "只发一次", nonce)
                                  for _ in range(5)])
    assert_no_server_errors(responses)
    assert count(Story, author_id=writer.id) == 1
    story = db.session.scalar(select(Story).where(Story.author_id == writer.id))
    # Every submission lands on the one story that was published.
    assert {r.headers["Location"] for r in responses} == {f"/stories/{story.id}"}
    assert postings(writer, "story_posted") == 1


def test_a_repeated_story_form_sends_the_member_to_the_first_story(login_as, writer, communities):
    client = login_as(writer)
    data = {"community": communities["ev"].id, "title": "后退再提交", "body": BODY, "action": "publish",
            "nonce": new_nonce()}
    first = client.post("/stories/new", data=data)
    again = client.post("/stories/new", data={**data, "title": "后退再提交（改了标题）"})
    assert first.status_code == again.status_code == 302
    assert first.headers["Location"] == again.headers["Location"]
    assert count(Story, author_id=writer.id) == 1
    assert db.session.scalar(select(Story.title)) == "后退再提交"


def test_a_story_form_without_its_nonce_is_refused_and_keeps_what_was_typed(login_as, writer, communities):
    response = login_as(writer).post("/stories/new", data={
        "community": communities["ev"].id, "title": "旧页面", "body": BODY, "action": "publish"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "表单已过期" in html or "expired" in html
    assert 'value="旧页面"' in html and BODY in html
    assert 'name="nonce"' in html  # a fresh one: submitting again now works
    assert count(Story) == 0


@pytest.fixture
def story(writer, communities):
    created = save_story(writer, StoryInput(communities["ev"], "冬天续航实测", BODY, []), publish=True)
    db.session.commit()
    return created


def test_five_comments_at_once_are_posted_and_paid_once_each(app, writer, story):
    cookie = session_cookie_for(app, writer)
    with LiveServer(app) as server:
        responses = fire_at_once([post_comment(server.url, cookie, story.id, f"补充第 {i} 点", new_nonce())
                                  for i in range(5)])
    assert_no_server_errors(responses)
    assert [r.status_code for r in responses] == [200] * 5
    assert count(Comment, story_id=story.id) == 5
    assert postings(writer, "comment") == 5


def test_one_comment_sent_five_times_is_posted_once(app, writer, story):
    cookie = session_cookie_for(app, writer)
    nonce = new_nonce()
    with LiveServer(app) as server:
        responses = fire_at_once([post_comment(server.url, cookie, story.id, "点了好几下发送", nonce) for _ in range(5)])
    assert_no_server_errors(responses)
    # The first answer puts the comment on the page; the repeats add nothing to it (204).
    assert sorted(r.status_code for r in responses) == [200, 204, 204, 204, 204]
    assert [r.text.count("点了好几下发送") for r in responses if r.status_code == 200] == [1]
    assert count(Comment, story_id=story.id) == 1
    assert postings(writer, "comment") == 1


def test_five_check_ins_at_once_pay_once(app, writer):
    cookie = session_cookie_for(app, writer)

    def check_in(http):
        return http.post(f"{server.url}/me/checkin", cookies={"session": cookie}, headers={"HX-Request": "true"},
                         timeout=60)

    with LiveServer(app) as server:
        responses = fire_at_once([check_in] * 5)
    assert_no_server_errors(responses)
    assert postings(writer, "checkin") == 1


def test_two_members_liking_each_others_stories_at_the_same_moment(app, factories, communities):
    """Each like locks the story's author to pay them while its own insert share-locks the liker:
    with FOR UPDATE on members, PostgreSQL deadlocked here."""
    alice = factories.user(login="13900003333", verified=True)
    bob = factories.user(login="13900004444", verified=True)
    rounds = 20
    stories = {
        member.id: [save_story(member, StoryInput(communities["ev"], f"日记 {i}", BODY, []), publish=True).id
                    for i in range(rounds)]
        for member in (alice, bob)
    }
    db.session.commit()
    cookies = {alice.id: session_cookie_for(app, alice), bob.id: session_cookie_for(app, bob)}

    def like(liker, story_id):
        def call(http):
            return http.post(f"{server.url}/stories/{story_id}/like", cookies={"session": cookies[liker.id]},
                             headers={"HX-Request": "true"}, timeout=60)
        return call

    with LiveServer(app) as server:
        for i in range(rounds):
            responses = fire_at_once([like(alice, stories[bob.id][i]), like(bob, stories[alice.id][i])])
            assert_no_server_errors(responses)
            assert [r.status_code for r in responses] == [200, 200]
    assert postings(alice, "like_received") == rounds
    assert postings(bob, "like_received") == rounds


def test_likes_and_the_authors_own_comments_on_one_story_at_the_same_moment(app, factories, writer, story):
    """A like locks the author (to pay them) and then the story's row (its kept count); the
    author's comment locks the author first too: the same order, so PostgreSQL never deadlocks
    them, and the story's counts end equal to its rows."""
    fans = [factories.user(login=f"1390001{i:04d}", verified=True) for i in range(8)]
    db.session.commit()
    own = session_cookie_for(app, writer)
    fan_cookies = [session_cookie_for(app, fan) for fan in fans]

    def like(cookie):
        def call(http):
            return http.post(f"{server.url}/stories/{story.id}/like", cookies={"session": cookie},
                             headers={"HX-Request": "true"}, timeout=60)
        return call

    with LiveServer(app) as server:
        responses = fire_at_once([like(c) for c in fan_cookies]
                                 + [post_comment(server.url, own, story.id, f"回复第 {i} 位", new_nonce())
                                    for i in range(4)])
    assert_no_server_errors(responses)
    assert all(r.status_code == 200 for r in responses)
    db.session.rollback()
    kept = db.session.get(Story, story.id)
    assert (kept.like_count, kept.comment_count) == (8, 4)
    assert count(Comment, story_id=story.id) == 4
