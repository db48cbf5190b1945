"""A busy database: logins never queue behind the write lock, slow work happens before it is
taken, and a request that still cannot get it answers 503 with Retry-After, never a 500."""
from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import func, select

from app import create_app
from models import PointsPosting, db
from tests.factories import PASSWORD
from tests.live import LiveServer, fire_at_once, session_cookie_for


def _sqlite_path(app) -> str | None:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None


@pytest.fixture
def impatient_app(app):
    """The same database served by an app that waits only 0.3 s for SQLite's write lock."""
    if _sqlite_path(app) is None:
        pytest.skip("SQLite's single write lock")
    other = create_app({**{k: app.config[k] for k in ("TESTING", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI",
                                                      "JOBS_MODE", "WTF_CSRF_ENABLED")},
                        "SQLITE_BUSY_TIMEOUT": 0.3}, instance_path=app.instance_path)
    other.test_client_class = app.test_client_class
    yield other
    with other.app_context():
        db.engine.dispose()


class WriteLockHeld:
    """Another process's long write: a connection of its own holds SQLite's write lock."""

    def __init__(self, app):
        self.path = _sqlite_path(app)

    def __enter__(self):
        self.holder = sqlite3.connect(self.path, isolation_level=None)
        self.holder.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc):
        self.holder.execute("ROLLBACK")
        self.holder.close()


def checkins(member) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(PointsPosting).where(
        PointsPosting.user_id == member.id, PointsPosting.rule == "checkin"))


def test_a_login_does_not_wait_for_the_write_lock(impatient_app, factories, communities):
    member = factories.user(login="13900005555")
    db.session.commit()
    client = impatient_app.test_client()
    with WriteLockHeld(impatient_app), impatient_app.app_context():
        response = client.post("/auth/login", data={"login": "13900005555", "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    with impatient_app.app_context():
        me = client.get("/me")
    assert me.status_code == 200 and member.nickname in me.get_data(as_text=True)


def test_a_write_that_cannot_get_the_lock_answers_503_then_succeeds_when_sent_again(impatient_app, factories):
    member = factories.user(login="13900006666")
    client = impatient_app.test_client(user=member)
    with impatient_app.app_context():
        client.get("/healthz")
    with WriteLockHeld(impatient_app), impatient_app.app_context():
        refused = client.post("/me/checkin")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert "<html" in html and "没有保存" in html  # a friendly page in the member's language
    assert checkins(member) == 0
    with impatient_app.app_context():
        accepted = client.post("/me/checkin")
    assert accepted.status_code in (200, 302) and checkins(member) == 1


def test_sixty_logins_at_once_while_members_write_all_succeed(app, factories, communities):
    """60 members log in at the same moment while 20 others check in: every login succeeds.
    The slowest login is printed (run with -s) for the closing note."""
    logins = [f"1391000{n:04d}" for n in range(60)]
    for login in logins:
        factories.user(login=login)
    writers = [factories.user(login=f"1392000{n:04d}") for n in range(20)]
    cookies = [session_cookie_for(app, w) for w in writers]

    def log_in(login):
        def call(http):
            started = time.perf_counter()
            response = http.post(f"{server.url}/auth/login", data={"login": login, "password": PASSWORD},
                                 allow_redirects=False, timeout=120)
            return response, time.perf_counter() - started
        return call

    def check_in(cookie):
        def call(http):
            started = time.perf_counter()
            response = http.post(f"{server.url}/me/checkin", cookies={"session": cookie},
                                 headers={"HX-Request": "true"}, timeout=120)
            return response, time.perf_counter() - started
        return call

    with LiveServer(app) as server:
        results = fire_at_once([log_in(login) for login in logins] + [check_in(c) for c in cookies], timeout=120)
    login_results, write_results = results[:60], results[60:]
    assert [r.status_code for r, _ in login_results] == [302] * 60
    assert all(r.headers["Location"] == "/" for r, _ in login_results)
    assert [r.status_code for r, _ in write_results] == [200] * 20
    assert sum(checkins(w) for w in writers) == 20
    slowest = max(seconds for _, seconds in login_results)
    print(f"\n60 logins with 20 writes on {db.engine.dialect.name}: slowest login {slowest:.2f} s, "
          f"slowest write {max(s for _, s in write_results):.2f} s")
