"""The password policy and hashing functions shared by the API and the pages (no database)."""

from __future__ import annotations

import pytest

from security import check_password, hash_password, new_api_token, password_problems


@pytest.mark.parametrize(
    "password",
    ["Correct-horse-42", "correct horse battery staple 9", "ZXCVBNMASDFG1", "12345678-abcd"],
)
def test_reasonable_passwords_pass_the_policy(password: str) -> None:
    assert password_problems(password, "ada@example.com") == []


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("Short1!", "at least 10"),
        ("abcdefghijklmnop", "two kinds"),
        ("1234567890123", "two kinds"),
        ("password123", "too common"),
        ("ada@example.com", "email"),
        ("x" * 129 + "1", "at most 128"),
    ],
)
def test_weak_passwords_are_explained(password: str, fragment: str) -> None:
    problems = password_problems(password, "ada@example.com")
    assert any(fragment in p for p in problems), problems


def test_bcrypt_round_trip_and_rejection() -> None:
    hashed = hash_password("Correct-horse-42", rounds=4)
    assert hashed.startswith("$2b$04$")
    assert check_password("Correct-horse-42", hashed)
    assert not check_password("correct-horse-42", hashed)
    assert not check_password("anything", "not-a-bcrypt-hash")


def test_long_passphrases_stay_fully_significant_beyond_bcrypts_72_bytes() -> None:
    base = "a1" * 40
    hashed = hash_password(base + "X", rounds=4)
    assert not check_password(base + "Y", hashed)


def test_api_tokens_are_random_and_have_a_display_prefix() -> None:
    value, digest, prefix = new_api_token()
    other, _, _ = new_api_token()
    assert value != other and value.startswith(prefix) and len(digest) == 64 and len(value) > 40
