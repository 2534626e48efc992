"""An app in the shape Pyramid's SQLAlchemy cookiecutter gives, for tests.

What the cookiecutter (``pyramid-cookiecutter-starter``, backend
``sqlalchemy``) and the wiki2 tutorial's authentication chapter make, folded
into one module and left as they make it:

- ``models``: a SQLAlchemy engine from ``sqlalchemy.*`` settings, a session
  factory, and a reified ``request.dbsession`` joined to pyramid_tm's
  *explicit* transaction manager with ``zope.sqlalchemy.register``;
  ``config.include('pyramid_tm')`` and ``config.include('pyramid_retry')``
  (``retry.attempts = 3`` as in its development.ini);
- ``security``: a Pyramid 2 security policy that loads the user through
  ``request.dbsession`` (a request header, ``X-User-Id``, stands in for the
  auth_tkt cookie) and answers ``user.id``, an int;
- ``pyramid.includes = pyramid_debugtoolbar`` in the development variant.

Plus ``config.include('pyramid_upload_progress')`` and a few views to upload
to. ``main(global_config, **settings)`` is the app factory; the module
attribute ``app`` is built on first access from environment variables, for
servers (``gunicorn tests.sqla_app:app``):

- ``SQLA_APP_DB``: path of the SQLite file (default: a new temporary file);
- ``SQLA_APP_TOOLBAR=1``: include pyramid_debugtoolbar;
- ``SQLA_APP_THRESHOLD``: ``upload_progress.threshold`` (default 0).

Settings of our own (``sqla_app.*``), for the tests' variants:
``sqla_app.upload_progress`` (default true) includes the add-on;
``sqla_app.probe`` = ``over_tm`` or ``under_tm`` adds a tween that asks the
security policy at ``/probe`` from above or below pyramid_tm.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any

import zope.sqlalchemy
from pyramid.authorization import Authenticated, Everyone
from pyramid.config import Configurator
from pyramid.request import RequestLocalCache
from pyramid.response import Response
from pyramid.settings import asbool
from pyramid.tweens import MAIN
from pyramid.view import notfound_view_config, view_config
from pyramid_retry import RetryableException
from sqlalchemy import Integer, String, engine_from_config, select
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    configure_mappers,
    mapped_column,
    sessionmaker,
)

USER_HEADER = "X-User-Id"
USERS = {1: "alice", 2: "bob"}


# --- models ---------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class Upload(Base):
    """A row each upload view writes, so that it writes in the transaction."""

    __tablename__ = "uploads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    progress_id: Mapped[str | None] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))


configure_mappers()


def get_engine(settings: dict[str, Any], prefix: str = "sqlalchemy."):
    # SQLite from several server threads: a connection may be used by the
    # thread that checks it out of the pool, whichever made it.
    return engine_from_config(settings, prefix, connect_args={"check_same_thread": False})


def get_session_factory(engine):
    factory = sessionmaker()
    factory.configure(bind=engine)
    return factory


def get_tm_session(session_factory, transaction_manager, request=None):
    dbsession = session_factory(info={"request": request})
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def initialize_db(engine) -> None:
    """Create the tables and the two users (the cookiecutter's initialize_db)."""
    Base.metadata.create_all(engine)
    with get_session_factory(engine)() as session, session.begin():
        for user_id, name in USERS.items():
            if session.get(User, user_id) is None:
                session.add(User(id=user_id, name=name))


def includeme_models(config: Configurator) -> None:
    """The cookiecutter's ``models/__init__.py`` ``includeme``, as it is."""
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"

    config.include("pyramid_tm")
    config.include("pyramid_retry")

    dbengine = settings.get("dbengine")
    if not dbengine:
        dbengine = get_engine(settings)

    session_factory = get_session_factory(dbengine)
    config.registry["dbsession_factory"] = session_factory
    config.registry["dbengine"] = dbengine

    def dbsession(request):
        dbsession = request.environ.get("app.dbsession")
        if dbsession is None:
            # request.tm is the transaction manager used by pyramid_tm
            dbsession = get_tm_session(session_factory, request.tm, request=request)
        return dbsession

    config.add_request_method(dbsession, reify=True)


# --- security ---------------------------------------------------------------


class HeaderSecurityPolicy:
    """The wiki2 tutorial's ``MySecurityPolicy``, reading ``X-User-Id``
    where it reads the auth_tkt cookie. A value that is not a number raises
    (``ValueError``), as a broken identity would."""

    def __init__(self) -> None:
        self.identity_cache = RequestLocalCache(self.load_identity)

    def load_identity(self, request):
        userid = request.headers.get(USER_HEADER)
        if userid is None:
            return None
        return request.dbsession.get(User, int(userid))

    def identity(self, request):
        return self.identity_cache.get_or_create(request)

    def authenticated_userid(self, request):
        user = self.identity(request)
        if user is not None:
            return user.id

    def permits(self, request, context, permission):
        return True

    def effective_principals(self, request):
        principals = [Everyone]
        user = self.identity(request)
        if user is not None:
            principals += [Authenticated, f"u:{user.id}"]
        return principals

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


# --- views ------------------------------------------------------------------


def _store_upload(request, body: bytes) -> dict[str, Any]:
    """Write a row for the upload; answer what the view saw."""
    digest = hashlib.sha256(body).hexdigest()
    request.dbsession.add(Upload(
        progress_id=request.headers.get("X-Progress-ID"),
        size=len(body),
        sha256=digest,
    ))
    request.dbsession.flush()
    return {"bytes": len(body), "sha256": digest}


def _read_body(request) -> bytes:
    """The whole upload: the file of a multipart form, or the raw body."""
    if request.content_type == "multipart/form-data":
        return request.POST["file"].file.read()
    return request.body


@view_config(route_name="home", renderer="json")
def home_view(request):
    """The cookiecutter's home page, here in JSON: it asks who is logged in
    and reads the database, inside the transaction."""
    users = request.dbsession.scalars(select(User.name).order_by(User.id)).all()
    return {"project": "sqla_app", "user": request.authenticated_userid, "users": users}


@view_config(route_name="upload", request_method="POST", renderer="json")
def upload_view(request):
    return _store_upload(request, _read_body(request))


@view_config(route_name="upload_retry", request_method="POST", renderer="json")
def upload_retry_view(request):
    """Writes, then fails retryably on the first attempt only; on the retry
    reads the body again (``request.body`` rewinds the copied body) and
    answers what both attempts saw."""
    environ = request.environ
    seen = _store_upload(request, _read_body(request))
    if environ["retry.attempt"] == 0:
        environ["sqla_app.first_attempt"] = seen
        raise RetryableException("try again")
    return {**seen, "attempt": environ["retry.attempt"],
            "first_attempt": environ.get("sqla_app.first_attempt")}


@view_config(route_name="upload_fail", request_method="POST")
def upload_fail_view(request):
    _store_upload(request, _read_body(request))
    raise RuntimeError("the view failed")


@view_config(route_name="upload_count", renderer="json")
def upload_count_view(request):
    """How many rows carry the given ``X-Progress-ID``."""
    progress_id = request.params["id"]
    rows = request.dbsession.scalars(
        select(Upload.size).where(Upload.progress_id == progress_id)).all()
    return {"rows": len(rows), "sizes": rows}


@notfound_view_config(renderer="json")
def notfound_view(request):
    request.response.status = 404
    return {"error": "not found"}


# --- a probe of the app's shape (no add-on needed) --------------------------


def probe_tween_factory(handler, registry):
    """At ``/probe``: ask the security policy here, and say what happened."""

    def probe_tween(request):
        if request.path_info != "/probe":
            return handler(request)
        try:
            result = {"userid": request.authenticated_userid}
        except Exception as exc:
            result = {"error": f"{type(exc).__module__}.{type(exc).__qualname__}"}
        return Response(json_body=result)

    return probe_tween


# --- the app factory --------------------------------------------------------


def main(global_config: dict[str, Any] | None, **settings: Any):
    """The WSGI app: the cookiecutter's ``main``, plus the add-on."""
    settings.setdefault("retry.attempts", "3")
    with Configurator(settings=settings) as config:
        config.include(includeme_models)
        config.set_security_policy(HeaderSecurityPolicy())
        config.add_route("home", "/")
        config.add_route("upload", "/upload")
        config.add_route("upload_retry", "/upload-retry")
        config.add_route("upload_fail", "/upload-fail")
        config.add_route("upload_count", "/upload-count")
        probe = settings.get("sqla_app.probe")
        if probe == "over_tm":
            config.add_tween(f"{__name__}.probe_tween_factory", over="pyramid_tm.tm_tween_factory")
        elif probe == "under_tm":
            config.add_tween(f"{__name__}.probe_tween_factory", over=MAIN)
        elif probe is not None:
            raise ValueError(f"sqla_app.probe = {probe!r}: expected over_tm or under_tm")
        if asbool(settings.get("sqla_app.upload_progress", True)):
            config.include("pyramid_upload_progress")
        config.scan(__name__)
    initialize_db(config.registry["dbengine"])
    return config.make_wsgi_app()


def settings_from_environ(environ: dict[str, str] = os.environ) -> dict[str, str]:
    """The settings of the served app (see the module docstring)."""
    path = environ.get("SQLA_APP_DB")
    if not path:
        path = os.path.join(tempfile.mkdtemp(prefix="sqla_app-"), "app.sqlite")
    settings = {
        "sqlalchemy.url": f"sqlite:///{path}",
        "retry.attempts": "3",
        "upload_progress.threshold": environ.get("SQLA_APP_THRESHOLD", "0"),
    }
    if asbool(environ.get("SQLA_APP_TOOLBAR", "0")):
        settings["pyramid.includes"] = "pyramid_debugtoolbar"
        settings["debugtoolbar.hosts"] = "127.0.0.1 ::1"
    return settings


def __getattr__(name: str):
    # ``app`` is made on first access (by a server), not on import: importing
    # this module for its factory must not build an app.
    if name == "app":
        app = globals()["app"] = main({}, **settings_from_environ())
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
