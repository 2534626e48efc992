"""Setting up the add-on: the store chosen by setting, factory, directive or
utility (one wins, with one warning), refused at start-up when it cannot
serve, and shown in the introspection.
"""
from __future__ import annotations

import logging

import pytest
import webtest
from pyramid.exceptions import ConfigurationConflictError, ConfigurationError
from zope.interface import alsoProvides

from pyramid_upload_progress import IUploadProgressStore, MemoryUploadProgressStore
from pyramid_upload_progress.policy import UploadProgressPolicy
from tests.apps import basic_app, store_of, upload


def test_a_directly_registered_store_is_kept():
    store = MemoryUploadProgressStore()
    app = webtest.TestApp(basic_app(store=store))
    assert store_of(app) is store


def test_the_directive_sets_the_store():
    store = MemoryUploadProgressStore()
    app = webtest.TestApp(basic_app(
        configure=lambda config: config.set_upload_progress_store(store)))
    assert store_of(app) is store
    upload(app, upload_id="d1")
    assert store.get("d1", "alice").state == "done"


a_store = MemoryUploadProgressStore()


def test_the_directive_takes_a_dotted_name():
    app = webtest.TestApp(basic_app(configure=lambda config: config.set_upload_progress_store(
        "tests.test_configuration.a_store")))
    assert store_of(app) is a_store


def test_the_directive_refuses_what_is_not_a_store():
    with pytest.raises(ConfigurationError, match="IUploadProgressStore"):
        basic_app(configure=lambda config: config.set_upload_progress_store(object()))


def test_a_store_set_in_code_wins_over_the_setting_with_one_warning(tmp_path, caplog):
    path = tmp_path / "never.sqlite3"
    store = MemoryUploadProgressStore()
    settings = {"upload_progress.store": "sqlite", "upload_progress.sqlite.path": str(path)}
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        app = webtest.TestApp(basic_app(
            settings, configure=lambda config: config.set_upload_progress_store(store)))
    assert store_of(app) is store
    assert not path.exists()
    [warning] = [r for r in caplog.records if "upload_progress.store" in r.getMessage()]
    message = warning.getMessage()
    assert "'sqlite'" in message and "set_upload_progress_store" in message
    assert repr(store) in message


def test_a_store_set_only_in_code_or_only_in_settings_warns_nothing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pyramid_upload_progress"):
        basic_app(configure=lambda config: config.set_upload_progress_store(
            MemoryUploadProgressStore()))
        basic_app({"upload_progress.store": "memory"})
    assert caplog.records == []


class StoreWithoutEnded(MemoryUploadProgressStore):
    """A store written before ``update`` had ``ended``."""

    def update(self, key, received, files):
        return super().update(key, received, files)


def test_a_store_whose_update_lacks_ended_is_refused_at_start_up():
    with pytest.raises(ConfigurationError, match="update"):
        basic_app(configure=lambda config: config.set_upload_progress_store(
            StoreWithoutEnded()))


def test_two_directive_calls_conflict():
    def configure(config):
        config.set_upload_progress_store(MemoryUploadProgressStore())
        config.set_upload_progress_store(MemoryUploadProgressStore())

    with pytest.raises(ConfigurationConflictError):
        basic_app(configure=configure)


def store_factory(settings):
    store = MemoryUploadProgressStore(timeout=settings["upload_progress.timeout"])
    store.settings = settings
    return store


def test_the_store_setting_takes_a_factory_of_the_parsed_settings():
    app = webtest.TestApp(basic_app({
        "upload_progress.store": "tests.test_configuration.store_factory",
        "upload_progress.timeout": "42"}))
    assert store_of(app).timeout == 42.0
    assert store_of(app).settings["upload_progress.threshold"] == 1000


def not_a_store_factory(settings):
    return object()


def test_a_store_factory_returning_no_store_stops_start_up():
    with pytest.raises(ConfigurationError, match="upload_progress.store"):
        basic_app({"upload_progress.store": "tests.test_configuration.not_a_store_factory"})


def test_a_store_without_every_method_stops_the_app_at_start_up():
    class Incomplete:
        throttled = False

        def start(self, upload_id, path, size, progress):
            return None

    store = Incomplete()
    alsoProvides(store, IUploadProgressStore)
    with pytest.raises(ConfigurationError, match="IUploadProgressStore"):
        basic_app(store=store)


def test_the_store_and_the_counting_policy_show_in_the_introspection():
    app = basic_app()
    [store] = app.registry.introspector.get_category("upload progress store")
    assert store["introspectable"]["store"] is app.registry.getUtility(IUploadProgressStore)
    [policy] = app.registry.introspector.get_category("upload progress execution policy")
    assert isinstance(policy["introspectable"]["policy"], UploadProgressPolicy)
