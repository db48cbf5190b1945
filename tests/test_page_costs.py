"""What a page costs does not grow with the data (issue #13): each page a member reads runs the
same number of SQL statements on a small world and on one four times its size (30 and 120 stories in the hot window), and never more
than eight (transaction control — BEGIN, SAVEPOINT, COMMIT — is not a query). The worlds come
from `make bench`'s scale generator (bench/scale.py)."""
from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event

from models import db
from tests.conftest import _empty_tables

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import scale  # noqa: E402

SMALL, LARGE = 0.003, 0.012
MAX_QUERIES = 8
_CONTROL = re.compile(r"\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE)


@contextmanager
def _counting():
    seen = []

    def before(_conn, _cursor, statement, *_args):
        if not _CONTROL.match(statement):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def _next_page(client, path) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'class="load-more" hx-get="([^"]+)"', page).group(1).replace("&amp;", "&")


def _costs(app, factor) -> dict[str, int]:
    """Queries per page, read by the benchmark member of a world of FACTOR × the plan's sizes."""
    _empty_tables()
    db.session.remove()
    made = scale.generate(app, factor, seed=3, log=lambda *_: None)
    client = app.test_client()
    assert client.post("/auth/login", data={"login": scale.VIEWER_LOGIN,
                                            "password": scale.VIEWER_PASSWORD}).status_code == 302
    pages = {path: path for path in ("/", "/?sort=hot", "/c/ev", "/c/ev?sort=hot", "/stories/search?q=电池",
                                     "/events", "/rewards", "/me", "/me/points")}
    pages["the story with 200 comments"] = f"/stories/{made['big_story_id']}"
    fragments = {f"{path} next page": _next_page(client, path) for path in ("/", "/?sort=hot", "/c/ev")}
    costs = {}
    for name, url in {**pages, **fragments}.items():
        headers = {"HX-Request": "true"} if name in fragments else None
        client.get(url, headers=headers)  # warm: what a first visit sets up
        db.session.remove()
        with _counting() as seen:
            response = client.get(url, headers=headers)
        assert response.status_code == 200, name
        costs[name] = len(seen)
    return costs


def test_every_page_costs_the_same_few_queries_at_two_data_sizes(app):
    small, large = _costs(app, SMALL), _costs(app, LARGE)
    assert large == small
    assert {page: n for page, n in large.items() if n > MAX_QUERIES} == {}
