"""The check-in page's words for what only this phone knows (issue #10), on 360 px and 412 px
phones: a scan made with no signal says "已记录，待同步", not the synced "签到成功"; once the
signal returns the page says how many check-ins that sync sent."""
from __future__ import annotations

import pytest

from tests.browser.test_checkin import _checked_in_at, _open_checkin, _page_errors, _pending, \
    _type_code, _venue
from tests.browser.test_shell import log_in

pytestmark = pytest.mark.browser

WIDTHS = [360, 412]


@pytest.mark.parametrize("width", WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def test_offline_scan_says_recorded_then_synced_with_the_count(page, context, no_signal, factories, console_errors,
                                                              width):
    page.set_viewport_size({"width": width, "height": 780})
    event, organizer, regs = _venue(factories, "电车阿丽", "老王")
    (alice_id, alice_code, _a, _), (bob_id, bob_code, _b, _) = regs
    log_in(page, "13800138000")
    _open_checkin(page, event.id)
    page.locator("[data-checkin-offline-ready]:not([hidden])").wait_for()

    no_signal.cut()
    _type_code(page, alice_code)
    banner = page.locator("#checkin-result[data-status=queued]")
    banner.wait_for()
    assert page.locator("[data-checkin-verdict]").inner_text().strip() == "已记录，待同步"
    assert "电车阿丽" in banner.inner_text()
    assert "签到成功" not in banner.inner_text()
    _pending(page, 1)
    assert page.locator("[data-checkin-synced]").is_hidden()
    page.screenshot(path=f"/tmp/cheyou-checkin-queued-{width}.png")

    no_signal.restore()  # the `online` event: the queue drains
    synced = page.locator("[data-checkin-synced='1']")
    synced.wait_for()
    assert synced.inner_text().strip() == "已同步 1 条"
    page.locator("#checkin-result[data-status=ok]").wait_for()
    assert page.locator("[data-checkin-verdict]").inner_text().strip() == "签到成功"
    _pending(page, 0)
    assert _checked_in_at(alice_id) is not None
    page.screenshot(path=f"/tmp/cheyou-checkin-synced-{width}.png")

    # The next scan hides the old count; online, it is sent at once and counted on its own.
    _type_code(page, bob_code)
    page.locator("#checkin-result[data-status=ok] [data-checkin-who]", has_text="老王").wait_for()
    page.locator("[data-checkin-synced='1']").wait_for()
    assert _checked_in_at(bob_id) is not None
    assert not _page_errors(console_errors)


def test_a_sync_counts_every_scan_it_sent_in_english(page, context, no_signal, factories, console_errors):
    event, organizer, regs = _venue(factories, "电车阿丽", "老王", "小陈")
    log_in(page, "13800138000")
    page.context.add_cookies([{"name": "lang", "value": "en", "url": page.url}])
    _open_checkin(page, event.id)
    page.locator("[data-checkin-offline-ready]:not([hidden])").wait_for()
    no_signal.cut()
    for _reg_id, code, _display, _token in regs:
        _type_code(page, code)
        _pending(page, regs.index((_reg_id, code, _display, _token)) + 1)
    assert page.locator("[data-checkin-verdict]").inner_text().strip() == "Recorded, waiting to sync"
    no_signal.restore()
    page.locator("[data-checkin-synced='3']").wait_for()
    assert page.locator("[data-checkin-synced]").inner_text().strip() == "3 check-ins synced"
    page.locator("#checkin-result[data-status=ok]").wait_for()
    assert page.locator("[data-checkin-verdict]").inner_text().strip() == "Check-in successful"
    assert all(_checked_in_at(reg_id) is not None for reg_id, *_rest in regs)
    assert not _page_errors(console_errors)
