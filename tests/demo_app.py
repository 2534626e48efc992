"""The demo app (``demo/``) for tests, built from ``demo/development.ini``.

The demo is its own small project (``pip install -e ./demo``); tests find
it on ``sys.path`` instead, so that the testing extra alone runs them. Its
settings are those of ``development.ini``'s ``[app:main]``, plus
overrides: keyword arguments of ``make_app``, or for a server in another
process the JSON environment variable ``UPLOAD_DEMO_SETTINGS`` read by
``wsgi_app()`` (gunicorn: ``tests.demo_app:wsgi_app()``).
"""
from __future__ import annotations

import configparser
import json
import os
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "demo"
if str(DEMO) not in sys.path:
    sys.path.insert(0, str(DEMO))

from upload_progress_demo import main  # noqa: E402


def ini(name: str = "development.ini") -> configparser.ConfigParser:
    """One of the demo's .ini files, as written (no interpolation)."""
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(DEMO / name):
        raise FileNotFoundError(DEMO / name)
    return parser


def make_app(**overrides: str):
    """The demo's WSGI app with development.ini's settings and ``overrides``."""
    settings = {key: value for key, value in ini().items("app:main") if key != "use"}
    return main({"here": str(DEMO)}, **{**settings, **overrides})


def wsgi_app():
    """The app for a server process, overrides from ``UPLOAD_DEMO_SETTINGS``."""
    return make_app(**json.loads(os.environ.get("UPLOAD_DEMO_SETTINGS", "{}")))
