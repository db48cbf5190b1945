"""The durable job outbox: a job is a row written in its cause's transaction, claimed by one
runner at a time, retried by its row, and never lost to a crash after the commit.

Real parts: the test database (SQLite or PostgreSQL), real worker processes
(`flask --app app worker --burst`) killed with SIGKILL, and the jobs of tests/outbox_jobs.py,
which those processes import before they start."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from models import JobRow, db
from models.outbox import JOBS, LEASE_EXPIRED, claim_due, enqueue, mark_done, periodic_jobs
from models.types import utcnow
from services.jobs import Dispatcher, ThreadRunner, schedule_periodic
from services.tasks import send_sms_code
from tests import outbox_jobs
from tests.outbox_jobs import effects, flaky, slow_once, touch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _reset_attempts():
    outbox_jobs.ATTEMPTS.clear()
    yield
    outbox_jobs.ATTEMPTS.clear()


def _rows(name: str | None = None) -> list[JobRow]:
    db.session.rollback()  # see what other sessions and processes committed
    query = select(JobRow).order_by(JobRow.id)
    return list(db.session.scalars(query.where(JobRow.name == name) if name else query))


def _leases():
    return {name: j.lease for name, j in JOBS.items()}


@pytest.fixture
def quiet(make_app):
    """An app whose commits write job rows and run nothing: a web process about to die, say."""
    quiet = make_app("thread")
    quiet.extensions["jobs"].autostart = False
    return quiet


def _enqueue_in(app, job_, *args, **kw) -> int:
    with app.app_context():
        row_id = enqueue(job_, *args, **kw).id
        db.session.commit()
        db.session.remove()
    return row_id


# --- the row lives and dies with its transaction -----------------------------------------------


def test_a_rolled_back_transaction_leaves_no_row_and_runs_nothing(app, factories):
    user = factories.user()
    enqueue(touch, user.id, "rolled back")
    assert len(_rows_in_session()) == 1  # written in the caller's transaction...
    db.session.rollback()
    assert _rows() == []  # ...and gone with it
    assert Dispatcher(app).run_due(utcnow() + timedelta(days=1)) == []
    assert effects("rolled back")["rolled back"] == 0


def _rows_in_session() -> list[JobRow]:
    return list(db.session.scalars(select(JobRow)))


def test_a_savepoint_rolled_back_drops_its_row_and_a_released_one_runs_after_the_commit(app, factories):
    user = factories.user()
    enqueue(touch, user.id, "outer")
    with pytest.raises(RuntimeError):
        with db.session.begin_nested():
            enqueue(touch, user.id, "undone")
            raise RuntimeError("undo the savepoint")
    with db.session.begin_nested():
        enqueue(touch, user.id, "released")
    # Released is not committed: nothing ran, and the undone row is gone already.
    assert [r.args[1] for r in _rows_in_session()] == ["outer", "released"]
    assert all(r.status == "queued" for r in _rows_in_session())
    db.session.commit()
    assert effects() == {"outer": 1, "released": 1}
    assert {(r.args[1], r.status, r.attempts) for r in _rows()} == {("outer", "done", 1), ("released", "done", 1)}


def test_a_key_makes_a_second_enqueue_a_no_op(app, factories):
    user = factories.user()
    first = enqueue(touch, user.id, "keyed", key="touch:once")
    assert enqueue(touch, user.id, "keyed", key="touch:once") is None  # same transaction
    db.session.commit()
    assert enqueue(touch, user.id, "keyed", key="touch:once") is None  # a later one
    db.session.commit()
    assert [(r.id, r.dedupe_key, r.status) for r in _rows()] == [(first.id, "touch:once", "done")]
    assert effects("keyed")["keyed"] == 1


def test_periodic_ticks_are_enqueued_once_however_many_workers(make_app):
    one, two = make_app("thread"), make_app("thread")
    for runner in (one.extensions["jobs"], two.extensions["jobs"]):
        runner.autostart = False
    now = time.time()
    first, second = schedule_periodic(one, now=now), schedule_periodic(two, now=now)
    assert sorted(first) == sorted(periodic_jobs()) and second == []
    assert len(_rows()) == len(first)
    assert schedule_periodic(two, now=now + 6 * 3600) != []  # the next tick is new


# --- retries live in the row -------------------------------------------------------------------


def test_a_job_failing_twice_then_succeeding_runs_three_times_and_ends_done(app, quiet):
    dispatcher = Dispatcher(app)  # a worker's, with real back-off
    row_id = _enqueue_in(quiet, flaky, "twice", 2)
    now = utcnow()
    assert _outcomes(dispatcher.run_due(now)) == [(row_id, "failed")]
    [row] = _rows()
    assert (row.status, row.attempts, row.locked_until) == ("queued", 1, None)
    assert "twice: attempt 1 fails" in row.last_error
    assert timedelta(seconds=9) < row.run_at - now < timedelta(seconds=12)  # flaky.delay(1)
    assert dispatcher.run_due(now + timedelta(seconds=5)) == []  # still in its back-off
    assert _outcomes(dispatcher.run_due(row.run_at)) == [(row_id, "failed")]
    [row] = _rows()
    assert row.attempts == 2 and timedelta(seconds=59) < row.run_at - now < timedelta(seconds=75)
    assert _outcomes(dispatcher.run_due(row.run_at)) == [(row_id, "done")]
    [row] = _rows()
    assert (row.status, row.attempts, outbox_jobs.ATTEMPTS["twice"]) == ("done", 3, 3)
    assert row.finished_at is not None


def test_a_job_that_always_fails_ends_failed_with_its_error(app, quiet, caplog):
    dispatcher = Dispatcher(app)
    _enqueue_in(quiet, flaky, "never", 99)
    at = utcnow()
    for _ in range(flaky.max_attempts):
        dispatcher.run_due(at)
        at += timedelta(minutes=2)  # past any back-off
    assert dispatcher.run_due(at + timedelta(days=1)) == []  # no fifth attempt
    [row] = _rows()
    assert (row.status, row.attempts, row.max_attempts) == ("failed", 4, 4)
    assert "RuntimeError: never: attempt 4 fails" in row.last_error
    assert outbox_jobs.ATTEMPTS["never"] == 4
    assert any(r.levelname == "ERROR" and "failed for good" in r.getMessage() for r in caplog.records)


def _outcomes(outcomes):
    return [(o.claim.id, "done" if o.error is None else "failed") for o in outcomes]


def test_the_eager_runner_raises_a_job_that_fails_for_good(app):
    enqueue(flaky, "eager never", 99)
    with pytest.raises(RuntimeError, match="eager never: attempt 4 fails"):
        db.session.commit()
    [row] = _rows()
    assert (row.status, row.attempts) == ("failed", 4)
    assert app.extensions["jobs"].failures[0][:2] == (flaky.name, ("eager never", 99))


# --- leases ------------------------------------------------------------------------------------


def _act_as_a_runner():
    """This session claims rows itself: a fresh transaction that asks for SQLite's write lock at BEGIN."""
    db.session.rollback()
    db.write_intent.set(True)


def test_a_runner_that_lost_its_lease_records_nothing(app, quiet, factories):
    user = factories.user()
    row_id = _enqueue_in(quiet, touch, user.id, "leased")
    _act_as_a_runner()
    now = utcnow() + timedelta(seconds=1)
    [first] = claim_due(db.session, now, "runner-a", _leases())
    db.session.commit()
    assert claim_due(db.session, now + timedelta(minutes=4), "runner-b", _leases()) == []  # lease holds
    [second] = claim_due(db.session, now + touch.lease + timedelta(seconds=1), "runner-b", _leases())
    db.session.commit()
    assert (first.id, second.id, second.attempts) == (row_id, row_id, 2)
    assert not mark_done(db.session, first, utcnow())  # A came back late: B holds the row now
    assert mark_done(db.session, second, utcnow())
    db.session.commit()
    [row] = _rows()
    assert (row.status, row.locked_by, row.attempts) == ("done", "runner-b", 2)


def test_a_lease_that_expires_on_the_last_attempt_fails_the_row(app, quiet, factories):
    user = factories.user()
    _enqueue_in(quiet, touch, user.id, "dies every time")
    _act_as_a_runner()
    now = utcnow() + timedelta(seconds=1)
    for attempt in range(touch.max_attempts):  # each runner dies holding it
        now += touch.lease + timedelta(seconds=1)
        [claim] = claim_due(db.session, now, f"runner-{attempt}", _leases())
        db.session.commit()
    assert claim_due(db.session, now + touch.lease + timedelta(seconds=1), "runner-x", _leases()) == []
    db.session.commit()
    [row] = _rows()
    assert (row.status, row.attempts, row.last_error) == ("failed", touch.max_attempts, LEASE_EXPIRED)


def test_rows_of_unknown_jobs_are_left_alone(app):
    db.session.add(JobRow(name="services.tasks.from_a_newer_release", args=[1], max_attempts=4))
    db.session.commit()
    assert Dispatcher(app).run_due(utcnow() + timedelta(days=1)) == []
    [row] = _rows()
    assert (row.status, row.attempts) == ("queued", 0)


def test_the_thread_runner_finds_rows_nobody_told_it_about(quiet, make_app, factories):
    user = factories.user()
    _enqueue_in(quiet, touch, user.id, "orphan")  # its process died before the nudge
    web = make_app("thread")
    web.extensions["jobs"].start()  # as the web process's first request does
    assert _wait_for(lambda: effects("orphan")["orphan"] == 1, timeout=10)
    assert _wait_for(lambda: [r.status for r in _rows()] == ["done"])


# --- sensitive arguments and housekeeping ------------------------------------------------------


def test_an_sms_code_does_not_stay_in_the_outbox(app):
    enqueue(send_sms_code, "13800138000", "246810", "verify")
    db.session.commit()
    [row] = _rows()
    assert (row.status, row.args) == ("done", [])


def test_old_finished_rows_are_purged(app):
    from models.outbox import purge_finished
    from services.tasks import purge_finished_jobs

    now = utcnow()

    def row(status, days_ago):
        job_row = JobRow(name=touch.name, args=[], max_attempts=1, status=status,
                         finished_at=None if status == "queued" else now - timedelta(days=days_ago))
        db.session.add(job_row)
        return job_row

    old_done, recent_done, old_failed, recent_failed, waiting = (
        row("done", 15), row("done", 13), row("failed", 91), row("failed", 30), row("queued", 0))
    db.session.commit()
    kept = {recent_done.id, recent_failed.id, waiting.id}
    enqueue(purge_finished_jobs)
    db.session.commit()
    assert {r.id for r in _rows()} - {r.id for r in _rows(purge_finished_jobs.name)} == kept
    assert purge_finished(db.session, now) == 0


def test_jobs_cli_lists_and_retries_failed_rows(app, runner):
    enqueue(flaky, "cli", 4)
    with pytest.raises(RuntimeError):
        db.session.commit()
    [row] = _rows()
    listed = runner.invoke(args=["jobs", "list", "--status", "failed"])
    assert listed.exit_code == 0 and f"{row.id}\tfailed\t4/4" in listed.output
    assert "RuntimeError: cli: attempt 4 fails" in listed.output
    db.session.rollback()
    result = runner.invoke(args=["jobs", "retry", str(row.id)])
    assert result.exit_code == 0, result.output
    [row] = _rows()
    assert (row.status, row.attempts, row.finished_at) == ("queued", 0, None)
    Dispatcher(app).run_due()  # a worker finds it; its fifth call succeeds
    [row] = _rows()
    assert (row.status, row.attempts) == ("done", 1)
    assert runner.invoke(args=["jobs", "retry", str(row.id)]).exit_code != 0  # done: nothing to retry


# --- without Redis, or with Redis unreachable --------------------------------------------------


def test_redis_unreachable_at_commit_loses_nothing(make_app, factories, caplog):
    user = factories.user()
    down = make_app("rq", REDIS_URL="redis://127.0.0.1:9/0", RATELIMIT_STORAGE_URI="memory://")
    row_id = _enqueue_in(down, touch, user.id, "redis down")  # the commit succeeds
    assert any("could not hand jobs to RQ" in r.getMessage() for r in caplog.records)
    [row] = _rows()
    assert (row.id, row.status) == (row_id, "queued")
    down.extensions["jobs"].dispatcher.run_due()  # the worker's poller, later
    assert effects("redis down")["redis down"] == 1
    assert [r.status for r in _rows()] == ["done"]


# --- real processes, really killed ---------------------------------------------------------------


def _env(app, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "JOBS_MODE", "FLASK_APP")}
    env.update(DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], CHEYOU_INSTANCE=str(tmp_path / "proc-instance"),
               SECRET_KEY="x", PYTHONPATH=str(ROOT))
    return env


def _python(code: str, *args, app, tmp_path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, env=_env(app, tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _worker(app, tmp_path, burst=True) -> subprocess.Popen:
    """`flask --app app worker --burst`, in a process that imported the test jobs first."""
    code = "import tests.outbox_jobs\nfrom flask.cli import main\nmain()\n"
    return _python(code, "--app", "app", "worker", *(["--burst"] if burst else []), app=app, tmp_path=tmp_path)


def _finish(proc, timeout=60) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_process_killed_between_commit_and_run_loses_nothing(app, factories, tmp_path):
    user = factories.user()
    writer = _python("""
        import os, signal, sys
        import tests.outbox_jobs as jobs
        from sqlalchemy import event
        from sqlalchemy.orm import Session
        from app import create_app
        from models import db
        from models.outbox import enqueue

        app = create_app()
        with app.app_context():
            enqueue(jobs.touch, int(sys.argv[1]), "killed before run")
            # Dies once the commit is done, before anything could run the job.
            event.listen(Session, "after_commit", lambda s: os.kill(os.getpid(), signal.SIGKILL))
            db.session.commit()
        print("survived")
    """, str(user.id), app=app, tmp_path=tmp_path)
    out = _finish(writer)
    assert writer.returncode == -signal.SIGKILL, out
    [row] = _rows(touch.name)
    assert (row.status, row.attempts) == ("queued", 0)
    assert effects("killed before run")["killed before run"] == 0

    worker = _worker(app, tmp_path)
    out = _finish(worker)
    assert worker.returncode == 0, out
    assert effects("killed before run")["killed before run"] == 1  # exactly once
    [row] = _rows(touch.name)
    assert (row.status, row.attempts) == ("done", 1)


def test_a_worker_killed_mid_job_is_replaced_once_its_lease_expires(app, quiet, factories, tmp_path):
    user = factories.user()
    row_id = _enqueue_in(quiet, slow_once, user.id, "slow", 120)
    first = _worker(app, tmp_path)
    try:
        # The job committed its effect and is now busy: kill its worker there.
        assert _wait_for(lambda: effects("slow")["slow"] == 1 or first.poll() is not None, timeout=60)
        assert first.poll() is None, _finish(first)
        first.send_signal(signal.SIGKILL)
        _finish(first)
    finally:
        if first.poll() is None:
            first.kill()
    [row] = _rows(slow_once.name)
    assert (row.id, row.status, row.attempts) == (row_id, "running", 1)
    assert row.locked_until > utcnow()
    assert Dispatcher(app).run_due(ids=[row_id]) == []  # the lease still holds: nobody takes it yet
    lease_end, first_runner = row.locked_until, row.locked_by
    while utcnow() <= lease_end:
        time.sleep(0.1)

    second = _worker(app, tmp_path)
    out = _finish(second)
    assert second.returncode == 0, out
    [done] = _rows(slow_once.name)
    assert (done.status, done.attempts) == ("done", 2)
    assert done.locked_by != first_runner  # another process finished it
    assert effects("slow")["slow"] == 1  # the rerun found its effect: idempotent by key


def test_two_workers_never_run_the_same_row(app, quiet, factories, tmp_path):
    user = factories.user()
    # Both workers are up and polling before the rows exist, so both take a share whatever the
    # two processes' start times (with burst workers started after the rows, a loaded CI machine
    # let the first one finish everything before the second began).
    workers = [_worker(app, tmp_path, burst=False) for _ in range(2)]
    try:
        for w in workers:
            assert "cheyou worker" in w.stdout.readline()
        with quiet.app_context():
            for n in range(40):
                enqueue(touch, user.id, f"row-{n}", 0.1)
            db.session.commit()
            db.session.remove()
        assert _wait_for(lambda: sum(effects().values()) >= 40, timeout=60), effects()
        time.sleep(0.5)  # a double run would show up now
    finally:
        for w in workers:
            w.terminate()
            w.communicate(timeout=30)
    assert effects() == {f"row-{n}": 1 for n in range(40)}  # each side effect exactly once
    rows = _rows(touch.name)
    assert {(r.status, r.attempts) for r in rows} == {("done", 1)}
    assert len({r.locked_by for r in rows}) == 2  # both workers took a share
