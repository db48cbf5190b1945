"""Secrets generated on first run into instance/ (never committed): written once, atomically.

Several processes start together on a fresh machine (gunicorn's workers, `make run`'s web
process and worker), and each may find the file missing. Each writes its candidate to a
private temporary file and links it into place; the link fails for all but the first, and
every process then reads the same complete file. A plain write would let a second process
read a half-written key, or two processes keep different ones.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def read_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """PATH's bytes, creating it first with MAKE() (mode 0600) if it does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, candidate = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(make())
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(candidate, path)  # atomic, and refuses to replace: the first process wins
            except FileExistsError:
                pass
        finally:
            os.unlink(candidate)
    return path.read_bytes()
