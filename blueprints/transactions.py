"""When a request takes the database's write lock.

A state-changing request writes, so on SQLite it opens its transaction with BEGIN IMMEDIATE
(models/sqlite_tuning.py) and holds the one write lock until it commits: fine for quick
writes, but a request that first does slow read-only work (a password hash, ~0.1–0.3 s; photo
processing) would make every other write wait behind it. Such a view is `@reads_first`: it
starts with a plain read transaction, does the slow part, then calls `begin_write()` to end
that read and open an immediate one. A read is never upgraded into a write, which under
concurrent writers fails at once with "database is locked" instead of waiting its turn.
"""
from __future__ import annotations

from models import db


def reads_first(view):
    """Mark a POST view that reads (and hashes, resizes…) before it writes: see `begin_write`."""
    view.reads_first = True
    return view


def is_reads_first(view) -> bool:
    return bool(getattr(view, "reads_first", False))


def begin_write() -> None:
    """End the read transaction; the next statement begins a write one (SQLite: BEGIN IMMEDIATE).

    Objects loaded so far are expired and reload in the new transaction, so every decision that
    must hold when written (is this login still free?) is re-read after this call."""
    if db.session.new or db.session.dirty or db.session.deleted:
        raise RuntimeError("begin_write() after changes were made: they would be written in a read transaction")
    db.session.rollback()
    db.write_intent.set(True)
