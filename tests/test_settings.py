"""parse_settings: the ``upload_progress.*`` settings, read once, checked once."""
from __future__ import annotations

import pytest
from pyramid import testing
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.path import DottedNameResolver
from pyramid.testing import DummyRequest

from pyramid_upload_progress.settings import UploadProgressSettings, parse_settings
from pyramid_upload_progress.stores.memory import memory_store_factory

resolve = DottedNameResolver().maybe_resolve
HERE = __name__


def owner_returning_int(request):
    return 42


def owner_returning_none(request):
    return None


def owner_returning_session(request):
    return request.session_id


def store_factory(settings):
    raise AssertionError("parse_settings must not call the store factory")


NOT_CALLABLE = "a string, not a callable"


def parsed(**values) -> UploadProgressSettings:
    return parse_settings({f"upload_progress.{k}": v for k, v in values.items()},
                          resolve)


# -- defaults -----------------------------------------------------------------

def test_empty_settings_give_the_contracts_defaults():
    settings = parse_settings({}, resolve)
    assert settings.threshold == 1048576
    assert settings.timeout == 300
    assert settings.stall_timeout == 3600
    assert settings.store is memory_store_factory
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.redis_prefix == "upload_progress:"
    assert settings.update_interval == 0.25
    assert settings.max_uploads == 10000
    assert settings.path == "/upload-progress"
    assert settings.id_param == "X-Progress-ID"
    assert settings.permission is None
    assert settings.client is True
    assert settings.sqlite_path is None
    assert settings.redis_socket_timeout == 0.5


@pytest.fixture
def config():
    with testing.testConfig() as config:
        yield config


def test_default_owner_is_the_authenticated_userid(config):
    config.testing_securitypolicy(userid="alice")
    assert parse_settings({}, resolve).owner(DummyRequest()) == "alice"


def test_default_owner_of_an_anonymous_request_is_none(config):
    config.testing_securitypolicy(userid=None)
    assert parse_settings({}, resolve).owner(DummyRequest()) is None


def test_default_owner_turns_an_int_principal_into_text(config):
    config.testing_securitypolicy(userid=7)
    assert parse_settings({}, resolve).owner(DummyRequest()) == "7"


def test_settings_of_other_packages_are_ignored():
    settings = {"pyramid.reload_templates": "true", "threshold": "nonsense"}
    assert parse_settings(settings, resolve) == parse_settings({}, resolve)


# -- every setting, from .ini strings ----------------------------------------

INI = {
    "upload_progress.threshold": "0",
    "upload_progress.timeout": "60.5",
    "upload_progress.stall_timeout": " 120 ",
    "upload_progress.store": f"{HERE}:store_factory",
    "upload_progress.redis.url": "rediss://cache.example:6380/2",
    "upload_progress.redis.prefix": "myapp:",
    "upload_progress.update_interval": "0",
    "upload_progress.max_uploads": "5",
    "upload_progress.path": "/api/progress",
    "upload_progress.id_param": "X-Upload-Id",
    "upload_progress.permission": "view-progress",
    "upload_progress.owner": f"{HERE}.owner_returning_session",
    "upload_progress.client": "off",
    "upload_progress.redis.socket_timeout": "0.05",
    "upload_progress.sqlite.path": "/dev/shm/progress.sqlite3",
}


def test_every_setting_is_parsed_from_ini_strings():
    settings = parse_settings(dict(INI), resolve)
    assert settings.threshold == 0
    assert settings.timeout == 60.5
    assert settings.stall_timeout == 120.0
    assert settings.store is store_factory
    assert settings.redis_url == "rediss://cache.example:6380/2"
    assert settings.redis_prefix == "myapp:"
    assert settings.update_interval == 0.0
    assert settings.max_uploads == 5
    assert settings.path == "/api/progress"
    assert settings.id_param == "X-Upload-Id"
    assert settings.permission == "view-progress"
    assert settings.client is False
    assert settings.redis_socket_timeout == 0.05
    assert settings.sqlite_path == "/dev/shm/progress.sqlite3"


def test_owner_setting_names_the_owner_callable():
    settings = parse_settings(dict(INI), resolve)
    request = DummyRequest()
    request.session_id = "s3ss10n"
    assert settings.owner(request) == "s3ss10n"


def test_parsed_values_are_written_back_into_the_settings():
    ini = dict(INI)
    parse_settings(ini, resolve)
    assert ini["upload_progress.threshold"] == 0
    assert ini["upload_progress.timeout"] == 60.5
    assert ini["upload_progress.stall_timeout"] == 120.0
    assert ini["upload_progress.update_interval"] == 0.0
    assert ini["upload_progress.max_uploads"] == 5
    assert ini["upload_progress.path"] == "/api/progress"
    assert ini["upload_progress.id_param"] == "X-Upload-Id"
    assert ini["upload_progress.redis.url"] == "rediss://cache.example:6380/2"
    assert ini["upload_progress.redis.prefix"] == "myapp:"


def test_defaults_are_written_back_into_empty_settings():
    settings: dict = {}
    parse_settings(settings, resolve)
    assert settings["upload_progress.timeout"] == 300
    assert settings["upload_progress.stall_timeout"] == 3600
    assert settings["upload_progress.max_uploads"] == 10000


def test_parsed_settings_are_read_again_unchanged():
    ini = dict(INI)
    first = parse_settings(ini, resolve)
    second = parse_settings(ini, resolve)
    assert (second.threshold, second.timeout, second.max_uploads, second.path) == (
        first.threshold, first.timeout, first.max_uploads, first.path)


def test_configurator_maybe_dotted_resolves_the_store():
    settings = parse_settings({"upload_progress.store": f"{HERE}.store_factory"},
                              Configurator().maybe_dotted)
    assert settings.store is store_factory


def test_memory_store_is_named_memory():
    assert parsed(store="memory").store is memory_store_factory


@pytest.mark.parametrize("name", ["threshold", "max_uploads"])
def test_whole_numbers_may_be_given_as_ints(name):
    assert getattr(parsed(**{name: 12}), name) == 12


@pytest.mark.parametrize("name", ["timeout", "stall_timeout", "update_interval"])
def test_seconds_may_be_given_as_numbers(name):
    assert getattr(parsed(**{name: 2}), name) == 2.0


def test_unix_socket_redis_url_is_accepted():
    assert parsed(**{"redis.url": "unix:///run/redis.sock"}).redis_url == (
        "unix:///run/redis.sock")


# -- the owner callable -------------------------------------------------------

def test_owner_answer_that_is_an_int_becomes_text():
    settings = parsed(owner=f"{HERE}.owner_returning_int")
    assert settings.owner(DummyRequest()) == "42"


def test_owner_answer_none_stays_none():
    settings = parsed(owner=f"{HERE}.owner_returning_none")
    assert settings.owner(DummyRequest()) is None


def test_owner_may_be_given_as_the_callable_itself():
    settings = parsed(owner=owner_returning_int)
    assert settings.owner(DummyRequest()) == "42"


# -- every bad value stops the app, naming the setting and the value ---------

BAD_VALUES = [
    ("threshold", "-1"),
    ("threshold", "lots"),
    ("threshold", "1.5"),
    ("threshold", 1.5),
    ("threshold", True),
    ("max_uploads", "-5"),
    ("max_uploads", "0"),
    ("max_uploads", "many"),
    ("max_uploads", "2.5"),
    ("timeout", "0"),
    ("timeout", "-1"),
    ("timeout", "inf"),
    ("timeout", "nan"),
    ("timeout", "five minutes"),
    ("stall_timeout", "0"),
    ("stall_timeout", "-3600"),
    ("stall_timeout", "inf"),
    ("stall_timeout", "nan"),
    ("stall_timeout", "an hour"),
    ("update_interval", "-0.25"),
    ("update_interval", "inf"),
    ("update_interval", "often"),
    ("path", "upload-progress"),
    ("path", "/upload-progress?x=1"),
    ("path", "/upload progress"),
    ("id_param", "X Progress ID"),
    ("id_param", "X-Progress-ID?"),
    ("id_param", "X.Progress.ID"),
    ("id_param", "X-Prögress-ID"),
    ("id_param", "X:ID"),
    ("redis.url", "http://localhost:6379/0"),
    ("redis.url", "localhost:6379"),
    ("redis.prefix", "   "),
    ("redis.socket_timeout", "0"),
    ("redis.socket_timeout", "soon"),
    ("sqlite.path", "  "),
    ("client", "maybe"),
    ("store", "no_such_package_for_upload_progress.factory"),
    ("store", f"{HERE}:no_such_factory"),
    ("store", f"{HERE}.NOT_CALLABLE"),
    ("owner", "no_such_package_for_upload_progress.owner"),
    ("owner", f"{HERE}:no_such_owner"),
    ("owner", f"{HERE}.NOT_CALLABLE"),
]


@pytest.mark.parametrize("name, value", BAD_VALUES)
def test_bad_value_raises_configuration_error_naming_setting_and_value(name, value):
    with pytest.raises(ConfigurationError) as raised:
        parse_settings({f"upload_progress.{name}": value}, resolve)
    message = str(raised.value)
    assert f"upload_progress.{name}" in message
    assert repr(value) in message or str(value) in message


def test_empty_redis_prefix_is_refused():
    # What ``upload_progress.redis.prefix =`` in an .ini file gives.
    with pytest.raises(ConfigurationError, match="upload_progress.redis.prefix"):
        parsed(**{"redis.prefix": ""})


def test_the_sqlite_store_requires_its_path():
    config = Configurator(settings={"upload_progress.store": "sqlite"})
    config.include("pyramid_upload_progress")
    with pytest.raises(ConfigurationError, match="upload_progress.sqlite.path is required"):
        config.make_wsgi_app()


def store_factory_with_keys(settings):
    raise AssertionError("parse_settings must not call the store factory")


store_factory_with_keys.settings_keys = ("mystore.url", "mystore.pool")


def test_a_store_factorys_own_keys_are_not_warned_of(caplog):
    with caplog.at_level("WARNING", logger="pyramid_upload_progress"):
        parsed(store=f"{HERE}.store_factory_with_keys", **{"mystore.url": "x",
                                                            "mystore.pool": "3"})
    assert caplog.records == []


def test_a_misspelt_key_of_a_store_factory_is_warned_of_with_its_closest_key(caplog):
    with caplog.at_level("WARNING", logger="pyramid_upload_progress"):
        parsed(store=f"{HERE}.store_factory_with_keys", **{"mystore.ulr": "x"})
    [warning] = caplog.records
    assert "upload_progress.mystore.ulr (did you mean upload_progress.mystore.url?)" \
        in warning.getMessage()


def test_another_stores_keys_are_warned_of(caplog):
    with caplog.at_level("WARNING", logger="pyramid_upload_progress"):
        parsed(**{"mystore.url": "x"})
    [warning] = caplog.records
    assert "unknown setting upload_progress.mystore.url" in warning.getMessage()


def test_unknown_keys_are_warned_of_before_a_bad_store_stops_the_app(caplog):
    with caplog.at_level("WARNING", logger="pyramid_upload_progress"):
        with pytest.raises(ConfigurationError, match="upload_progress.store"):
            parsed(store="no_such_package_for_upload_progress.factory", thresold="1")
    [warning] = caplog.records
    assert "upload_progress.thresold" in warning.getMessage()


def test_an_unknown_setting_is_warned_of_with_the_closest_known_one(caplog):
    with caplog.at_level("WARNING", logger="pyramid_upload_progress"):
        parsed(thresold="10", timeout="10")
    [warning] = caplog.records
    assert "upload_progress.thresold" in warning.getMessage()
    assert "upload_progress.threshold" in warning.getMessage()


def test_known_settings_are_not_warned_of(caplog):
    with caplog.at_level("WARNING", logger="pyramid_upload_progress"):
        parse_settings(dict(INI), resolve)
    assert caplog.records == []


# -- config.include checks the settings at start-up ---------------------------

@pytest.mark.parametrize("name, value", [
    ("threshold", "lots"),
    ("timeout", "0"),
    ("store", "no_such_package_for_upload_progress.factory"),
    ("owner", f"{HERE}.NOT_CALLABLE"),
])
def test_include_with_a_bad_setting_fails_at_start_up(name, value):
    config = Configurator(settings={f"upload_progress.{name}": value})
    config.include("pyramid_upload_progress")
    with pytest.raises(ConfigurationError, match=f"upload_progress.{name}"):
        config.make_wsgi_app()


def test_settings_added_after_the_include_still_count():
    config = Configurator()
    config.include("pyramid_upload_progress")
    config.add_settings({"upload_progress.timeout": "12"})
    app = config.make_wsgi_app()
    assert app.registry.settings["upload_progress.timeout"] == 12.0


def test_the_report_path_is_read_when_the_include_is_called():
    config = Configurator(settings={"upload_progress.path": "/at-include"})
    config.include("pyramid_upload_progress")
    config.add_settings({"upload_progress.path": "/later"})
    app = config.make_wsgi_app()
    assert app.routes_mapper.get_route("upload_progress").pattern == "/at-include"


def test_a_bad_report_path_fails_at_the_include():
    config = Configurator(settings={"upload_progress.path": "nope"})
    with pytest.raises(ConfigurationError, match="upload_progress.path"):
        config.include("pyramid_upload_progress")


def test_a_start_up_error_points_at_the_include():
    config = Configurator(settings={"upload_progress.timeout": "soon"})
    config.include("pyramid_upload_progress")  # the line the error names
    with pytest.raises(ConfigurationError) as raised:
        config.make_wsgi_app()
    assert f"{__file__}" in str(raised.value)
    assert 'config.include("pyramid_upload_progress")  # the line' in str(raised.value)


def test_include_with_good_settings_makes_an_app():
    config = Configurator(settings={"upload_progress.threshold": "0",
                                    "upload_progress.timeout": "10"})
    config.include("pyramid_upload_progress")
    app = config.make_wsgi_app()
    assert app.registry.settings["upload_progress.threshold"] == 0
    assert app.registry.settings["upload_progress.timeout"] == 10.0
