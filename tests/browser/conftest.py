"""Browser fixtures: the test app served on a real port, and headless Debian Chromium
driven by Playwright (sync API), one fresh phone-sized context per test.

The live server serves the session's `app`, so tests and browser share one database;
`_clean_db` empties it after each test, so each test creates what it needs. CSRF is on
here: the real forms and htmx's `X-CSRFToken` header are exercised.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
}
TIMEOUT_MS = 10_000


class _QuietHandler(WSGIRequestHandler):
    """No access log lines for every asset the browser fetches; no answer while unplugged."""

    def log_request(self, *args, **kwargs):
        pass

    def handle_one_request(self):
        if self.server.unplugged.is_set():
            self.close_connection = True  # hang up without a byte: the browser sees a network error
            return
        super().handle_one_request()


def _buffered(app):
    """Run each response to the end (and close it) before the server writes a byte.

    A context closing mid-download resets the connection; werkzeug's dev server then skips
    closing the response, and a static file is left open (a ResourceWarning, an error here).
    """

    def wsgi(environ, start_response):
        iterable = app(environ, start_response)
        try:
            return [b"".join(iterable)]
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()

    return wsgi


class LiveServer:
    """The WSGI app on 127.0.0.1 and a free port, in a daemon thread."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, _buffered(app), threaded=True, request_handler=_QuietHandler)
        self.server.unplugged = threading.Event()
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    def start(self) -> "LiveServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="session")
def live(app) -> LiveServer:
    server = LiveServer(app).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_server(live) -> str:
    """Base URL of the shared live server."""
    return live.url


class NoSignal:
    """A phone losing its signal. The browser goes offline and every request is aborted, and the
    server hangs up on whatever gets out anyway: a controlled page's POST that its service worker
    lets through can escape Playwright's routing (microsoft/playwright#7588), and a check-in that
    reached the server while the test says "no signal" would prove nothing."""

    def __init__(self, context, live):
        self.context, self.live = context, live

    def cut(self):
        self.live.server.unplugged.set()
        self.context.set_offline(True)
        self.context.route("**/*", lambda route: route.abort())

    def restore(self):
        self.context.unroute("**/*")
        self.context.set_offline(False)
        self.live.server.unplugged.clear()


@pytest.fixture
def no_signal(context, live):
    signal = NoSignal(context, live)
    yield signal
    live.server.unplugged.clear()  # the next test's server answers again


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CHEYOU_REQUIRE_BROWSER"):  # CI: a missing browser is a failure, not a skip
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    # Route the service worker's own fetches through Playwright too (the offline test cuts
    # them); the driver process reads this when it starts, so set it before launching.
    os.environ["PW_EXPERIMENTAL_SERVICE_WORKER_NETWORK_EVENTS"] = "1"
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def context(browser, live_server, csrf_on):
    """A fresh phone-sized browser profile per test (own cookies, caches, service workers)."""
    context = browser.new_context(base_url=live_server, **PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def console_errors(context) -> list[str]:
    """Uncaught script errors and console errors (CSP violations among them) of the test's pages."""
    return []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.when == "call":
        item.browser_test_failed = report.failed
    return report


@pytest.fixture
def page(request, context, console_errors):
    page = context.new_page()
    page.on("pageerror", lambda error: console_errors.append(f"pageerror: {error}"))
    page.on("console", lambda msg: console_errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    yield page
    if getattr(request.node, "browser_test_failed", False):
        _describe(page)


def _describe(page) -> None:
    """What the page showed when a test failed: a flake in CI is read from its log alone."""
    try:
        text = page.evaluate("document.body ? document.body.innerText.slice(0, 600) : ''")
        print(f"\n[browser] failed on {page.url}: {text!r}")
    except Exception as error:  # a closed page or a navigation in progress
        print(f"\n[browser] failed; the page could not be read: {error}")
