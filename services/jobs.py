"""Background jobs through a durable outbox: the runners that claim and run its rows.

Jobs are declared with `@job`/`@periodic` and queued with `enqueue(job, *args, run_at=None,
key=None)`, all in models/outbox.py (writing a row is a model operation, so models queue jobs
without importing services). `enqueue` writes a row in the `jobs` table in the caller's transaction: a
rollback, of the whole transaction or of the savepoint it was queued in, drops the job with
everything else, and once the commit is done a crash cannot lose it. After the top-level
commit the runner is nudged with the new rows' ids; the nudge only saves time, the row is the
truth. A `key` makes the job unique: a second enqueue of the same key is a no-op.

Dispatchers claim due rows (queued with run_at <= now, or running with an expired lease),
run each in its own app context and session, and record the outcome on the row: `done`, or
`queued` again with back-off (`Job.delay`), or `failed` once `max_attempts` are used (at
once when the exception says `retryable = False`).
- eager (`JOBS_MODE=eager`, tests): the just-committed due rows run before the commit
  returns, retries at once; delayed rows wait for `run_due(now)`. A job that fails for good
  raises from the commit, so tests see it.
- thread (the default without Redis): a daemon thread of the web process claims and runs
  due rows, sleeping until the next run_at, a nudge, or POLL_SECONDS; so it also finds rows
  left by a process that died.
- rq (`REDIS_URL`): RQ carries only a row's id (`run_outbox_row`, RQ's retries off); the RQ
  job claims that row if it is still due and runs it, in the app `run_worker` was given (RQ
  must run inside `flask --app app worker`: services never build the app). The worker also polls
  for due rows (retries, delayed jobs, rows whose nudge was lost because Redis was down) and
  runs them itself. Duplicates in RQ are harmless: the claim decides.

The guarantee is **at least once**. A claim takes a *lease*: the row is `running`,
`locked_by` its runner, until `locked_until` (`Job.lease`, DEFAULT_LEASE unless the job says
otherwise). A runner that dies leaves the row running; once the lease has expired another
runner reclaims it (a new attempt). So a job may run again after a crash between its own
commit and being marked done, or when it runs longer than its lease: every job must be
idempotent (keyed ledger postings, notifications with dedupe keys, conditional updates) and
finish well within its lease. A runner records an outcome only while it still holds the row
(same `locked_by` and attempt), so a late runner never overwrites a reclaimed row.

Stuck and failed jobs are rows: `flask --app app jobs list [--status failed]` shows them with
their last error, `flask --app app jobs retry ID` queues a failed one again. A job that fails
for good is also logged as an error (`cheyou.jobs`).

Arguments are stored as JSON in clear text. A job declared `@job(sensitive=True)` (the SMS
code) has its arguments cleared once it is done or failed for good; done rows are purged
after 14 days (`purge_finished_jobs`, periodic).

Periodic jobs are enqueued by the worker process only, with a dedupe key per tick, so several
workers never enqueue the same tick twice.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import Flask
from sqlalchemy import func, select

import services.tasks  # noqa: F401  (registers the app's jobs, so a runner knows every row's job)
from models import db
from models.outbox import (
    DEFAULT_LEASE, JOBS, PERIODIC, JobRow, claim_due, enqueue, mark_done, mark_failed, next_due_at,
)

log = logging.getLogger("cheyou.jobs")

QUEUE_NAME = "cheyou"
POLL_SECONDS = 2.0  # how often an idle dispatcher looks for rows nobody nudged it about
BATCH = 1  # rows claimed at once: a lease starts when its run does, and runners share the work


def execute(app: Flask, name: str, args) -> None:
    """Run one job once, in its own app context and session."""
    with app.app_context():
        token = db.write_intent.set(True)
        try:
            JOBS[name].func(*args)
        except Exception:
            db.session.rollback()
            raise
        finally:
            db.session.remove()
            db.write_intent.reset(token)  # an eager job must not change its caller's intent


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"[:120]


@dataclass
class Outcome:
    """What happened to one claimed row: `error` is None on success; `final` when it will not be retried."""

    claim: object
    error: Exception | None = None
    final: bool = False


@dataclass
class Dispatcher:
    """Claims due rows, runs each, records the outcome on its row. Shared by every runner.

    IMMEDIATE_RETRY (the eager runner) queues a failed attempt again at once instead of after
    its back-off, so a test sees every attempt before the commit returns."""

    app: Flask
    immediate_retry: bool = False

    def _in_session(self, work, write=True):
        with self.app.app_context():
            token = db.write_intent.set(write)  # SQLite: BEGIN IMMEDIATE for claims and outcomes
            try:
                result = work(db.session)
                if write:
                    db.session.commit()
                return result
            finally:
                db.session.remove()
                db.write_intent.reset(token)

    def claim(self, now: datetime, ids=None, limit: int = BATCH):
        leases = {name: j.lease for name, j in JOBS.items()}
        return self._in_session(lambda s: claim_due(s, now, _runner_id(), leases, ids=ids, limit=limit))

    def next_due_at(self) -> datetime | None:
        return self._in_session(lambda s: next_due_at(s, list(JOBS)), write=False)

    def run_claim(self, claim, now: datetime | None = None) -> Outcome:
        """Run a claimed row and record how it went (only while this runner still holds it)."""
        job_ = JOBS[claim.name]
        try:
            execute(self.app, claim.name, claim.args)
        except Exception as exc:
            at = _utcnow()
            # An error that says no retry can help (`retryable = False`, e.g. services.sms.SmsRejected)
            # fails the row for good at once.
            final = claim.attempts >= claim.max_attempts or getattr(exc, "retryable", True) is False
            if final:
                log.error("job %s%s (row %s) failed for good after %s attempts", claim.name, claim.args,
                          claim.id, claim.attempts, exc_info=exc)
                retry_at = None
            else:
                retry_at = (now or at) if self.immediate_retry else at + timedelta(seconds=job_.delay(claim.attempts))
                log.warning("job %s%s (row %s) failed (attempt %s), retry at %s: %s", claim.name, claim.args,
                            claim.id, claim.attempts, retry_at.isoformat(timespec="seconds"), exc)
            error = "".join(traceback.format_exception(exc))[-4000:]
            recorded = self._in_session(lambda s: mark_failed(s, claim, at, error, retry_at, job_.sensitive))
            if not recorded:
                log.warning("job row %s: lease lost before the failure was recorded", claim.id)
            return Outcome(claim, exc, final)
        if not self._in_session(lambda s: mark_done(s, claim, _utcnow(), job_.sensitive)):
            log.warning("job row %s: lease lost before it was marked done (it may run again)", claim.id)
        return Outcome(claim)

    def run_due(self, now: datetime | None = None, ids=None) -> list[Outcome]:
        """Claim and run due rows (only IDS, when given) until none is left; NOW defaults to the clock."""
        outcomes = []
        while True:
            at = now or _utcnow()
            claims = self.claim(at, ids=ids)
            if not claims:
                return outcomes
            for claim in claims:
                outcomes.append(self.run_claim(claim, now))

    def serve(self, stop: threading.Event, wake: threading.Event | None = None, poll: float = POLL_SECONDS):
        """Loop until STOP: run what is due, then sleep until the next run_at, a WAKE, or POLL seconds."""
        wake = wake or threading.Event()
        while not stop.is_set():
            wake.clear()  # before looking, so a nudge that arrives meanwhile is not lost
            try:
                # A read first: an idle loop never takes SQLite's write lock.
                nxt = self.next_due_at()
                if nxt is not None and nxt <= _utcnow():
                    if self.run_due():
                        continue
                    wait = 0.2  # due, but another runner took it this instant: never spin
                else:
                    wait = poll if nxt is None else min(poll, max((nxt - _utcnow()).total_seconds(), 0.01))
            except Exception:
                log.exception("job dispatcher: looking for due jobs failed")
                wait = poll * 5
            if stop.is_set():
                return
            wake.wait(wait)


class EagerRunner:
    """Runs the just-committed due rows synchronously; delayed rows wait until `run_due()`."""

    def __init__(self, app: Flask):
        self.app = app
        self.dispatcher = Dispatcher(app, immediate_retry=True)
        self.failures: list[tuple[str, tuple, Exception]] = []

    @property
    def scheduled(self) -> list[tuple[datetime, str, tuple]]:
        """Queued rows not yet due: (run_at, name, args), soonest first."""
        def read(session):
            rows = session.execute(select(JobRow.run_at, JobRow.name, JobRow.args)
                                   .where(JobRow.status == "queued", JobRow.run_at > _utcnow())
                                   .order_by(JobRow.run_at, JobRow.id)).all()
            return [(run_at, name, tuple(args)) for run_at, name, args in rows]

        return self.dispatcher._in_session(read, write=False)

    def nudge(self, rows):
        now = _utcnow()
        due = [row_id for row_id, run_at in rows if run_at <= now]
        if due:
            self._run(self.dispatcher.run_due(ids=due))

    def run_due(self, now: datetime | None = None) -> int:
        return self._run(self.dispatcher.run_due(now or _utcnow()))

    def _run(self, outcomes) -> int:
        failed = [o for o in outcomes if o.final]
        for o in failed:
            self.failures.append((o.claim.name, o.claim.args, o.error))
        if failed:
            raise failed[0].error  # after the other rows ran, as a test expects to see it
        return len({o.claim.id for o in outcomes})


class ThreadRunner:
    """A daemon thread of this process that serves the outbox (started by the first request or nudge)."""

    def __init__(self, app: Flask):
        self.app = app
        self.dispatcher = Dispatcher(app)
        self.autostart = True
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self):
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self.dispatcher.serve, args=(self._stop, self._wake),
                                                name="cheyou-jobs", daemon=True)
                self._thread.start()

    def nudge(self, rows):
        if self.autostart:
            self.start()
        self._wake.set()

    def pending(self) -> int:
        """Rows queued or running (committed ones: what another session would see)."""
        return self.dispatcher._in_session(
            lambda s: s.scalar(select(func.count()).select_from(JobRow).where(JobRow.status.in_(("queued", "running")))),
            write=False)

    def stop(self):
        self._stop.set()
        self._wake.set()


class RqRunner:
    """RQ carries the ids of due rows to `flask --app app worker`; the rows stay the truth."""

    def __init__(self, app: Flask):
        from redis import Redis
        from rq import Queue

        self.app = app
        self.dispatcher = Dispatcher(app)
        self.redis = Redis.from_url(app.config["REDIS_URL"])
        self.queue = Queue(QUEUE_NAME, connection=self.redis)

    def nudge(self, rows):
        from redis.exceptions import RedisError

        now = _utcnow()
        try:
            for row_id, run_at in rows:
                if run_at <= now:  # delayed rows are found by the worker's poller when due
                    self.hand_over(row_id)
        except (RedisError, OSError) as exc:
            # Nothing is lost: the committed rows wait for the worker's poller.
            log.warning("could not hand jobs to RQ (%s): the worker will find them in the outbox", exc)

    def hand_over(self, row_id: int):
        self.queue.enqueue(run_outbox_row, row_id, retry=None, job_timeout=_rq_timeout())


def _rq_timeout() -> int:
    # RQ stops a work horse after this; the row's lease (at most the longest) then lets another run it.
    return int(max([DEFAULT_LEASE] + [j.lease for j in JOBS.values()]).total_seconds()) + 60


# The app RQ's jobs run in: set by `run_worker`, the entry point of `flask --app app worker`
# (RQ's work horses are forks of that process and inherit it). Services never build the app.
_worker_app: Flask | None = None


def _app_for_worker() -> Flask:
    if _worker_app is None:
        raise RuntimeError("run_outbox_row runs in `flask --app app worker`, which hands it the app; "
                           "a bare `rq worker` has none")
    return _worker_app


def run_outbox_row(row_id: int) -> str:
    """Entry point RQ calls in the worker: claim row ROW_ID if it is still due, run it, record it."""
    outcomes = _app_for_worker().extensions["jobs"].dispatcher.run_due(ids=[row_id])
    if not outcomes:
        return "not due (already run, running elsewhere, or delayed)"
    last = outcomes[-1]
    return "done" if last.error is None else ("failed" if last.final else "queued for retry")


def _dispose_pools_in_child():
    # An RQ work horse is a fork of the worker, whose threads use the database: the child must
    # not share their pooled connections (SQLAlchemy: dispose(close=False) after fork).
    app = _worker_app
    if app is None:
        return
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_dispose_pools_in_child)


def init_app(app: Flask) -> None:
    mode = app.config.get("JOBS_MODE", "thread")
    runner = {"eager": EagerRunner, "thread": ThreadRunner, "rq": RqRunner}[mode](app)
    app.extensions["jobs"] = runner
    if isinstance(runner, ThreadRunner):
        @app.before_request
        def _serve_outbox():
            # Started by the first request, not at import: a forking server (gunicorn) starts
            # one per worker, and CLI commands such as `db upgrade` start none.
            if runner.autostart and (runner._thread is None or not runner._thread.is_alive()):
                runner.start()


def schedule_periodic(app: Flask, now: float | None = None, last_run: dict | None = None) -> list[str]:
    """Enqueue every periodic job whose tick has no row yet; called in a loop by the worker process.

    The dedupe key `periodic:NAME:TICK` (TICK = now // every) makes the database elect one
    enqueue per interval, however many workers run. LAST_RUN lets one process skip the
    query for jobs it enqueued less than their interval ago. Returns the names enqueued."""
    now = now or time.time()
    queued = []
    with app.app_context():
        for name, every in PERIODIC.items():
            seconds = every.total_seconds()
            if last_run is not None:
                if now - last_run.get(name, float("-inf")) < seconds:
                    continue
                last_run[name] = now
            if enqueue(name, key=f"periodic:{name}:{int(now // seconds)}") is not None:
                queued.append(name)
        db.session.commit()
        db.session.remove()
    return queued


def run_worker(app: Flask, burst: bool = False) -> None:
    """The worker process: enqueues periodic jobs and runs the outbox (through RQ with Redis).

    BURST runs what is due now (retries still in their back-off wait for a later run), then returns."""
    global _worker_app
    _worker_app = app
    runner = app.extensions["jobs"]
    if isinstance(runner, ThreadRunner):
        runner.autostart = False  # this process dispatches below, in a thread of its own choosing
    dispatcher: Dispatcher = runner.dispatcher
    stop = threading.Event()
    try:
        schedule_periodic(app, last_run=(last_run := {}))
    except Exception:
        log.exception("periodic scheduling failed")
    if burst:
        if isinstance(runner, RqRunner):
            from rq import Worker

            Worker([runner.queue], connection=runner.redis).work(burst=True)
        dispatcher.run_due()
        return

    def scheduler():
        while not stop.wait(30):
            try:
                schedule_periodic(app, last_run=last_run)
            except Exception:
                log.exception("periodic scheduling failed")

    threading.Thread(target=scheduler, name="cheyou-periodic", daemon=True).start()
    try:
        if isinstance(runner, RqRunner):
            from rq import Worker

            # The poller runs retries, delayed rows and rows whose nudge never reached Redis.
            threading.Thread(target=dispatcher.serve, args=(stop, None, POLL_SECONDS * 2),
                             name="cheyou-outbox-poller", daemon=True).start()
            Worker([runner.queue], connection=runner.redis).work(burst=False)
        else:
            log.info("no REDIS_URL: the worker runs the outbox in this process")
            dispatcher.serve(stop, getattr(runner, "_wake", None))
    finally:
        stop.set()
