"""The garage: the dictionary and its type-ahead, VIN checks, adding, editing and removing cars,
and nobody else's car reachable."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from models import DomainError, db
from models.garage import (Car, CarInput, CarMake, CarSeries, check_vin, mask_vin, save_car, search_series,
                           vin_check_digit)
from models.nonces import new_nonce


def series(make: str, name: str) -> CarSeries:
    return db.session.scalar(select(CarSeries).join(CarMake).where(CarMake.name == make, CarSeries.name == name))


def chinese_vin(body: str = "LGXCE4CB0M2012345") -> str:
    """BODY with its ISO 3779 check digit in position 9."""
    return body[:8] + vin_check_digit(body) + body[9:]


def wrong_digit(vin: str) -> str:
    """VIN with a check digit that does not add up."""
    right = vin_check_digit(vin)
    return vin[:8] + ("2" if right != "2" else "3") + vin[9:]


# --- the dictionary ------------------------------------------------------------------------

def test_the_dictionary_holds_the_used_car_market_with_energy_types():
    assert db.session.scalar(select(func.count()).select_from(CarMake)) >= 40
    assert db.session.scalar(select(func.count()).select_from(CarSeries)) >= 200
    assert series("比亚迪", "汉 EV").energy == "bev"
    assert series("比亚迪", "秦PLUS DM-i").energy == "phev"
    assert series("理想", "L7").energy == "erev"
    assert series("丰田", "卡罗拉双擎").energy == "hev"
    assert series("大众", "朗逸").energy == "fuel"
    for make, name in [("特斯拉", "Model 3"), ("特斯拉", "Model Y"), ("大众", "帕萨特"), ("大众", "速腾"),
                       ("丰田", "凯美瑞"), ("本田", "雅阁"), ("本田", "思域"), ("日产", "轩逸"), ("比亚迪", "海豚"),
                       ("五菱", "宏光MINIEV")]:
        assert series(make, name) is not None, (make, name)
    for make in ["吉利", "长安", "理想", "蔚来", "小鹏"]:
        assert db.session.scalar(select(CarMake).where(CarMake.name == make)) is not None


@pytest.mark.parametrize("typed", ["比亚", "byd", "BYD", "biyadi"])
def test_typing_part_of_a_make_in_chinese_or_latin_finds_it(typed):
    found = search_series(typed)
    assert found and {s.make.name for s in found} == {"比亚迪"}
    assert "比亚迪 汉 EV" in [s.label for s in found]


def test_search_finds_series_by_alias_and_by_make_plus_series():
    assert [s.label for s in search_series("model3")] == ["特斯拉 Model 3"]
    assert [s.label for s in search_series("Model 3")] == ["特斯拉 Model 3"]
    assert [s.label for s in search_series("大众 朗逸")] == ["大众 朗逸"]
    assert "日产 轩逸" in [s.label for s in search_series("sylphy")]
    assert search_series("") == [] and search_series("%_") == []


def test_the_type_ahead_answers_a_fragment_to_htmx_and_the_whole_form_otherwise(factories, login_as):
    client = login_as(factories.user())
    fragment = client.get("/me/garage/new?q=比亚", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and 'id="series-results"' in fragment
    assert "比亚迪 汉 EV" in fragment and "纯电" in fragment
    assert f'value="{series("比亚迪", "汉 EV").id}"' in fragment
    page = client.get("/me/garage/new?q=byd")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in body and "比亚迪 海豚" in body
    assert "HX-Request" in page.headers.get("Vary", "")
    nothing = client.get("/me/garage/new?q=zzzz", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "没有找到" in nothing


def test_the_search_button_works_without_javascript(factories, login_as):
    client = login_as(factories.user())
    response = client.post("/me/garage/new", data={"q": "朗逸", "action": "search", "nonce": new_nonce()})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "大众 朗逸" in body
    assert db.session.scalar(select(func.count()).select_from(Car)) == 0


# --- VIN -----------------------------------------------------------------------------------

def test_check_digit_follows_iso_3779():
    assert vin_check_digit("1M8GDM9AXKP042788") == "X"  # the standard's worked example
    assert vin_check_digit("11111111111111111") == "1"


def test_a_chinese_vin_with_the_right_check_digit_is_accepted_and_masked():
    vin = chinese_vin()
    assert check_vin(vin.lower()[:5] + " " + vin.lower()[5:]) == (vin, None)
    assert mask_vin(vin) == vin[:3] + "*" * 10 + vin[-4:]
    assert re.fullmatch(r"LGX\*{10}\d{4}", mask_vin(vin))


def test_a_chinese_vin_with_a_bad_check_digit_is_refused_with_the_digit_it_needs():
    vin = wrong_digit(chinese_vin())
    with pytest.raises(DomainError) as refused:
        check_vin(vin)
    assert refused.value.field == "vin" and refused.value.params == {"digit": chinese_vin()[8]}


def test_an_imported_vin_with_a_bad_check_digit_is_only_warned_about():
    imported = wrong_digit("WVWZZZ1KZ6W000001")  # a German VIN: Europe uses no check digit
    vin, warning = check_vin(imported)
    assert vin == imported and warning and "check digit" in warning


@pytest.mark.parametrize("vin, why", [("LGXCE4CB0M201234", "17"), ("LGXCE4CBOM2012345", "I, O"),
                                      ("LGXCE4CB0M20123456", "17")])
def test_malformed_vins_are_refused(vin, why):
    with pytest.raises(DomainError) as refused:
        check_vin(vin)
    assert why in refused.value.message


# --- add, edit, remove ---------------------------------------------------------------------

def add_form(pick, **fields) -> dict:
    return {"pick": str(pick), "model_year": "2021", "mileage_km": "46,000", "vin": "", "plate": "",
            "nonce": new_nonce(), "action": "save", **fields}


def test_a_member_adds_a_car_from_the_dictionary_and_sees_it_masked(factories, login_as):
    member = factories.user()
    client = login_as(member)
    vin = chinese_vin()
    response = client.post("/me/garage/new", data=add_form(series("比亚迪", "汉 EV").id, vin=vin.lower(),
                                                           plate="粤b·d12345"))
    assert response.status_code == 302 and response.headers["Location"] == "/me/garage"
    car = db.session.scalar(select(Car).where(Car.owner_id == member.id))
    assert (car.title, car.energy, car.model_year, car.mileage_km, car.vin, car.plate) == \
        ("比亚迪 汉 EV", "bev", 2021, 46000, vin, "粤BD12345")
    page = client.get("/me/garage").get_data(as_text=True)
    assert "比亚迪 汉 EV" in page and mask_vin(vin) in page and vin not in page
    assert "已加入你的车库" in page


def test_a_repeated_submission_adds_the_car_once(factories, login_as):
    member = factories.user()
    client = login_as(member)
    data = add_form(series("大众", "朗逸").id)
    assert client.post("/me/garage/new", data=data).status_code == 302
    assert client.post("/me/garage/new", data=data).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(Car).where(Car.owner_id == member.id)) == 1


def test_a_bad_chinese_vin_is_refused_on_the_form_and_nothing_saved(factories, login_as):
    client = login_as(factories.user())
    response = client.post("/me/garage/new", data=add_form(series("比亚迪", "汉 EV").id,
                                                           vin=wrong_digit(chinese_vin())))
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"第 9 位应为 {chinese_vin()[8]}" in body
    assert "比亚迪 汉 EV" in body  # the picked series is still picked
    assert db.session.scalar(select(func.count()).select_from(Car)) == 0


def test_an_imported_car_with_a_bad_check_digit_is_saved_with_a_warning(factories, login_as):
    client = login_as(factories.user())
    imported = wrong_digit("WVWZZZ1KZ6W000001")
    response = client.post("/me/garage/new", data=add_form(series("大众", "高尔夫").id, vin=imported))
    assert response.status_code == 302
    assert db.session.scalar(select(Car.vin)) == imported
    assert "校验位不符" in client.get("/me/garage").get_data(as_text=True)


def test_a_car_not_listed_is_typed_and_kept_apart_from_the_dictionary(factories, login_as):
    member = factories.user()
    client = login_as(member)
    before = db.session.scalar(select(func.count()).select_from(CarSeries))
    response = client.post("/me/garage/new", data=add_form("other", other_make="阿维塔", other_series="12",
                                                           energy="bev"))
    assert response.status_code == 302
    car = db.session.scalar(select(Car).where(Car.owner_id == member.id))
    assert (car.make_id, car.other_make, car.series_id, car.other_series, car.energy) == (None, "阿维塔", None, "12", "bev")
    assert db.session.scalar(select(func.count()).select_from(CarSeries)) == before
    # A listed make typed by hand still counts as that make (for recalls), the series stays typed.
    client.post("/me/garage/new", data=add_form("other", other_make="byd", other_series="汉L", energy="phev"))
    typed = db.session.scalar(select(Car).where(Car.other_series == "汉L"))
    assert typed.make.name == "比亚迪" and typed.other_make is None and typed.series_id is None
    # Typed exactly as the dictionary has it, it is the listed series (with the series' own energy).
    client.post("/me/garage/new", data=add_form("other", other_make="BYD", other_series="海豚", energy="fuel"))
    dolphin = db.session.scalar(select(Car).where(Car.series_id == series("比亚迪", "海豚").id))
    assert dolphin is not None and dolphin.other_series is None and dolphin.energy == "bev"


def test_refusals_name_the_field(factories, login_as):
    client = login_as(factories.user())
    cases = [
        (add_form(""), "请搜索并从列表中选择"),
        (add_form("other", other_make="", other_series="X", energy="bev"), "请填写品牌"),
        (add_form("other", other_make="某牌", other_series="X", energy=""), "请选择能源类型"),
        (add_form(series("大众", "朗逸").id, model_year="1900"), "年款"),
        (add_form(series("大众", "朗逸").id, mileage_km="lots"), "请填写整数公里数"),
        (add_form(series("大众", "朗逸").id, plate="ABC"), "粤B12345"),
    ]
    for data, message in cases:
        response = client.post("/me/garage/new", data=data)
        assert response.status_code == 422 and message in response.get_data(as_text=True), message
    assert db.session.scalar(select(func.count()).select_from(Car)) == 0


def test_a_member_edits_and_removes_their_car(factories, login_as):
    member = factories.user()
    car, _ = save_car(member, CarInput(series_id=series("本田", "雅阁").id, model_year=2019, mileage_km=60000))
    db.session.commit()
    client = login_as(member)
    form = client.get(f"/me/garage/{car.id}/edit").get_data(as_text=True)
    assert "本田 雅阁" in form and 'checked' in form
    response = client.post(f"/me/garage/{car.id}/edit", data={"pick": str(series("本田", "思域").id), "model_year": "2020",
                                                              "mileage_km": "61000", "action": "save"})
    assert response.status_code == 302
    db.session.expire_all()
    car = db.session.get(Car, car.id)
    assert (car.title, car.model_year, car.mileage_km) == ("本田 思域", 2020, 61000)
    car_id = car.id
    assert client.post(f"/me/garage/{car_id}/delete").status_code == 302
    db.session.expunge_all()
    assert db.session.get(Car, car_id) is None
    assert "已从你的车库移除" in client.get("/me/garage").get_data(as_text=True)


def test_another_members_car_is_not_found_on_every_route(factories, login_as):
    owner, other = factories.user(), factories.user()
    car, _ = save_car(owner, CarInput(series_id=series("日产", "轩逸").id, model_year=2020))
    db.session.commit()
    client = login_as(other)
    assert client.get(f"/me/garage/{car.id}/edit").status_code == 404
    assert client.get(f"/me/garage/{car.id}/edit?q=byd", headers={"HX-Request": "true"}).status_code == 404
    assert client.post(f"/me/garage/{car.id}/edit", data={"pick": str(series("大众", "朗逸").id),
                                                          "model_year": "2010", "action": "save"}).status_code == 404
    assert client.post(f"/me/garage/{car.id}/delete").status_code == 404
    assert client.post(f"/me/garage/{car.id}/recalls/1/done").status_code == 404
    db.session.expire_all()
    kept = db.session.get(Car, car.id)
    assert kept is not None and kept.model_year == 2020 and kept.series.name == "轩逸"
    assert "轩逸" not in client.get("/me/garage").get_data(as_text=True)


def test_an_ev_owner_is_pointed_to_the_ev_community(factories, login_as, communities):
    member = factories.user()
    client = login_as(member)
    save_car(member, CarInput(series_id=series("大众", "朗逸").id, model_year=2018))
    db.session.commit()
    assert "新能源车主" not in client.get("/me/garage").get_data(as_text=True)
    save_car(member, CarInput(series_id=series("比亚迪", "秦PLUS DM-i").id, model_year=2022))
    db.session.commit()
    page = client.get("/me/garage").get_data(as_text=True)
    assert "新能源车主" in page and "/c/ev/join" in page
    communities["ev"].join(member)
    db.session.commit()
    assert "/c/ev/join" not in client.get("/me/garage").get_data(as_text=True)


def test_garage_pages_need_a_login(client):
    for path in ["/me/garage", "/me/garage/new"]:
        response = client.get(path)
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_an_expired_add_form_comes_back_with_what_was_typed(factories, login_as, csrf_on):
    client = login_as(factories.user())
    response = client.post("/me/garage/new", data=add_form(series("大众", "朗逸").id, plate="粤B12345"))
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "粤B12345" in body and "大众 朗逸" in body and "checked" in body
    assert db.session.scalar(select(func.count()).select_from(Car)) == 0
