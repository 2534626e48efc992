"""Fixtures shared by the test modules; plain helpers live in modules named
for what they hold (``apps``, ``server_inputs``, ``store_kinds``, ``forms``,
``e2e/client``)."""
import pytest
import webtest

from tests.apps import basic_app


@pytest.fixture
def app():
    """``basic_app`` through WebTest."""
    return webtest.TestApp(basic_app())
