"""The add-on's keys in a request's WSGI environ."""

ENVIRON_KEY = "pyramid_upload_progress.upload"
"""Where a tracked request's
:class:`~pyramid_upload_progress.tracking.TrackedUpload` lives."""

BUFFERED_KEY = "pyramid_upload_progress.buffered"
"""Where a server runner that counted the body as it arrived (the waitress
runner) leaves that upload, whose ``hand_over(tracked)`` lets the request's
:class:`~pyramid_upload_progress.tracking.TrackedUpload` go on with its
record and returns its key."""
