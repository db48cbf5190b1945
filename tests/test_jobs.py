"""Background jobs: `enqueue(job, *args, run_at=None)` runs after the commit, on every runner.

Real parts throughout: the eager runner of the test app, a ThreadRunner app and an RQ app on
the same database, a real Redis (its own database number, flushed) and RQ's own workers.
"""
from __future__ import annotations

import os
import signal
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

import services.jobs
from models import JobRow, Notification, SmsCode, User, db, notify
from models.outbox import enqueue, job, periodic_jobs
from models.types import utcnow
from services.jobs import QUEUE_NAME, RqRunner, ThreadRunner, schedule_periodic
from services.tasks import purge_sms_codes

# What the test jobs did, for jobs run in this process (eager, thread, RQ's SimpleWorker).
RUNS: list[str] = []
ATTEMPTS: Counter = Counter()
ATTEMPT_TIMES: dict[str, list[float]] = defaultdict(list)


@job
def record(tag):
    RUNS.append(tag)


def _fail_first(key, failures):
    ATTEMPTS[key] += 1
    ATTEMPT_TIMES[key].append(time.monotonic())
    if ATTEMPTS[key] <= failures:
        raise RuntimeError(f"{key}: attempt {ATTEMPTS[key]} fails")
    RUNS.append(key)


@job
def flaky(key, failures):
    """Fails its first FAILURES attempts (default retries and back-off)."""
    _fail_first(key, failures)


@job(retries=2, backoff=(0.1,))
def flaky_fast(key, failures):
    """Like `flaky`, with a back-off short enough for the thread runner's test."""
    _fail_first(key, failures)


@job
def greet(user_id):
    """A real job: loads the member by id, writes an inbox row, commits (idempotent)."""
    user = db.session.get(User, user_id)
    notify(user, "welcome", {"nickname": user.nickname}, dedupe_key="welcome")
    db.session.commit()
    RUNS.append(f"greet:{user_id}")


@pytest.fixture(autouse=True)
def _reset_observations():
    RUNS.clear()
    ATTEMPTS.clear()
    ATTEMPT_TIMES.clear()
    yield
    RUNS.clear()
    ATTEMPTS.clear()
    ATTEMPT_TIMES.clear()


def _member(nickname="老王") -> User:
    """A user added to the current transaction (flushed, not committed)."""
    user = User(nickname=nickname, email=f"{nickname.encode().hex()}@example.com", password_hash="x",
                consent_version="2026-11")
    db.session.add(user)
    db.session.flush()
    return user


def _greetings(user_id) -> list[Notification]:
    db.session.rollback()  # end any snapshot: see what other sessions committed
    return list(db.session.scalars(select(Notification).where(Notification.user_id == user_id)))


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --- the eager runner (the test app's) -------------------------------------------------------


def test_eager_job_runs_after_commit_and_sees_committed_rows(app):
    user = _member()
    enqueue(greet, user.id)
    db.session.flush()
    assert RUNS == []  # queued, not run: the transaction is still open
    db.session.commit()
    assert RUNS == [f"greet:{user.id}"]
    [note] = _greetings(user.id)
    assert (note.kind, note.params) == ("welcome", {"nickname": "老王"})


def test_eager_rollback_drops_the_job(app):
    user = _member()
    enqueue(greet, user.id)
    db.session.rollback()
    db.session.commit()
    enqueue(record, "before any SQL")
    db.session.rollback()
    db.session.commit()
    enqueue(record, "closed")
    db.session.close()  # ends the transaction without a commit
    db.session.commit()
    assert RUNS == []
    assert app.extensions["jobs"].failures == []


def test_savepoint_rollback_keeps_jobs_of_the_outer_transaction(app):
    enqueue(record, "outer")
    try:
        with db.session.begin_nested():
            _member("内层")
            enqueue(record, "inner")
            raise RuntimeError("undo the savepoint")
    except RuntimeError:
        pass
    assert RUNS == []
    db.session.commit()
    assert RUNS == ["outer"]  # the savepoint's job went with it; the outer one stands
    assert db.session.scalar(select(User).where(User.nickname == "内层")) is None


def test_savepoint_rollback_drops_jobs_of_released_inner_savepoints(app):
    enqueue(record, "outer")
    try:
        with db.session.begin_nested():
            with db.session.begin_nested():
                enqueue(record, "inner")  # released with its savepoint...
            enqueue(record, "middle")
            raise RuntimeError("...then undone with the enclosing one")
    except RuntimeError:
        pass
    db.session.commit()
    assert RUNS == ["outer"]


def test_failed_flush_inside_a_savepoint_keeps_the_outer_jobs(app):
    # notify()'s race path: a concurrent writer took the dedupe key, the savepoint's flush fails.
    user = _member()
    db.session.add(Notification(user_id=user.id, kind="welcome", dedupe_key="race"))
    enqueue(record, "outer")
    with pytest.raises(IntegrityError):
        with db.session.begin_nested():
            db.session.add(Notification(user_id=user.id, kind="welcome", dedupe_key="race"))
    db.session.commit()
    assert RUNS == ["outer"]


def test_released_savepoint_does_not_dispatch_before_the_commit(app):
    user = _member()
    enqueue(record, "first")
    notify(user, "welcome", {"nickname": user.nickname})  # uses a savepoint inside
    with db.session.begin_nested():
        enqueue(record, "second")
    assert RUNS == []  # a released savepoint is not the commit
    db.session.commit()
    assert RUNS == ["first", "second"]


def test_eager_failing_job_is_retried_until_it_succeeds(app):
    enqueue(flaky, "twice", 2)
    db.session.commit()
    assert ATTEMPTS["twice"] == 3
    assert RUNS == ["twice"]
    assert app.extensions["jobs"].failures == []


def test_eager_job_that_always_fails_raises_after_retries(app):
    runner = app.extensions["jobs"]
    user = _member()
    enqueue(flaky, "never", 99)
    enqueue(record, "after")
    with pytest.raises(RuntimeError, match="never: attempt 4 fails"):
        db.session.commit()
    assert ATTEMPTS["never"] == flaky.retries + 1 == 4
    assert [(name, ids) for name, ids, _ in runner.failures] == [("tests.test_jobs.flaky", ("never", 99))]
    assert RUNS == ["after"]  # the other job of the commit still ran
    # The data was committed before the jobs ran, and the session is still usable.
    assert db.session.get(User, user.id) is not None
    enqueue(record, "next")
    db.session.commit()
    assert RUNS == ["after", "next"]


def test_eager_delayed_job_waits_until_run_due(app):
    runner = app.extensions["jobs"]
    now = datetime.now(timezone.utc)
    enqueue(record, "later", run_at=now + timedelta(hours=1))
    enqueue(record, "past", run_at=now - timedelta(seconds=1))
    db.session.commit()
    assert RUNS == ["past"]
    assert [(name, ids) for _, name, ids in runner.scheduled] == [("tests.test_jobs.record", ("later",))]
    assert runner.run_due(now) == 0
    assert RUNS == ["past"]
    assert runner.run_due(now + timedelta(hours=2)) == 1
    assert RUNS == ["past", "later"]
    assert runner.scheduled == []


def test_unknown_job_is_refused_at_enqueue(app):
    with pytest.raises(KeyError, match="unknown job"):
        enqueue("tests.test_jobs.no_such_job", 1)
    db.session.commit()
    assert RUNS == [] and app.extensions["jobs"].failures == []


def test_eager_job_leaves_the_callers_write_intent_alone(app):
    assert db.write_intent.get() is False  # set by the _clean_db fixture
    enqueue(record, "x")
    db.session.commit()
    assert RUNS == ["x"]
    assert db.write_intent.get() is False


def test_job_delay_accepts_fractions_of_a_second():
    assert flaky_fast.delay(1) == flaky_fast.delay(2) == 0.1
    assert flaky.delay(1) == 10 and flaky.delay(3) == 300 and flaky.delay(9) == 300


# --- separate apps on the same database: thread and RQ runners -------------------------------


def test_thread_runner_runs_the_job_in_the_background_after_commit(make_app):
    thread_app = make_app("thread")
    runner = thread_app.extensions["jobs"]
    assert isinstance(runner, ThreadRunner)
    with thread_app.app_context():
        user = _member("后台")
        enqueue(greet, user.id)
        # Nothing handed over before the commit: the runner was never woken (its thread is not
        # even started), and the uncommitted row is not among what it could claim.
        assert runner._thread is None and not runner._wake.is_set()
        assert RUNS == [] and runner.pending() == 0
        db.session.commit()
        assert runner._thread is not None  # the commit's nudge started it
        user_id = user.id
    assert _wait_for(lambda: RUNS == [f"greet:{user_id}"])
    assert runner._thread.name == "cheyou-jobs"
    [note] = _greetings(user_id)
    assert note.params == {"nickname": "后台"}


def test_thread_runner_retries_a_failing_job_with_back_off(make_app):
    thread_app = make_app("thread")
    runner = thread_app.extensions["jobs"]
    with thread_app.app_context():
        enqueue(flaky_fast, "once", 1)
        db.session.commit()
    assert _wait_for(lambda: RUNS == ["once"])
    assert ATTEMPTS["once"] == 2
    first, second = ATTEMPT_TIMES["once"]
    assert second - first >= 0.09  # waited its back-off before the retry
    assert _wait_for(lambda: runner.pending() == 0)  # marked done just after it ran


def test_thread_runner_drops_jobs_on_rollback_and_gives_up_after_retries(make_app):
    thread_app = make_app("thread")
    runner = thread_app.extensions["jobs"]
    with thread_app.app_context():
        enqueue(record, "rolled back")
        db.session.rollback()
        enqueue(flaky_fast, "never", 99)
        enqueue(record, "marker")
        db.session.commit()
    assert _wait_for(lambda: _rows("tests.test_jobs.flaky_fast", status="failed") and "marker" in RUNS)
    # Failed for good: its row says so, so no fourth attempt can come.
    [failed] = _rows("tests.test_jobs.flaky_fast")
    assert failed.attempts == failed.max_attempts == flaky_fast.retries + 1 == 3
    assert "never: attempt 3 fails" in failed.last_error
    assert ATTEMPTS["never"] == 3
    assert RUNS == ["marker"]
    assert _wait_for(lambda: runner.pending() == 0)
    assert [r.args for r in _rows("tests.test_jobs.record")] == [["marker"]]  # the rolled-back row never existed


def _rows(name=None, status=None) -> list[JobRow]:
    db.session.rollback()  # see what the runners committed
    query = select(JobRow).order_by(JobRow.id)
    if name:
        query = query.where(JobRow.name == name)
    if status:
        query = query.where(JobRow.status == status)
    return list(db.session.scalars(query))


# --- RQ on a real Redis ----------------------------------------------------------------------


def _test_redis_url() -> str:
    """TEST_REDIS_URL as given (per worker: tests/conftest.py); else database 15 of REDIS_URL's
    server or of a local Redis (14 for the second xdist worker, …)."""
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    from tests.workers import own_redis_db

    if os.environ.get("TEST_REDIS_URL"):
        return os.environ["TEST_REDIS_URL"]
    if os.environ.get("REDIS_URL"):
        return urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{own_redis_db(15)}").geturl()
    url = f"redis://127.0.0.1:6379/{own_redis_db(15)}"
    try:
        Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except RedisConnectionError:
        pytest.skip("no Redis: set TEST_REDIS_URL or REDIS_URL, or run one at 127.0.0.1:6379")
    return url


@pytest.fixture
def rq_app(make_app, monkeypatch):
    """An app with JOBS_MODE=rq on a flushed Redis database; RQ's workers run it in this process."""
    url = _test_redis_url()
    rq_app = make_app("rq", REDIS_URL=url)
    runner = rq_app.extensions["jobs"]
    assert isinstance(runner, RqRunner)
    runner.redis.flushdb()
    monkeypatch.setattr(services.jobs, "_worker_app", rq_app)
    # RQ workers install their own SIGINT/SIGTERM handlers: give pytest its own back after.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield rq_app
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    runner.redis.flushdb()
    runner.redis.close()


def _work(rq_app):
    from rq import SimpleWorker

    runner = rq_app.extensions["jobs"]
    return SimpleWorker([runner.queue], connection=runner.redis).work(burst=True)


def test_rq_job_carries_only_the_row_id_and_is_run_by_a_worker(rq_app):
    runner = rq_app.extensions["jobs"]
    with rq_app.app_context():
        user = _member("队列")
        enqueue(greet, user.id)
        assert runner.queue.count == 0  # not before the commit
        db.session.commit()
        user_id = user.id
    assert runner.queue.name == QUEUE_NAME == "cheyou"
    [row] = _rows()
    [rq_job] = runner.queue.get_jobs()
    assert rq_job.func_name == "services.jobs.run_outbox_row"
    assert rq_job.args == (row.id,)  # the id only: name and arguments stay in the row
    assert rq_job.retries_left is None  # RQ's retries are off: the row drives them
    assert (row.name, row.args, row.status) == ("tests.test_jobs.greet", [user_id], "queued")
    assert RUNS == []  # queued, not run
    _work(rq_app)
    assert RUNS == [f"greet:{user_id}"]
    assert rq_job.get_status(refresh=True) == "finished"
    assert runner.queue.count == 0
    [row] = _rows()
    assert (row.status, row.attempts, row.locked_until) == ("done", 1, None)
    [note] = _greetings(user_id)
    assert note.params == {"nickname": "队列"}


def test_rq_duplicates_of_a_row_run_it_once(rq_app):
    runner = rq_app.extensions["jobs"]
    with rq_app.app_context():
        enqueue(record, "once only")
        db.session.commit()
    [row] = _rows()
    runner.hand_over(row.id)  # as the nudge of a retried commit, or a poller, might
    assert [j.args for j in runner.queue.get_jobs()] == [(row.id,), (row.id,)]
    _work(rq_app)
    assert RUNS == ["once only"]  # the second RQ job found the row done: the claim decides
    finished = runner.queue.finished_job_registry.get_job_ids()
    results = sorted(runner.queue.fetch_job(job_id).return_value() for job_id in finished)
    assert results == ["done", "not due (already run, running elsewhere, or delayed)"]
    [row] = _rows()
    assert (row.status, row.attempts) == ("done", 1)


def test_rq_failing_job_is_retried_through_its_row(rq_app):
    runner = rq_app.extensions["jobs"]
    with rq_app.app_context():
        enqueue(flaky, "rq-once", 1)
        db.session.commit()
    [rq_job] = runner.queue.get_jobs()
    _work(rq_app)
    assert ATTEMPTS["rq-once"] == 1 and RUNS == []
    assert rq_job.get_status(refresh=True) == "finished"  # the failure is the row's business
    assert runner.queue.scheduled_job_registry.count == 0
    [row] = _rows()
    assert (row.status, row.attempts) == ("queued", 1)
    assert "rq-once: attempt 1 fails" in row.last_error
    wait = row.run_at - datetime.now(timezone.utc)
    assert timedelta(seconds=8) < wait <= timedelta(seconds=flaky.delay(1))  # the first back-off
    dispatcher = runner.dispatcher  # the worker's poller, once the back-off has passed
    assert dispatcher.run_due() == []  # not yet
    dispatcher.run_due(row.run_at + timedelta(seconds=1))
    assert ATTEMPTS["rq-once"] == 2 and RUNS == ["rq-once"]
    [row] = _rows()
    assert (row.status, row.attempts) == ("done", 2)


def test_rq_delayed_job_waits_in_the_outbox(rq_app):
    runner = rq_app.extensions["jobs"]
    run_at = datetime.now(timezone.utc) + timedelta(hours=1)
    with rq_app.app_context():
        enqueue(record, "later", run_at=run_at)
        db.session.commit()
    assert runner.queue.count == 0 and runner.queue.scheduled_job_registry.count == 0
    [row] = _rows()
    assert row.status == "queued" and abs(row.run_at - run_at) < timedelta(seconds=1)
    _work(rq_app)
    assert RUNS == []
    runner.dispatcher.run_due(run_at + timedelta(seconds=1))
    assert RUNS == ["later"]


def test_rq_rollback_enqueues_nothing(rq_app):
    runner = rq_app.extensions["jobs"]
    with rq_app.app_context():
        enqueue(record, "never")
        enqueue(record, "never later", run_at=datetime.now(timezone.utc) + timedelta(hours=1))
        db.session.rollback()
        db.session.commit()
    assert runner.queue.count == 0
    assert runner.queue.scheduled_job_registry.count == 0
    assert runner.redis.keys("rq:job:*") == []
    assert _rows() == []


# --- periodic jobs ---------------------------------------------------------------------------


def test_schedule_periodic_submits_each_job_once_per_interval_eager(app):
    assert "services.tasks.purge_sms_codes" in periodic_jobs()
    old = _sms_code(utcnow() - timedelta(days=2))
    db.session.commit()
    last_run: dict = {}
    now = time.time()
    assert sorted(schedule_periodic(app, now=now, last_run=last_run)) == sorted(periodic_jobs())
    assert db.session.get(SmsCode, old) is None  # the eager runner ran it: the old code is gone
    assert schedule_periodic(app, now=now + 1, last_run=last_run) == []
    every = periodic_jobs()["services.tasks.purge_sms_codes"].total_seconds()
    assert "services.tasks.purge_sms_codes" in schedule_periodic(app, now=now + every, last_run=last_run)


def test_schedule_periodic_never_doubles_a_tick_on_redis(rq_app):
    runner = rq_app.extensions["jobs"]
    now = time.time()
    first = schedule_periodic(rq_app, now=now, last_run={})  # worker instance one
    second = schedule_periodic(rq_app, now=now, last_run={})  # worker instance two, same tick
    assert sorted(first) == sorted(periodic_jobs()) and second == []
    rows = _rows()
    assert sorted(r.name for r in rows) == sorted(periodic_jobs())
    every = periodic_jobs()["services.tasks.purge_sms_codes"].total_seconds()
    assert f"periodic:services.tasks.purge_sms_codes:{int(now // every)}" in {r.dedupe_key for r in rows}
    assert sorted(j.args for j in runner.queue.get_jobs()) == sorted((r.id,) for r in rows)


def test_worker_cli_burst_runs_what_is_queued_and_schedules_periodic_jobs(rq_app):
    runner = rq_app.extensions["jobs"]
    user = _member("命令行")
    old_code = _sms_code(utcnow() - timedelta(days=2))
    db.session.commit()
    user_id = user.id
    with rq_app.app_context():
        enqueue(greet, user_id)
        db.session.commit()
    assert runner.queue.count == 1
    with rq_app.app_context():  # Flask's CLI would run in the test app's context otherwise
        result = rq_app.test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code == 0, result.output
    assert "jobs mode rq" in result.output
    assert runner.queue.count == 0
    [note] = _greetings(user_id)  # written by RQ's work horse, a forked process
    assert note.params == {"nickname": "命令行"}
    # `--burst` also enqueued the periodic jobs (one row per tick) and ran them.
    rows = _rows()
    assert sorted(r.name for r in rows) == sorted([greet.name, *periodic_jobs()])
    assert {r.status for r in rows} == {"done"}
    assert db.session.get(SmsCode, old_code) is None
    assert runner.queue.finished_job_registry.count == 1 + len(periodic_jobs())


# --- the jobs themselves ---------------------------------------------------------------------


def _sms_code(created_at) -> int:
    code = SmsCode(phone="13800138000", purpose="verify", code_hash="0" * 64, created_at=created_at,
                   expires_at=created_at + SmsCode.TTL)
    db.session.add(code)
    db.session.flush()
    return code.id


def test_purge_sms_codes_deletes_codes_older_than_a_day(app):
    now = utcnow()
    old = _sms_code(now - timedelta(days=1, minutes=1))
    recent = _sms_code(now - timedelta(hours=23))
    fresh = _sms_code(now)
    enqueue(purge_sms_codes)
    db.session.commit()
    db.session.expire_all()
    remaining = set(db.session.scalars(select(SmsCode.id)))
    assert old not in remaining
    assert remaining == {recent, fresh}
