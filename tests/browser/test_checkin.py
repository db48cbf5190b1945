"""Venue check-in in a real phone browser: with the network really cut (page and service worker),
with Chromium's fake camera fed a ticket's QR, and from a second phone."""
from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from models import db
from models.events import Registration, SignupInput, signup
from models.types import SHANGHAI, utcnow
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE, TIMEOUT_MS
from tests.browser.test_shell import _fresh, log_in

pytestmark = pytest.mark.browser


def _venue(factories, *nicknames):
    """An event starting in three hours, its organizer (who logs in by phone) and signed-up members."""
    ev = factories.communities()["ev"]
    organizer = factories.user(login="13800138000", nickname="组织者老周", role="organizer", community=ev)
    event = factories.event(community=ev, organizer=organizer, title="滨江夜骑", starts_at=utcnow() + timedelta(hours=3))
    regs = []
    for n, nickname in enumerate(nicknames):
        member = factories.user(nickname=nickname)
        regs.append(signup(db.session.merge(event), member, SignupInput(companions=n % 2)))
    db.session.commit()
    return event, organizer, [(r.id, r.code, r.display_code, r.ticket_token) for r in regs]


def _checked_in_at(reg_id):
    _fresh()
    return db.session.get(Registration, reg_id).checked_in_at


def _open_checkin(page, event_id):
    page.goto(f"/events/{event_id}/checkin")
    page.locator("#checkin[data-checkin-ready][data-roster-fresh]").wait_for(state="attached")


def _type_code(page, code):
    page.fill("[data-checkin-code]", code)
    page.locator("form.checkin-form button[type=submit]").click()


def _pending(page, n):
    """Until the page says N scans wait to be sent (the line is hidden at 0)."""
    page.locator(f"[data-checkin-pending='{n}']").wait_for(state="attached")


def _eventually(page, script, arg=None, seconds=10):
    """Until the async SCRIPT resolves truthy (wait_for_function takes any promise for true).
    A navigation under way destroys the page's context mid-evaluation: that counts as not yet."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + seconds
    while True:
        try:
            if page.evaluate(script, arg):
                return
        except Error as error:
            if "Execution context was destroyed" not in str(error):
                raise
        assert time.monotonic() < deadline, f"still false after {seconds}s: {script}"
        page.wait_for_timeout(200)


def _page_errors(errors):
    """Script errors and CSP violations (a cut network's failed loads are expected here)."""
    return [e for e in errors if e.startswith("pageerror") or "Content Security Policy" in e]


def test_check_in_offline_then_sync_when_back_online(page, context, no_signal, factories, console_errors):
    event, organizer, regs = _venue(factories, "电车阿丽", "老王", "小陈")
    (alice_id, alice_code, _a, _), (bob_id, _b, bob_display, _), (carol_id, carol_code, _c, _) = regs

    log_in(page, "13800138000")
    _open_checkin(page, event.id)
    # The service worker kept the page (first visit included) for reloads without signal.
    page.locator("[data-checkin-offline-ready]:not([hidden])").wait_for()

    no_signal.cut()
    before = utcnow()
    _type_code(page, alice_code)
    result = page.locator("#checkin-result[data-status=queued]")  # recorded on the phone, not yet synced
    result.wait_for()
    assert "电车阿丽" in result.inner_text()
    _type_code(page, bob_display.lower())  # typed as people do: lower case, with the dash
    page.locator("#checkin-result[data-status=queued] [data-checkin-who]", has_text="老王").wait_for()
    after = utcnow()
    _pending(page, 2)
    assert page.locator("[data-checkin-pending]").is_visible()
    assert page.locator("[data-checkin-count]").inner_text() == "2"
    assert _checked_in_at(alice_id) is None and _checked_in_at(bob_id) is None, "nothing reached the server"

    # A second scan of the same ticket, still offline, says when it was first done.
    _type_code(page, alice_code)
    page.locator("#checkin-result[data-status=already]").wait_for()
    assert re.search(r"\d\d:\d\d", page.locator("[data-checkin-message]").inner_text())
    assert page.locator("[data-checkin-pending='2']").count() == 1, "a repeat is not queued again"

    # Reloading with no signal: the page comes from the service worker, the queue from IndexedDB.
    page.reload()
    page.locator("#checkin[data-checkin-ready]").wait_for(state="attached")
    _pending(page, 2)
    assert page.locator("h1").inner_text() == "滨江夜骑"
    assert _checked_in_at(alice_id) is None

    page.wait_for_timeout(1500)  # the scans are now clearly older than the sync
    synced_from = utcnow()
    no_signal.restore()  # the `online` event: the queue drains
    _pending(page, 0)
    for reg_id in (alice_id, bob_id):
        scanned = _checked_in_at(reg_id)
        assert scanned is not None, "synced when the signal came back"
        assert before - timedelta(seconds=1) <= scanned <= after + timedelta(seconds=1), "the device's scan time is kept"
        assert scanned < synced_from
    assert not page.locator("[data-checkin-pending]").is_visible()

    # Offline again, a third scan; the page is closed before the signal returns. Opening it
    # again online sends the queued scan on load (no `online` event needed).
    no_signal.cut()
    _type_code(page, carol_code)
    _pending(page, 1)
    page.close()
    no_signal.restore()
    again = context.new_page()
    again.on("pageerror", lambda error: console_errors.append(f"pageerror: {error}"))
    again.goto(f"/events/{event.id}/checkin")
    again.locator("#checkin[data-checkin-ready]").wait_for(state="attached")
    _pending(again, 0)
    assert _checked_in_at(carol_id) is not None
    again.locator("[data-checkin-count]", has_text="3").wait_for()
    assert not _page_errors(console_errors)


def test_a_second_phone_sees_when_the_ticket_was_first_checked_in(browser, live_server, csrf_on, factories):
    event, organizer, regs = _venue(factories, "电车阿丽")
    ((alice_id, alice_code, _display, _token),) = regs
    co_organizer = factories.user(login="13800138001", role="organizer", community=event.community)
    assert co_organizer.id
    phones = [browser.new_context(base_url=live_server, **PHONE) for _ in range(2)]
    try:
        first, second = (c.new_page() for c in phones)
        for phone in phones:
            phone.set_default_timeout(TIMEOUT_MS)
        log_in(first, "13800138000")
        _open_checkin(first, event.id)
        log_in(second, "13800138001")
        _open_checkin(second, event.id)  # its roster was fetched before the first scan

        _type_code(first, alice_code)
        first.locator("#checkin-result[data-status=ok]").wait_for()
        _pending(first, 0)
        scanned = _checked_in_at(alice_id)
        assert scanned is not None
        hhmm = scanned.astimezone(SHANGHAI).strftime("%H:%M")

        _type_code(second, alice_code)
        banner = second.locator("#checkin-result[data-status=already]")
        banner.wait_for()
        assert hhmm in second.locator("[data-checkin-message]").inner_text()
        assert "电车阿丽" in banner.inner_text()
        _pending(second, 0)
        assert _checked_in_at(alice_id) == scanned, "the earliest scan stays"

        # A phone that opens the page afterwards knows it before asking the server.
        second.reload()
        second.locator("#checkin[data-roster-fresh]").wait_for(state="attached")
        _type_code(second, alice_code)
        second.locator("#checkin-result[data-status=already]").wait_for()
        assert hhmm in second.locator("[data-checkin-message]").inner_text()
    finally:
        for phone in phones:
            phone.close()


# --- the camera -------------------------------------------------------------------------------

@pytest.fixture
def camera_browser(browser, tmp_path):
    """Chromium whose camera films a file; the test writes the file before the page opens it."""
    video = tmp_path / "ticket.y4m"
    args = CHROMIUM_ARGS + [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    camera = browser.browser_type.launch(executable_path=str(CHROMIUM), args=args, headless=True)
    try:
        yield camera, video
    finally:
        camera.close()


def test_scanning_a_ticket_qr_with_the_camera(camera_browser, live_server, csrf_on, factories):
    from tests.browser.fake_camera import qr_frame, write_y4m

    camera, video = camera_browser
    event, organizer, regs = _venue(factories, "车友小李")
    ((reg_id, _code, display, token),) = regs
    write_y4m(video, qr_frame(f"{live_server}/events/t/{token}"))

    context = camera.new_context(base_url=live_server, permissions=["camera"], **PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    errors = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
        page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
        log_in(page, "13800138000")
        _open_checkin(page, event.id)
        page.locator("[data-checkin-scan]").click()
        page.locator("[data-checkin-camera]:not([hidden])").wait_for()
        banner = page.locator("#checkin-result[data-status=ok]")
        banner.wait_for(timeout=20_000)
        assert "车友小李" in banner.inner_text() and display in banner.inner_text()
        _pending(page, 0)
        decoder = page.locator("#checkin").get_attribute("data-decoder")
        has_native = page.evaluate("'BarcodeDetector' in window")
        assert decoder == ("native" if has_native else "jsqr")
        # The same QR still in view is answered once, not queued again and again.
        page.wait_for_timeout(1000)
        assert page.locator("[data-checkin-log] li").count() == 1
        page.locator("[data-checkin-scan]").click()
        page.locator("[data-checkin-camera]").wait_for(state="hidden")
        assert page.evaluate("document.querySelector('[data-checkin-video]').srcObject") is None
    finally:
        context.close()
    assert _checked_in_at(reg_id) is not None
    assert not errors, errors



def test_a_new_version_of_the_app_keeps_the_open_checkin_page_offline(page, context, no_signal, factories, app):
    """A deploy while the page is open: the new service worker drops the old caches, and keeps the
    open check-in page (and the scripts it loads) again, so it still reloads with no signal."""
    event, organizer, regs = _venue(factories, "电车阿丽")
    log_in(page, "13800138000")
    _open_checkin(page, event.id)
    page.locator("[data-checkin-offline-ready]:not([hidden])").wait_for()
    first = page.evaluate("caches.keys().then((keys) => keys.filter((k) => k.startsWith('cheyou-private-')))")
    assert len(first) == 1
    extra = Path(app.static_folder) / f"_checkin-test-{uuid.uuid4().hex}.txt"
    try:
        extra.write_text("a new deploy")
        page.evaluate("navigator.serviceWorker.getRegistration().then((r) => r.update())")
        _eventually(page, """async (old) => {
          const names = (await caches.keys()).filter((k) => k.startsWith("cheyou-private-"));
          if (names.length !== 1 || names[0] === old) return false;
          return Boolean(await (await caches.open(names[0])).match(location.href));
        }""", first[0])
    finally:
        extra.unlink(missing_ok=True)
    no_signal.cut()
    page.reload()
    page.locator("#checkin[data-checkin-ready]").wait_for(state="attached")
    _type_code(page, regs[0][1])
    page.locator("#checkin-result[data-status=queued]").wait_for()
    _pending(page, 1)
    no_signal.restore()
    _pending(page, 0)
    assert _checked_in_at(regs[0][0]) is not None

def test_a_checkin_page_loaded_past_the_service_worker_still_gets_kept(page, context, no_signal, factories):
    """The worker activating while the check-in page was still loading (so the page never passed
    through it), or a hard reload: the page asks to be kept, and then reloads with no signal."""
    event, organizer, regs = _venue(factories, "电车阿丽")
    log_in(page, "13800138000")
    _open_checkin(page, event.id)
    page.locator("[data-checkin-offline-ready]:not([hidden])").wait_for()
    page.evaluate("""async () => {
      for (const name of await caches.keys()) if (name.startsWith("cheyou-private-")) await caches.delete(name);
    }""")
    cdp = context.new_cdp_session(page)
    with page.expect_navigation():
        cdp.send("Page.reload", {"ignoreCache": True})  # a hard reload skips the worker
    assert page.evaluate("performance.getEntriesByType('navigation')[0].workerStart") == 0, "past the worker"
    page.locator("[data-checkin-offline-ready]:not([hidden])").wait_for()
    no_signal.cut()
    page.reload()
    page.locator("#checkin[data-checkin-ready]").wait_for(state="attached")
    _type_code(page, regs[0][1])
    page.locator("#checkin-result[data-status=queued]").wait_for()
    no_signal.restore()
    _pending(page, 0)
    assert _checked_in_at(regs[0][0]) is not None


# --- logout on a shared phone -----------------------------------------------------------------

_DEVICE_DATA = """async () => {
  let kept = 0;
  for (const name of await caches.keys()) {
    if (name.startsWith("cheyou-private-")) kept += (await (await caches.open(name)).keys()).length;
  }
  const databases = (await indexedDB.databases()).map((d) => d.name);
  return { kept, checkin_db: databases.includes("cheyou-checkin") };
}"""


@pytest.mark.parametrize("clear_site_data", [True, False], ids=["with-clear-site-data", "service-worker-alone"])
def test_logout_leaves_no_kept_page_or_roster_on_the_phone(page, context, no_signal, factories, clear_site_data):
    event, organizer, regs = _venue(factories, "电车阿丽")
    if not clear_site_data:
        # A browser that ignores Clear-Site-Data: the service worker still wipes what it kept.
        def strip(route):
            response = route.fetch(max_redirects=0)
            headers = {k: v for k, v in response.headers.items() if k.lower() != "clear-site-data"}
            route.fulfill(response=response, headers=headers)

        context.route("**/auth/logout", strip)
    log_in(page, "13800138000")
    _open_checkin(page, event.id)
    page.locator("[data-checkin-offline-ready]:not([hidden])").wait_for()
    no_signal.cut()
    _type_code(page, regs[0][1])  # a scan waiting in IndexedDB too
    _pending(page, 1)
    no_signal.restore()  # the logout route stays
    _pending(page, 0)
    page.goto("/")  # a page the member reaches without the check-in page open (it holds the database)
    before = page.evaluate(_DEVICE_DATA)
    assert before == {"kept": 1, "checkin_db": True}, before

    page.goto("/me")
    page.locator("form[action='/auth/logout'] button").click()
    page.wait_for_url(lambda url: not url.endswith("/me"))
    page.wait_for_function("() => !document.querySelector('a[href=\"/me/notifications\"]')")
    _eventually(page, f"() => ({_DEVICE_DATA})().then((d) => d.kept === 0 && !d.checkin_db)")


def test_logging_out_with_unsent_check_ins_asks_first(page, context, factories):
    event, organizer, regs = _venue(factories, "电车阿丽")
    log_in(page, "13800138000")
    _open_checkin(page, event.id)
    page.locator("[data-checkin-offline-ready]:not([hidden])").wait_for()
    context.route("**/checkin/sync", lambda route: route.abort())  # the venue's signal: none for the sync
    _type_code(page, regs[0][1])
    _pending(page, 1)
    page.goto("/me")
    asked = []

    def answer(dialog, accept):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, accept=False))
    page.locator("form[action='/auth/logout'] button").click()
    deadline = time.monotonic() + 10
    while not asked:  # the confirmation comes once the page has counted the unsent scans
        assert time.monotonic() < deadline, "logging out with an unsent scan asked nothing"
        page.wait_for_timeout(100)
    assert "签到" in asked[0], asked
    assert page.url.endswith("/me"), "still signed in: the scan is kept"
    assert page.evaluate(_DEVICE_DATA)["checkin_db"]

    page.once("dialog", lambda d: answer(d, accept=True))
    page.locator("form[action='/auth/logout'] button").click()
    _eventually(page, "() => location.pathname !== '/me'")
    assert len(asked) == 2
    assert _checked_in_at(regs[0][0]) is None, "deleted on purpose, never sent"


def test_logging_out_with_nothing_unsent_asks_nothing(page, factories):
    event, organizer, regs = _venue(factories, "电车阿丽")
    log_in(page, "13800138000")
    _open_checkin(page, event.id)
    _type_code(page, regs[0][1])
    deadline = time.monotonic() + 10
    while _checked_in_at(regs[0][0]) is None:  # sent, then taken off the phone's queue
        assert time.monotonic() < deadline, "the check-in never reached the server"
        page.wait_for_timeout(200)
    _pending(page, 0)
    page.goto("/me")
    asked = []
    page.on("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.locator("form[action='/auth/logout'] button").click()
    _eventually(page, "() => location.pathname !== '/me'")
    assert asked == []
