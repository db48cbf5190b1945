"""Language choice: the member's saved locale, else the `lang` cookie, else Chinese."""
from __future__ import annotations

from flask import Flask, g, request
from flask_babel import get_locale, get_translations
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


def request_translations():
    """The translations of the request's locale, looked up once per locale and request.

    Flask-Babel's own look-up walks the app context, the domain and the locale's identifier on
    every string, and a page has 50 to 250 of them (a fifth of `/me`'s time). Keyed on the
    locale object Flask-Babel hands out, so `force_locale` (a message in its member's language)
    and a locale changed mid-request get their own."""
    if not g:  # no app context: Flask-Babel's own answer (untranslated)
        return get_translations()
    locale = get_locale()
    cached = g.get("_cheyou_translations")
    if cached is None or cached[0] is not locale:
        cached = g._cheyou_translations = (locale, get_translations())
    return cached[1]


def gettext(string: str, **variables) -> str:
    """Flask-Babel's `gettext` through `request_translations`, for code that runs per item of a
    page (the relative time of every card and comment)."""
    translated = request_translations().ugettext(string)
    return translated % variables if variables else translated


def install_template_gettext(app: Flask) -> None:
    """Templates' `_`, `gettext`, `ngettext`… through `request_translations` (after Babel's init_app,
    which installed its own; Jinja still wraps them as newstyle: escaping and %(name)s formatting)."""
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: request_translations().ugettext(s),
        ngettext=lambda s, p, n: request_translations().ungettext(s, p, n),
        pgettext=lambda c, s: request_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: request_translations().unpgettext(c, s, p, n),
        newstyle=True,
    )
