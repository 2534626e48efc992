"""Pyramid events about tracked uploads: for audit logs, quotas, metrics."""
from __future__ import annotations

from typing import Any

from zope.interface import implementer

from .interfaces import IUploadFinished, IUploadStarted
from .record import UploadRecord


class _UploadEvent:
    def __init__(self, request: Any, upload: UploadRecord) -> None:
        self.request = request
        self.upload = upload


@implementer(IUploadStarted)
class UploadStarted(_UploadEvent):
    """An upload's owner is known: see :class:`~.interfaces.IUploadStarted`."""


@implementer(IUploadFinished)
class UploadFinished(_UploadEvent):
    """An upload's record ended: see :class:`~.interfaces.IUploadFinished`."""
