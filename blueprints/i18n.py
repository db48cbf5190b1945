"""Language choice: the member's saved locale, else the `lang` cookie, else Chinese."""
from __future__ import annotations

from flask import request
from flask_login import current_user

LOCALES = {"zh_CN": "中文", "en": "English"}
DEFAULT = "zh_CN"


def select_locale() -> str:
    if current_user and current_user.is_authenticated and current_user.locale in LOCALES:
        return current_user.locale
    cookie = request.cookies.get("lang")
    return cookie if cookie in LOCALES else DEFAULT


def html_lang(locale) -> str:
    return "zh-CN" if str(locale).startswith("zh") else "en"
