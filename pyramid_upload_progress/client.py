"""The JavaScript client's static view: ``{upload_progress.path}/static/``.

``request.static_url('pyramid_upload_progress:static/upload-progress.js')``
names the client with a token of its content (``?v=…``), so that URL is
cached for a year and never revalidated: a new client is a new URL. Any
other URL of it (one written into a page by hand) is revalidated on every
use (``no-cache``, ``Last-Modified``), so an upgrade is never hidden by a
cache.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from pyramid.config import Configurator
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.static import QueryStringConstantCacheBuster, static_view

CLIENT_SPEC = "pyramid_upload_progress:static/"
VERSIONED_CACHE_CONTROL = "public, max-age=31536000, immutable"
UNVERSIONED_CACHE_CONTROL = "no-cache"
TOKEN_PARAM = "v"


def client_token() -> str:
    """12 hex digits of the SHA-256 of the client's files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in (Path(__file__).parent / "static").iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def add_client_views(config: Configurator, path: str) -> None:
    """Serve the client under ``path``/static/, its versioned URL cached for good."""
    name = path.rstrip("/") + "/static/"
    token = client_token()
    config.add_static_view(name, CLIENT_SPEC)
    config.add_cache_buster(CLIENT_SPEC, QueryStringConstantCacheBuster(token, TOKEN_PARAM))
    files = static_view(CLIENT_SPEC, use_subpath=True,
                        reload=config.registry.settings.get("pyramid.reload_assets", False))

    def cached(cache_control: str):
        def view(context, request):
            response = files(context, request)
            response.headers["Cache-Control"] = cache_control
            return response
        return view

    # On the route add_static_view made (its name as Pyramid 2 forms it),
    # views with more predicates are tried first: the current token, then
    # any GET or HEAD (add_static_view's own view is left the other methods).
    prefix = config.route_prefix
    route_name = f"__{prefix}/{name}" if prefix else f"__{name}"
    for cache_control, predicates in (
            (VERSIONED_CACHE_CONTROL, {"request_param": f"{TOKEN_PARAM}={token}"}),
            (UNVERSIONED_CACHE_CONTROL, {})):
        config.add_view(cached(cache_control), route_name=route_name,
                        request_method=("GET", "HEAD"), permission=NO_PERMISSION_REQUIRED,
                        **predicates)
