"""gunicorn's settings for Cheyou (read from the working directory: production and `make bench`).

Garbage collection: a worker holds some 200,000 long-lived objects once the app is loaded
(SQLAlchemy's mappers, compiled templates, translations). Python's full collection walks them all,
about 100 ms on a 2-core machine, and a request that arrives during one waits that long: that was
the tail of the p99 (BENCHMARKS.md). Freezing them after the app is loaded moves them out of the
collector's view for good; what requests allocate is still collected as before.
"""
import gc


def post_worker_init(worker):
    gc.collect()
    gc.freeze()
