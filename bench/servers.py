"""The servers `bench/http.py` measures: Cheyou and the floor app, each under `gunicorn -w 2`
on a free 127.0.0.1 port, as production serves the app."""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
FLASK = ROOT / ".venv" / "bin" / "flask"
WORKERS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(database_url: str, secret_key: str, instance: Path) -> dict:
    """The environment Cheyou runs in: DATABASE_URL, the bench's SECRET_KEY (the cookies the bench
    signs must verify), an instance folder of its own, and no rate limits (wrk is one address).
    Jobs: RQ when REDIS_URL is given (a worker then runs beside), else the web process's thread."""
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": secret_key, "CHEYOU_INSTANCE": str(instance),
           "RATELIMIT_ENABLED": "0"}
    env.pop("JOBS_MODE", None)  # chosen from REDIS_URL, as `make run` does
    if not env.get("REDIS_URL"):
        env.pop("REDIS_URL", None)
    return env


class Server:
    """A process answering HTTP on 127.0.0.1:PORT; its output goes to LOG (shown when it fails)."""

    def __init__(self, name: str, command: list[str], env: dict, log: Path, ready_path: str = "/"):
        self.name, self.command, self.env, self.log, self.ready_path = name, command, env, log, ready_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    @classmethod
    def gunicorn(cls, name: str, app_spec: str, env: dict, log: Path, ready_path: str = "/") -> Server:
        server = cls(name, [], env, log, ready_path)
        server.command = [str(GUNICORN), "-w", str(WORKERS), "-b", f"127.0.0.1:{server.port}", app_spec]
        return server

    def start(self, timeout: float = 60) -> Server:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=5) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{self.name} did not answer on {self.url}{self.ready_path}; its log ({self.log}):\n"
                         + self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        """TERM (gunicorn's graceful stop), then KILL if it lingers; only the process we started."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class Worker(Server):
    """`flask worker` for JOBS_MODE=rq (REDIS_URL given): it answers no HTTP, so it is only started."""

    def start(self, timeout: float = 0) -> Worker:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen([str(FLASK), "--app", "app", "worker"], cwd=ROOT, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self
