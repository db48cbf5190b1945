"""Where generated files live (voucher PDFs today): a tiny key → bytes store.

Keys are relative POSIX paths such as ``vouchers/ABCD.pdf``. `LocalStorage` keeps them under
``instance/uploads/``; a shared store (S3-compatible object storage, a network volume) replaces
it behind the same few methods when the app runs on several machines.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path, PurePosixPath

from flask import Flask

_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]+$")


class StorageKeyError(ValueError):
    """A key that is absolute, climbs out with `..`, or holds characters we do not store."""


def check_key(key: str) -> str:
    """KEY itself when it is a safe relative path, else StorageKeyError."""
    if not isinstance(key, str) or not key or "\\" in key or "\x00" in key:
        raise StorageKeyError(f"bad storage key: {key!r}")
    path = PurePosixPath(key)
    if path.is_absolute() or key.startswith("/"):
        raise StorageKeyError(f"absolute storage key: {key!r}")
    parts = key.split("/")
    for part in parts:
        if part in ("", ".", "..") or not _SEGMENT.match(part):
            raise StorageKeyError(f"bad storage key: {key!r}")
    return key


class Storage:
    """The interface: what the rest of the app may ask of a file store."""

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        """The bytes stored under KEY; FileNotFoundError when there are none."""
        raise NotImplementedError

    def write(self, key: str, data: bytes) -> None:
        """Store DATA under KEY, replacing what was there; readers never see half a file."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Forget KEY; no error when it is already gone."""
        raise NotImplementedError

    def keys(self, prefix: str) -> list[str]:
        """The keys under the folder PREFIX (ending with "/"), sorted."""
        raise NotImplementedError

    def path(self, key: str) -> Path | None:
        """A local filesystem path for KEY when the store has one (for `send_file`), else None."""
        return None


class LocalStorage(Storage):
    """Files under one directory on this machine, written atomically (temp file + rename)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        full = (self.root / check_key(key)).resolve()
        if self.root not in full.parents:  # a symlink inside the root must not lead out of it
            raise StorageKeyError(f"storage key outside the root: {key!r}")
        return full

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o640)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        folder = self.path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        return sorted(
            str(PurePosixPath(*file.relative_to(self.root).parts))
            for file in folder.rglob("*") if file.is_file() and not file.name.startswith(".tmp-")
        )


def get_storage(app: Flask) -> Storage:
    """The app's file store: `FILES_ROOT` from the config, else ``instance/uploads``."""
    storage = app.extensions.get("storage")
    if storage is None:
        root = app.config.get("FILES_ROOT") or os.path.join(app.instance_path, "uploads")
        storage = app.extensions["storage"] = LocalStorage(root)
    return storage
