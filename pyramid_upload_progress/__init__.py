"""Server-side upload progress for Pyramid.

``config.include('pyramid_upload_progress')`` counts the bytes of tracked
request bodies as the application reads them, keeps a record of each upload
in a store, and answers "how far is my upload?" in JSON.
"""
from __future__ import annotations

from typing import Any

from pyramid.config import PHASE1_CONFIG, PHASE3_CONFIG, Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import IExecutionPolicy
from pyramid.router import default_execution_policy
from pyramid.settings import asbool
from pyramid.tweens import EXCVIEW, MAIN

from .interfaces import IUploadProgressStore
from .policy import UploadProgressPolicy
from .record import UploadRecord, render_starting, render_upload
from .settings import UploadProgressSettings, parse_settings
from .stores.memory import MemoryUploadProgressStore
from .views import UploadProgressView, forbidden_view

__all__ = [
    "IUploadProgressStore",
    "MemoryUploadProgressStore",
    "UploadProgressSettings",
    "UploadRecord",
    "includeme",
    "render_starting",
    "render_upload",
    "set_upload_progress_store",
]

ROUTE_NAME = "upload_progress"

# After every action of default order, pyramid_retry's execution policy
# (registered from a PHASE1 action) included: the policy we wrap is final.
_AFTER_APP_CONFIG = PHASE3_CONFIG + 10


def set_upload_progress_store(config: Configurator, store: Any) -> None:
    """Directive: use ``store`` (an object or the dotted name of one) as the
    :class:`IUploadProgressStore`.

    Two calls conflict as Pyramid's own ``set_*`` directives do, and the
    choice is shown in the app's introspection (pyramid_debugtoolbar).
    """
    store = config.maybe_dotted(store)
    if not IUploadProgressStore.providedBy(store):
        raise ConfigurationError(
            f"set_upload_progress_store: {store!r} does not provide "
            "IUploadProgressStore")
    intr = config.introspectable("upload progress store", None,
                                 config.object_description(store),
                                 "upload progress store")
    intr["store"] = store

    def register() -> None:
        config.registry.registerUtility(store, IUploadProgressStore)

    config.action(IUploadProgressStore, register, introspectables=(intr,))


def includeme(config: Configurator) -> None:
    """Set up upload progress for the app.

    Registers the directive ``config.set_upload_progress_store`` and the
    owner tween (under the exception view tween, just over ``MAIN``). Then,
    in an action, so that settings added after the include still count, it
    reads every ``upload_progress.*`` setting (a bad value stops the app at
    start-up, naming the setting) and registers the report route
    (``upload_progress``) and JSON view at ``upload_progress.path``, and,
    unless ``upload_progress.client`` is false, the JavaScript client as a
    static view at ``{path}/static/``. Last,
    once all other configuration is done, it registers the store (the one
    ``upload_progress.store`` names, unless a store is registered already)
    and the execution policy that counts, wrapped around whichever policy
    the app has (pyramid_retry's, say).
    """
    config.add_directive("set_upload_progress_store", set_upload_progress_store)
    config.add_tween("pyramid_upload_progress.tween.owner_tween_factory",
                     under=EXCVIEW, over=MAIN)

    def configure() -> None:
        settings = parse_settings(config.get_settings(), config.maybe_dotted)
        config.add_route(ROUTE_NAME, settings.path)
        config.add_view(UploadProgressView(settings), route_name=ROUTE_NAME,
                        request_method="GET", permission=settings.permission)
        if settings.permission is not None:
            config.add_forbidden_view(forbidden_view, route_name=ROUTE_NAME)
        if asbool(config.get_settings().get("upload_progress.client", True)):
            config.add_static_view(f"{settings.path}/static",
                                   "pyramid_upload_progress:static")
        config.action(None, lambda: _register_store_and_policy(config, settings),
                      order=_AFTER_APP_CONFIG)

    config.action(None, configure, order=PHASE1_CONFIG)


def _register_store_and_policy(config: Configurator,
                               settings: UploadProgressSettings) -> None:
    registry = config.registry
    store = registry.queryUtility(IUploadProgressStore)
    if store is None:
        store = settings.store_factory(registry.settings)
        if not IUploadProgressStore.providedBy(store):
            raise ConfigurationError(
                f"upload_progress.store: the factory returned {store!r}, "
                "which does not provide IUploadProgressStore")
        registry.registerUtility(store, IUploadProgressStore)
    inner = registry.queryUtility(IExecutionPolicy, default=default_execution_policy)
    registry.registerUtility(UploadProgressPolicy(inner, store, settings),
                             IExecutionPolicy)
