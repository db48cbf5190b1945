"""gunicorn's settings for Cheyou (read from the working directory: production and `make bench`).

Garbage collection: once the app is loaded a process holds a few hundred thousand long-lived
objects (SQLAlchemy's mappers, compiled templates, translations). Python's full collection walks
them all (240,000 objects in 140 ms, measured in-process), and a request that arrives during one
waits that long: that was the tail of the p99 (BENCHMARKS.md, 2026-12-07 night). Freezing them after the app is loaded moves them out of the
collector's view for good; what requests allocate is still collected as before.
"""
import gc


def post_worker_init(worker):
    gc.collect()
    gc.freeze()
