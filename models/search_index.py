"""The search index of stories: their terms, kept up to date whenever a story is saved.

Neither SQLite's FTS5 trigram tokenizer (no match under three characters) nor pg_trgm under a
C locale (ignores CJK) finds 电池, so stories keep their own inverted index: every CJK character
and every overlapping pair of CJK characters, and every latin/digit word, lower-cased. A query is
tokenized the same way (`query_terms`). This module knows stories only by their title, body and
id, so `models/stories.py` reindexes on save and `models/search.py` (the queries) builds on both.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

from sqlalchemy import ForeignKey, Index, String, delete, insert
from sqlalchemy.orm import Mapped, mapped_column

from models import db

TERM_MAX = 40
QUERY_MAX = 50
TITLE_WEIGHT = 3
COUNT_CAP = 10  # occurrences past this add nothing (no stuffing a word to rank first)

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<word>(?:(?![{_CJK}])[^\W_])+)")


class StoryTerm(db.Model):
    """An inverted index: the terms of each story (CJK characters and character pairs, latin
    words) with a weight (title terms count more), so a two-character query like 电池 finds its
    stories with an indexed lookup on SQLite and PostgreSQL alike."""

    __tablename__ = "story_terms"
    # A term's stories best-weighted first, read in order and capped by a search.
    __table_args__ = (Index("ix_story_terms_ranked", "term", "weight", "story_id"),)

    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True)
    term: Mapped[str] = mapped_column(String(40), primary_key=True)
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
