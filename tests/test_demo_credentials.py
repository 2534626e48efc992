"""The demo checks a sign-in itself, as a Pyramid app should (it is code
users copy): ``check_credentials`` takes a known user's own password only."""
from __future__ import annotations

import pytest

import tests.demo_app  # noqa: F401  (puts the demo on sys.path)
from upload_progress_demo.security import check_credentials

USERS = {"alice": "secret", "bob": "hunter2"}


def test_a_users_own_password_is_taken():
    assert check_credentials(USERS, "alice", "secret")


@pytest.mark.parametrize("login, password", [("alice", "hunter2"), ("alice", ""),
                                             ("eve", "secret"), ("", ""),
                                             ("alice", "secret ")])
def test_anything_else_is_refused(login, password):
    assert not check_credentials(USERS, login, password)
