"""Sphinx configuration of pyramid_upload_progress's documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (and ``-b doctest``
for the Python examples); ``tests/test_docs.py`` runs both.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "_ext"), str(HERE / "examples")]

project = "pyramid_upload_progress"
copyright = "the pyramid_upload_progress authors"
release = version = "0.1.0.dev0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "repoze.sphinx.autointerface",
    "upload_progress_docs",
]

exclude_patterns = ["_build", "api-stores.rst"]  # api-stores.rst: included by api.rst
nitpicky = True  # every cross-reference we make must resolve: -W fails the build
# No intersphinx (the build must work offline): names of other projects
# (Pyramid, WebOb, redis-py, ...) stay plain text instead of links.
nitpick_ignore_regex = [
    (r"py:.*", r"(pyramid|webob|zope|redis|sqlite3|transaction|collections|typing)(\..*)?"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True}

pygments_style = "sphinx"
html_title = "pyramid_upload_progress"
try:  # the Pylons projects' theme (the docs extra), else Sphinx's own "pyramid" look-alike
    import pylons_sphinx_themes
    html_theme_path = pylons_sphinx_themes.get_html_themes_path()
except ImportError:
    pass
html_theme = "pyramid"
html_static_path = ["_static"]
