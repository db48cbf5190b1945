"""Issue #10, the partner counter: the store is remembered on the device (per business) and
preselected next time, still changeable; after a validation one tap gives an empty, focused code box."""
from __future__ import annotations

import re

from tests.test_partner import make_voucher, shop  # noqa: F401  (fixture)


def text(response) -> str:
    return response.get_data(as_text=True)


def selected_store(body: str) -> str:
    return re.search(r'<option selected value="(\d+)"', body).group(1)


def test_the_store_is_remembered_on_the_device_not_only_on_the_account(app, login_as, factories, shop):  # noqa: F811
    partner, staff = shop
    first, second, third = (make_voucher(factories, partner) for _ in range(3))
    counter_phone, own_phone = login_as(staff), login_as(staff)
    store_1, store_2 = (str(s.id) for s in partner.stores)

    used = counter_phone.post(f"/partner/v/{first.code}/use", data={"store": store_2}, headers={"HX-Request": "true"})
    assert used.status_code == 200
    cookie = used.headers["Set-Cookie"]
    assert cookie.startswith(f"cy_store_{partner.id}={store_2};") and "HttpOnly" in cookie and "Max-Age=" in cookie
    assert counter_phone.post(f"/partner/v/{second.code}/use", data={"store": store_1}).status_code == 200
    # The counter phone follows its last validation; on another phone the account's last store
    # (store 1) would be chosen, unless that phone remembers its own.
    assert selected_store(text(counter_phone.get(f"/partner/v/{third.code}"))) == store_1
    own_phone.set_cookie(f"cy_store_{partner.id}", store_2)
    assert selected_store(text(own_phone.get(f"/partner/v/{third.code}"))) == store_2, \
        "the device's store wins over the account's last one"
    body = text(own_phone.get(f"/partner/v/{third.code}"))
    assert f'<option value="{store_1}">' in body, "the other store can still be chosen"


def test_a_remembered_store_that_does_not_accept_the_voucher_is_not_preselected(login_as, factories, shop):  # noqa: F811
    partner, staff = shop
    other = factories.partner("别家洗车", stores=1)
    voucher = make_voucher(factories, partner)
    client = login_as(staff)
    client.set_cookie(f"cy_store_{partner.id}", str(other.stores[0].id))
    assert selected_store(text(client.get(f"/partner/v/{voucher.code}"))) == "0"
    client.set_cookie(f"cy_store_{partner.id}", "x; drop")
    assert selected_store(text(client.get(f"/partner/v/{voucher.code}"))) == "0"


def test_after_a_validation_one_tap_brings_an_empty_focused_code_box(login_as, factories, shop):  # noqa: F811
    partner, staff = shop
    voucher = make_voucher(factories, partner)
    client = login_as(staff)
    client.set_cookie("lang", "zh_Hans_CN")
    done = text(client.post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[0].id},
                            headers={"HX-Request": "true"}))
    link = re.search(r'<a class="button primary block pv-next" href="([^"]+)">验证下一张</a>', done)
    assert link, done
    page = text(client.get(link.group(1).replace("&amp;", "&")))
    code_box = re.search(r"<input[^>]*name=\"code\"[^>]*>", page).group(0)
    assert "autofocus" in code_box and ('value=""' in code_box or "value=" not in code_box)
    assert "autofocus" not in re.search(r"<input[^>]*name=\"code\"[^>]*>", text(client.get("/partner"))).group(0)
    # A refused second use offers the same way on.
    again = text(client.post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[0].id},
                             headers={"HX-Request": "true"}))
    assert "验证下一张" in again
