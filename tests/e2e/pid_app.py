"""``tests.plain_app`` with the answering worker's pid in every response
(``X-Worker-Pid``), for tests that must see several processes answer."""
import os

from tests.plain_app import app as plain_app


def app(environ, start_response):
    def start(status, headers, exc_info=None):
        return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))],
                              exc_info)

    return plain_app(environ, start)
