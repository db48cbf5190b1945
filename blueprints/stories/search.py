"""Story search (titles and bodies, Chinese included) with highlighted matches."""
from __future__ import annotations

from flask import request, url_for

from blueprints.access import wants_fragment
from blueprints.stories.routes import bp
from blueprints.web import render
from models.search import highlight, search as search_stories, snippet
from models.search_index import QUERY_MAX


@bp.get("/search")
def search():
    """`?q=`: published stories having every term, best first, 20 a page with a cursor
    (infinite scroll); an empty query shows a hint. An htmx request for a next page gets
    only the results."""
    query = " ".join((request.args.get("q") or "").split())[:QUERY_MAX]
    cursor = request.args.get("cursor")
    stories, terms, next_cursor = search_stories(query, cursor=cursor) if query else ([], [], None)
    results = [(story, highlight(story.title, terms), snippet(story.plain_text, terms)) for story in stories]
    more_url = url_for("stories.search", q=query, cursor=next_cursor) if next_cursor else None
    context = dict(query=query, terms=terms, results=results, more_url=more_url)
    if cursor and wants_fragment():
        return render("stories/search.html", "stories/_search_items.html", **context)
    return render("stories/search.html", "stories/_search_results.html", **context)
