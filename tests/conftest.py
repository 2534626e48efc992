"""Fixtures shared by the test modules; plain helpers live in modules named
for what they hold (``apps``, ``server_inputs``, ``store_kinds``, ``forms``,
``e2e/client``)."""
import pytest
import webtest

from pyramid_upload_progress.testing import FakeClock
from tests.apps import basic_app


@pytest.fixture
def app():
    """``basic_app`` through WebTest."""
    return webtest.TestApp(basic_app())


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test advances it, for the stores
    that take one (memory, SQLite)."""
    return FakeClock()
