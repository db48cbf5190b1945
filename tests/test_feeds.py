"""Feeds: "newest" and "hot" (likes and comments decayed by age) on the home and community
pages, cursors that neither skip nor repeat while likes arrive, counts and like state on the
cards, and a constant number of queries per page for both orders."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from models import db
from models.engagement import Comment, StoryLike
from models.stories import (FEED_SIZE, HOT_WINDOW_DAYS, StoryInput, StoryPhoto, HOT_HALF_LIFE_HOURS, card_stats, feed, heat,
                            recount_stories, save_story)
from models.types import utcnow
from tests.html import assert_no_inline_code

BODY = "提车三个月，电池健康度还是 98%，冬天续航掉了两成。"


@pytest.fixture
def author(factories, communities):
    return factories.user(login="13900003333", nickname="热门老张", verified=True)


@pytest.fixture
def fans(factories):
    return [factories.user() for _ in range(12)]


def make_story(author, community, title, hours_ago: float, photo=True):
    story = save_story(author, StoryInput(community, title, BODY, []), publish=True)
    story.published_at = utcnow() - timedelta(hours=hours_ago)
    if photo:
        story.photos = [StoryPhoto(full_key=f"photos/x/{title}.jpg", thumb_key=f"photos/x/{title}_t.jpg", width=1, height=1)]
    db.session.commit()
    return story


def like(story, users, at=None):
    for user in users:
        db.session.add(StoryLike(story_id=story.id, user_id=user.id, created_at=at or utcnow()))
    recount_stories()  # rows written directly (with their times): the kept counts follow them
    db.session.commit()


def comment(story, users, status="published"):
    for user in users:
        db.session.add(Comment(story_id=story.id, author_id=user.id, body="说得好", status=status))
    recount_stories()
    db.session.commit()


def card_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'id="story-card-(\d+)"', html)]


def next_url(html: str) -> str | None:
    match = re.search(r'hx-get="([^"]+)"', html)
    return match.group(1).replace("&amp;", "&") if match else None


def test_heat_rewards_likes_and_comments_and_halves_every_half_life():
    now = utcnow()
    assert heat(3, 0, now) < heat(1, 2, now)  # a comment counts twice
    assert heat(5, 0, now - timedelta(hours=10)) < heat(5, 0, now - timedelta(hours=1))
    # Twice the engagement (likes + 2 × comments + 1) is worth exactly one half-life of age.
    older = now - timedelta(hours=HOT_HALF_LIFE_HOURS)
    assert heat(1, 0, older) == pytest.approx(heat(0, 0, now)) and heat(3, 2, older) == pytest.approx(heat(3, 0, now))


def test_a_story_keeps_its_heat_through_likes_comments_and_moderation(author, communities, fans):
    """The kept score is always the score of the kept counts, and `stories verify` says so."""
    from models.engagement import add_comment, delete_comment, like as like_story, unlike
    from models.stories import verify_story_counts

    story = make_story(author, communities["ev"], "热度跟着计数走", hours_ago=5)
    for fan in fans[:4]:
        like_story(story, fan)
    comment_ = add_comment(story, author, "谢谢大家")
    unlike(story, fans[1])
    db.session.commit()
    assert story.hot_score == pytest.approx(heat(3, 1, story.published_at))
    delete_comment(comment_)
    db.session.commit()
    assert story.hot_score == pytest.approx(heat(3, 0, story.published_at)) and verify_story_counts() == (0, [])
    story.hot_score += 1
    db.session.commit()
    wrong, lines = verify_story_counts()
    assert wrong == 1 and f"story {story.id}: hot score kept" in lines[0]


def test_hot_order_reflects_likes_comments_and_age(author, communities, fans):
    ev = communities["ev"]
    fresh_quiet = make_story(author, ev, "新但没人看", hours_ago=1)
    fresh_liked = make_story(author, ev, "新且有人赞", hours_ago=1)
    fresh_discussed = make_story(author, ev, "新且有人评论", hours_ago=1)
    old_liked = make_story(author, ev, "老但很多赞", hours_ago=48)
    ancient = make_story(author, ev, "一个多月前", hours_ago=24 * (HOT_WINDOW_DAYS + 1))
    like(fresh_liked, fans[:3])
    comment(fresh_discussed, fans[:3])
    like(old_liked, fans[:10])
    like(ancient, fans)
    comment(fresh_discussed, fans[3:5], status="hidden")  # hidden comments count for nothing

    stories, cursor = feed(community_ids=[ev.id], sort="hot")
    assert [s.id for s in stories] == [fresh_discussed.id, fresh_liked.id, fresh_quiet.id, old_liked.id]
    assert cursor is None and ancient.id not in [s.id for s in stories]  # hot ranks the last 30 days
    newest, _ = feed(community_ids=[ev.id], sort="newest")
    assert [s.id for s in newest] == [fresh_discussed.id, fresh_liked.id, fresh_quiet.id, old_liked.id, ancient.id]


def test_paging_hot_while_likes_arrive_neither_skips_nor_repeats(client, author, communities, fans):
    """The first page fixes the reference time; the cursor carries it with the last story's
    (score, id), and every page scores the likes and comments made by then. Likes arriving
    between pages — even enough to lift the last story to the first page — change nothing."""
    ev = communities["ev"]
    stories = [make_story(author, ev, f"热门 {i:02d}", hours_ago=1 + i, photo=False) for i in range(25)]
    for i, story in enumerate(stories[:8]):
        like(story, fans[: 8 - i])

    first = client.get("/c/ev?sort=hot").get_data(as_text=True)
    seen = card_ids(first)
    assert len(seen) == FEED_SIZE and 'hx-trigger="revealed"' in first and "sort=hot" in next_url(first)
    url = next_url(first)
    like(stories[-1], fans)  # the last-ranked story would jump ahead...
    like(stories[FEED_SIZE + 2], fans[:6])
    comment(stories[FEED_SIZE + 3], fans[:6])
    late = make_story(author, ev, "翻页时新发的", hours_ago=0, photo=False)  # ...and a new story arrives
    extra = iter(fans)
    while url:
        page = client.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
        assert "<html" not in page
        seen += card_ids(page)
        url = next_url(page)
        like(stories[-2], [next(extra)])
    assert len(seen) == 25 and len(set(seen)) == 25 and late.id not in seen
    assert seen[-1] == stories[-1].id  # ranked where it stood at the reference time

    fresh = [s.id for s in feed(community_ids=[ev.id], sort="hot", size=100)[0]]  # a new load sees the likes
    assert fresh.index(stories[-1].id) < 2 * FEED_SIZE - 5 and len(fresh) == 26 and late.id in fresh


def test_hot_cursor_pages_match_one_big_page(author, communities, fans):
    ev = communities["ev"]
    stories = [make_story(author, ev, f"故事 {i:02d}", hours_ago=(i * 7) % 23 + 0.5, photo=False) for i in range(23)]
    for i, story in enumerate(stories):
        like(story, fans[: i % 5])
    everything, _ = feed(community_ids=[ev.id], sort="hot", size=100)
    paged, cursor = feed(community_ids=[ev.id], sort="hot", size=4)
    while cursor:
        page, cursor = feed(community_ids=[ev.id], sort="hot", size=4, cursor=cursor)
        paged += page
    assert [s.id for s in paged] == [s.id for s in everything] and len(paged) == 23


def test_a_garbled_cursor_starts_from_the_top(author, communities):
    story = make_story(author, communities["ev"], "只有一个", hours_ago=1)
    for cursor in ("h_x_1_2", "h_1_nan_3", "garbage", "h_99999999999999999999999_1.0_1", "1-2-3"):
        for sort in ("hot", "newest"):
            assert [s.id for s in feed(community_ids=[story.community_id], sort=sort, cursor=cursor)[0]] in ([story.id], [])


@pytest.mark.parametrize("path", ["/", "/c/ev"])
@pytest.mark.parametrize("sort", ["newest", "hot"])
def test_htmx_gets_only_the_cards_and_a_normal_request_the_page(client, author, communities, path, sort):
    for i in range(FEED_SIZE + 3):
        make_story(author, communities["ev"], f"卡片 {i:02d}", hours_ago=i + 1)
    full = client.get(f"{path}?sort={sort}").get_data(as_text=True)
    assert_no_inline_code(full)
    assert "<html" in full and 'aria-current="true"' in full and len(card_ids(full)) == FEED_SIZE
    url = next_url(full)
    assert f"sort={sort}" in url
    fragment = client.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and len(card_ids(fragment)) == 3
    assert not set(card_ids(fragment)) & set(card_ids(full))
    again = client.get(url).get_data(as_text=True)  # the same URL without htmx: the full page
    assert "<html" in again


def test_cards_show_counts_and_the_viewers_like(login_as, author, communities, fans):
    ev = communities["ev"]
    liked = make_story(author, ev, "被赞过", hours_ago=2)
    other = make_story(author, ev, "没被我赞", hours_ago=1)
    like(liked, [author, *fans[:2]])
    like(other, fans[:4])
    comment(liked, fans[:2])
    comment(liked, fans[2:3], status="hidden")
    stats = card_stats([liked, other], author)
    assert (stats[liked.id].likes, stats[liked.id].comments, stats[liked.id].liked) == (3, 2, True)
    assert (stats[other.id].likes, stats[other.id].comments, stats[other.id].liked) == (4, 0, False)
    page = login_as(author).get("/c/ev").get_data(as_text=True)
    assert '"card-likes liked" data-likes="3"' in page and '"card-likes" data-likes="4"' in page
    assert 'data-comments="2"' in page
    anonymous = card_stats([liked], None)
    assert anonymous[liked.id].liked is False and anonymous[liked.id].likes == 3


def test_a_feed_page_costs_the_same_queries_for_both_orders(login_as, author, communities, fans, count_queries):
    client = login_as(author)
    ev = communities["ev"]
    story = make_story(author, ev, "第一篇", hours_ago=1)
    like(story, fans[:2])
    paths = [f"{p}?sort={s}" for p in ("/", "/c/ev") for s in ("newest", "hot")]

    def queries(path):
        with count_queries() as counter:
            assert client.get(path).status_code == 200
        return counter["n"]

    few = {p: queries(p) for p in paths}
    for i in range(14):
        more = make_story(author, ev, f"更多 {i:02d}", hours_ago=i + 2)
        like(more, fans[: i % 4])
        comment(more, fans[: i % 3])
    like(more, [author])
    many = {p: queries(p) for p in paths}
    assert many == few, (few, many)
    print("queries per feed page:", many)


def test_a_cached_card_shows_every_change_a_member_would_notice(app, client, author, fans, communities):
    """Cards are rendered once per process and reused (blueprints/fragments.py); whatever changes
    what a card says makes a new one: a like, an edit, the author's new name, the language."""
    # Five and a half minutes old: "min ago" at any hour (hours old would read "yesterday" just after
    # Shanghai's midnight), and half a minute from the next minute's text.
    story = make_story(author, communities["ev"], "冬天续航实测", hours_ago=5.5 / 60)
    cache = app.extensions["fragments"]

    def card():
        page = client.get("/").get_data(as_text=True)
        return re.search(rf'<article class="story-card" id="story-card-{story.id}">.*?</article>', page, re.S).group(0)

    first = card()
    assert "冬天续航实测" in first and "热门老张" in first and 'data-likes="0"' in first
    assert card() == first and cache.hits >= 1, "the second view reuses the rendered card"

    like(story, fans[:3])
    assert 'data-likes="3"' in card()

    save_story(author, StoryInput(communities["ev"], "冬天续航实测（更新）", "开了暖风以后掉得更多。", []), publish=True, story=story)
    db.session.commit()
    edited = card()
    assert "冬天续航实测（更新）" in edited and "开了暖风以后掉得更多" in edited

    author.nickname = "改名老张"
    db.session.commit()
    assert "改名老张" in card()

    client.post("/lang", data={"lang": "en"})
    english = card()
    assert "likes" in english and "5 min ago" in english and english != edited
