"""CSRF, rate limits, per-account lock-out, security headers and cookie settings."""

from __future__ import annotations

from typing import Any

from tests.conftest import PASSWORD, Api, assert_error


def test_cookie_authenticated_writes_without_a_csrf_token_are_refused(user_api: Api) -> None:
    error = assert_error(user_api.post("/api/predict/text", csrf=False, json={"text": "happy"}), 400, "csrf_failed")
    assert "X-CSRFToken" in error["message"]
    assert_error(user_api.delete("/api/user", csrf=False), 400, "csrf_failed")
    bad = user_api.post("/api/predict/text", json={"text": "happy"}, csrf=False, headers={"X-CSRFToken": "forged"})
    assert_error(bad, 400, "csrf_failed")
    assert user_api.get("/api/user/profile").status_code == 200  # the account is still there


def test_anonymous_login_and_registration_also_need_the_csrf_token(api: Api) -> None:
    assert_error(api.post("/api/register", csrf=False, json={"email": "x@example.com", "password": PASSWORD}), 400)
    assert_error(api.post("/api/login", csrf=False, json={"email": "x@example.com", "password": PASSWORD}), 400)


def test_the_csrf_token_is_served_by_get_api_csrf(api: Api) -> None:
    token = api.get("/api/csrf").get_json()["csrf_token"]
    assert isinstance(token, str) and len(token) > 20


def test_login_is_rate_limited_per_ip_with_429_and_retry_after(app_factory: Any) -> None:
    app = app_factory({"RATELIMIT_ENABLED": True, "RATELIMIT_LOGIN": "3 per minute"})
    api = Api(app.test_client())
    statuses = [api.login(email=f"u{i}@example.com").status_code for i in range(4)]
    assert statuses[:3] == [401, 401, 401]
    response = api.login(email="u9@example.com")
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0


def test_predictions_are_rate_limited_too(app_factory: Any) -> None:
    app = app_factory({"RATELIMIT_ENABLED": True, "RATELIMIT_PREDICT": "2 per minute"})
    api = Api(app.test_client())
    api.register()
    assert [api.post("/api/predict/text", json={"text": "happy"}).status_code for _ in range(2)] == [201, 201]
    response = api.post("/api/predict/text", json={"text": "happy"})
    assert_error(response, 429, "rate_limited")
    assert "Retry-After" in response.headers


def test_an_account_locks_after_repeated_failures_even_for_the_right_password(app_factory: Any) -> None:
    app = app_factory({"LOGIN_MAX_FAILURES": 3, "LOGIN_LOCK_SECONDS": 600})
    owner = Api(app.test_client())
    owner.register()
    attacker = Api(app.test_client())
    for _ in range(2):
        assert_error(attacker.login(password="Wrong-horse-42"), 401)
    locked = attacker.login(password="Wrong-horse-42")
    assert_error(locked, 429, "too_many_login_attempts")
    assert 0 < int(locked.headers["Retry-After"]) <= 600
    assert_error(Api(app.test_client()).login(), 429, "too_many_login_attempts")


def test_a_successful_login_resets_the_failure_count(app_factory: Any) -> None:
    app = app_factory({"LOGIN_MAX_FAILURES": 3})
    api = Api(app.test_client())
    api.register()
    for _ in range(2):
        api.login(password="Wrong-horse-42")
    assert api.login().status_code == 200
    for _ in range(2):
        assert_error(api.login(password="Wrong-horse-42"), 401)
    assert api.login().status_code == 200


def test_responses_carry_a_strict_content_security_policy(api: Api) -> None:
    response = api.get("/healthz")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "img-src 'self' data: blob:" in csp
    assert "media-src 'self' blob:" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_session_cookie_is_http_only_and_same_site(api: Api) -> None:
    response = api.register()
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_cookies_are_secure(app_factory: Any) -> None:
    app = app_factory({"SESSION_COOKIE_SECURE": True})
    api = Api(app.test_client())
    assert "Secure" in api.register().headers.get("Set-Cookie", "")


def test_passwords_are_stored_as_bcrypt_hashes(app: Any, api: Api) -> None:
    from sqlalchemy import select

    from database.models import User
    from database.session import get_database

    api.register()
    with get_database(app).session() as session:
        stored = session.scalar(select(User.password_hash))
    assert stored.startswith("$2b$") and PASSWORD not in stored


def test_api_tokens_are_stored_only_as_sha256_digests(app: Any, user_api: Api) -> None:
    import hashlib

    from sqlalchemy import select

    from database.models import ApiToken
    from database.session import get_database

    value = user_api.post("/api/tokens", json={"name": "t"}).get_json()["token"]
    with get_database(app).session() as session:
        digest = session.scalar(select(ApiToken.token_hash))
    assert digest == hashlib.sha256(value.encode()).hexdigest()
