"""The ``context`` argument handed to ``handler(event, context)``.

Attribute names follow AWS Lambda's Python context so existing handlers run unchanged;
the ARN and log names use lambdakube's own scheme (``lambdakube:<ns>:function:<name>``).
The remaining time is computed from a monotonic deadline, so it is immune to wall-clock
steps during the invocation; the deadline is the earlier of the function timeout and the
router's ``X-Deadline-Ms``.
"""

from __future__ import annotations

import time


class LambdaContext:
    __slots__ = (
        "aws_request_id",
        "request_id",
        "function_name",
        "function_version",
        "memory_limit_in_mb",
        "invoked_function_arn",
        "log_group_name",
        "log_stream_name",
        "client_context",
        "identity",
        "timeout_seconds",
        "_deadline",
    )

    def __init__(
        self,
        *,
        request_id: str,
        function_name: str,
        function_version: str,
        memory_mb: int,
        namespace: str,
        env_id: str,
        timeout_seconds: float,
        deadline_monotonic: float,
        client_context: dict | None = None,
    ):
        self.aws_request_id = request_id
        self.request_id = request_id
        self.function_name = function_name
        self.function_version = function_version
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"lambdakube:{namespace}:function:{function_name}"
        self.log_group_name = f"/lambdakube/{namespace}/{function_name}"
        self.log_stream_name = env_id
        self.client_context = client_context
        self.identity = None
        self.timeout_seconds = timeout_seconds
        self._deadline = deadline_monotonic

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return (
            f"LambdaContext(aws_request_id={self.aws_request_id!r}, function_name={self.function_name!r}, "
            f"function_version={self.function_version!r}, memory_limit_in_mb={self.memory_limit_in_mb!r})"
        )
