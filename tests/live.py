"""Real concurrent requests: the test app on a threaded server, and a barrier to fire at once."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from werkzeug.serving import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class LiveServer:
    """The app served on 127.0.0.1 by werkzeug's threaded server, one thread per request."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # shutdown() waits for serve_forever's next poll: 0.5 s by default, paid by every test.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def session_cookie_for(app, user) -> str:
    """The signed session cookie of USER logged in (no password hashing on the hot path)."""
    client = app.test_client(user=user)
    client.get("/healthz")
    return client.get_cookie("session").value


def fire_at_once(calls, timeout: float = 60) -> list[requests.Response]:
    """Run CALLS (functions taking a requests.Session) in threads released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        with requests.Session() as http:
            barrier.wait(timeout=timeout)
            return call(http)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))
