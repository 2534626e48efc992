"""``tests.plain_app`` that says which worker process answered.

Every response carries ``X-Worker-Pid``; the process that imports the app
prints ``app loaded in <pid>`` (once, in gunicorn's master, with
``--preload``; once per worker without).
"""
import os

from tests.plain_app import app as plain_app

print(f"app loaded in {os.getpid()}", flush=True)


def app(environ, start_response):
    def start_with_pid(status, headers, exc_info=None):
        return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))],
                              exc_info)

    return plain_app(environ, start_with_pid)
