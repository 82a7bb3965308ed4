"""Names and time stamps every component writes the same way: function ARNs and RFC 3339.

One place, because two spellings of the same thing drift (a record whose ARN differs from
the one the Invoke API accepts, a condition time with a different precision).
"""

from __future__ import annotations

from datetime import datetime, timezone


def function_arn(namespace: str, name: str) -> str:
    """``lambdakube:<namespace>:function:<name>``: Lambda's ARN shape, with the namespace
    where Lambda has region and account (the Invoke API accepts it as FunctionName)."""
    return f"lambdakube:{namespace}:function:{name}"


def queue_arn(namespace: str, name: str) -> str:
    """``lambdakube:<namespace>:queue:<name>``: a durable queue's ARN (an SQS record's
    ``eventSourceARN``), shaped like ``function_arn``."""
    return f"lambdakube:{namespace}:queue:{name}"


def rfc3339(moment: datetime | float) -> str:
    """``2026-01-01T12:00:00Z`` (seconds: Kubernetes' metav1.Time precision) of an aware
    datetime or a Unix time."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_millis(ts: float) -> str:
    """``2026-01-01T12:00:00.123Z``: the precision of Lambda's invocation records."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_rfc3339(text: str | None) -> datetime | None:
    """The aware datetime of an RFC 3339 stamp (``Z`` or an offset); None for None, ""
    or a malformed stamp (an annotation anybody may edit: treated as absent)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
