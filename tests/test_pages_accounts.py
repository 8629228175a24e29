"""Register, log in and log out through the HTML forms: clear errors, the same password
policy, lock-out and rate limits as the API, no open redirects, CSRF on every form."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_pages_app as make_app

PASSWORD = "Lovelace-1815"


@pytest.fixture
def client(tmp_path: Path) -> Any:
    return make_app(tmp_path).test_client()


def register(client: Any, email: str = "ada@example.org", password: str = PASSWORD, confirm: str | None = None) -> Any:
    return client.post(
        "/register",
        data={"name": "Ada", "email": email, "password": password, "confirm": password if confirm is None else confirm},
    )


def login(client: Any, email: str = "ada@example.org", password: str = PASSWORD, next_url: str | None = None) -> Any:
    url = "/login" + (f"?next={next_url}" if next_url else "")
    return client.post(url, data={"email": email, "password": password})


def test_registering_logs_the_new_user_in_and_opens_analyse(client: Any) -> None:
    response = register(client)
    assert response.status_code == 302 and response.headers["Location"] == "/analyse"
    page = client.get("/analyse").get_data(as_text=True)
    assert "Signed in as Ada" in page
    assert "Your account is ready" in page


def test_weak_password_is_refused_with_every_broken_rule_named(client: Any) -> None:
    response = register(client, password="short")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Use at least 10 characters." in html
    assert 'aria-invalid="true"' in html
    assert client.get("/analyse").status_code == 302  # still anonymous


def test_common_password_is_refused_like_the_api_does(client: Any) -> None:
    response = register(client, password="password123")
    assert response.status_code == 422
    assert "too common" in response.get_data(as_text=True)


def test_mismatched_confirmation_is_explained(client: Any) -> None:
    response = register(client, confirm="Lovelace-1816")
    assert response.status_code == 422
    assert "The two passwords differ." in response.get_data(as_text=True)


def test_malformed_email_is_explained(client: Any) -> None:
    response = register(client, email="ada-at-example")
    assert response.status_code == 422
    assert "Enter an e-mail address like name@example.org." in response.get_data(as_text=True)


def test_second_account_with_the_same_email_is_refused_with_409(client: Any) -> None:
    register(client)
    client.post("/logout")
    response = register(client, email="ADA@example.org")
    assert response.status_code == 409
    assert "already exists" in response.get_data(as_text=True)


def test_login_with_a_wrong_password_gets_one_generic_message(client: Any) -> None:
    register(client)
    client.post("/logout")
    response = login(client, password="Wrong-password-1")
    assert response.status_code == 401
    assert "The email address or password is incorrect." in response.get_data(as_text=True)
    unknown = login(client, email="nobody@example.org")
    assert unknown.status_code == 401
    assert "The email address or password is incorrect." in unknown.get_data(as_text=True)


def test_login_returns_to_the_page_asked_for(client: Any) -> None:
    register(client)
    client.post("/logout")
    assert client.get("/history").headers["Location"].startswith("/login?next=")
    response = login(client, next_url="/history")
    assert response.status_code == 302 and response.headers["Location"] == "/history"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/steal",
        "https://evil.example/",
        "javascript:alert(1)",
        "//evil",
        "https://evil",
        "/%5Cevil.example",  # "/\\evil.example": browsers treat the backslash as a slash
        "/%5C%5Cevil.example",
        "/%09/evil.example",  # a tab is dropped by browsers, leaving "//evil.example"
        "/%0A/evil.example",
        "/%5Cevil",
        "/%09/evil",
    ],
)
def test_login_never_redirects_off_site(client: Any, target: str) -> None:
    register(client)
    client.post("/logout")
    response = login(client, next_url=target)
    assert response.status_code == 302 and response.headers["Location"] == "/analyse"


def test_repeated_failures_lock_the_account_for_page_logins_too(tmp_path: Path) -> None:
    client = make_app(tmp_path, LOGIN_MAX_FAILURES=2, LOGIN_LOCK_SECONDS=600).test_client()
    register(client)
    client.post("/logout")
    login(client, password="Wrong-password-1")
    locked = login(client, password="Wrong-password-2")
    assert locked.status_code == 429
    assert "Too many failed login attempts" in locked.get_data(as_text=True)
    assert login(client).status_code == 429  # even the right password waits


def test_page_and_api_logins_share_one_per_ip_budget(tmp_path: Path) -> None:
    client = make_app(tmp_path, RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="2 per minute").test_client()
    for _ in range(2):
        client.post("/api/login", json={"email": "x@example.org", "password": "Whatever-123"})
    assert login(client, email="x@example.org").status_code == 429


def test_showing_the_login_form_does_not_spend_the_login_budget(tmp_path: Path) -> None:
    client = make_app(tmp_path, RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="2 per minute").test_client()
    for _ in range(5):
        assert client.get("/login").status_code == 200


def test_logout_is_a_post_so_links_elsewhere_cannot_log_people_out(client: Any) -> None:
    register(client)
    assert client.get("/logout").status_code == 405
    response = client.post("/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "You are logged out." in client.get("/").get_data(as_text=True)
    assert client.get("/analyse").status_code == 302


def test_forms_carry_a_csrf_token_and_posts_without_it_are_refused(tmp_path: Path) -> None:
    client = make_app(tmp_path, WTF_CSRF_ENABLED=True).test_client()
    html = client.get("/register").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', html
    )
    assert token, "the register form has no CSRF token"
    assert register(client).status_code == 400
    response = client.post(
        "/register",
        data={"csrf_token": token.group(1), "email": "ada@example.org", "password": PASSWORD, "confirm": PASSWORD},
    )
    assert response.status_code == 302


def test_logged_in_users_skip_the_login_and_register_forms(client: Any) -> None:
    register(client)
    assert client.get("/login").headers["Location"] == "/analyse"
    assert client.get("/register").headers["Location"] == "/analyse"


def test_every_form_problem_is_reported_in_one_go(client: Any) -> None:
    response = client.post("/register", data={"email": "nope", "password": "short", "confirm": "other"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Enter an e-mail address like name@example.org." in html
    assert "Use at least 10 characters." in html
    assert "The two passwords differ." in html
