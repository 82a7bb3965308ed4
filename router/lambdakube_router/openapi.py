"""The router's OpenAPI 3 document, served at ``GET /openapi.json``.

A static dict on purpose: the API is small and stable, and a hand-written document says
exactly what the Lambda-compatible surface promises (status codes, headers, error types).
The read API's parameters come from ``params``, the declarations the server checks them
with. A unit test checks that every route the app registers is documented here, and
``tests/router/test_openapi_schemathesis.py`` checks the running router against it.
"""

from __future__ import annotations

from lambdakube_router import access, params, ui

_ERR = {"$ref": "#/components/schemas/Error"}
#: The announce endpoint's refusals: the type is in ``x-amzn-ErrorType`` only.
_ANNOUNCE_ERR = {"$ref": "#/components/schemas/AnnounceError"}


def _err(desc: str, schema: dict | None = None) -> dict:
    return {
        "description": desc,
        "headers": {"x-amzn-ErrorType": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": schema or _ERR}},
    }


def _params(declared: tuple[params.Param, ...]) -> list[dict]:
    """The read API's parameters, from the declarations the server checks them with."""
    return [p.openapi() for p in declared]


_BAD_PARAMETER = _err("InvalidParameterValueException: a parameter is missing, repeated or out of range")
_STORE_UNAVAILABLE = _err("ServiceException: the async store is unavailable (full disk, corrupt file); retry later")

OPENAPI: dict = {
    "openapi": "3.0.3",
    "info": {
        "title": "lambdakube router",
        "version": "v1alpha1",
        "description": (
            "AWS Lambda's Invoke API (2015-03-31) for functions running on Kubernetes, plus a"
            " small read-only API over the router's pools and durable queues.\n\n"
            "FunctionName is `<name>[:<qualifier>]` (namespace from the `X-Lambdakube-Namespace`"
            " header, a ServiceAccount caller's own namespace, or the router's default namespace), Lambda's"
            " `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]` or"
            " `<account>:function:<name>[:<qualifier>]` (the namespace the router maps the account"
            " to; an unmapped account is not found), or"
            " `lambdakube:<namespace>:function:<name>[:<qualifier>]`; anything else is 400"
            " ValidationException, as Lambda answers."
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
                        "description": (
                            "`name[:qualifier]`, `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`,"
                            " `<account>:function:<name>[:<qualifier>]` or"
                            " `lambdakube:<namespace>:function:<name>[:<qualifier>]`"
                        ),
                        "example": "hello",
                    },
                    {
                        "name": "Qualifier",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "$LATEST, a published version's number or an alias (Event: $LATEST only)",
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
                    "content": {"application/json": {"schema": {}, "example": {"name": "world"}}},
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
                    "400": _err(
                        "ValidationException (a FunctionName Lambda refuses), InvalidRequestContentException"
                        " or InvalidParameterValueException"
                    ),
                    "404": _err("ResourceNotFoundException"),
                    "408": _err("RequestTimeoutException: the body did not arrive in time; connection closed"),
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
                    "503": _err(
                        "ServiceException (Event: the async store cannot take it; or the router has its"
                        " --max-connections open): Retry-After set"
                    ),
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
                    "400": _err("InvalidRequestContentException", _ANNOUNCE_ERR),
                    "403": _err("AccessDeniedException", _ANNOUNCE_ERR),
                    "404": _err("ResourceNotFoundException (no announces on this backend)", _ANNOUNCE_ERR),
                    "413": _err("RequestTooLargeException", _ANNOUNCE_ERR),
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
                "parameters": _params(params.LIST_FUNCTIONS),
                "responses": {
                    "200": {
                        "description": "functions with pool state",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FunctionList"}}},
                    },
                    "400": _BAD_PARAMETER,
                },
            }
        },
        "/lambdakube/v1/namespaces/{namespace}/functions/{name}": {
            "get": {
                "operationId": "GetFunction",
                "parameters": _params(params.GET_FUNCTION),
                "responses": {
                    "200": {
                        "description": "pool (environments and states, cold starts, spill-over)"
                        " and concurrency accounting",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FunctionState"}}},
                    },
                    "400": _BAD_PARAMETER,
                    "404": _err("ResourceNotFoundException"),
                },
            }
        },
        "/lambdakube/v1/namespaces/{namespace}/queues/{queue}/messages": {
            "get": {
                "operationId": "ListQueueMessages",
                "parameters": _params(params.LIST_QUEUE_MESSAGES),
                "responses": {
                    "200": {
                        "description": "durable destination records, oldest first",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueueMessages"}}},
                    },
                    "400": _BAD_PARAMETER,
                    "503": _STORE_UNAVAILABLE,
                },
            },
            "delete": {
                "operationId": "DeleteQueueMessages",
                "parameters": _params(params.DELETE_QUEUE_MESSAGES),
                "responses": {
                    "200": {
                        "description": "messages with seq <= upTo deleted",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["deleted"],
                                    "properties": {"deleted": {"type": "integer", "minimum": 0}},
                                }
                            }
                        },
                    },
                    "400": _BAD_PARAMETER,
                    "503": _STORE_UNAVAILABLE,
                },
            },
            "post": {
                "operationId": "SendQueueMessages",
                "description": "SQS's SendMessage (MessageBody) or SendMessageBatch (Entries) onto a durable"
                " queue; its event source mappings' pollers are woken",
                "parameters": _params(params.SEND_QUEUE_MESSAGES),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SendMessage"}}},
                },
                "responses": {
                    "200": {
                        "description": "stored: the MessageId (a batch: each entry's)",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SendMessageResult"}}},
                    },
                    "400": _err("InvalidParameterValueException: a parameter or the body is not SendMessage's"),
                    "413": _err("RequestTooLargeException: the body is too large"),
                    "503": _STORE_UNAVAILABLE,
                },
            },
        },
        "/lambdakube/v1/namespaces/{namespace}/eventsourcemappings": {
            "get": {
                "operationId": "ListEventSourceMappings",
                "parameters": _params(params.LIST_EVENT_SOURCE_MAPPINGS),
                "responses": {
                    "200": {
                        "description": "the namespace's event source mappings, their specs and pollers' status",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/EventSourceMappings"}}
                        },
                    },
                    "400": _BAD_PARAMETER,
                },
            }
        },
        "/lambdakube/v1/namespaces/{namespace}/async-events": {
            "get": {
                "operationId": "ListAsyncEvents",
                "parameters": _params(params.LIST_ASYNC_EVENTS),
                "responses": {
                    "200": {
                        "description": "stored async events not yet finished",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AsyncEvents"}}},
                    },
                    "400": _BAD_PARAMETER,
                    "503": _STORE_UNAVAILABLE,
                },
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
            "AnnounceError": {
                "type": "object",
                "required": ["Type", "message"],
                "properties": {"Type": {"type": "string"}, "message": {"type": "string"}},
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
            "FunctionList": {
                "type": "object",
                "required": ["namespace", "functions"],
                "properties": {
                    "namespace": {"type": "string"},
                    "functions": {"type": "array", "items": {"$ref": "#/components/schemas/FunctionState"}},
                },
            },
            "AsyncEvents": {
                "type": "object",
                "required": ["namespace", "events"],
                "properties": {
                    "namespace": {"type": "string"},
                    "events": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "namespace": {"type": "string"},
                                "function": {"type": "string"},
                                "createdAt": {"type": "number"},
                                "nextAttemptAt": {"type": "number"},
                                "functionErrors": {"type": "integer"},
                                "systemRetries": {"type": "integer"},
                                "invocations": {"type": "integer"},
                                "lastError": {"type": "string", "nullable": True},
                            },
                        },
                    },
                },
            },
            "SendMessage": {
                "type": "object",
                "properties": {
                    "MessageBody": {"type": "string", "minLength": 1},
                    "DelaySeconds": {"type": "integer", "minimum": 0, "maximum": 900},
                    "MessageAttributes": {"type": "object"},
                    "Entries": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 10,
                        "items": {
                            "type": "object",
                            "required": ["Id", "MessageBody"],
                            "properties": {
                                "Id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,80}$"},
                                "MessageBody": {"type": "string", "minLength": 1},
                                "DelaySeconds": {"type": "integer", "minimum": 0, "maximum": 900},
                                "MessageAttributes": {"type": "object"},
                            },
                        },
                    },
                },
            },
            "SendMessageResult": {
                "type": "object",
                "properties": {
                    "MessageId": {"type": "string"},
                    "MD5OfMessageBody": {"type": "string"},
                    "Successful": {"type": "array", "items": {"type": "object"}},
                    "Failed": {"type": "array", "items": {"type": "object"}},
                },
            },
            "EventSourceMappings": {
                "type": "object",
                "required": ["namespace", "eventSourceMappings"],
                "properties": {
                    "namespace": {"type": "string"},
                    "eventSourceMappings": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["namespace", "name", "status"],
                            "properties": {
                                "namespace": {"type": "string"},
                                "name": {"type": "string"},
                                "spec": {"type": "object", "nullable": True},
                                "status": {"type": "object"},
                            },
                        },
                    },
                },
            },
            "QueueMessages": {
                "type": "object",
                "required": ["namespace", "queue", "messages"],
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


def _with_access(doc: dict) -> dict:
    """Every operation that needs a caller (``access.NEEDS``) says so: the bearer scheme,
    401 and 403, and 503 when the API server cannot review (written once, from the same
    table the router's gate reads; with ``--auth none`` they never happen)."""
    doc["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "`--auth tokenreview`: a token the Kubernetes API server accepts (TokenReview),"
            " rights from RBAC on lambdakube.dev (SubjectAccessReview); `--auth token-file`: a listed token",
        }
    }
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if (method.upper(), path) not in access.NEEDS:
                continue
            op["security"] = [{"bearer": []}]
            responses = op["responses"]
            responses["401"] = _err("UnrecognizedClientException: no bearer token, or one that is not valid")
            responses["403"] = _err("AccessDeniedException: the caller may not do this (RBAC on lambdakube.dev)")
            if "503" in responses:
                responses["503"] = _err(responses["503"]["description"] + "; or the caller could not be reviewed")
            else:
                responses["503"] = _err("ServiceException: the caller could not be reviewed (API server); retry")
    return doc


def _lambda_reads(doc: dict) -> dict:
    """Lambda's read API (``lambda_read_api``): the SDK's operations, Lambda's shapes
    (documented by AWS; described here by name, not repeated)."""
    name: dict = {"name": "FunctionName", "in": "path", "required": True, "schema": {"type": "string"}}
    qualifier: dict = {
        "name": "Qualifier",
        "in": "query",
        "schema": {"type": "string", "description": "$LATEST, a published version's number or an alias"},
    }
    namespace: dict = {"name": "X-Lambdakube-Namespace", "in": "header", "schema": {"type": "string"}}
    paging: list[dict] = [
        {"name": "Marker", "in": "query", "schema": {"type": "string"}},
        {"name": "MaxItems", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
    ]

    def op(operation: str, parameters: list[dict], found: bool = True) -> dict:
        responses = {
            "200": {
                "description": f"Lambda's {operation} response",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "400": _err("InvalidParameterValueException: a malformed FunctionName, Marker or MaxItems"),
        }
        if found:
            responses["404"] = _err("ResourceNotFoundException: no such function (or qualifier)")
        return {"get": {"operationId": f"Lambda{operation}", "parameters": parameters, "responses": responses}}

    one = [name, qualifier, namespace]
    paths = {
        "/2015-03-31/functions": op("ListFunctions", [*paging, namespace], found=False),
        "/2015-03-31/functions/": op("ListFunctionsSlash", [*paging, namespace], found=False),
        "/2015-03-31/functions/{FunctionName}": op("GetFunction", one),
        "/2015-03-31/functions/{FunctionName}/configuration": op("GetFunctionConfiguration", one),
        "/2015-03-31/functions/{FunctionName}/versions": op("ListVersionsByFunction", [name, *paging, namespace]),
        "/2015-03-31/functions/{FunctionName}/aliases": op(
            "ListAliases",
            [name, *paging, {"name": "FunctionVersion", "in": "query", "schema": {"type": "string"}}, namespace],
        ),
        "/2015-03-31/functions/{FunctionName}/aliases/{Name}": op(
            "GetAlias",
            [name, {"name": "Name", "in": "path", "required": True, "schema": {"type": "string"}}, namespace],
        ),
        "/2019-09-30/functions/{FunctionName}/concurrency": op("GetFunctionConcurrency", [name, namespace]),
        "/2016-08-19/account-settings": op("GetAccountSettings", [namespace], found=False),
        "/2016-08-19/account-settings/": op("GetAccountSettingsSlash", [namespace], found=False),
    }
    for path, item in paths.items():
        doc["paths"][path] = item
    writes = {
        "put": {
            "operationId": "LambdaPutFunctionConcurrency",
            "parameters": [name, namespace],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["ReservedConcurrentExecutions"],
                            "properties": {"ReservedConcurrentExecutions": {"type": "integer", "minimum": 0}},
                        }
                    }
                }
            },
            "responses": {
                "200": {"description": "the reservation is set", "content": {"application/json": {"schema": {}}}},
                "400": _err(
                    "InvalidParameterValueException: it does not fit the namespace quota, is below the"
                    " provisioned concurrency, or the Functions are manifests (local)"
                ),
                "404": _err("ResourceNotFoundException"),
                "503": _err("ServiceException: the API server refused or could not be reached"),
            },
        },
        "delete": {
            "operationId": "LambdaDeleteFunctionConcurrency",
            "parameters": [name, namespace],
            "responses": {
                "204": {"description": "the reservation is removed"},
                "400": _err("InvalidParameterValueException: the Functions are manifests (local)"),
                "404": _err("ResourceNotFoundException"),
                "503": _err("ServiceException: the API server refused or could not be reached"),
            },
        },
    }
    doc["paths"]["/2017-10-31/functions/{FunctionName}/concurrency"] = writes
    doc["paths"]["/2019-09-30/functions/{FunctionName}/provisioned-concurrency"] = _provisioned(name, namespace, paging)
    return doc


def _provisioned(name: dict, namespace: dict, paging: list[dict]) -> dict:
    """Lambda's provisioned-concurrency calls (``lambda_provisioned_api``)."""
    qualifier = {"name": "Qualifier", "in": "query", "schema": {"type": "string"}}
    listing = {"name": "List", "in": "query", "schema": {"type": "string", "enum": ["ALL"]}}
    config = {"application/json": {"schema": {"type": "object"}}}
    refused = _err(
        "ValidationException (no Qualifier) or InvalidParameterValueException: $LATEST, it does not fit the"
        " reservation or the namespace quota, or the Functions are manifests (local)"
    )
    missing = _err("ResourceNotFoundException or ProvisionedConcurrencyConfigNotFoundException")
    return {
        "get": {
            "operationId": "LambdaGetProvisionedConcurrencyConfig",
            "description": "with List=ALL: ListProvisionedConcurrencyConfigs",
            "parameters": [name, qualifier, listing, *paging, namespace],
            "responses": {
                "200": {"description": "the configuration(s)", "content": config},
                "400": refused,
                "404": missing,
            },
        },
        "put": {
            "operationId": "LambdaPutProvisionedConcurrencyConfig",
            "parameters": [name, qualifier, namespace],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["ProvisionedConcurrentExecutions"],
                            "properties": {"ProvisionedConcurrentExecutions": {"type": "integer", "minimum": 1}},
                        }
                    }
                }
            },
            "responses": {
                "202": {"description": "set; Status IN_PROGRESS until the environments are up", "content": config},
                "400": refused,
                "404": missing,
                "503": _err("ServiceException: the API server refused or could not be reached"),
            },
        },
        "delete": {
            "operationId": "LambdaDeleteProvisionedConcurrencyConfig",
            "parameters": [name, qualifier, namespace],
            "responses": {
                "204": {"description": "removed; the environments drain"},
                "400": refused,
                "404": missing,
                "503": _err("ServiceException: the API server refused or could not be reached"),
            },
        },
    }


_lambda_reads(OPENAPI)
OPENAPI["paths"].update(ui.OPENAPI_PATHS)  # the web view and its data (``ui``)
_with_access(OPENAPI)
