"""The login throttle: counted atomically however many guesses arrive at once, growing waits, no permanent lock.

Before, the failure count was read, incremented in Python and written back: 8 concurrent
threads got 13 or more passwords checked before the lock engaged (28 in the probe). Now each
guess claims its slot with one compare-and-set UPDATE before bcrypt runs.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from typing import Any

import pytest

from database.session import get_database
from services import accounts
from tests.conftest import PASSWORD, Api

THREADS = 8
GUESSES_PER_THREAD = 4


def test_eight_concurrent_threads_get_exactly_the_allowed_guesses_checked(
    app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_factory({"LOGIN_MAX_FAILURES": 5, "LOGIN_LOCK_SECONDS": 600})
    Api(app.test_client()).register()
    checked: list[bool] = []
    real_check = accounts.check_password

    def counting_check(password: str, password_hash: str) -> bool:  # the real bcrypt check, counted
        result = real_check(password, password_hash)
        checked.append(result)
        return result

    monkeypatch.setattr(accounts, "check_password", counting_check)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def attacker(number: int) -> None:
        client = Api(app.test_client())
        start.wait()
        for guess in range(GUESSES_PER_THREAD):
            status = client.login(password=f"Wrong-horse-{number}-{guess}").status_code
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=attacker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(statuses.values()) == THREADS * GUESSES_PER_THREAD
    assert len(checked) == 5 and not any(checked), "exactly LOGIN_MAX_FAILURES passwords were checked"
    assert statuses == {401: 4, 429: THREADS * GUESSES_PER_THREAD - 4}, statuses
    with get_database(app).session() as session:
        user = session.scalar(accounts.select(accounts.User).where(accounts.User.email == "ada@example.com"))
        assert user.failed_logins == 5 and user.locked_until is not None


def test_waits_double_with_each_guess_after_a_wait_and_always_end(app: Any) -> None:
    app.config.update(LOGIN_MAX_FAILURES=3, LOGIN_LOCK_SECONDS=60, LOGIN_LOCK_MAX_SECONDS=200)
    t0 = dt.datetime(2026, 5, 1, 12, 0, 0)
    with app.app_context(), get_database(app).session() as session:
        accounts.register_user(session, "ada@example.com", PASSWORD)

        def guess(at: dt.datetime, password: str = "Wrong-horse-1") -> Any:
            return accounts.authenticate(session, "ada@example.com", password, now=at)

        for _ in range(2):
            with pytest.raises(accounts.InvalidCredentials):
                guess(t0)
        waits = []
        at = t0
        for _ in range(4):
            with pytest.raises(accounts.AccountLocked) as locked:
                guess(at)
            waits.append(locked.value.retry_after)
            with pytest.raises(accounts.AccountLocked):  # during the wait nothing is checked
                guess(at + dt.timedelta(seconds=locked.value.retry_after - 1), PASSWORD)
            at += dt.timedelta(seconds=locked.value.retry_after)
        assert waits == [60, 120, 200, 200]  # doubling, capped by LOGIN_LOCK_MAX_SECONDS
        # No permanent lock: once the wait is over the owner's right password works.
        assert guess(at, PASSWORD).email == "ada@example.com"
        for _ in range(2):
            with pytest.raises(accounts.InvalidCredentials):
                guess(at)


def test_a_streak_is_forgotten_once_its_wait_and_one_more_period_passed(app: Any) -> None:
    app.config.update(LOGIN_MAX_FAILURES=2, LOGIN_LOCK_SECONDS=60)
    t0 = dt.datetime(2026, 5, 1, 12, 0, 0)
    with app.app_context(), get_database(app).session() as session:
        accounts.register_user(session, "ada@example.com", PASSWORD)
        with pytest.raises(accounts.InvalidCredentials):
            accounts.authenticate(session, "ada@example.com", "Wrong-1", now=t0)
        with pytest.raises(accounts.AccountLocked):
            accounts.authenticate(session, "ada@example.com", "Wrong-1", now=t0)
        later = t0 + dt.timedelta(seconds=60 + 60 + 1)
        with pytest.raises(accounts.InvalidCredentials):  # a fresh streak, not a doubled wait
            accounts.authenticate(session, "ada@example.com", "Wrong-1", now=later)


def test_the_per_ip_budget_also_stops_guessing_across_many_accounts(app_factory: Any) -> None:
    """The per-account throttle cannot see one IP trying one password on many addresses: the IP budget can."""
    limits = {"RATELIMIT_LOGIN": "3 per minute", "RATELIMIT_REGISTER": "50 per minute"}
    app = app_factory({"RATELIMIT_ENABLED": True, **limits})
    for n in range(5):
        Api(app.test_client()).register(email=f"user{n}@example.com")
    attacker = Api(app.test_client())
    statuses = [attacker.login(email=f"user{n}@example.com", password="Wrong-horse-1").status_code for n in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
