"""Kubernetes Events on Functions, posted through kopf's event poster.

``kopf.event`` (not ``kopf.info``/``kopf.warn``): our events are explicit decisions and
must be posted whatever ``settings.posting.level`` is - that level only keeps kopf's own
log lines ("Timer succeeded") from becoming Events. Outside a running operator (unit
tests) there is no poster; the event is logged instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import kopf

log = logging.getLogger(__name__)

MAX_MESSAGE = 1024  # the API server rejects longer event messages


def post(body: Mapping, type_: str, reason: str, message: str) -> None:
    meta = body.get("metadata") or {}
    log.info("event %s/%s %s %s: %s", meta.get("namespace"), meta.get("name"), type_, reason, message)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    try:
        kopf.event(dict(body), type=type_, reason=reason, message=message)
    except LookupError:  # no operator context: nothing to post with
        pass
