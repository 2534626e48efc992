"""Server-side upload progress for Pyramid.

``config.include('pyramid_upload_progress')`` counts the bytes of tracked
request bodies as the application reads them, keeps a record of each upload
in a store, and answers "how far is my upload?" in JSON.
"""
from __future__ import annotations

import logging
import os
import traceback
from typing import Any

import pyramid
from pyramid.config import PHASE1_CONFIG, PHASE3_CONFIG, Configurator
from pyramid.config.actions import ActionInfo
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import IExecutionPolicy
from pyramid.router import default_execution_policy
from pyramid.tweens import EXCVIEW, MAIN
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from .client import add_client_views
from .events import UploadFinished, UploadStarted
from .health import StoreHealth
from .interfaces import IUploadProgressStore
from .policy import UploadProgressPolicy
from .record import UploadRecord, render_upload
from .request import stage, upload_progress
from .settings import INCLUDE_TIME, UploadProgressSettings, parse_setting, parse_settings
from .stores.memory import MemoryUploadProgressStore, memory_store_factory
from .stream import UploadCancelled
from .views import (
    UploadProgressView,
    forbidden_view,
    method_not_allowed,
    upload_cancelled_view,
)

__all__ = [
    "IUploadProgressStore",
    "MemoryUploadProgressStore",
    "UploadCancelled",
    "UploadFinished",
    "UploadRecord",
    "UploadStarted",
    "includeme",
    "memory_store_factory",
    "render_upload",
    "stage",
]

log = logging.getLogger(__name__)

ROUTE_NAME = "upload_progress"

# After every action of default order, pyramid_retry's execution policy
# (registered from a PHASE1 action) included: the policy we wrap is final.
_AFTER_APP_CONFIG = PHASE3_CONFIG + 10
_OWN_CODE = (os.path.dirname(pyramid.__file__) + os.sep, os.path.dirname(__file__) + os.sep)


def _checked_store(store: Any, source: str) -> Any:
    """``store``, if it implements IUploadProgressStore in full."""
    try:
        verifyObject(IUploadProgressStore, store)
    except Invalid as exc:
        raise ConfigurationError(
            f"{source}: {store!r} is not an IUploadProgressStore: {exc}") from None
    return store


def set_upload_progress_store(config: Configurator, store: Any) -> None:
    """Directive: use ``store`` (an object or the dotted name of one) as the
    :class:`~pyramid_upload_progress.interfaces.IUploadProgressStore`.

    Two calls conflict as Pyramid's own ``set_*`` directives do, and the
    choice is shown in the app's introspection (pyramid_debugtoolbar).
    """
    store = _checked_store(config.maybe_dotted(store), "set_upload_progress_store")
    intr = _introspectable(config, "upload progress store", store=store)

    def register() -> None:
        config.registry.registerUtility(store, IUploadProgressStore)

    config.action(IUploadProgressStore, register, introspectables=(intr,))


def includeme(config: Configurator) -> None:
    """Set up upload progress for the app.

    Now, so that they take their place in the app's route order: the report
    route at ``upload_progress.path`` and, unless ``upload_progress.client``
    is false, the JavaScript client's static view under it. Also the
    directive ``config.set_upload_progress_store``, the owner tween (under
    the exception view tween, just over ``MAIN``), ``request.upload_progress``
    and the 409 answer to ``UploadCancelled``. Then, in an action, so that
    settings added after the include still count, it reads every other
    ``upload_progress.*`` setting (a bad value stops the app at start-up,
    naming the setting) and adds the report views. Last, once all other
    configuration is done, it registers the store (the one
    ``upload_progress.store`` names, unless the app's code set one already:
    then code wins, with one warning if the setting names a store too)
    and the execution policy that counts, wrapped around whichever policy
    the app has (pyramid_retry's, say).
    """
    config.info = _include_site()
    settings = config.get_settings()
    early = {name: parse_setting(settings, name, config.maybe_dotted)
             for name in INCLUDE_TIME}
    config.add_directive("set_upload_progress_store", set_upload_progress_store)
    config.add_tween("pyramid_upload_progress.owner.owner_tween_factory",
                     under=EXCVIEW, over=MAIN)
    config.add_request_method(upload_progress, "upload_progress")
    config.add_exception_view(upload_cancelled_view, context=UploadCancelled)
    config.add_route(ROUTE_NAME, early["path"])
    prefix = (config.route_prefix or "").strip("/")
    report_path = f"/{prefix}{early['path']}" if prefix else early["path"]
    if early["client"]:
        add_client_views(config, early["path"])

    def configure() -> None:
        parsed = parse_settings(config.get_settings(), config.maybe_dotted, **early)
        health = StoreHealth()
        view = UploadProgressView(parsed, health)
        # No CSRF check: every answer here is JSON, and a page of another
        # site cannot send a DELETE without a CORS preflight.
        for methods in (("GET", "HEAD"), "DELETE"):
            config.add_view(view, route_name=ROUTE_NAME, request_method=methods,
                            permission=parsed.permission, require_csrf=False)
        config.add_view(method_not_allowed, route_name=ROUTE_NAME)
        config.add_forbidden_view(forbidden_view, route_name=ROUTE_NAME)
        config.action(None, lambda: _register_store_and_policy(config, parsed, health,
                                                               report_path),
                      order=_AFTER_APP_CONFIG)

    config.action(None, configure, order=PHASE1_CONFIG)


def _include_site() -> ActionInfo:
    """Where the app includes the add-on, for start-up errors to point at."""
    for frame in reversed(traceback.extract_stack()):
        if not frame.filename.startswith(_OWN_CODE):
            return ActionInfo(frame.filename, frame.lineno, frame.name, frame.line)
    return ActionInfo(None, 0, "", "")


def _register_store_and_policy(config: Configurator, settings: UploadProgressSettings,
                               health: StoreHealth, report_path: str) -> None:
    registry = config.registry
    store = registry.queryUtility(IUploadProgressStore)
    if store is None:
        store = _checked_store(settings.store(registry.settings), "upload_progress.store")
        registry.registerUtility(store, IUploadProgressStore)
        _introspectable(config, "upload progress store", store=store).register(
            config.introspector, config.action_info)
    else:
        _checked_store(store, "the registered IUploadProgressStore")
        named = registry.settings.get("upload_progress.store")
        if named is not None:
            log.warning(
                "upload progress: upload_progress.store = %r is ignored: the "
                "app's code sets the store, %r (config.set_upload_progress_store "
                "or a registered IUploadProgressStore utility), and code wins "
                "over settings; remove one of the two", named, store)
    inner = registry.queryUtility(IExecutionPolicy, default=default_execution_policy)
    policy = UploadProgressPolicy(
        inner, store, settings, health, report_path,
        per_process=getattr(store, "per_process", False) is True)
    registry.registerUtility(policy, IExecutionPolicy)
    _introspectable(config, "upload progress execution policy", policy=policy,
                    wraps=inner).register(config.introspector, config.action_info)


def _introspectable(config: Configurator, category: str, **values: Any) -> Any:
    """What pyramid_debugtoolbar shows of one of our registrations: the
    first of ``values`` describes it."""
    intr = config.introspectable(category, None,
                                 config.object_description(next(iter(values.values()))),
                                 category)
    intr.update(values)
    return intr
