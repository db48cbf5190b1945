"""The scale generator of `make bench` (bench/scale.py) at a small factor: it writes the counts it
promises, rows the app reads as its own (feeds, search, the story page with 200 comments, the
ledger), and a benchmark member who can log in and belongs to every community."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import Membership, User, db
from models.engagement import COMMENTS_PAGE, Comment, StoryLike
from models.events.model import Event, Registration
from models.loyalty import balance_of, level_of
from models.loyalty.ledger import PointsPosting
from models.stories import Story

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import scale  # noqa: E402

FACTOR = 0.002


@pytest.fixture
def world(app):
    made = scale.generate(app, FACTOR, seed=7, log=lambda *_: None)
    return made


def _count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_it_writes_every_count_it_promises(world):
    sizes = world["sizes"]
    assert sizes == scale.scaled(FACTOR)
    assert _count(User) == sizes["members"]
    assert _count(Story, Story.status == "published") == sizes["stories"]
    assert _count(StoryLike) == sizes["likes"]
    assert _count(Comment) == sizes["comments"]
    assert _count(Event) == sizes["events"]
    assert _count(Registration) == sizes["registrations"]
    assert _count(PointsPosting) == sizes["postings"]
    assert _count(PointsPosting, PointsPosting.user_id == world["viewer_id"]) == sizes["viewer_postings"] == 527
    assert _count(Comment, Comment.story_id == world["big_story_id"]) >= 200
    assert _count(Membership, Membership.user_id == world["viewer_id"]) == 4


def test_the_benchmark_member_logs_in_and_reads_the_generated_pages(world, client):
    response = client.post("/auth/login", data={"login": scale.VIEWER_LOGIN, "password": scale.VIEWER_PASSWORD})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200 and "实测" in home.get_data(as_text=True)
    assert client.get("/?sort=hot").status_code == 200
    story = client.get(f"/stories/{world['big_story_id']}")
    assert story.status_code == 200 and story.get_data(as_text=True).count("说得好") == COMMENTS_PAGE
    assert 'class="load-more"' in story.get_data(as_text=True), "the other comments a page further"
    found = client.get("/stories/search?q=电池")
    assert found.status_code == 200 and "电池" in found.get_data(as_text=True)
    assert client.get("/events").status_code == 200
    assert client.get("/me/points").status_code == 200


def test_the_ledger_gives_the_benchmark_member_a_balance_and_level(world):
    viewer = db.session.get(User, world["viewer_id"])
    assert balance_of(viewer) > 0
    assert level_of(viewer).number == viewer.level_number > 1


def test_the_indexes_it_builds_after_the_load_are_the_migrations_own(app):
    """The bulk load drops each table's secondary indexes and rebuilds them from the database's
    own definitions: afterwards every index is there, defined exactly as before."""
    from sqlalchemy import text

    def indexes():
        connection = db.session.connection()
        if connection.dialect.name == "sqlite":
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        else:
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        found = dict(connection.execute(text(query)).all())
        db.session.commit()
        return found

    before = indexes()
    assert "ix_story_terms_ranked" in before and "ix_points_ledger_user_id_id" in before
    scale.generate(app, FACTOR, seed=7, log=lambda *_: None)
    assert indexes() == before
