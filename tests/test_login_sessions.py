"""Logging out ends the session on the server: a copied cookie (session or remember-me) is dead.

Before login sessions had rows, ``POST /api/logout`` only cleared the browser's cookies: a
copy of them replayed afterwards still read the profile (200) and could mint an API token
(201). Now every login is a ``login_sessions`` row that logout deletes.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import PASSWORD, Api, assert_error


def _copy_cookies(app: Any, source: Api, only: str | None = None) -> Api:
    """A second browser holding copies of ``source``'s cookies (all, or just the one named)."""
    copy = Api(app.test_client())
    for cookie in source.client._cookies.values():
        if only is None or cookie.key == only:
            copy.client.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)
    return copy


def _login_remembered(api: Api) -> None:
    response = api.post("/api/login", json={"email": "ada@example.com", "password": PASSWORD, "remember": True})
    assert response.status_code == 200


def test_a_session_cookie_replayed_after_logout_is_refused(app: Any, api: Api) -> None:
    api.register()
    _login_remembered(api)
    stolen = _copy_cookies(app, api)
    assert stolen.get("/api/user/profile").status_code == 200
    assert api.post("/api/logout").get_json() == {"logged_out": True}

    assert_error(stolen.get("/api/user/profile"), 401, "unauthorized")
    # Not even with a fresh CSRF token can the replayed cookie mint an API token.
    assert_error(stolen.post("/api/tokens", json={"name": "stolen"}), 401, "unauthorized")
    assert_error(api.get("/api/user/profile"), 401, "unauthorized")


def test_a_remember_cookie_alone_replayed_after_logout_is_refused(app: Any, api: Api) -> None:
    api.register()
    _login_remembered(api)
    remembered = _copy_cookies(app, api, only="remember_token")
    assert remembered.get("/api/user/profile").status_code == 200  # the cookie works while the login lives
    api.post("/api/logout")
    fresh = _copy_cookies(app, api, only="remember_token")  # whatever the browser still holds
    assert_error(fresh.get("/api/user/profile"), 401, "unauthorized")
    assert_error(_copy_cookies(app, remembered, only="remember_token").get("/api/user/profile"), 401)


def test_logging_out_one_browser_keeps_the_others(app: Any, new_api: Any) -> None:
    laptop, phone = new_api(), new_api()
    laptop.register()
    phone.login()
    laptop.post("/api/logout")
    assert phone.get("/api/user/profile").status_code == 200


def test_log_out_everywhere_ends_every_session_and_remember_cookie_but_not_tokens(app: Any, new_api: Any) -> None:
    laptop, phone = new_api(), new_api()
    laptop.register()
    _login_remembered(phone)
    phone_remember = _copy_cookies(app, phone, only="remember_token")
    token = laptop.post("/api/tokens", json={"name": "script"}).get_json()["token"]

    ended = laptop.post("/api/logout/all")
    assert ended.status_code == 200 and ended.get_json() == {"logged_out": True, "sessions_ended": 2}
    for browser in (laptop, phone, phone_remember):
        assert_error(browser.get("/api/user/profile"), 401, "unauthorized")
    assert Api(app.test_client()).get("/api/user/profile", token=token).status_code == 200
    assert phone.login().status_code == 200  # logging in again works


def test_log_out_everywhere_needs_a_login(api: Api) -> None:
    assert_error(api.post("/api/logout/all"), 401, "unauthorized")


def test_the_account_page_offers_log_out_everywhere(app: Any) -> None:
    import re

    client = app.test_client()
    client.post(
        "/register",
        data={
            "email": "ada@example.com",
            "password": PASSWORD,
            "confirm": PASSWORD,
            "csrf_token": _page_csrf(client, "/register"),
        },
    )
    other = app.test_client()
    other.post(
        "/login",
        data={"email": "ada@example.com", "password": PASSWORD, "csrf_token": _page_csrf(other, "/login")},
    )
    assert other.get("/account").status_code == 200
    page = client.get("/account").get_data(as_text=True)
    assert 'action="/logout/all"' in page and "Log out everywhere" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/logout/all", data={"csrf_token": token})
    assert response.status_code == 302
    assert other.get("/account").status_code == 302  # sent to the login page
    assert client.get("/account").status_code == 302


def _page_csrf(client: Any, path: str) -> str:
    import re

    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def test_a_login_removes_the_accounts_sessions_no_cookie_can_name_any_more(app: Any, api: Api) -> None:
    import datetime as dt

    from sqlalchemy import func, select, update

    from database.models import LoginSession
    from database.session import get_database

    api.register()
    with get_database(app).session() as session:  # the registration's session, dated beyond a remember cookie
        session.execute(update(LoginSession).values(created_at=dt.datetime(2020, 1, 1)))
        session.commit()
    assert Api(app.test_client()).login().status_code == 200
    with get_database(app).session() as session:
        assert session.scalar(select(func.count()).select_from(LoginSession)) == 1
