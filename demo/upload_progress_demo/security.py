"""Demo users, signed in through the session: a real Pyramid security
policy, so that the add-on's per-user listing is real."""
from __future__ import annotations

import hmac
from collections.abc import Mapping

from pyramid.authentication import SessionAuthenticationHelper
from pyramid.security import Allowed, Denied


def parse_users(value: str) -> dict[str, str]:
    """``"alice:alice bob:bob"`` -> ``{"alice": "alice", "bob": "bob"}``."""
    pairs = [item.partition(":") for item in value.split()]
    return {name: password for name, _, password in pairs if name and password}


def check_credentials(users: Mapping[str, str], login: str, password: str) -> bool:
    """Whether ``password`` is ``login``'s among ``users`` (name: password),
    compared in constant time. A real app looks the user up in its database
    and compares password hashes (say with ``hashlib.scrypt``)."""
    expected = users.get(login)
    return expected is not None and hmac.compare_digest(expected.encode(), password.encode())


class DemoSecurityPolicy:
    """The principal is the user name the session remembers. Signed-in users
    may upload; nobody else may."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.helper = SessionAuthenticationHelper()

    def identity(self, request):
        name = self.helper.authenticated_userid(request)
        return name if name in self.users else None

    def authenticated_userid(self, request):
        return self.identity(request)

    def permits(self, request, context, permission):
        if self.identity(request) is None:
            return Denied("sign in first")
        return Allowed("signed in")

    def remember(self, request, userid, **kw):
        return self.helper.remember(request, userid, **kw)

    def forget(self, request, **kw):
        return self.helper.forget(request, **kw)
