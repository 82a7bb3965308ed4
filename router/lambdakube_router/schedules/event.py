"""The event a schedule's tick invokes its function with: EventBridge's Scheduled Event.

A handler written for an EventBridge rule reads the same fields: ``version "0"``,
``detail-type "Scheduled Event"``, ``source "aws.events"``, ``time`` (the tick, not
the moment it was sent), ``resources`` (the rule's ARN) and ``detail {}``. The account
is the namespace (lambdakube's accounts), the region the one function environments
see (``identity.REGION``). ``id`` is derived from the function and the tick, so a
handler can deduplicate on it as on any EventBridge event id.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from lambdakube.resources import identity

_IDS = uuid.UUID("5f0c3a52-8d1e-4e43-9b76-3d8a1a9b2c10")


def rule_arn(namespace: str, name: str) -> str:
    return f"arn:aws:events:{identity.REGION}:{namespace}:rule/{name}"


def event_id(namespace: str, name: str, tick: float) -> str:
    return str(uuid.uuid5(_IDS, f"{namespace}/{name}@{tick:.3f}"))


def scheduled_event(namespace: str, name: str, tick: float) -> dict:
    return {
        "version": "0",
        "id": event_id(namespace, name, tick),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": namespace,
        "time": datetime.fromtimestamp(tick, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": identity.REGION,
        "resources": [rule_arn(namespace, name)],
        "detail": {},
    }


def payload(scheduled: dict) -> bytes:
    """The invocation's body: ``scheduled_event``'s, compact."""
    return json.dumps(scheduled, separators=(",", ":")).encode()
