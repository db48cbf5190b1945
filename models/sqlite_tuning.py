"""SQLite settings: WAL, foreign keys and explicit BEGIN (the busy timeout is the driver's
`timeout`, from SQLITE_BUSY_TIMEOUT: see app.py).

pysqlite's own transaction handling begins lazily and cannot take the write lock up
front, which loses updates under concurrent requests; we switch it off and emit BEGIN
ourselves: BEGIN IMMEDIATE when the unit of work intends to write.
"""
from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine

from models import db


@event.listens_for(Engine, "connect")
def _on_connect(dbapi_connection, _record):
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


@event.listens_for(Engine, "begin")
def _on_begin(conn):
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE" if db.write_intent.get() else "BEGIN")
