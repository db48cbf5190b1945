"""The job outbox: one row per job, written in the transaction of the change that caused it.

Writing a row is a model operation, so the outbox's own API lives here, below every model
that queues work: `@job`/`@periodic` register a function under its dotted name, `enqueue()`
writes its row in the caller's transaction (see `enqueue`). This module also owns the SQL that
settles who runs a row (`claim_due`) and what its outcome was (`mark_done`, `mark_failed`).
The runners that claim and run rows (eager, thread, RQ, the worker) are in services/jobs.py,
whose docstring states the guarantee: at least once, every job idempotent.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import (
    JSON, CheckConstraint, Index, String, Text, and_, case, delete, event, func, literal, or_, select, update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import db
from models.types import UTCDateTime, utcnow

STATUSES = ("queued", "running", "done", "failed")
# Finished rows are kept this long for inspection (`flask jobs list`), then purged.
KEEP_DONE = timedelta(days=14)
KEEP_FAILED = timedelta(days=90)
LEASE_EXPIRED = "lease expired: its runner died or the job ran past its lease"


class JobRow(db.Model):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("status IN ('queued','running','done','failed')", name="known_status"),
        CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts_range"),
        Index("ix_jobs_status_run_at", "status", "run_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    args: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the lease
    locked_by: Mapped[str | None] = mapped_column(String(120))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# -- registering jobs and queueing them --------------------------------------------------------

DEFAULT_LEASE = timedelta(minutes=5)
JOBS: dict[str, "Job"] = {}  # every job this process knows, by dotted name
PERIODIC: dict[str, timedelta] = {}  # the jobs the worker enqueues on a schedule, and how often


@dataclass
class Job:
    name: str
    func: Callable
    retries: int = 3
    backoff: tuple[float, ...] = (10, 60, 300)
    lease: timedelta = DEFAULT_LEASE
    sensitive: bool = False  # arguments are cleared once the job has run (done or failed)

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ATTEMPT (1-based); the last value repeats."""
        return self.backoff[min(attempt, len(self.backoff)) - 1]

    def __call__(self, *args):
        return self.func(*args)


def job(func=None, *, retries: int = 3, backoff: tuple[float, ...] = (10, 60, 300),
        lease: timedelta | float = DEFAULT_LEASE, sensitive: bool = False):
    """Register FUNC as a job, addressable by its dotted name.

    LEASE (a timedelta or seconds) is how long a run may take before another runner may
    assume this one died and run the job again."""
    if not isinstance(lease, timedelta):
        lease = timedelta(seconds=lease)

    def wrap(f):
        name = f"{f.__module__}.{f.__name__}"
        JOBS[name] = Job(name, f, retries, tuple(backoff), lease, sensitive)
        return JOBS[name]

    return wrap(func) if func else wrap


def periodic(every: timedelta, **kw):
    """Register a job that the worker process enqueues every EVERY."""

    def wrap(f):
        registered_ = job(f, **kw)
        PERIODIC[registered_.name] = every
        return registered_

    return wrap


def registered(name: str) -> Job | None:
    """The job registered under NAME, if this process knows it."""
    return JOBS.get(name)


def periodic_jobs() -> dict[str, timedelta]:
    return dict(PERIODIC)


def enqueue(job_or_name, *args, run_at: datetime | None = None, key: str | None = None):
    """Write a job row in the current transaction; it runs after the commit (never if it rolls back).

    ARGS must be JSON values (ids, short strings). With KEY, a second enqueue of the same key
    (in this transaction or any other, ever, until the row is purged) is a no-op. Returns the
    row, or None when KEY was already taken. Only the top-level commit nudges the runner:
    releasing a savepoint does not, and rolling one back drops just the rows queued inside it.
    A job named by a string must be registered by the time it is queued (services/tasks.py
    registers the app's jobs when the runner is set up).
    """
    name = job_or_name.name if isinstance(job_or_name, Job) else str(job_or_name)
    if name not in JOBS:
        raise KeyError(f"unknown job {name!r}")
    args = list(args)
    json.dumps(args)  # refuse what the JSON column could not store, here rather than at flush
    session = db.session()
    if not session.in_transaction():
        session.begin()
    savepoint = session.get_nested_transaction()
    row = JobRow(name=name, args=args, run_at=run_at or utcnow(), status="queued", attempts=0,
                 max_attempts=JOBS[name].max_attempts, dedupe_key=key)
    if key is None:
        session.add(row)
        session.flush()
    else:
        if session.scalar(select(JobRow.id).where(JobRow.dedupe_key == key)) is not None:
            return None
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # a concurrent transaction took the key first: theirs stands
            return None
    session.info.setdefault("pending_jobs", []).append((row.id, row.run_at, savepoint))
    return row


def _within(transaction, savepoint) -> bool:
    """Whether TRANSACTION is SAVEPOINT or was begun inside it."""
    while transaction is not None:
        if transaction is savepoint:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _commit_pending(session):
    # Fires for a released savepoint too: only the top-level commit makes the rows due.
    if session.in_nested_transaction():
        return
    pending = session.info.pop("pending_jobs", None)
    if pending:
        session.info.setdefault("committed_jobs", []).extend(pending)


@event.listens_for(Session, "after_soft_rollback")
def _drop_on_rollback(session, previous_transaction):
    # What was rolled back: the nearest savepoint or the top-level transaction (a failed
    # flush rolls back from an inner subtransaction to one of those). The rows went with it.
    boundary = previous_transaction
    while boundary.parent is not None and not boundary.nested:
        boundary = boundary.parent
    if boundary.nested:  # a savepoint: forget only what was queued inside it
        pending = session.info.get("pending_jobs")
        if pending:
            pending[:] = [p for p in pending if not _within(p[2], boundary)]
    else:
        session.info.pop("pending_jobs", None)


@event.listens_for(Session, "after_transaction_end")
def _nudge_after_commit(session, transaction):
    """Tell the app's runner (services/jobs.py, `app.extensions["jobs"]`) about the committed
    rows once the transaction is over and its connection released."""
    if transaction.parent is not None:
        return
    session.info.pop("pending_jobs", None)  # ended without a commit (closed): the rows are gone
    committed = session.info.pop("committed_jobs", None)
    if committed:
        current_app.extensions["jobs"].nudge([(row_id, run_at) for row_id, run_at, _ in committed])


@dataclass(frozen=True)
class Claim:
    """A row this runner now holds: run it, then report with `mark_done`/`mark_failed`."""

    id: int
    name: str
    args: tuple
    attempts: int
    max_attempts: int
    locked_by: str


def _claimable(now: datetime):
    return or_(
        and_(JobRow.status == "queued", JobRow.run_at <= now),
        and_(JobRow.status == "running", JobRow.locked_until < now, JobRow.attempts < JobRow.max_attempts),
    )


def claim_due(session, now: datetime, me: str, leases: dict[str, timedelta], ids=None, limit: int = 10) -> list[Claim]:
    """Take up to LIMIT due rows (queued and due, or running with an expired lease) for ME.

    Several runners may call this at once: on PostgreSQL the rows are picked `FOR UPDATE SKIP
    LOCKED`, so each row goes to one runner; SQLite runs the UPDATE in a `BEGIN IMMEDIATE`
    transaction (the caller's write intent), one writer at a time. LEASES maps the names of
    the jobs this process knows to their lease: a worker of an older release leaves newer
    jobs alone. Rows whose lease expired on their last attempt are marked failed here.
    The caller commits."""
    names = list(leases)

    def pick(*where, limit=None):
        query = select(JobRow.id).where(JobRow.name.in_(names), *where)
        if ids is not None:
            query = query.where(JobRow.id.in_(list(ids)))
        if limit is not None:
            query = query.order_by(JobRow.run_at, JobRow.id).limit(limit)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)  # rows another runner holds are its own
        return query.scalar_subquery()

    session.execute(
        update(JobRow)
        .where(JobRow.id.in_(pick(JobRow.status == "running", JobRow.locked_until < now,
                                  JobRow.attempts >= JobRow.max_attempts)))
        .values(status="failed", finished_at=now, locked_until=None, last_error=LEASE_EXPIRED)
        .execution_options(synchronize_session=False)
    )
    lease_end = case({name: literal(now + lease, UTCDateTime()) for name, lease in leases.items()},
                     value=JobRow.name, else_=literal(now + max(leases.values()), UTCDateTime()))
    rows = session.execute(
        update(JobRow)
        .where(JobRow.id.in_(pick(_claimable(now), limit=limit)))
        .values(status="running", attempts=JobRow.attempts + 1, locked_until=lease_end, locked_by=me)
        .returning(JobRow.id, JobRow.name, JobRow.args, JobRow.attempts, JobRow.max_attempts)
        .execution_options(synchronize_session=False)
    ).all()
    return [Claim(row_id, name, tuple(args or ()), attempts, max_attempts, me)
            for row_id, name, args, attempts, max_attempts in sorted(rows)]


def _mine(claim: Claim):
    # Only the runner that holds the lease for this very attempt may record its outcome: one
    # whose lease expired and whose row was reclaimed by another runner reports nothing.
    return and_(JobRow.id == claim.id, JobRow.status == "running", JobRow.locked_by == claim.locked_by,
                JobRow.attempts == claim.attempts)


def mark_done(session, claim: Claim, now: datetime, clear_args: bool = False) -> bool:
    """Record success; CLEAR_ARGS drops arguments that must not outlive the run (a code)."""
    values = {"status": "done", "finished_at": now, "locked_until": None}
    if clear_args:
        values["args"] = []
    result = session.execute(update(JobRow).where(_mine(claim)).values(**values)
                             .execution_options(synchronize_session=False))
    return result.rowcount == 1


def mark_failed(session, claim: Claim, now: datetime, error: str, retry_at: datetime | None,
                clear_args: bool = False) -> bool:
    """Record a failed attempt: queued again at RETRY_AT, or failed for good when it is None."""
    if retry_at is not None:
        values = {"status": "queued", "run_at": retry_at, "locked_until": None, "last_error": error}
    else:
        values = {"status": "failed", "finished_at": now, "locked_until": None, "last_error": error}
        if clear_args:
            values["args"] = []
    result = session.execute(update(JobRow).where(_mine(claim)).values(**values)
                             .execution_options(synchronize_session=False))
    return result.rowcount == 1


def next_due_at(session, names) -> datetime | None:
    """When the next row becomes claimable (a queued row's run_at, a running row's lease end)."""
    names = list(names)
    queued = session.scalar(select(func.min(JobRow.run_at)).where(JobRow.status == "queued", JobRow.name.in_(names)))
    leased = session.scalar(select(func.min(JobRow.locked_until)).where(JobRow.status == "running",
                                                                       JobRow.name.in_(names)))
    times = [t for t in (queued, leased) if t is not None]
    return min(times) if times else None


def purge_finished(session, now: datetime | None = None) -> int:
    """Delete done rows older than KEEP_DONE and failed ones older than KEEP_FAILED."""
    now = now or utcnow()
    result = session.execute(
        delete(JobRow).where(or_(
            and_(JobRow.status == "done", JobRow.finished_at < now - KEEP_DONE),
            and_(JobRow.status == "failed", JobRow.finished_at < now - KEEP_FAILED),
        )).execution_options(synchronize_session=False)
    )
    return result.rowcount


def retry_failed(session, row_id: int, now: datetime | None = None) -> bool:
    """Queue a failed row again with a fresh set of attempts (`flask jobs retry ID`)."""
    result = session.execute(
        update(JobRow).where(JobRow.id == row_id, JobRow.status == "failed")
        .values(status="queued", run_at=now or utcnow(), attempts=0, finished_at=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
