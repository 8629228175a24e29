"""The account service used by both the API and the HTML pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from database.session import get_database
from services import accounts
from tests.conftest import PASSWORD


def test_the_page_and_api_share_registration_and_authentication(app: Any) -> None:
    with app.app_context(), get_database(app).session() as session:
        user = accounts.register_user(session, " Ada@Example.com ", PASSWORD, "  Ada  ")
        assert (user.email, user.display_name, user.consent_given_at) == ("ada@example.com", "Ada", None)
        assert accounts.authenticate(session, "ADA@example.com", PASSWORD).id == user.id
        with pytest.raises(accounts.WeakPassword) as weak:
            accounts.register_user(session, "bob@example.com", "password123")
        assert weak.value.status == 422 and weak.value.problems
        with pytest.raises(accounts.EmailTaken):
            accounts.register_user(session, "ada@example.com", PASSWORD)


def test_the_lock_expires_after_the_lock_period(app: Any) -> None:
    app.config.update(LOGIN_MAX_FAILURES=2, LOGIN_LOCK_SECONDS=60)
    start = dt.datetime(2026, 1, 1, 12, 0, 0)
    with app.app_context(), get_database(app).session() as session:
        accounts.register_user(session, "ada@example.com", PASSWORD)
        with pytest.raises(accounts.InvalidCredentials):
            accounts.authenticate(session, "ada@example.com", "Wrong-horse-1", now=start)
        with pytest.raises(accounts.AccountLocked) as locked:
            accounts.authenticate(session, "ada@example.com", "Wrong-horse-1", now=start)
        assert locked.value.retry_after == 60
        with pytest.raises(accounts.AccountLocked):
            accounts.authenticate(session, "ada@example.com", PASSWORD, now=start + dt.timedelta(seconds=30))
        later = start + dt.timedelta(seconds=61)
        assert accounts.authenticate(session, "ada@example.com", PASSWORD, now=later).email == "ada@example.com"


def test_failures_spread_beyond_the_window_do_not_lock(app: Any) -> None:
    app.config.update(LOGIN_MAX_FAILURES=2, LOGIN_LOCK_SECONDS=60)
    start = dt.datetime(2026, 1, 1, 12, 0, 0)
    with app.app_context(), get_database(app).session() as session:
        accounts.register_user(session, "ada@example.com", PASSWORD)
        for minutes in (0, 5, 10):
            with pytest.raises(accounts.InvalidCredentials):
                accounts.authenticate(session, "ada@example.com", "Wrong", now=start + dt.timedelta(minutes=minutes))
