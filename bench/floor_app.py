"""The floor of `make bench` (issue #13): the least a page of 20 story cards can cost here.

A bare Flask + Jinja app — no Flask-Login, no session, no Babel, no CSRF, no compression —
that reads the 20 newest published stories with their authors from the same `stories`
table in ONE query and renders them as cards. Every Cheyou page is measured as a ratio to it,
served by the same gunicorn settings on the same database in the same run.

    DATABASE_URL=sqlite:///… gunicorn -w 2 bench.floor_app:app    # from the project's root
"""
from __future__ import annotations

import os

from flask import Flask, render_template
from jinja2 import DictLoader
from sqlalchemy import create_engine, text

CARDS = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>车友圈 · floor</title></head>
<body><main>
{% for story in stories %}
  <article class="card">
    <h2><a href="/stories/{{ story.id }}">{{ story.title }}</a></h2>
    <p>{{ story.body | truncate(80) }}</p>
    <footer>{{ story.nickname }} · {{ story.published_at | string | truncate(16, True, "") }}</footer>
  </article>
{% endfor %}
</main></body></html>
"""

# The same keyset the app's "newest" feed walks (ix_stories_feed: status, published_at, id).
NEWEST = text(
    "SELECT s.id, s.title, s.body, s.published_at, u.nickname FROM stories s JOIN users u ON u.id = s.author_id"
    " WHERE s.status = 'published' ORDER BY s.published_at DESC, s.id DESC LIMIT 20"
)

app = Flask(__name__)
app.jinja_loader = DictLoader({"cards.html": CARDS})
# The URL the app itself reads (psycopg 3 for PostgreSQL, as the app's own _normalise_db_url does);
# the engine is made in each worker, since gunicorn imports the app after forking.
engine = create_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))


@app.get("/")
def cards():
    with engine.connect() as conn:
        stories = conn.execute(NEWEST).mappings().all()
    return render_template("cards.html", stories=stories)
