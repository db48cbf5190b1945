"""Background jobs: `enqueue(job, *ids, run_at=None)` runs JOB after the current transaction commits.

Three runners share one contract:
- eager: synchronously right after the commit (tests); delayed jobs wait in a list until
  `run_due()` is called;
- thread: a background thread in this process (the default without Redis);
- rq: an RQ queue on Redis (`REDIS_URL`), run by `flask --app app worker`.
Jobs take ids, load what they need, commit once and can run twice without harm. A job that
raises is retried with back-off. Periodic jobs are scheduled only by the worker process.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger("cheyou.jobs")

_REGISTRY: dict[str, "Job"] = {}
_PERIODIC: dict[str, timedelta] = {}
QUEUE_NAME = "cheyou"


@dataclass
class Job:
    name: str
    func: Callable
    retries: int = 3
    backoff: tuple[float, ...] = (10, 60, 300)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ATTEMPT (1-based); the last value repeats."""
        return self.backoff[min(attempt, len(self.backoff)) - 1]

    def __call__(self, *ids):
        return self.func(*ids)


def job(func=None, *, retries: int = 3, backoff: tuple[float, ...] = (10, 60, 300)):
    """Register FUNC as a job, addressable by its dotted name."""

    def wrap(f):
        name = f"{f.__module__}.{f.__name__}"
        _REGISTRY[name] = Job(name, f, retries, backoff)
        return _REGISTRY[name]

    return wrap(func) if func else wrap


def periodic(every: timedelta, **kw):
    """Register a job that the worker process enqueues every EVERY."""

    def wrap(f):
        registered = job(f, **kw)
        _PERIODIC[registered.name] = every
        return registered

    return wrap


def enqueue(job_or_name, *ids, run_at: datetime | None = None) -> None:
    """Queue a job to run after the current transaction commits (dropped if it rolls back).

    Only the commit of the top-level transaction dispatches: releasing a savepoint does not,
    and rolling one back drops just the jobs queued inside it.
    """
    from models import db

    name = job_or_name.name if isinstance(job_or_name, Job) else str(job_or_name)
    if name not in _REGISTRY:
        raise KeyError(f"unknown job {name!r}")
    session = db.session()
    if not session.in_transaction():
        session.begin()  # so that a rollback before any SQL still drops the job
    savepoint = session.get_nested_transaction()
    session.info.setdefault("pending_jobs", []).append((name, ids, run_at, savepoint))


def _within(transaction, savepoint) -> bool:
    """Whether TRANSACTION is SAVEPOINT or was begun inside it."""
    while transaction is not None:
        if transaction is savepoint:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _commit_pending(session):
    # Fires for a released savepoint too: only the top-level commit makes the jobs due.
    if session.in_nested_transaction():
        return
    pending = session.info.pop("pending_jobs", None)
    if pending:
        session.info.setdefault("committed_jobs", []).extend(pending)


@event.listens_for(Session, "after_soft_rollback")
def _drop_on_rollback(session, previous_transaction):
    # What was rolled back: the nearest savepoint or the top-level transaction (a failed
    # flush rolls back from an inner subtransaction to one of those).
    boundary = previous_transaction
    while boundary.parent is not None and not boundary.nested:
        boundary = boundary.parent
    if boundary.nested:  # a savepoint: drop only what was queued inside it
        pending = session.info.get("pending_jobs")
        if pending:
            pending[:] = [p for p in pending if not _within(p[3], boundary)]
    else:
        session.info.pop("pending_jobs", None)


@event.listens_for(Session, "after_transaction_end")
def _dispatch_after_commit(session, transaction):
    """Submit the committed jobs once the transaction is over and its connection released."""
    if transaction.parent is not None:
        return
    session.info.pop("pending_jobs", None)  # ended without a commit (closed): dropped
    committed = session.info.pop("committed_jobs", None)
    if not committed:
        return
    runner = current_app.extensions["jobs"]
    error = None
    for name, ids, run_at, _ in committed:
        try:
            runner.submit(name, ids, run_at)
        except Exception as exc:  # submit the others; then report the first failure
            error = error or exc
    if error is not None:
        raise error


def execute(app: Flask, name: str, ids) -> None:
    """Run one job once, in its own app context and session."""
    from models import db

    with app.app_context():
        token = db.write_intent.set(True)
        try:
            _REGISTRY[name].func(*ids)
        except Exception:
            db.session.rollback()
            raise
        finally:
            db.session.remove()
            db.write_intent.reset(token)  # an eager job must not change its caller's intent


class EagerRunner:
    """Runs jobs synchronously at commit; keeps delayed ones until `run_due()`."""

    def __init__(self, app: Flask):
        self.app = app
        self.scheduled: list[tuple[datetime, str, tuple]] = []
        self.failures: list[tuple[str, tuple, Exception]] = []

    def submit(self, name, ids, run_at=None):
        if run_at is not None and run_at > datetime.now(timezone.utc):
            self.scheduled.append((run_at, name, tuple(ids)))
            return
        job_ = _REGISTRY[name]
        for attempt in range(job_.retries + 1):
            try:
                execute(self.app, name, ids)
                return
            except Exception as exc:  # retried, then recorded and re-raised for the test to see
                log.warning("job %s%s failed (attempt %s): %s", name, ids, attempt + 1, exc)
                last = exc
        self.failures.append((name, tuple(ids), last))
        raise last

    def run_due(self, now: datetime | None = None) -> int:
        now = now or datetime.now(timezone.utc)
        due = [s for s in self.scheduled if s[0] <= now]
        self.scheduled = [s for s in self.scheduled if s[0] > now]
        for _, name, ids in sorted(due, key=lambda s: s[0]):
            self.submit(name, ids)
        return len(due)


class ThreadRunner:
    """A background thread with a time-ordered heap; retries re-enter the heap with back-off."""

    def __init__(self, app: Flask):
        self.app = app
        self._heap: list = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, name, ids, run_at=None, attempt=0):
        at = run_at.timestamp() if run_at else time.time()
        with self._cv:
            heapq.heappush(self._heap, (at, next(self._seq), name, tuple(ids), attempt))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="cheyou-jobs", daemon=True)
                self._thread.start()
            self._cv.notify()

    def pending(self) -> int:
        with self._cv:
            return len(self._heap)

    def stop(self):
        with self._cv:
            self._stopping = True
            self._cv.notify()

    def _loop(self):
        while True:
            with self._cv:
                while not self._stopping and (not self._heap or self._heap[0][0] > time.time()):
                    self._cv.wait(timeout=(self._heap[0][0] - time.time()) if self._heap else None)
                if self._stopping:
                    return
                _, _, name, ids, attempt = heapq.heappop(self._heap)
            try:
                execute(self.app, name, ids)
            except Exception:
                job_ = _REGISTRY[name]
                if attempt < job_.retries:
                    wait = job_.delay(attempt + 1)
                    log.warning("job %s%s failed, retry %s in %ss", name, ids, attempt + 1, wait, exc_info=True)
                    self.submit(name, ids, datetime.now(timezone.utc) + timedelta(seconds=wait), attempt + 1)
                else:
                    log.error("job %s%s failed for good", name, ids, exc_info=True)


class RqRunner:
    """Jobs on a Redis queue, run by RQ workers (`flask --app app worker`)."""

    def __init__(self, app: Flask):
        from redis import Redis
        from rq import Queue

        self.app = app
        self.redis = Redis.from_url(app.config["REDIS_URL"])
        self.queue = Queue(QUEUE_NAME, connection=self.redis)

    def submit(self, name, ids, run_at=None):
        from rq import Retry

        job_ = _REGISTRY[name]
        retry = Retry(max=job_.retries, interval=list(job_.backoff)) if job_.retries else None
        if run_at is not None and run_at > datetime.now(timezone.utc):
            self.queue.enqueue_at(run_at, run_rq_job, name, *ids, retry=retry)
        else:
            self.queue.enqueue(run_rq_job, name, *ids, retry=retry)


_worker_app: Flask | None = None


def run_rq_job(name: str, *ids):
    """Entry point RQ calls in the worker: run the job inside the worker's app."""
    global _worker_app
    if _worker_app is None:
        from app import create_app

        _worker_app = create_app()
    execute(_worker_app, name, ids)


def init_app(app: Flask) -> None:
    import services.tasks  # noqa: F401  (registers every job)

    mode = app.config.get("JOBS_MODE", "thread")
    runner = {"eager": EagerRunner, "thread": ThreadRunner, "rq": RqRunner}[mode](app)
    app.extensions["jobs"] = runner


def periodic_jobs() -> dict[str, timedelta]:
    return dict(_PERIODIC)


def schedule_periodic(app: Flask, now: float | None = None, last_run: dict | None = None) -> list[str]:
    """Enqueue every periodic job that is due; called in a loop by the worker process only.

    With Redis, a `SET NX PX` key per job elects one scheduler per interval, so several
    worker instances never enqueue the same tick twice.
    """
    now = now or time.time()
    runner = app.extensions["jobs"]
    queued = []
    for name, every in _PERIODIC.items():
        if isinstance(runner, RqRunner):
            if not runner.redis.set(f"cheyou:periodic:{name}", str(now), nx=True, px=int(every.total_seconds() * 1000)):
                continue
        else:
            if last_run is not None and now - last_run.get(name, 0) < every.total_seconds():
                continue
            if last_run is not None:
                last_run[name] = now
        runner.submit(name, ())
        queued.append(name)
    return queued


def run_worker(app: Flask, burst: bool = False) -> None:
    """The worker process: schedules periodic jobs and, with Redis, runs the queue."""
    global _worker_app
    _worker_app = app
    runner = app.extensions["jobs"]
    stop = threading.Event()

    def scheduler():
        last_run: dict = {}
        while not stop.is_set():
            try:
                schedule_periodic(app, last_run=last_run)
            except Exception:
                log.exception("periodic scheduling failed")
            stop.wait(30)

    if burst:
        schedule_periodic(app, last_run={})
    else:
        threading.Thread(target=scheduler, name="cheyou-periodic", daemon=True).start()
    try:
        if isinstance(runner, RqRunner):
            from rq import Worker

            worker = Worker([runner.queue], connection=runner.redis)
            worker.work(with_scheduler=True, burst=burst)
        else:
            log.info("no REDIS_URL: the worker runs periodic jobs in this process")
            while not burst:
                time.sleep(3600)
    finally:
        stop.set()
