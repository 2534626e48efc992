"""The demo app: sign in as a demo user, upload files, watch the bars.

``main`` is the PasteDeploy app factory (``use = egg:upload_progress_demo``).
Settings of its own, besides ``upload_progress.*``:

- ``demo.users``: ``name:password`` pairs, space-separated (read into a
  dict, name: password);
- ``demo.secret``: signs the session cookie (required);
- ``demo.max_upload_size``: bytes; a larger upload is refused with 413;
- ``demo.upload_dir``: where each uploaded file is "stored" once the form
  is in (default: the system's temporary directory); deleted at once;
- ``demo.processing_delay``: seconds each processing step of each file
  waits (default 0), so that the stages after the body can be watched;
- ``demo.read_rate``: bytes a second at which request bodies are read, with
  a unit (``2MiB``, ``500KiB``, ``1MB``); ``0`` or ``off`` (the default)
  for full speed. On localhost an upload is otherwise over before the bar
  can move.
"""
from __future__ import annotations

import tempfile

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.session import SignedCookieSessionFactory

from .security import DemoSecurityPolicy, parse_users
from .throttle import ReadRate, parse_rate


def main(global_config, **settings):
    """Make the demo's WSGI app from its .ini settings."""
    secret = settings.get("demo.secret", "").strip()
    if not secret:
        raise ConfigurationError("demo.secret: set a secret to sign session cookies")
    number("demo.max_upload_size", int, 64 << 20, settings, "bytes")
    number("demo.processing_delay", float, 0.0, settings, "seconds")
    number("demo.read_rate", parse_rate, "0", settings, "bytes a second, such as 2MiB, or off")
    settings["demo.upload_dir"] = settings.get("demo.upload_dir") or tempfile.gettempdir()
    users = settings["demo.users"] = parse_users(settings.get("demo.users", "alice:alice bob:bob"))
    with Configurator(settings=settings) as config:
        config.set_session_factory(
            SignedCookieSessionFactory(secret, httponly=True, samesite="Lax"))
        config.set_security_policy(DemoSecurityPolicy(users))
        config.set_default_csrf_options(require_csrf=True)
        config.include("pyramid_upload_progress")
        config.add_static_view("demo-static", "upload_progress_demo:static")
        config.add_route("home", "/")
        config.add_route("login", "/login")
        config.add_route("logout", "/logout")
        config.add_route("upload", "/upload")
        config.scan(".views")
        app = config.make_wsgi_app()
    rate = settings["demo.read_rate"]
    return ReadRate(app, rate) if rate else app


def number(name, parse, default, settings, unit) -> None:
    """Parse the setting ``name`` in place: ``parse``d, at least 0."""
    value = settings.get(name, default)
    try:
        parsed = parse(value)
        if not parsed >= 0:
            raise ValueError(value)
    except ValueError:
        raise ConfigurationError(f"{name} = {value!r}: expected {unit}") from None
    settings[name] = parsed
