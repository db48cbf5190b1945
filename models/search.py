"""Search over story titles and bodies that works for Chinese, and its highlighting.

Stories keep their own inverted index of CJK characters, CJK pairs and latin words
(`StoryTerm`, models/search_index.py). A query is tokenized the same way (CJK runs as pairs, a
lone character as itself); a story matches when it has all the query's terms, ranked by the
summed weights (title terms count three times).
"""
from __future__ import annotations

from markupsafe import Markup, escape
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import joinedload

from models import cursors, db
from models.search_index import StoryTerm, normalize, query_terms, reindex_story
from models.stories import Story

RESULTS_MAX = 20
CANDIDATES_MAX = 1000  # stories a query ranks at most: see `search`


def reindex_all(batch: int = 200) -> int:
    """Rebuild every story's terms (stories written before the index existed), in batches; flushes
    only. It empties the session between batches: run it on its own (a CLI command), not in a request."""
    count, last_id = 0, 0
    while True:
        stories = list(db.session.scalars(select(Story).where(Story.id > last_id).order_by(Story.id).limit(batch)))
        if not stories:
            return count
        for story in stories:
            reindex_story(story)
        count, last_id = count + len(stories), stories[-1].id
        db.session.flush()
        db.session.expunge_all()


def search(query: str, limit: int = RESULTS_MAX, cursor: str | None = None):
    """Published stories having every term of QUERY, best first (summed weights, then newest
    written), among at most CANDIDATES_MAX candidates.

    The candidates are the best-weighted stories of the query's rarest term, read in order
    from the index (term, weight, story id), so a common word costs the same as a rare one:
    for a one-term query they are exactly the best results; for more terms, a story outside
    its rarest term's best CANDIDATES_MAX is not found (past that many, a member refines the
    query rather than scrolls). Returns (stories, terms, next cursor or None); keyset pages on
    (rank, id), no OFFSET. Two queries at most, with the cards' authors and communities (one for
    a single term, whose page is read from the index directly: `_search_one`)."""
    terms = query_terms(query)
    if not terms:
        return [], terms, None
    after = cursors.decode("search", cursor, int, int)
    if len(terms) == 1:
        return _search_one(terms, limit, after)
    candidates = (select(StoryTerm.story_id).where(StoryTerm.term == _rarest(terms))
                  .order_by(StoryTerm.weight.desc(), StoryTerm.story_id.desc()).limit(CANDIDATES_MAX))
    rank = func.sum(StoryTerm.weight)
    matches = (
        select(StoryTerm.story_id.label("id"), rank.label("rank"))
        .where(StoryTerm.story_id.in_(candidates), StoryTerm.term.in_(terms))
        .group_by(StoryTerm.story_id)
        .having(func.count() == len(terms))
    )
    if after is not None:
        r, story_id = after
        matches = matches.having(or_(rank < r, and_(rank == r, StoryTerm.story_id < story_id)))
    matches = matches.subquery()
    return _page(select(Story, matches.c.rank).join(matches, matches.c.id == Story.id)
                 .order_by(matches.c.rank.desc(), Story.id.desc()), terms, limit)


def _search_one(terms: list[str], limit: int, after: tuple[int, int] | None):
    """A one-term query's page, read straight from the index in rank order (its rank is the
    term's weight): nothing to add up, so no candidate cap and no sort, one page of rows read."""
    weight = StoryTerm.weight
    query = (select(Story, weight).join(StoryTerm, StoryTerm.story_id == Story.id).where(StoryTerm.term == terms[0])
             .order_by(weight.desc(), StoryTerm.story_id.desc()))
    if after is not None:
        r, story_id = after
        query = query.where(or_(weight < r, and_(weight == r, StoryTerm.story_id < story_id)))
    return _page(query, terms, limit)


def _page(query, terms: list[str], limit: int):
    rows = db.session.execute(
        query.where(Story.status == "published").limit(limit + 1)
        .options(joinedload(Story.author), joinedload(Story.community))
    ).all()
    more, rows = len(rows) > limit, rows[:limit]
    return [story for story, _ in rows], terms, (cursors.encode("search", rows[-1][1], rows[-1][0].id) if more else None)


def _rarest(terms: list[str]) -> str:
    """The term fewest stories have (counting each to CANDIDATES_MAX + 1 only): one query, none
    for a single term."""
    if len(terms) == 1:
        return terms[0]
    capped = [select(func.count()).select_from(
        select(StoryTerm.story_id).where(StoryTerm.term == term).limit(CANDIDATES_MAX + 1).subquery()
    ).scalar_subquery() for term in terms]
    counts = db.session.execute(select(*capped)).one()
    return min(zip(counts, range(len(terms)), terms))[2]


# -- highlighting: everything escaped, matches wrapped in <mark> -----------------------------

def _spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Where TERMS occur in TEXT (case- and width-insensitive), as merged (start, end) ranges."""
    folded, origin = [], []
    for i, ch in enumerate(text):
        for f in normalize(ch):
            folded.append(f)
            origin.append(i)
    folded_text = "".join(folded)
    spans = []
    for term in terms:
        start = folded_text.find(term)
        while start != -1:
            spans.append((origin[start], origin[start + len(term) - 1] + 1))
            start = folded_text.find(term, start + 1)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def highlight(text: str, terms: list[str]) -> Markup:
    """TEXT escaped, with each match of TERMS in <mark>."""
    out, at = Markup(""), 0
    for start, end in _spans(text, terms):
        out += escape(text[at:start]) + Markup("<mark>") + escape(text[start:end]) + Markup("</mark>")
        at = end
    return out + escape(text[at:])


def snippet(body: str, terms: list[str], before: int = 30, width: int = 120) -> Markup:
    """A stretch of BODY around its first match, highlighted (the opening when nothing matches)."""
    text = " ".join((body or "").split())
    spans = _spans(text, terms)
    start = max(0, spans[0][0] - before) if spans else 0
    end = min(len(text), start + width)
    piece = highlight(text[start:end], terms)
    return (Markup("…") if start else Markup("")) + piece + (Markup("…") if end < len(text) else Markup(""))
