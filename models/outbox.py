"""The job outbox: one row per job, written in the transaction of the change that caused it.

`services/jobs.py` writes rows with `enqueue()` and runs them; this module owns the SQL that
settles who runs a row (`claim_due`) and what its outcome was (`mark_done`, `mark_failed`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    JSON, CheckConstraint, Index, String, Text, and_, case, delete, func, literal, or_, select, update,
)
from sqlalchemy.orm import Mapped, mapped_column

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
