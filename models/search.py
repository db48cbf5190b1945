"""Search over story titles and bodies that works for Chinese (see `StoryTerm`).

Neither SQLite's FTS5 trigram tokenizer (no match under three characters) nor pg_trgm under a
C locale (ignores CJK) finds 电池, so stories keep their own inverted index: every CJK character
and every overlapping pair of CJK characters, and every latin/digit word, lower-cased. A query is
tokenized the same way (CJK runs as pairs, a lone character as itself); a story matches when it
has all the query's terms, ranked by the summed weights (title terms count three times).
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

from markupsafe import Markup, escape
from sqlalchemy import ForeignKey, String, delete, func, insert, select
from sqlalchemy.orm import Mapped, mapped_column, selectinload

from models import db

TERM_MAX = 40
QUERY_MAX = 50
RESULTS_MAX = 20
TITLE_WEIGHT = 3
COUNT_CAP = 10  # occurrences past this add nothing (no stuffing a word to rank first)

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<word>(?:(?![{_CJK}])[^\W_])+)")


class StoryTerm(db.Model):
    """An inverted index: the terms of each story (CJK characters and character pairs, latin
    words) with a weight (title terms count more), so a two-character query like 电池 finds its
    stories with an indexed lookup on SQLite and PostgreSQL alike."""

    __tablename__ = "story_terms"

    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True)
    term: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)
    weight: Mapped[int] = mapped_column(nullable=False, default=1)


def normalize(text: str) -> str:
    """Full-width letters and digits become ASCII (ＳＯＨ → soh), case folds away."""
    return unicodedata.normalize("NFKC", text or "").lower()


def _runs(text: str):
    for match in _TOKEN.finditer(normalize(text)):
        yield ("cjk", match.group("cjk")) if match.group("cjk") else ("word", match.group("word"))


def tokenize(text: str) -> Counter:
    """Index terms with their number of occurrences: each CJK character and each overlapping
    pair, each latin/digit word of two characters or more (cut to 40)."""
    terms: Counter = Counter()
    for kind, run in _runs(text):
        if kind == "cjk":
            terms.update(run)
            terms.update(run[i:i + 2] for i in range(len(run) - 1))
        elif len(run) >= 2:
            terms[run[:TERM_MAX]] += 1
    return terms


def query_terms(query: str) -> list[str]:
    """The terms a story must all have: CJK runs as pairs (a lone character as itself), words."""
    terms: list[str] = []
    for kind, run in _runs((query or "")[:QUERY_MAX]):
        if kind == "cjk":
            terms += [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]
        elif len(run) >= 2:
            terms.append(run[:TERM_MAX])
    return list(dict.fromkeys(terms))


def story_terms(title: str, body: str) -> dict[str, int]:
    title_terms, body_terms = tokenize(title), tokenize(body)
    return {
        term: min(body_terms[term], COUNT_CAP) + TITLE_WEIGHT * min(title_terms[term], COUNT_CAP)
        for term in title_terms.keys() | body_terms.keys()
    }


def reindex_story(story) -> None:
    """Replace the story's terms (the story is flushed, so it has its id)."""
    db.session.execute(delete(StoryTerm).where(StoryTerm.story_id == story.id))
    rows = [{"story_id": story.id, "term": term, "weight": weight}
            for term, weight in story_terms(story.title, story.body).items()]
    if rows:
        db.session.execute(insert(StoryTerm), rows)


def reindex_all(batch: int = 200) -> int:
    """Rebuild every story's terms (stories written before the index existed), in batches; flushes
    only. It empties the session between batches: run it on its own (a CLI command), not in a request."""
    from models.stories import Story

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


def encode_search_cursor(rank: int, story) -> str:
    from models.stories import encode_cursor

    return f"{rank}_{encode_cursor(story)}"


def decode_search_cursor(cursor: str | None):
    from models.stories import decode_cursor

    try:
        rank, rest = (cursor or "").split("_", 1)
        after = decode_cursor(rest)
        return (int(rank), *after) if after else None
    except ValueError:
        return None


def search(query: str, limit: int = RESULTS_MAX, cursor: str | None = None):
    """Published stories having every term of QUERY, best first (summed weights, then newest).

    Returns (stories, terms, next cursor or None); keyset pages on (rank, published_at, id),
    no OFFSET. Authors and communities load in bulk: three queries in all."""
    from sqlalchemy import and_, or_

    from models.stories import Story

    terms = query_terms(query)
    if not terms:
        return [], terms, None
    rank = func.sum(StoryTerm.weight)
    matches = (
        select(Story.id, rank.label("rank"))
        .join(StoryTerm, StoryTerm.story_id == Story.id)
        .where(StoryTerm.term.in_(terms), Story.status == "published")
        .group_by(Story.id, Story.published_at)
        .having(func.count() == len(terms))
    )
    after = decode_search_cursor(cursor)
    if after is not None:
        r, at, story_id = after
        matches = matches.having(or_(rank < r, and_(rank == r, or_(
            Story.published_at < at, and_(Story.published_at == at, Story.id < story_id)))))
    matches = matches.order_by(rank.desc(), Story.published_at.desc(), Story.id.desc()).limit(limit + 1).subquery()
    rows = db.session.execute(
        select(Story, matches.c.rank).join(matches, matches.c.id == Story.id)
        .options(selectinload(Story.author), selectinload(Story.community))
    ).all()
    rows.sort(key=lambda row: (-row[1], -row[0].published_at.timestamp(), -row[0].id))
    more, rows = len(rows) > limit, rows[:limit]
    return [story for story, _ in rows], terms, (encode_search_cursor(rows[-1][1], rows[-1][0]) if more else None)


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
