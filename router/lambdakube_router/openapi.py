"""The router's OpenAPI 3 document, served at ``GET /openapi.json``.

A static dict on purpose: the API is small and stable, and a hand-written document says
exactly what the Lambda-compatible surface promises (status codes, headers, error types).
A unit test checks that every route the app registers is documented here.
"""

from __future__ import annotations

_ERR = {"$ref": "#/components/schemas/Error"}


def _err(desc: str, schema: dict | None = None) -> dict:
    return {
        "description": desc,
        "headers": {"x-amzn-ErrorType": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": schema or _ERR}},
    }


_NS = {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}

OPENAPI: dict = {
    "openapi": "3.0.3",
    "info": {
        "title": "lambdakube router",
        "version": "v1alpha1",
        "description": (
            "AWS Lambda's Invoke API (2015-03-31) for functions running on Kubernetes, plus a"
            " small read-only API over the router's pools and durable queues.\n\n"
            "FunctionName is `<name>` (namespace from the `X-Lambdakube-Namespace` header or"
            " the router's default namespace) or `lambdakube:<namespace>:function:<name>`."
        ),
    },
    "paths": {
        "/2015-03-31/functions/{FunctionName}/invocations": {
            "post": {
                "operationId": "Invoke",
                "summary": "Invoke a function (synchronously, asynchronously, or dry run)",
                "parameters": [
                    {
                        "name": "FunctionName",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "`name` or `lambdakube:<namespace>:function:<name>[:$LATEST]`",
                    },
                    {
                        "name": "Qualifier",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["$LATEST"]},
                    },
                    {
                        "name": "X-Amz-Invocation-Type",
                        "in": "header",
                        "schema": {
                            "type": "string",
                            "enum": ["RequestResponse", "Event", "DryRun"],
                            "default": "RequestResponse",
                        },
                    },
                    {"name": "X-Amz-Log-Type", "in": "header", "schema": {"type": "string", "enum": ["None", "Tail"]}},
                    {
                        "name": "X-Amz-Client-Context",
                        "in": "header",
                        "schema": {"type": "string", "maxLength": 3583},
                        "description": "base64-encoded JSON object",
                    },
                    {"name": "X-Lambdakube-Namespace", "in": "header", "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "description": "The event: JSON, at most 6 MB (sync) or 256 KB (Event).",
                    "content": {"application/json": {"schema": {}}},
                },
                "responses": {
                    "200": {
                        "description": "The function's result (or its error, with X-Amz-Function-Error)",
                        "headers": {
                            "X-Amz-Function-Error": {"schema": {"type": "string", "enum": ["Unhandled"]}},
                            "X-Amz-Log-Result": {"schema": {"type": "string", "format": "byte"}},
                            "X-Amz-Executed-Version": {"schema": {"type": "string"}},
                            "X-Amz-Request-Id": {"schema": {"type": "string", "format": "uuid"}},
                            "X-Cold-Start": {"schema": {"type": "string", "enum": ["true", "false"]}},
                            "X-Init-Duration-Ms": {"schema": {"type": "number"}},
                            "X-Run-Duration-Ms": {"schema": {"type": "number"}},
                            "X-Queue-Wait-Ms": {"schema": {"type": "number"}},
                            "X-Environment-Id": {"schema": {"type": "string"}},
                        },
                        "content": {"application/json": {"schema": {}}},
                    },
                    "202": {"description": "Event stored durably; it will be delivered"},
                    "204": {"description": "DryRun: the function exists"},
                    "400": _err("InvalidRequestContentException or InvalidParameterValueException"),
                    "404": _err("ResourceNotFoundException"),
                    "413": _err("RequestTooLargeException"),
                    "415": _err("UnsupportedMediaTypeException"),
                    "429": {
                        "description": "TooManyRequestsException (throttled)",
                        "headers": {
                            "Retry-After": {"schema": {"type": "integer"}},
                            "x-amzn-ErrorType": {"schema": {"type": "string"}},
                        },
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Throttle"}}},
                    },
                    "502": _err("EnvironmentFailureException, InitError, InitTimeoutException"),
                    "503": _err("ServiceException (Event: the async store cannot take it; Retry-After set)"),
                    "504": _err("InvokeTimeoutException"),
                },
            }
        },
        "/internal/v1/environments/listening": {
            "post": {
                "operationId": "EnvironmentListening",
                "description": "A fresh pod's runtime says it listens (kubernetes backend): "
                "accepted only with the pod's token, from the announced IP.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["envId", "address", "token"],
                                "properties": {
                                    "envId": {"type": "string"},
                                    "address": {"type": "string"},
                                    "token": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "204": {"description": "accepted"},
                    "400": _err("InvalidRequestContentException"),
                    "403": _err("AccessDeniedException"),
                    "404": _err("ResourceNotFoundException (no announces on this backend)"),
                    "413": _err("RequestTooLargeException"),
                },
            }
        },
        "/healthz": {"get": {"operationId": "Healthz", "responses": {"200": {"description": "ok (liveness)"}}}},
        "/readyz": {
            "get": {
                "operationId": "Readyz",
                "responses": {
                    "200": {"description": "ready: the async store takes events"},
                    "503": {"description": "the async store is unavailable or cannot write (see asyncStore.reason)"},
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "Metrics",
                "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}},
            }
        },
        "/openapi.json": {"get": {"operationId": "OpenAPI", "responses": {"200": {"description": "this document"}}}},
        "/lambdakube/v1/namespaces/{namespace}/functions": {
            "get": {
                "operationId": "ListFunctions",
                "parameters": [_NS],
                "responses": {"200": {"description": "functions with pool state"}},
            }
        },
        "/lambdakube/v1/namespaces/{namespace}/functions/{name}": {
            "get": {
                "operationId": "GetFunction",
                "parameters": [_NS, {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "pool (environments and states, cold starts, spill-over)"
                        " and concurrency accounting",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FunctionState"}}},
                    },
                    "404": _err("ResourceNotFoundException"),
                },
            }
        },
        "/lambdakube/v1/namespaces/{namespace}/queues/{queue}/messages": {
            "get": {
                "operationId": "ListQueueMessages",
                "parameters": [
                    _NS,
                    {"name": "queue", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "after", "in": "query", "schema": {"type": "integer", "default": 0}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 100}},
                ],
                "responses": {
                    "200": {
                        "description": "durable destination records, oldest first",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueueMessages"}}},
                    }
                },
            },
            "delete": {
                "operationId": "DeleteQueueMessages",
                "parameters": [
                    _NS,
                    {"name": "queue", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "upTo", "in": "query", "required": True, "schema": {"type": "integer"}},
                ],
                "responses": {"200": {"description": "messages with seq <= upTo deleted"}},
            },
        },
        "/lambdakube/v1/namespaces/{namespace}/async-events": {
            "get": {
                "operationId": "ListAsyncEvents",
                "parameters": [_NS],
                "responses": {"200": {"description": "stored async events not yet finished"}},
            }
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["errorType", "errorMessage"],
                "properties": {
                    "Type": {"type": "string"},
                    "errorType": {"type": "string"},
                    "errorMessage": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
            "Throttle": {
                "type": "object",
                "required": ["Type", "message", "Reason", "retryAfterSeconds", "errorType"],
                "properties": {
                    "Type": {"type": "string", "enum": ["User"]},
                    "message": {"type": "string", "enum": ["Rate Exceeded."]},
                    "Reason": {
                        "type": "string",
                        "enum": [
                            "ReservedFunctionConcurrentInvocationLimitExceeded",
                            "ConcurrentInvocationLimitExceeded",
                            "FunctionInvocationRateLimitExceeded",
                        ],
                    },
                    "retryAfterSeconds": {"type": "string"},
                    "errorType": {"type": "string", "enum": ["TooManyRequestsException"]},
                },
            },
            "FunctionState": {
                "type": "object",
                "properties": {
                    "namespace": {"type": "string"},
                    "name": {"type": "string"},
                    "arn": {"type": "string"},
                    "pool": {"type": "object"},
                    "concurrency": {"type": "object"},
                },
            },
            "QueueMessages": {
                "type": "object",
                "properties": {
                    "namespace": {"type": "string"},
                    "queue": {"type": "string"},
                    "messages": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "seq": {"type": "integer"},
                                "messageId": {"type": "string"},
                                "createdAt": {"type": "number"},
                                "body": {},
                            },
                        },
                    },
                },
            },
        }
    },
}
