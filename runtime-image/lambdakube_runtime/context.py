"""The ``context`` argument handed to ``handler(event, context)``.

Attribute names and types follow AWS Lambda's Python runtime (``awslambdaric``'s
``LambdaContext``) so existing handlers run unchanged:

* ``client_context`` is None, or a ``ClientContext`` with ``.client`` (a ``Client`` with
  ``installation_id``, ``app_title``, ``app_version_name``, ``app_version_code``,
  ``app_package_name``; None when the caller sent no ``client`` object), ``.custom`` and
  ``.env`` (the caller's JSON values, None when absent), built from ``X-Client-Context``;
* ``identity`` is always a ``CognitoIdentity`` (both ids None: there is no Cognito);
* ``memory_limit_in_mb`` is a string, as Lambda's (it reads an environment variable);
* ``invoked_function_arn`` is the ARN the caller invoked, with its qualifier, as the
  router sends it (``X-Invoked-Function-Arn``: an AWS ARN as the caller wrote it, else
  lambdakube's ``lambdakube:<ns>:function:<name>[:<qualifier>]``); without the header,
  lambdakube's unqualified ARN;
* the log names use lambdakube's own scheme (``/lambdakube/<ns>/<name>``, the
  environment id).

The remaining time is computed from a monotonic deadline, so it is immune to wall-clock
steps during the invocation; the deadline is the earlier of the function timeout and the
router's ``X-Deadline-Ms``. The client context objects are built when first read: most
handlers never look.
"""

from __future__ import annotations

import time


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, cognito_identity_id: str | None = None, cognito_identity_pool_id: str | None = None):
        self.cognito_identity_id = cognito_identity_id
        self.cognito_identity_pool_id = cognito_identity_pool_id

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")

    def __init__(self, fields: dict):
        for name in Client.__slots__:
            setattr(self, name, fields.get(name))

    def __repr__(self) -> str:
        inner = ",".join(f"{name}={getattr(self, name)}" for name in Client.__slots__)
        return f"Client([{inner}])"


class ClientContext:
    __slots__ = ("custom", "env", "client")

    def __init__(self, fields: dict):
        self.custom = fields.get("custom")
        self.env = fields.get("env")
        client = fields.get("client")
        self.client = Client(client) if isinstance(client, dict) else None

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


_UNBUILT = object()


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
        "tenant_id",
        "timeout_seconds",
        "_client_context",
        "_client_context_fields",
        "identity",
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
        invoked_function_arn: str | None = None,
    ):
        self.aws_request_id = request_id
        self.request_id = request_id
        self.function_name = function_name
        self.function_version = function_version
        self.memory_limit_in_mb = str(memory_mb)
        self.invoked_function_arn = invoked_function_arn or f"lambdakube:{namespace}:function:{function_name}"
        self.log_group_name = f"/lambdakube/{namespace}/{function_name}"
        self.log_stream_name = env_id
        self.tenant_id = None
        self.timeout_seconds = timeout_seconds
        self._client_context_fields = client_context
        self._client_context: object = _UNBUILT
        self.identity = CognitoIdentity()
        self._deadline = deadline_monotonic

    @property
    def client_context(self) -> ClientContext | None:
        built = self._client_context
        if built is _UNBUILT:
            fields = self._client_context_fields
            built = self._client_context = ClientContext(fields) if fields is not None else None
        return built  # type: ignore[return-value]

    @client_context.setter
    def client_context(self, value) -> None:
        self._client_context = value

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return (
            f"LambdaContext(aws_request_id={self.aws_request_id!r}, function_name={self.function_name!r}, "
            f"function_version={self.function_version!r}, memory_limit_in_mb={self.memory_limit_in_mb!r}, "
            f"invoked_function_arn={self.invoked_function_arn!r})"
        )
