"""Registration, login, logout, profile, consent and API tokens through the JSON API."""

from __future__ import annotations

from typing import Any

from tests.conftest import PASSWORD, Api, assert_error


def test_registering_creates_the_account_and_logs_in(api: Api) -> None:
    response = api.register(email="Ada@Example.com", name="Ada Lovelace")
    assert response.status_code == 201
    user = response.get_json()["user"]
    assert user["email"] == "ada@example.com"
    assert user["name"] == "Ada Lovelace"
    assert user["consent_given"] is False
    assert user["created_at"].endswith("Z")
    assert api.get("/api/user/profile").get_json()["user"]["id"] == user["id"]


def test_registering_the_same_email_twice_is_refused_with_409(api: Api) -> None:
    api.register()
    assert_error(api.register(email="ADA@example.com"), 409, "email_taken")


def test_registering_with_an_invalid_email_is_refused_with_400(api: Api) -> None:
    assert_error(api.register(email="not-an-email"), 400, "invalid_email")
    assert_error(api.post("/api/register", json={"password": PASSWORD}), 400, "invalid_email")


def test_weak_passwords_are_refused_with_422_and_every_reason(api: Api) -> None:
    error = assert_error(api.register(password="short"), 422, "weak_password")
    assert "at least 10 characters" in error["message"]
    assert_error(api.register(password="abcdefghijkl"), 422, "weak_password")  # one character class
    assert_error(api.register(password="password123"), 422, "weak_password")  # common
    assert_error(api.register(email="longname1@example.com", password="longname1@example.com"), 422)


def test_login_with_the_right_password_starts_a_session(api: Api, new_api: Any) -> None:
    api.register()
    other = new_api()
    assert_error(other.get("/api/user/profile"), 401, "unauthorized")
    response = other.login(email="ADA@example.com")
    assert response.status_code == 200
    assert response.get_json()["user"]["email"] == "ada@example.com"
    assert other.get("/api/user/profile").status_code == 200


def test_bad_credentials_are_refused_with_401_without_saying_which_part_is_wrong(api: Api, new_api: Any) -> None:
    api.register()
    other = new_api()
    wrong_password = assert_error(other.login(password="Wrong-horse-42"), 401, "invalid_credentials")
    unknown_email = assert_error(other.login(email="nobody@example.com"), 401, "invalid_credentials")
    assert wrong_password["message"] == unknown_email["message"]
    assert_error(other.post("/api/login", json={"email": "ada@example.com"}), 400, "missing_credentials")
    assert_error(other.get("/api/user/profile"), 401)


def test_logout_ends_the_session(user_api: Api) -> None:
    assert user_api.post("/api/logout").status_code == 200
    assert_error(user_api.get("/api/user/profile"), 401)


def test_consent_can_be_given_and_revoked(api: Api) -> None:
    api.register()
    given = api.put("/api/user/consent", json={"consent": True}).get_json()["user"]
    assert given["consent_given"] is True and given["consent_given_at"].endswith("Z")
    revoked = api.put("/api/user/consent", json={"consent": False}).get_json()["user"]
    assert revoked["consent_given"] is False and revoked["consent_given_at"] is None
    assert_error(api.put("/api/user/consent", json={"consent": "yes"}), 400)


def test_profile_name_and_password_can_be_changed(user_api: Api, new_api: Any) -> None:
    assert user_api.patch("/api/user/profile", json={"name": "  Countess   Ada "}).get_json()["user"]["name"] == (
        "Countess Ada"
    )
    assert_error(
        user_api.put("/api/user/password", json={"current_password": "nope", "new_password": "Another-horse-7"}),
        401,
    )
    assert_error(user_api.put("/api/user/password", json={"current_password": PASSWORD, "new_password": "x"}), 422)
    ok = user_api.put("/api/user/password", json={"current_password": PASSWORD, "new_password": "Another-horse-7"})
    assert ok.status_code == 200
    assert new_api().login(password="Another-horse-7").status_code == 200


def test_an_api_token_is_shown_once_and_authenticates_requests(user_api: Api, new_api: Any) -> None:
    created = user_api.post("/api/tokens", json={"name": "laptop script"})
    assert created.status_code == 201
    body = created.get_json()
    value = body["token"]
    assert value.startswith(body["prefix"]) and body["name"] == "laptop script"
    listed = user_api.get("/api/tokens").get_json()["items"]
    assert [t["id"] for t in listed] == [body["id"]] and "token" not in listed[0]

    script = new_api()  # no cookie at all, only the token; no CSRF token needed
    profile = script.get("/api/user/profile", token=value)
    assert profile.status_code == 200 and profile.get_json()["user"]["email"] == "ada@example.com"
    assert script.post("/api/predict/text", token=value, json={"text": "a happy day"}).status_code == 201
    assert "Set-Cookie" not in profile.headers


def test_a_revoked_token_no_longer_works(user_api: Api, new_api: Any) -> None:
    body = user_api.post("/api/tokens", json={"name": "ci"}).get_json()
    assert user_api.delete(f"/api/tokens/{body['id']}").status_code == 204
    assert_error(new_api().get("/api/user/profile", token=body["token"]), 401, "invalid_token")
    assert user_api.get("/api/tokens").get_json()["items"][0]["active"] is False


def test_an_unknown_token_is_refused_with_401(api: Api) -> None:
    assert_error(api.get("/api/user/profile", token="ml_not-a-real-token"), 401, "invalid_token")


def test_a_user_cannot_revoke_another_users_token(user_api: Api, new_api: Any) -> None:
    body = user_api.post("/api/tokens", json={}).get_json()
    other = new_api()
    other.register(email="bob@example.com")
    assert_error(other.delete(f"/api/tokens/{body['id']}"), 404)
    assert user_api.get("/api/user/profile", token=body["token"]).status_code == 200


def _same_client_cookies(app: Any, source: Api) -> Api:
    """A second browser holding copies of ``source``'s cookies (session and remember-me)."""
    copy = Api(app.test_client())
    for cookie in source.client._cookies.values():
        copy.client.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)
    return copy


def test_a_deleted_accounts_session_never_logs_in_an_account_that_gets_its_id(app: Any, new_api: Any) -> None:
    from sqlalchemy import delete, update

    from database.models import LoginSession, User
    from database.session import get_database

    ada = new_api()
    ada.register()
    assert (
        ada.post("/api/login", json={"email": "ada@example.com", "password": PASSWORD, "remember": True}).status_code
        == 200
    )
    ada_id = ada.get("/api/user/profile").get_json()["user"]["id"]
    old_browser = _same_client_cookies(app, ada)
    assert old_browser.get("/api/user/profile").status_code == 200
    assert ada.delete("/api/user").status_code == 204

    bob = new_api()
    bob_id = bob.register(email="bob@example.com").get_json()["user"]["id"]
    assert bob_id != ada_id  # ids of deleted accounts are not issued again
    with get_database(app).session() as session:  # even if a database did reuse it
        session.execute(delete(LoginSession).where(LoginSession.user_id == bob_id))  # bob logs in again below
        session.execute(update(User).where(User.id == bob_id).values(id=ada_id))
        session.commit()
    assert_error(old_browser.get("/api/user/profile"), 401, "unauthorized")
    assert bob.login(email="bob@example.com").status_code == 200
    profile = bob.get("/api/user/profile").get_json()["user"]
    assert profile["id"] == ada_id and profile["email"] == "bob@example.com"


def test_changing_the_password_logs_out_every_other_session(app: Any, new_api: Any) -> None:
    laptop = new_api()
    laptop.register()
    phone = new_api()
    assert (
        phone.post("/api/login", json={"email": "ada@example.com", "password": PASSWORD, "remember": True}).status_code
        == 200
    )
    stolen = _same_client_cookies(app, phone)
    assert stolen.get("/api/user/profile").status_code == 200

    changed = laptop.put("/api/user/password", json={"current_password": PASSWORD, "new_password": "Another-horse-7"})
    assert changed.status_code == 200
    assert laptop.get("/api/user/profile").status_code == 200  # the session that changed it continues
    assert_error(phone.get("/api/user/profile"), 401, "unauthorized")
    assert_error(stolen.get("/api/user/profile"), 401, "unauthorized")
    assert phone.login(password="Another-horse-7").status_code == 200


def test_old_session_cookies_that_name_only_an_id_are_not_accepted(app: Any, api: Api) -> None:
    api.register()
    user_id = api.get("/api/user/profile").get_json()["user"]["id"]
    forged = app.test_client()
    with forged.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
    assert_error(Api(forged).get("/api/user/profile"), 401, "unauthorized")


def test_wrong_current_passwords_lock_the_account_like_failed_logins(app_factory: Any) -> None:
    app = app_factory({"LOGIN_MAX_FAILURES": 3, "LOGIN_LOCK_SECONDS": 600})
    api = Api(app.test_client())
    api.register()
    wrong = {"current_password": "Wrong-horse-1", "new_password": "Another-horse-7"}
    assert_error(api.put("/api/user/password", json=wrong), 401, "invalid_credentials")
    assert_error(api.put("/api/user/password", json=wrong), 401, "invalid_credentials")
    locked = assert_error(api.put("/api/user/password", json=wrong), 429, "too_many_login_attempts")
    assert "Too many failed login attempts" in locked["message"]
    right = {"current_password": PASSWORD, "new_password": "Another-horse-7"}
    assert_error(api.put("/api/user/password", json=right), 429, "too_many_login_attempts")  # even the right one
    assert_error(Api(app.test_client()).login(), 429, "too_many_login_attempts")  # and logging in


def test_password_changes_share_the_per_ip_login_budget(app_factory: Any) -> None:
    app = app_factory({"RATELIMIT_ENABLED": True, "RATELIMIT_LOGIN": "2 per minute", "LOGIN_MAX_FAILURES": 100})
    api = Api(app.test_client())
    api.register()
    wrong = {"current_password": "Wrong-horse-1", "new_password": "Another-horse-7"}
    assert_error(api.put("/api/user/password", json=wrong), 401, "invalid_credentials")
    assert_error(api.put("/api/user/password", json=wrong), 401, "invalid_credentials")
    limited = api.put("/api/user/password", json=wrong)
    assert_error(limited, 429, "rate_limited")
    assert "Retry-After" in limited.headers
