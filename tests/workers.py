"""Which pytest-xdist worker this is (`make test` runs one per core), for services the workers
share: each takes a Redis database of its own, counted down from the one it was given."""
from __future__ import annotations

import os


def worker_index() -> int:
    """0 for gw0 (or without xdist), 1 for gw1, …"""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))


def own_redis_db(given: int) -> int:
    return (given - worker_index()) % 16
