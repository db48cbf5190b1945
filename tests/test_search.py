"""Story search that works for Chinese: two-character and one-character queries, latin words,
ranking, only published stories, highlighting that escapes everything else. Runs on SQLite and,
with TEST_DATABASE_URL, on PostgreSQL."""
from __future__ import annotations

import re

import pytest
from markupsafe import Markup
from sqlalchemy import func, select

from models import db
from models.search import highlight, search, snippet
from models.search_index import StoryTerm, query_terms, story_terms, tokenize
from models.stories import StoryInput, save_story
from tests.html import assert_no_inline_code

BATTERY = "冬天电池续航掉了两成，SOH 还有 95%，保险公司说正常。"
SERVICE = "今天去做了第一次保养，机油和滤芯一共花了六百块，门店服务不错。"
OTHER = "周末去了一趟千岛湖，路况很好，风景非常漂亮，推荐大家去。"


@pytest.fixture
def author(factories, communities):
    return factories.user(login="13900002222", nickname="搜索老李", verified=True)


def publish(author, community, title, body, status="published"):
    story = save_story(author, StoryInput(community, title, body, []), publish=True)
    story.status = status
    db.session.commit()
    return story


@pytest.fixture
def stories(author, communities):
    ev = communities["ev"]
    return {
        "battery": publish(author, ev, "冬季续航记录", BATTERY),
        "service": publish(author, ev, "第一次去门店", SERVICE),
        "other": publish(author, ev, "千岛湖自驾", OTHER),
    }


def titles(query):
    return [s.title for s in search(query)[0]]


def test_tokenize_makes_characters_pairs_and_lowercase_words():
    terms = tokenize("电池SOH好 ok x")
    assert {"电", "池", "电池", "soh", "好", "ok"} <= set(terms)
    assert "x" not in terms and not any("池s" in t or "h好" in t for t in terms)
    assert query_terms("电池健康") == ["电池", "池健", "健康"]
    assert query_terms("电") == ["电"]
    assert query_terms("ＳＯＨ") == ["soh"]  # full-width letters fold to ASCII
    assert query_terms("a" * 60) == ["a" * 40]  # the query is cut to 50, a term to 40
    weights = story_terms("电池电池", "电池")
    assert weights["电池"] == 1 + 3 * 2


def test_saving_a_story_indexes_its_terms(author, communities, stories):
    story = stories["battery"]
    terms = set(db.session.scalars(select(StoryTerm.term).where(StoryTerm.story_id == story.id)))
    assert {"电池", "续航", "soh", "冬季"} <= terms
    save_story(author, StoryInput(communities["ev"], "换了新轮胎", "轮胎换成了米其林，噪音小了很多。", []),
               publish=True, story=story)
    db.session.commit()
    terms = set(db.session.scalars(select(StoryTerm.term).where(StoryTerm.story_id == story.id)))
    assert "轮胎" in terms and "电池" not in terms


@pytest.mark.parametrize("query, expected", [("电池", "冬季续航记录"), ("保养", "第一次去门店")])
def test_a_two_character_query_finds_the_stories_containing_it(stories, query, expected):
    assert titles(query) == [expected]


def test_a_one_character_query_works(stories):
    assert titles("湖") == ["千岛湖自驾"]
    assert set(titles("去")) == {"第一次去门店", "千岛湖自驾"}


def test_a_latin_word_matches_whatever_its_case(stories):
    assert titles("soh") == titles("SOH") == titles("Soh") == ["冬季续航记录"]


def test_every_term_must_match(stories):
    assert titles("电池 保养") == []
    assert titles("电池 SOH") == ["冬季续航记录"]
    assert titles("不存在的词") == []


def test_a_title_match_ranks_above_a_body_only_match(author, communities, stories):
    body_only = publish(author, communities["ev"], "随便写写", "这次说说电池的事情，没什么特别。")
    in_title = publish(author, communities["ev"], "电池衰减怎么办", "说说我的经历，心得分享给大家。")
    found = titles("电池")
    assert found[0] == in_title.title
    assert set(found) == {in_title.title, body_only.title, "冬季续航记录"}


def test_hidden_draft_review_and_deleted_stories_never_appear(author, communities, stories):
    for status in ("hidden", "review", "deleted"):
        publish(author, communities["ev"], f"电池{status}", "电池的故事，不该被搜到。", status=status)
    draft = save_story(author, StoryInput(communities["ev"], "电池草稿", "电池的草稿，不该被搜到。", []), publish=False)
    db.session.commit()
    assert draft.status == "draft"
    assert db.session.scalar(select(func.count()).select_from(StoryTerm).where(StoryTerm.term == "电池")) >= 5
    assert titles("电池") == ["冬季续航记录"]


def test_highlighting_wraps_matches_and_escapes_the_rest():
    marked = highlight("<script>alert(1)</script>电池SOH", ["电池", "soh"])
    assert isinstance(marked, Markup)
    assert str(marked) == "&lt;script&gt;alert(1)&lt;/script&gt;<mark>电池SOH</mark>"
    assert str(highlight("保养保养", ["保养"])) == "<mark>保养保养</mark>"
    long = "开头" * 40 + "这里有电池" + "结尾" * 80
    piece = str(snippet(long, ["电池"]))
    assert piece.startswith("…") and piece.endswith("…") and "<mark>电池</mark>" in piece


def test_the_search_page_highlights_and_escapes(client, author, communities, stories):
    publish(author, communities["ev"], "<script>电池</script>", "标题里有脚本，电池也在这里。")
    page = client.get("/stories/search", query_string={"q": "电池"}).get_data(as_text=True)
    assert "&lt;script&gt;<mark>电池</mark>&lt;/script&gt;" in page
    assert "<script>电池" not in page
    assert "<mark>电池</mark>" in page and page.count('class="story-card search-result"') == 2
    assert_no_inline_code(page)
    assert "千岛湖" not in page


def test_the_search_page_empty_long_and_hostile_queries(client, stories):
    empty = client.get("/stories/search")
    assert empty.status_code == 200 and 'class="muted search-empty"' in empty.get_data(as_text=True)
    page = client.get("/stories/search", query_string={"q": "<b>电池</b>"}).get_data(as_text=True)
    assert "<b>电池" not in page and "&lt;b&gt;" in page
    long = client.get("/stories/search", query_string={"q": "电池" + "好" * 100})
    assert long.status_code == 200 and "好" * 48 in long.get_data(as_text=True)
    assert "好" * 49 not in long.get_data(as_text=True)
    fragment = client.get("/stories/search", query_string={"q": "保养"}, headers={"HX-Request": "true"})
    assert "<html" not in fragment.get_data(as_text=True) and "<mark>保养</mark>" in fragment.get_data(as_text=True)


def test_the_home_page_has_a_search_box(client):
    page = client.get("/").get_data(as_text=True)
    assert 'action="/stories/search"' in page and 'name="q"' in page


def test_search_costs_the_same_queries_whatever_the_results(client, author, communities, count_queries, stories):
    def queries():
        with count_queries() as counter:
            assert client.get("/stories/search", query_string={"q": "电池"}).status_code == 200
        return counter["n"]

    few = queries()
    for i in range(6):
        publish(author, communities["ev"], f"电池故事{i}", "又一个关于电池的故事。")
    assert queries() == few


def test_search_pages_with_a_cursor_neither_skip_nor_repeat(client, author, communities, stories):
    made = [publish(author, communities["ev"], f"电池笔记{i:02d}", "电池" * (i % 4 + 1) + "的一些记录，写给自己看看。")
            for i in range(23)]
    everything = search("电池", limit=100)[0]
    paged, cursor = [], None
    while True:
        page, _, cursor = search("电池", limit=4, cursor=cursor)
        paged += page
        if cursor is None:
            break
    assert [s.id for s in paged] == [s.id for s in everything] and len(paged) == 24
    ranks = [min(i % 4 + 1, 10) for i in range(23)]
    assert paged[0].id == max(zip(ranks, [s.id for s in made]))[1]  # most occurrences, then newest

    first = client.get("/stories/search", query_string={"q": "电池"}).get_data(as_text=True)
    assert first.count('class="story-card search-result"') == 20 and 'hx-trigger="revealed"' in first
    url = first.split('hx-get="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    rest = client.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in rest and rest.count('class="story-card search-result"') == 4
    assert "hx-get" not in rest
    ids = re.findall(r'id="result-(\d+)"', first + rest)
    assert len(ids) == len(set(ids)) == 24


def test_reindex_all_rebuilds_the_index(stories):
    from sqlalchemy import delete

    from models.search import reindex_all

    db.session.execute(delete(StoryTerm))
    db.session.commit()
    assert titles("电池") == []
    assert reindex_all(batch=2) == 3
    db.session.commit()
    assert titles("电池") == ["冬季续航记录"] and titles("保养") == ["第一次去门店"]


def test_a_common_term_ranks_only_its_best_candidates(monkeypatch, author, communities, stories):
    """A word in every story costs the same as a rare one: a query of several terms ranks the
    best-weighted CANDIDATES_MAX stories of its rarest term, read in order from the index; a
    one-term query reads its page straight from the index, so it has no cap at all."""
    import models.search

    monkeypatch.setattr(models.search, "CANDIDATES_MAX", 5)
    plain = [publish(author, communities["ev"], f"随手记{i}", "今天聊聊电池的保温。") for i in range(8)]
    titled = publish(author, communities["ev"], "电池电池", "标题里就有两次电池的保温。")
    found = [s.id for s in search("电池", limit=100)[0]]
    assert found[0] == titled.id and len(found) > 9  # every match, the fixture's stories too
    assert [i for i in found if i in {s.id for s in plain}] == [s.id for s in reversed(plain)]  # newest first
    found = search("电池 保温", limit=100)[0]
    assert len(found) == 5 and found[0].id == titled.id  # the title match first, then the newest
    assert [s.id for s in found[1:]] == [s.id for s in reversed(plain)][:4]


def test_the_rarest_term_picks_the_candidates(monkeypatch, author, communities, stories):
    import models.search

    monkeypatch.setattr(models.search, "CANDIDATES_MAX", 3)
    for i in range(6):
        publish(author, communities["ev"], f"电池日记{i}", "电池电池电池，又是电池。")
    oldest_with_both = publish(author, communities["ev"], "一次保养", "顺便请师傅看了看电池的健康度。")
    for i in range(3):
        publish(author, communities["ev"], f"电池日记后{i}", "电池电池电池，还是电池。")
    # 电池 has ten stories, 保养 two: the candidates are 保养's, so the story with both is found
    # although it is far from 电池's best three.
    assert [s.id for s in search("电池 保养")[0]] == [oldest_with_both.id]
