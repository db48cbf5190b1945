"""The comments under a story come a page at a time (issue #13): newest threads first, 20 to a
page with their replies, "load more" (htmx) or `?after=` pages (without JS) that neither skip nor
repeat; one reply form and one report form for the whole page; a posted or deleted comment
answers with itself only. A story with 200 comments stays a small page."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from models import db
from models.engagement import COMMENTS_PAGE, Comment, add_comment
from models.nonces import new_nonce
from models.stories import StoryInput, save_story

HX = {"HX-Request": "true"}


@pytest.fixture
def writer(factories, communities):
    return factories.user(login="13900001111", nickname="电车老王", verified=True)


@pytest.fixture
def story(writer, communities):
    story = save_story(writer, StoryInput(communities["ev"], "冬天续航实测", "提车三个月，冬天续航掉了两成。", []), publish=True)
    db.session.commit()
    return story


@pytest.fixture
def readers(factories):
    return [factories.user(login=f"1380000{n:04d}", nickname=f"车友{n}", verified=True) for n in range(4)]


def _comment_ids(html: str) -> list[int]:
    """Top-level and reply ids in the order the page shows them."""
    return [int(n) for n in re.findall(r'<li class="comment[^"]*" id="comment-(\d+)"', html)]


def _more(html: str) -> str | None:
    found = re.search(r'<li class="load-more" hx-get="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def _write(story, readers, n: int) -> list[Comment]:
    made = [add_comment(story, readers[i % len(readers)], f"第 {i} 条评论") for i in range(n)]
    db.session.commit()
    return made


def test_newest_threads_first_a_page_at_a_time_none_skipped_none_repeated(login_as, story, readers):
    made = _write(story, readers, 2 * COMMENTS_PAGE + 5)
    oldest = made[0]
    reply = add_comment(story, readers[1], "楼主说得对", parent_id=oldest.id)
    db.session.commit()
    client = login_as(readers[0])
    page = client.get(f"/stories/{story.id}").get_data(as_text=True)
    first = _comment_ids(page)
    assert first == [c.id for c in reversed(made)][:COMMENTS_PAGE], "the newest 20 threads, newest first"
    seen, url, pages = list(first), _more(page), 1
    late = add_comment(story, readers[2], "翻页时新来的一条")  # written while the member scrolls
    db.session.commit()
    while url:
        fragment = client.get(url, headers=HX).get_data(as_text=True)
        assert "<html" not in fragment and 'id="comments"' not in fragment, "the next items only"
        seen += _comment_ids(fragment)
        url, pages = _more(fragment), pages + 1
    expected = [c.id for c in reversed(made)]
    expected.insert(expected.index(oldest.id) + 1, reply.id)  # a reply right under its thread
    assert seen == expected and pages == 3
    assert late.id not in seen, "a comment written meanwhile waits for the top of the list"


def test_without_js_older_comments_are_pages_of_their_own(login_as, story, readers):
    made = _write(story, readers, COMMENTS_PAGE + 3)
    client = login_as(readers[0])
    page = client.get(f"/stories/{story.id}").get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)#comments">更早的评论</a>', page).group(1).replace("&amp;", "&")
    older = client.get(link).get_data(as_text=True)
    assert "<html" in older and "回到最新评论" in older
    assert _comment_ids(older) == [c.id for c in reversed(made[:3])]
    assert 'id="comment-form-new"' in older, "the comment box is on every page"


def test_one_reply_form_and_one_report_form_serve_the_whole_page(login_as, story, readers, writer):
    _write(story, readers, COMMENTS_PAGE)
    html = login_as(writer).get(f"/stories/{story.id}").get_data(as_text=True)
    assert html.count("<textarea") == 2, "the comment box and the one reply form"
    assert html.count('action="/moderation/report"') == 1, "one for every comment (the story is the viewer's own)"
    assert html.count('data-actions="reply report"') == COMMENTS_PAGE, "each comment names its actions"
    assert html.count('data-opens="reply-panel"') == html.count('data-opens="report-comment"') == 1, "in one menu"


def test_a_page_of_comments_fragment_stays_small(login_as, story, readers, writer):
    """The next page htmx appends: 20 threads, with no per-comment copy of a menu or form."""
    _write(story, readers, COMMENTS_PAGE + 5)
    client = login_as(writer)
    rest = client.get(_more(client.get(f"/stories/{story.id}").get_data(as_text=True)), headers=HX)
    assert rest.status_code == 200 and len(_comment_ids(rest.get_data(as_text=True))) == 5
    full = client.get(f"/stories/{story.id}").get_data(as_text=True)
    page = full.split('<ol class="comment-list" id="comment-list">')[1].split('<div id="comment-panels">')[0]
    assert len(page.encode()) <= 20 * 900, f"{len(page.encode()):,} bytes for 20 comments"


def test_a_story_with_200_comments_is_a_small_page(login_as, story, readers):
    _write(story, readers, 200)
    response = login_as(readers[0]).get(f"/stories/{story.id}")
    assert response.status_code == 200
    assert len(response.data) <= 60_000, f"{len(response.data):,} bytes"
    assert len(_comment_ids(response.get_data(as_text=True))) == COMMENTS_PAGE


def test_a_posted_comment_answers_with_itself_and_a_fresh_form(login_as, story, readers):
    _write(story, readers, 30)
    client = login_as(readers[1])
    sent = new_nonce()
    response = client.post(f"/stories/{story.id}/comments", headers=HX, data={"nonce": sent, "body": "我也是", "form": "new"})
    html = response.get_data(as_text=True)
    created = db.session.scalar(select(Comment).order_by(Comment.id.desc()))
    assert response.status_code == 200 and _comment_ids(html) == [created.id]
    assert response.headers["HX-Retarget"] == "#comment-list" and response.headers["HX-Reswap"] == "afterbegin"
    form = re.search(r'<form class="comment-form" id="comment-form-new"[^>]*hx-swap-oob="true">', html)
    nonce = re.search(r'name="nonce" value="([^"]+)"', html).group(1)
    assert form and nonce != sent, "a fresh box with a new one-time nonce"
    assert len(response.data) < 5_000

    again = client.post(f"/stories/{story.id}/comments", headers=HX, data={"nonce": sent, "body": "我也是", "form": "new"})
    assert again.status_code == 204, "a double tap adds nothing to the page"
    assert db.session.scalar(select(db.func.count()).select_from(Comment)) == 31

    reply = client.post(f"/stories/{story.id}/comments", headers=HX,
                        data={"nonce": new_nonce(), "body": "补充", "parent_id": created.id, "form": "shared"})
    answer = reply.get_data(as_text=True)
    assert reply.headers["HX-Retarget"] == f"#replies-{created.id}" and reply.headers["HX-Reswap"] == "beforeend"
    assert re.search(r'<div class="comment-panel" id="reply-panel" data-shared hidden hx-swap-oob="true">', answer), \
        "the shared reply form closes, fresh"
    assert len(_comment_ids(answer)) == 1


def test_without_js_a_reply_on_a_later_page_leads_to_its_thread(login_as, story, readers):
    made = _write(story, readers, COMMENTS_PAGE + 5)
    client = login_as(readers[2])
    response = client.post(f"/stories/{story.id}/comments", data={"nonce": new_nonce(), "body": "老帖回复", "parent_id": made[0].id})
    assert response.status_code == 302 and "after=" in response.headers["Location"]
    reply = db.session.scalar(select(Comment).where(Comment.parent_id == made[0].id))
    assert response.headers["Location"].endswith(f"#comment-{reply.id}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert _comment_ids(page)[:2] == [made[0].id, reply.id], "the thread opens the page, its reply under it"


def test_a_deleted_comment_leaves_the_page_or_stays_as_a_placeholder(login_as, story, readers):
    alone, answered = _write(story, readers[:1], 2)
    add_comment(story, readers[1], "回复一下", parent_id=answered.id)
    db.session.commit()
    client = login_as(readers[0])
    gone = client.post(f"/stories/comments/{alone.id}/delete", headers=HX)
    assert gone.headers["HX-Retarget"] == f"#comment-{alone.id}" and gone.headers["HX-Reswap"] == "delete"
    kept = client.post(f"/stories/comments/{answered.id}/delete", headers=HX).get_data(as_text=True)
    assert "评论已删除" in kept and "回复一下" in kept and "第 1 条评论" not in kept
    assert kept.lstrip().startswith(f'<li class="comment" id="comment-{answered.id}">')


def test_cached_comments_show_each_member_their_own_actions_and_token(app, login_as, story, readers, csrf_on):
    """A comment's head and text are rendered once per process (blueprints/fragments.py): the
    author still sees their own delete form with this session's token (and it deletes), another member
    sees the shared menu with reply and report, and the author's new name shows at once."""
    mine = add_comment(story, readers[0], "冬天开座椅加热更省电")
    db.session.commit()
    author, other = login_as(readers[0]), login_as(readers[1])

    def head(client):
        page = client.get(f"/stories/{story.id}").get_data(as_text=True)
        token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
        item = re.search(rf'<li class="comment" id="comment-{mine.id}">.*?</li>', page, re.S).group(0)
        return item, token

    first, _ = head(other)
    again, _ = head(other)
    assert again == first and app.extensions["fragments"].hits >= 1
    assert 'data-actions="reply report"' in first and "delete" not in first
    head(login_as(readers[0]))  # the author's other phone: its own session and token
    own, token = head(author)
    form_token = re.search(r'name="csrf_token" value="([^"]+)"', own).group(1)
    assert "\x00" not in own and form_token == token and "data-actions" not in own

    readers[0].nickname = "座椅加热党"
    db.session.commit()
    assert "座椅加热党" in head(other)[0]
    gone = author.post(f"/stories/comments/{mine.id}/delete", data={"csrf_token": form_token})
    assert gone.status_code in (200, 302, 303), gone.status_code
    assert db.session.get(Comment, mine.id).status == "deleted"
